"""Statistics of the fair benchmark: funnel limits, overdispersion, shrinkage, noise, ranks.

All functions are pure (arrays in, arrays or DataFrames out). Index conventions: a
``pd.Series`` input lends its index to the output, otherwise the index is 0..n-1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["funnel_limits", "overdispersion", "rank_intervals", "ranks", "shrink_means",
           "split_half_noise"]

_DEFAULT_P = (0.025, 0.975, 0.001, 0.999)
_DEFAULT_NAMES = ("low95", "high95", "low998", "high998")


def _vec(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype="float64")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _index(x, n: int) -> pd.Index:
    return x.index if isinstance(x, pd.Series) else pd.RangeIndex(n)


def funnel_limits(expected: np.ndarray, p: float | Sequence[float] = _DEFAULT_P,
                  phi: float = 1.0) -> pd.DataFrame:
    """Funnel-plot control limits for the standardised ratio O/E of a Poisson count.

    Spiegelhalter (2005), "Funnel plots for comparing institutional performance",
    *Stat Med* 24:1185-1202, sec. 2 and appendix: with r_p the p-quantile of
    Poisson(E) (smallest r with F(r; E) >= p),
    ``alpha = (F(r_p) - p) / (F(r_p) - F(r_p - 1))``, ``O_p = r_p - alpha`` and the limit
    is ``O_p / E``. The interpolation makes the limit continuous in E; ``O_p`` is the
    *exact* p-quantile of the jittered count ``O - U``, U ~ Uniform(0, 1) independent of
    O, so ``P(O - U > O_p) = 1 - p``. For the raw count only a bracket holds:
    ``1 - F(r_p) <= P(O > O_p) <= 1 - F(r_p - 1)``.

    With multiplicative overdispersion ``phi`` (see ``overdispersion``) the distance from 1
    is inflated, ``1 + (O_p / E - 1) * sqrt(phi)`` (Spiegelhalter 2005, sec. 3.3.2, does
    the same on the normal approximation ``1 +/- z_p sqrt(phi / E)``). Limits are floored
    at 0 (a low limit can be negative when r_p = 0 or phi is large).

    Parameters
    ----------
    expected : array (n,)
        Expected counts E; E <= 0 or NaN gives NaN limits.
    p : float or sequence of float
        Probabilities in (0, 1). The default gives columns ``low95, high95, low998,
        high998`` (two-sided 95% and 99.8%); any other p gives columns ``q{p}``, e.g.
        ``q0.05``.
    phi : float
        Overdispersion factor, >= 1 (pass ``max(phi_hat, 1)``).

    Returns
    -------
    DataFrame (n, len(p)) of limits on the O/E scale.
    """
    e = _vec(expected, "expected")
    ps = np.atleast_1d(np.asarray(p, dtype="float64"))
    if ps.ndim != 1 or not np.all((ps > 0) & (ps < 1)):
        raise ValueError(f"every p must lie strictly between 0 and 1, got {p!r}")
    if not np.isfinite(phi) or phi < 1:
        raise ValueError(f"phi must be a finite number >= 1, got {phi!r}")
    default = not np.isscalar(p) and tuple(ps) == _DEFAULT_P
    names = list(_DEFAULT_NAMES) if default else [f"q{q:g}" for q in ps]
    ok = np.isfinite(e) & (e > 0)
    ev = e[ok][:, None]
    r = stats.poisson.ppf(ps[None, :], ev)
    # guard the search against rounding: r must be the smallest r with F(r) >= p
    r = np.where(stats.poisson.cdf(r, ev) < ps, r + 1, r)
    r = np.where((r > 0) & (stats.poisson.cdf(r - 1, ev) >= ps), r - 1, r)
    f_r, f_rm1 = stats.poisson.cdf(r, ev), stats.poisson.cdf(r - 1, ev)
    o_p = r - (f_r - ps) / (f_r - f_rm1)
    lim = np.maximum(1.0 + (o_p / ev - 1.0) * np.sqrt(phi), 0.0)
    out = np.full((e.size, ps.size), np.nan)
    out[ok] = lim
    return pd.DataFrame(out, index=_index(expected, e.size), columns=names)


def overdispersion(observed: np.ndarray, expected: np.ndarray,
                   winsor: float = 0.1) -> tuple[float, np.ndarray]:
    """Multiplicative overdispersion factor of O/E around 1 from Winsorised z-scores.

    Spiegelhalter (2005), *Stat Med* 24:1185, sec. 3.3.2; Spiegelhalter, Sherlaw-Johnson,
    Bardsley et al. (2012), "Statistical methods for healthcare regulation", *JRSS A*
    175(1):1-47. ``z_i = (O_i - E_i) / sqrt(E_i)`` (= (y_i - 1) / sqrt(1 / E_i), y = O/E);
    z is Winsorised (values beyond the ``winsor`` and ``1 - winsor`` sample quantiles set
    to those quantiles, not dropped) and ``phi = sum(z_w^2) / n``, n the number of units
    with finite O and E > 0. Under no overdispersion ``n * phi`` is compared with
    chi2(n) (exactly so only for ``winsor=0`` and normal z).

    Winsorising biases phi *down*: for normal z with variance s2, E[phi] = s2 * m(w), with
    m(0.1) = 0.679 (the second moment of a standard normal Winsorised at its 10% and 90%
    points); only ``winsor=0`` is unbiased. The factor is meant to be applied only when
    ``phi > 1`` (``funnel_limits(E, phi=max(phi, 1))``); that choice is the caller's.

    Returns
    -------
    phi : float
    z : array (n,) of the *un-Winsorised* z-scores (NaN where E <= 0 or O, E not finite).
    """
    o, e = _vec(observed, "observed"), _vec(expected, "expected")
    if o.shape != e.shape:
        raise ValueError(f"observed and expected differ in length: {o.size} vs {e.size}")
    if not 0 <= winsor < 0.5:
        raise ValueError(f"winsor must lie in [0, 0.5), got {winsor!r}")
    ok = np.isfinite(o) & np.isfinite(e) & (e > 0)
    if not ok.any():
        raise ValueError("no unit with finite observed and positive expected count")
    z = np.full(o.size, np.nan)
    z[ok] = (o[ok] - e[ok]) / np.sqrt(e[ok])
    lo, hi = np.quantile(z[ok], [winsor, 1 - winsor])
    phi = float(np.mean(np.clip(z[ok], lo, hi) ** 2))
    return phi, z


def shrink_means(mean: np.ndarray, noise_var: np.ndarray,
                 weights: np.ndarray | None = None) -> pd.DataFrame:
    """Empirical-Bayes (normal-normal) shrinkage of unit means with known noise variances.

    Model: ``mean_i = theta_i + e_i``, ``theta_i ~ N(mu, tau2)``, ``e_i ~ N(0, v_i)``,
    v_i = ``noise_var`` known (Efron and Morris 1973, *JASA* 68:117; Morris 1983, *JASA*
    78:47). tau2 by the unweighted method of moments (Hedges 1983; the unweighted analogue
    of DerSimonian and Laird 1986): ``tau2 = max(0, var(mean, ddof=1) - mean(v))``, which
    before truncation is unbiased whatever the spread of the v_i. ``mu`` = weighted mean of
    ``mean`` (``weights``, default equal). Then ``R_i = tau2 / (tau2 + v_i)``
    (``reliability``; 1 when v_i = 0), ``shrunk_i = mu + R_i (mean_i - mu)`` and
    ``posterior_var_i = R_i v_i``. Plug-in EB: the uncertainty in mu and tau2 is ignored
    (negligible for many units; Morris 1983 gives corrections for few).

    Units with NaN mean or NaN/inf noise_var get NaN outputs and are left out of tau2 and
    mu. Returns a DataFrame with columns ``shrunk``, ``reliability``, ``posterior_var``;
    ``attrs`` holds ``tau2``, ``mu`` and ``n_units`` (number of units used).
    """
    m, v = _vec(mean, "mean"), _vec(noise_var, "noise_var")
    w = np.ones_like(m) if weights is None else _vec(weights, "weights")
    if not m.shape == v.shape == w.shape:
        raise ValueError(f"mean, noise_var, weights differ in length: {m.size}, {v.size}, "
                         f"{w.size}")
    ok = np.isfinite(m) & np.isfinite(v)
    if np.any(v[ok] < 0):
        raise ValueError("noise_var must be non-negative")
    if ok.sum() < 2:
        raise ValueError(f"need at least 2 units with finite mean and noise_var, got "
                         f"{int(ok.sum())}")
    if not np.all(np.isfinite(w[ok]) & (w[ok] >= 0)) or w[ok].sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    tau2 = max(0.0, float(np.var(m[ok], ddof=1) - np.mean(v[ok])))
    mu = float(np.average(m[ok], weights=w[ok]))
    rel = np.full(m.size, np.nan)
    denom = tau2 + v[ok]
    rel[ok] = np.divide(tau2, denom, out=np.ones_like(denom), where=denom > 0)
    out = pd.DataFrame({"shrunk": mu + rel * (m - mu), "reliability": rel,
                        "posterior_var": rel * v}, index=_index(mean, m.size))
    out.attrs.update(tau2=tau2, mu=mu, n_units=int(ok.sum()))
    return out


def split_half_noise(unit: np.ndarray, cluster: np.ndarray, a: np.ndarray, b: np.ndarray,
                     weight: np.ndarray) -> pd.DataFrame:
    """Noise variance of each unit's weighted mean quality score, from split halves.

    Rows are person-months; ``a`` and ``b`` are two measurements of the same true quality
    (e.g. a caseworker's odd and even audit sessions near that month). Assumptions: given
    true quality the halves' errors are independent with equal variance; errors are
    independent across caseworkers (``cluster``) and may be arbitrarily correlated within
    one. Then D = a - b carries twice the error variance and no true quality, and the full
    score (a + b) / 2 has a quarter of D's noise variance (split-half logic, Spearman 1910;
    Brown 1910). Rows with a non-finite a, b or weight are dropped.

    Clusters are taken within unit (a caseworker in two units is two clusters). Per unit
    u, shares ``s_c = W_c / W_u`` (caseworker c's weight in u), ``d_u`` the
    weighted mean of D and the cluster-robust (CR0, Liang and Zeger 1986) variance
    ``V_u = sum_c (sum_{i in c} w_i (D_i - d_u))^2 / W_u^2``. Pooling: if a caseworker's
    weighted-mean score has common noise variance c (errors shared by its rows), the unit
    mean's noise variance is ``c * h_u``, ``h_u = sum_c s_c^2``, and
    ``E[V_u / 4] = c * k_u`` with ``k_u = h_u (1 + h_u) - 2 sum_c s_c^3`` (CR0 is biased
    down; k_u = h_u (G - 1) / G for G equal shares). Hence the unbiased ratio estimator
    ``c_hat = sum_u V_u / 4 / sum_u k_u``; units with one caseworker (k_u = 0) add nothing.

    Returns
    -------
    DataFrame indexed by unit (sorted) with columns ``noise_var`` (= c_hat * h),
    ``noise_var_unpooled`` (= V_u / 4 * h_u / k_u, the bias-corrected per-unit estimate;
    NaN with one caseworker), ``h``, ``n_clusters``, ``weight`` (W_u); ``attrs["c_hat"]``.
    """
    cols = {"u": np.asarray(unit), "c": np.asarray(cluster), "a": _vec(a, "a"),
            "b": _vec(b, "b"), "w": _vec(weight, "weight")}
    if len({len(v) for v in cols.values()}) != 1:
        raise ValueError("unit, cluster, a, b and weight must have the same length, got "
                         + str({k: len(v) for k, v in cols.items()}))
    df = pd.DataFrame({"u": cols["u"], "c": cols["c"], "d": cols["a"] - cols["b"],
                       "w": cols["w"]})
    if np.any(df["w"] < 0):
        raise ValueError("weight must be non-negative")
    if df["u"].isna().any() or df["c"].isna().any():
        raise ValueError("unit and cluster must not contain missing values")
    df = df[np.isfinite(df["d"]) & np.isfinite(df["w"]) & (df["w"] > 0)]
    if df.empty:
        raise ValueError("no row with finite a, b and positive weight")
    df = df.assign(wd=df["w"] * df["d"])
    cl = df.groupby(["u", "c"], sort=True)[["w", "wd"]].sum()
    wu = cl["w"].groupby(level="u").sum()
    du = cl["wd"].groupby(level="u").sum() / wu
    u_of = cl.index.get_level_values("u")
    share = cl["w"].to_numpy() / wu.loc[u_of].to_numpy()
    score = (cl["wd"].to_numpy() - du.loc[u_of].to_numpy() * cl["w"].to_numpy())
    per = pd.DataFrame({"s2": share ** 2, "s3": share ** 3,
                        "e2": score ** 2 / wu.loc[u_of].to_numpy() ** 2},
                       index=u_of).groupby(level=0).agg(["sum", "size"])
    h, s3 = per[("s2", "sum")], per[("s3", "sum")]
    v4 = per[("e2", "sum")] / 4
    k = (h * (1 + h) - 2 * s3).clip(lower=0)
    k = k.where(per[("s2", "size")] > 1, 0.0)
    if k.sum() <= 0:
        raise ValueError("no unit has two or more clusters: the noise cannot be estimated")
    c_hat = float(v4.sum() / k.sum())
    out = pd.DataFrame({"noise_var": c_hat * h,
                        "noise_var_unpooled": (v4 * h / k).where(k > 0),
                        "h": h, "n_clusters": per[("s2", "size")].astype("int64"),
                        "weight": wu})
    out.index.name = "unit"
    out.attrs["c_hat"] = c_hat
    return out


def ranks(values: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """Competition ranks 1..n (1 = best; ties share the lowest rank, 'min' method).

    NaN values get NaN rank and are not counted. Returns float64 (integer-valued).
    """
    x = _vec(values, "values")
    out = np.full(x.size, np.nan)
    ok = ~np.isnan(x)
    out[ok] = stats.rankdata(-x[ok] if higher_is_better else x[ok], method="min")
    return out


def rank_intervals(draws: np.ndarray, higher_is_better: bool = True,
                   level: float = 0.95) -> pd.DataFrame:
    """Marginal rank intervals from joint draws (posterior or bootstrap) of unit values.

    Each draw (row) is ranked (1 = best; ties in a draw get the average rank; NaN draws are
    left out of that draw's ranking). Per unit, ``rank_low`` = floor of the (1 - level)/2
    quantile and ``rank_high`` = ceil of the 1 - (1 - level)/2 quantile of its ranks, so
    the interval holds at least ``level`` of the draws (up to Monte Carlo error). Intervals
    are per unit, not simultaneous. Goldstein and Spiegelhalter (1996), "League tables and
    their limitations", *JRSS A* 159:385; Hall and Miller (2009), *JCGS* 18:543, on the
    bootstrap of ranks (inconsistent for near-ties).

    Parameters
    ----------
    draws : array (n_draws, n_units) or DataFrame (its columns index the output).

    Returns
    -------
    DataFrame (n_units,) with ``rank_low``, ``rank_high`` (float, integer-valued; NaN for
    a unit without finite draws) and ``rank_mean``.
    """
    x = np.asarray(draws, dtype="float64")
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"draws must be (n_draws, n_units) with n_draws >= 1, got {x.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    r = stats.rankdata(-x if higher_is_better else x, method="average", axis=1,
                       nan_policy="omit")
    tail = (1 - level) / 2
    idx = draws.columns if isinstance(draws, pd.DataFrame) else pd.RangeIndex(x.shape[1])
    empty = np.all(np.isnan(r), axis=0)
    rr = np.where(empty[None, :], 0.0, r)  # silence all-NaN warnings; reset below
    lo, hi = np.nanquantile(rr, [tail, 1 - tail], axis=0)
    out = pd.DataFrame({"rank_low": np.floor(lo), "rank_high": np.ceil(hi),
                        "rank_mean": np.nanmean(rr, axis=0)}, index=idx)
    out.loc[empty] = np.nan
    return out
