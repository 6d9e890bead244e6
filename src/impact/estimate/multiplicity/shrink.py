"""Empirical-Bayes (normal-normal) shrinkage of group effects towards the overall effect,
the between-group variance by Paule-Mandel."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from impact.estimate.multiplicity._arrays import vector as _vector

__all__ = ["ShrinkResult", "paule_mandel", "shrink_to_overall"]


@dataclass(frozen=True)
class ShrinkResult:
    """Empirical-Bayes shrinkage of H group effects towards the overall effect.

    shrunk (H,): overall + R (est - overall); reliability (H,): R_h = tau2 / (tau2 +
    se_h^2) (1 where se_h = 0); posterior_sd (H,): sqrt(R_h se_h^2 + (1 - R_h)^2
    overall_se^2); tau2: between-group variance of the true effects around the overall;
    overall, overall_se (NaN if not given); n_groups: groups used (finite est and se);
    df: the target of the Paule-Mandel equation (n_groups, or n_groups - 1 when the
    overall has a standard error). Groups with NaN est or NaN/inf se get NaN outputs.
    """

    shrunk: np.ndarray
    reliability: np.ndarray
    posterior_sd: np.ndarray
    tau2: float
    overall: float
    overall_se: float
    n_groups: int
    df: int


def paule_mandel(est, var, mu=None, df: float | None = None) -> tuple[float, float]:
    """Paule-Mandel between-group variance tau^2 (and the mean used).

    Solves ``Q(tau2) = sum_h (b_h - mu)^2 / (v_h + tau2) = df`` for tau2 >= 0 (tau2 = 0
    when Q(0) <= df). With ``mu`` given it is held fixed and ``df`` defaults to H; with
    ``mu=None`` it is the weighted mean with weights 1 / (v_h + tau2), re-estimated at
    every tau2, and ``df`` defaults to H - 1 (Paule and Mandel 1982, *J. Res. NBS* 87(5),
    377-385; DerSimonian and Kacker 2007, *Contemp. Clin. Trials* 28(2), 105-114). Q is
    decreasing in tau2 (strictly when some b_h differ from mu), so the root is unique;
    it is bracketed by [0, sum (b - mu)^2 / df] (Q there is <= df) and found by Brent's
    method. Returns (tau2, mu); NaN, NaN with no group or df <= 0.
    """
    b, v = _vector(est, "est"), _vector(var, "var")
    if b.shape != v.shape:
        raise ValueError(f"est and var differ in length: {b.size} vs {v.size}")
    H = b.size
    df = float((H if mu is not None else H - 1) if df is None else df)
    if H == 0 or df <= 0:
        return np.nan, (np.nan if mu is None else float(mu))

    def centre(tau2):
        if mu is not None:
            return float(mu)
        w = 1.0 / (v + tau2) if tau2 > 0 or np.all(v > 0) else (v == 0).astype(float)
        return float(np.sum(w * b) / np.sum(w))

    def excess(tau2):  # Q(tau2) - df
        d2 = (b - centre(tau2)) ** 2
        den = v + tau2
        terms = np.divide(d2, den, out=np.where(d2 > 0, np.inf, 0.0), where=den > 0)
        return float(terms.sum()) - df

    if excess(0.0) <= 0:
        return 0.0, centre(0.0)
    upper = float(np.sum((b - (centre(0.0) if mu is not None else b.mean())) ** 2)) / df
    upper = max(upper, np.finfo(float).tiny)
    while excess(upper) > 0:  # guard: the bound holds in exact arithmetic
        upper *= 2.0
    tau2 = optimize.brentq(excess, 0.0, upper, xtol=1e-14 * upper, rtol=1e-12)
    return float(tau2), centre(tau2)


def shrink_to_overall(est, se, overall: float, overall_se: float | None = None
                      ) -> ShrinkResult:
    """Empirical-Bayes (normal-normal) shrinkage of group effects towards the overall one.

    Parameters
    ----------
    est, se : array (H,)
        Group effects b_h and their standard errors s_h (>= 0).
    overall : float
        The shrinkage target mu (the overall effect).
    overall_se : float, optional
        Standard error of ``overall``. None: the target is taken as known. Given: the
        target is taken to be estimated from the same data as the groups (the pooled
        effect of the same model, approximately their precision-weighted mean); this
        changes the degrees of freedom of tau^2 and adds the target's uncertainty to the
        posterior sd (Notes).

    Returns
    -------
    ShrinkResult

    Notes
    -----
    Model: ``b_h | theta_h ~ N(theta_h, s_h^2)``, ``theta_h ~ N(mu, tau^2)``, s_h known
    (Efron and Morris 1973, *JASA* 68, 117-130; Morris 1983, *JASA* 78, 47-55). Given
    tau^2 the posterior of theta_h has mean ``mu + R_h (b_h - mu)`` with
    ``R_h = tau^2 / (tau^2 + s_h^2)`` and variance ``R_h s_h^2``; when mu is itself an
    estimate with variance se_mu^2 (the precision-weighted mean, flat prior on mu) the
    variance is ``R_h s_h^2 + (1 - R_h)^2 se_mu^2`` (Morris 1983). Plug-in EB:
    the uncertainty of tau^2 is ignored (the posterior sd is too small when H is small).

    tau^2 by Paule-Mandel with mu fixed at ``overall`` (``paule_mandel``): the root of
    ``sum_h (b_h - mu)^2 / (s_h^2 + tau^2) = df``, truncated at 0. Why this estimator:
    each term has expectation exactly 1 under the model when mu is known, so the
    estimating equation is unbiased with df = H; it weights the groups by their
    precision (the unweighted moment estimator max(0, mean((b - mu)^2 - s^2)) lets a
    noisy small group dominate), needs no normality, has a unique root, and with equal
    s_h it *is* that moment estimator. It is recommended for between-study variance in
    meta-analysis (Veroniki et al. 2016, *Res. Synth. Methods* 7(1), 55-79; Langan et
    al. 2019, *Res. Synth. Methods* 10(1), 83-98). (REML with mu fixed is ML here; it
    weights by squared precision and leans on normality.) When ``overall_se`` is given
    the target is an estimate that absorbs one degree of freedom (for the
    precision-weighted mean, E[sum (b - mu_hat)^2 / (s^2 + tau^2)] = H - 1), so df =
    H - 1: the classical Paule-Mandel estimator with mu at the pooled value.

    Edge cases: groups with non-finite est or se are left out (NaN outputs); none left
    gives all NaN. s_h = 0 gives R_h = 1 (the estimate is exact; it also forces tau^2 > 0
    unless b_h = mu). H = 1 (one usable group): with a known target, tau^2 = max(0,
    (b - mu)^2 - s^2) from one deviation, so R = max(0, 1 - s^2 / (b - mu)^2) -- defined
    but noisy; with ``overall_se`` (df = 0) the overall effect *is* that group's effect
    and nothing can be learned about tau^2: no shrinkage, R = 1, shrunk = est,
    posterior sd = se, tau2 = NaN.
    """
    b, s = _vector(est, "est"), _vector(se, "se")
    if b.shape != s.shape:
        raise ValueError(f"est and se differ in length: {b.size} vs {s.size}")
    if np.any(s[np.isfinite(s)] < 0):
        raise ValueError("se must be non-negative")
    mu = float(overall)
    if not np.isfinite(mu):
        raise ValueError(f"overall must be finite, got {overall!r}")
    se_mu = np.nan if overall_se is None else float(overall_se)
    if overall_se is not None and not (np.isfinite(se_mu) and se_mu >= 0):
        raise ValueError(f"overall_se must be finite and non-negative, got {overall_se!r}")
    ok = np.isfinite(b) & np.isfinite(s)
    n = int(ok.sum())
    df = n if overall_se is None else n - 1
    nan = np.full(b.size, np.nan)
    if n == 0:
        return ShrinkResult(nan, nan.copy(), nan.copy(), np.nan, mu, se_mu, 0, df)
    v = s[ok] ** 2
    if df <= 0:  # one group and an estimated target: nothing to shrink towards
        tau2, rel = np.nan, np.ones(n)
    else:
        tau2, _ = paule_mandel(b[ok], v, mu=mu, df=df)
        den = tau2 + v
        rel = np.divide(tau2, den, out=np.ones_like(den), where=den > 0)
    post_var = rel * v + (0.0 if overall_se is None else (1 - rel) ** 2 * se_mu ** 2)
    shrunk, R, psd = nan.copy(), nan.copy(), nan.copy()
    shrunk[ok] = mu + rel * (b[ok] - mu) if df > 0 else b[ok]
    R[ok] = rel
    psd[ok] = np.sqrt(post_var)
    return ShrinkResult(shrunk, R, psd, float(tau2), mu, se_mu, n, df)
