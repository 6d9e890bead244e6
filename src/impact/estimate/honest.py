"""Rambachan-Roth (2023) sensitivity of an event-study effect to parallel-trend violations.

>>> res = sensitivity(b, V, [-6, -5, -4, -3, -2, 0, 1], mbar=(1.5, 2))     # doctest: +SKIP
>>> res.table, res.breakdown                                                  # doctest: +SKIP

Wraps ``moderndid.didhonest`` (port of R ``HonestDiD``): the ARP/C-LF test inversion
(``compute_arp_nuisance_ci``, ``compute_arp_ci``, ``compute_least_favorable_cv``), the FLCI
(``create_sensitivity_results_sm``) and ``construct_original_cs``. Only the union over the
polyhedra of Delta^RM is taken here (``_rm_constraints`` copies R's ``.create_A_RM``):
moderndid 0.2.0's ``compute_conditional_cs_rm`` shifts R's s-range by one, so the earliest
pre-period difference is never allowed to be the largest (intervals far too short when it
is; see the tests), and it crashes with one post period.

Notes
-----
R&R indexing: pre periods -T..-1, reference 0 (``ref``), post 1..Tbar; beta = tau + delta,
tau_pre = 0, delta the difference in trends with delta_0 = 0. Estimand theta = l'tau_post.
With D_t = delta_t - delta_(t-1)::

    Delta^RM(Mbar) = {delta : |D_t| <= Mbar * max_(s <= 0) |D_s|,  t = 1..Tbar}
    Delta^SD(M)    = {delta : |D_(t+1) - D_t| <= M  for all t}

Delta^RM is the union of 2T polyhedra (which D_s, s <= 0, is largest, and its sign); its
interval is the union of their C-LF intervals (conditional-least-favourable hybrid, kappa =
alpha/10, post-period moments only) over a theta grid, as R. Delta^SD: fixed-length
interval (FLCI). "original": l'beta_post +- z se. Breakdown value: the largest grid value
up to which every robust interval excludes zero. Normal critical values throughout.

References
----------
Rambachan, A. and Roth, J. (2023). A more credible approach to parallel trends. *American
Economic Review* 113(9), 2555-2591. Andrews, I., Roth, J. and Pakes, A. (2023). Inference
for linear conditional moment inequalities. *Review of Economic Studies* 90(6), 2763-2791.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any, Sequence

import numpy as np
import pandas as pd

from impact.estimate.frames import EstimationWarning
from impact.estimate.results import row
from impact.stage import UserError

__all__ = ["sensitivity", "sensitivity_from_event_study", "SensitivityResult",
           "HonestInputError"]

COLUMNS = ("restriction", "m", "ci_low", "ci_high", "method")
TERMS = {"relative_magnitudes": "rr_rm_ci", "smoothness": "rr_sd_ci"}


class HonestInputError(UserError, ValueError):
    """Event-study coefficients or options that the sensitivity analysis cannot use."""


@dataclass(frozen=True)
class SensitivityResult:
    """Robust intervals for theta = l'tau_post.

    ``table``: ``restriction`` ("original", "relative_magnitudes", "smoothness"), ``m``
    (Mbar or M; null for "original"), ``ci_low``/``ci_high`` (null: empty robust set),
    ``method`` ("normal", "C-LF"/"Conditional", "FLCI"). ``breakdown``/``breakdown_m``:
    largest Mbar/M of the grid up to which every interval excludes zero, or None.
    ``estimate``/``std_error``: l'beta_post. ``meta``: moderndid version, grid, periods used.
    """

    table: pd.DataFrame
    breakdown: float | None
    breakdown_m: float | None
    estimate: float
    std_error: float
    l_vec: tuple[float, ...]
    rel_times: tuple[int, ...]
    alpha: float
    meta: dict[str, Any] = field(default_factory=dict)

    def to_rows(self, model: str, alpha: float | None = None, **extra: Any) -> list[dict]:
        """Tidy rows: ``rr_original_ci``; ``rr_rm_ci``/``rr_sd_ci`` (estimate, std_error of
        theta; the Mbar/M in ``statistic``; p_value null); ``rr_rm_breakdown``/
        ``rr_sd_breakdown`` (value in ``estimate``). ``extra`` (n_obs, ...) goes in every row."""
        if alpha is not None and not np.isclose(alpha, self.alpha):
            raise HonestInputError(f"alpha={alpha!r} but the intervals were computed with "
                                   f"alpha={self.alpha}; rerun sensitivity(alpha={alpha})")
        est = (f"Rambachan-Roth 2023 (moderndid {self.meta['moderndid']}), "
               f"l = {np.round(self.l_vec, 4).tolist()}")
        base = {"vcov": "input sigma, normal critical values", **extra}
        out = [row(model, "rr_original_ci", self.estimate, self.std_error, alpha=self.alpha,
                   estimator=est, **base)]
        for r in self.table[self.table["restriction"] != "original"].itertuples():
            out.append({**row(model, TERMS[r.restriction], self.estimate, self.std_error,
                              **base), "statistic": r.m, "p_value": np.nan, "ci_low": r.ci_low,
                        "ci_high": r.ci_high, "estimator": f"{est}, {r.restriction} {r.method}"})
        for term, value in (("rr_rm_breakdown", self.breakdown),
                            ("rr_sd_breakdown", self.breakdown_m)):
            out.append(row(model, term, np.nan if value is None else value, estimator=est,
                           **base))
        return out


def _vector(name: str, x: Any, n: int | None = None) -> np.ndarray:
    v = np.asarray(x, dtype=float).ravel()
    if n is not None and v.size != n:
        raise HonestInputError(f"{name} has {v.size} entries, expected {n}")
    if not np.isfinite(v).all():
        raise HonestInputError(f"{name} has missing or infinite values: {v.tolist()}")
    return v


def _check(betahat: Any, sigma: Any, rel_times: Any, ref: int) -> tuple:
    """(b, S, npre, npost) or a ``HonestInputError`` naming the problem and the fix."""
    t = np.asarray(rel_times)
    if t.ndim != 1 or not np.issubdtype(t.dtype, np.number) or np.any(t != np.round(t)):
        raise HonestInputError(f"rel_times must be a 1-d sequence of integer event times, "
                               f"got {rel_times!r}")
    t, S = t.astype(int), np.asarray(sigma, dtype=float)
    b = _vector("betahat", betahat, t.size)
    if S.shape != (t.size, t.size):
        raise HonestInputError(f"sigma has shape {S.shape}; it must be the full joint "
                               f"covariance of betahat, shape ({t.size}, {t.size})")
    if ref in t:
        raise HonestInputError(f"rel_times contains the reference period {ref}; drop its "
                               "coefficient (normalised to zero) and its row/column of sigma")
    npre, npost = int((t < ref).sum()), int((t > ref).sum())
    expect = list(range(ref - npre, ref)) + list(range(ref + 1, ref + 1 + npost))
    if t.tolist() != expect:
        raise HonestInputError(f"rel_times {t.tolist()} must be consecutive, sorted, pre "
                               f"periods first, skipping only ref={ref}: expected {expect}; "
                               "reorder betahat and sigma and fill gaps")
    if npre < 2 or npost < 1:
        raise HonestInputError(f"need >= 2 pre-periods and >= 1 post-period around ref={ref}, "
                               f"got {npre} and {npost}")
    scale = max(float(np.abs(np.diag(S)).max()), 1e-300)
    if not np.isfinite(S).all() or not np.allclose(S, S.T, rtol=1e-8, atol=1e-10 * scale):
        raise HonestInputError("sigma must be finite and symmetric; pass the covariance "
                               "matrix (e.g. (V + V.T) / 2 if it differs by rounding)")
    if np.linalg.eigvalsh((S + S.T) / 2).min() < -1e-8 * scale:
        raise HonestInputError("sigma is not positive semi-definite; pass a covariance matrix")
    return b, (S + S.T) / 2, npre, npost


def _options(l_vec, weights, npost, mbar, m, alpha, method, points, margin) -> tuple:
    """(l, mbars, ms): l = ``l_vec``, else ``weights``/sum, else the first post period."""
    if not 0 < alpha < 1:
        raise HonestInputError(f"alpha={alpha!r} must lie strictly between 0 and 1")
    if method not in ("C-LF", "Conditional"):
        raise HonestInputError(f"method={method!r}; use 'C-LF' or 'Conditional'")
    if int(points) < 10 or not margin > 0:
        raise HonestInputError(f"grid_points={points!r} must be >= 10 and "
                               f"grid_margin={margin!r} > 0")
    if l_vec is not None and weights is not None:
        raise HonestInputError("give l_vec or weights, not both")
    if weights is not None:
        w = _vector("weights", weights, npost)
        if (w < 0).any() or w.sum() <= 0:
            raise HonestInputError(f"weights must be >= 0 with a positive sum, got {w.tolist()}")
        l = w / w.sum()
    else:
        l = _vector("l_vec", l_vec, npost) if l_vec is not None else np.eye(npost)[0]
    if not np.any(l != 0):
        raise HonestInputError("l_vec is all zeros; it must weight at least one post period")
    grids = []
    for name, values in (("mbar", mbar), ("m", m)):
        v = _vector(name, [] if values is None else values)
        if (v < 0).any():
            raise HonestInputError(f"{name} values must be >= 0, got {v.tolist()}")
        grids.append(sorted(set(v.tolist())))
    return l, *grids


def _rm_constraints(npre: int, npost: int, mbar: float, j: int, positive: bool) -> np.ndarray:
    """A with Delta^RM_(j, sign) = {A delta <= 0}: pre difference j (0 = earliest) largest."""
    n = npre + npost
    a = np.zeros((n, n + 1))
    a[np.arange(n), np.arange(n)], a[np.arange(n), np.arange(n) + 1] = -1.0, 1.0
    v = np.zeros(n + 1)
    v[j], v[j + 1] = (-1.0, 1.0) if positive else (1.0, -1.0)
    bound = np.vstack([np.tile(v, (npre, 1)), np.tile(mbar * v, (npost, 1))])
    A = np.vstack([a - bound, -a - bound])
    return np.delete(A[np.abs(A).max(axis=1) > 1e-10], npre, axis=1)  # drop delta_ref


def _accepts(b, S, npre, npost, l, A, grid, alpha, method) -> np.ndarray:
    """moderndid's ARP/C-LF test at every grid theta for one polyhedron (post moments)."""
    import moderndid.didhonest as h

    kappa, flag = alpha / 10, ("LF" if method == "C-LF" else "ARP")
    if npost == 1:  # as R: only moments that involve the post period; no nuisance
        A = A[A[:, -1] != 0]
        cv = h.compute_least_favorable_cv(None, A @ S @ A.T, kappa) if flag == "LF" else None
        res = h.compute_arp_ci(b, S, A, np.zeros(len(A)), npre, 1, alpha=alpha,
                               grid_lb=grid[0] / l[0], grid_ub=grid[-1] / l[0],
                               grid_points=grid.size, hybrid_flag=flag, hybrid_kappa=kappa,
                               lf_cv=cv)
        return np.asarray(res.accept_grid, dtype=bool)
    rows = np.flatnonzero(np.abs(A[:, npre:]).sum(axis=1) > 0)
    res = h.compute_arp_nuisance_ci(b, S, l, A, np.zeros(len(A)), npre, npost, alpha=alpha,
                                    hybrid_flag=flag, hybrid_list={"hybrid_kappa": kappa},
                                    grid_lb=grid[0], grid_ub=grid[-1], grid_points=grid.size,
                                    rows_for_arp=rows)
    return res.accept_grid[:, 1] > 0


def _rm_interval(b, S, npre, npost, l, mbar, alpha, method, points, margin):
    """Union over the 2 * npre polyhedra; the grid doubles (twice) if the set reaches it."""
    sd = float(np.sqrt(l @ S[npre:, npre:] @ l))
    maxpre = float(np.abs(np.diff(np.r_[b[:npre], 0.0])).max())
    half = mbar * maxpre * float(np.arange(1, npost + 1) @ np.abs(l)) + margin * sd
    for _ in range(3):
        grid = np.linspace(l @ b[npre:] - half, l @ b[npre:] + half, points)
        acc = np.zeros(points, dtype=bool)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # open-endpoint notes: checked here
            for j in range(npre):
                for positive in (True, False):
                    A = _rm_constraints(npre, npost, mbar, j, positive)
                    acc |= _accepts(b, S, npre, npost, l, A, grid, alpha, method)
        if not (acc[0] or acc[-1]):
            break
        half *= 2
    else:
        warnings.warn(EstimationWarning(f"Delta^RM(Mbar={mbar}) set reaches the grid edge "
                                        "after widening; raise grid_margin"), stacklevel=3)
    idx = np.flatnonzero(acc)
    return (grid[idx[0]], grid[idx[-1]]) if idx.size else (np.nan, np.nan)


def _breakdown(table: pd.DataFrame, restriction: str) -> float | None:
    """Largest m up to which every interval excludes zero (an empty set stops it too);
    warns if the intervals are not nested in m, as the restriction sets are."""
    sub, best = table[table["restriction"] == restriction].sort_values("m"), None
    tol = 1e-6 * max(1.0, float(sub[["ci_low", "ci_high"]].abs().max().max()))
    if (sub["ci_low"].diff() > tol).any() or (sub["ci_high"].diff() < -tol).any():
        warnings.warn(EstimationWarning(f"{restriction} intervals are not nested in m "
                                        f"({sub[['m', 'ci_low', 'ci_high']].values.tolist()}):"
                                        " a solver or grid is inaccurate"), stacklevel=3)
    for r in sub.itertuples():
        if not (r.ci_low > 0 or r.ci_high < 0):  # NaN compares False
            break
        best = float(r.m)
    return best


def sensitivity(betahat: Sequence[float], sigma: Any, rel_times: Sequence[int], *,
                ref: int = -1, l_vec: Sequence[float] | None = None,
                weights: Sequence[float] | None = None,
                mbar: Sequence[float] | None = (0.5, 1.0, 1.5, 2.0),
                m: Sequence[float] | None = None, alpha: float = 0.05, method: str = "C-LF",
                grid_points: int = 1000, grid_margin: float = 20.0,
                trim_post: bool = True) -> SensitivityResult:
    """Robust intervals for theta = l'tau_post under Delta^RM(Mbar) and Delta^SD(M).

    Parameters
    ----------
    betahat, sigma : array
        Event-study coefficients (pre periods first, ``ref`` omitted), FULL covariance.
    rel_times : sequence of int
        Event time of each coefficient: consecutive, skipping only ``ref``.
    ref : int
        The omitted period; earlier ones are pre, later ones post.
    l_vec, weights : sequence of float, optional
        Post-period weights, or non-negative ``weights`` (e.g. treated observations)
        normalised to sum to one. Neither: the first post period (as R).
    mbar, m : sequence of float or None
        Mbar values (Delta^RM) and M values (Delta^SD, outcome units per period^2);
        None skips the restriction.
    alpha : float
        1 - coverage.
    method : {"C-LF", "Conditional"}
        Delta^RM test: the hybrid (R's default, the paper's advice) or plain ARP.
    grid_points, grid_margin : int, float
        Delta^RM grid: ``grid_points`` values on l'beta_post +- (Mbar max|D_s| sum t|l_t|
        + ``grid_margin`` se), doubled if the set reaches its edge. Bounds are the
        outermost accepted points (as R), inside the exact ones by less than one step.
    trim_post : bool
        Drop post periods after the last one ``l`` weights: they enter neither identified
        set (R keeps them as extra Delta^RM moments, each costing LPs).

    Returns
    -------
    SensitivityResult

    Raises
    ------
    HonestInputError
        Mismatched shapes; event times not consecutive/pre-first or containing ``ref``;
        sigma not symmetric PSD; < 2 pre or < 1 post period; any bad option value.
    """
    import moderndid.didhonest as h

    b, S, npre, npost = _check(betahat, sigma, rel_times, ref)
    l_all, mbars, ms = _options(l_vec, weights, npost, mbar, m, alpha, method, grid_points,
                                grid_margin)
    est, se = float(l_all @ b[npre:]), float(np.sqrt(l_all @ S[npre:, npre:] @ l_all))
    k = npre + int(np.flatnonzero(l_all)[-1]) + 1 if trim_post else b.size
    b, S, npost, l = b[:k], S[:k, :k], k - npre, l_all[: k - npre]
    orig = h.construct_original_cs(b, S, npre, npost, l_vec=l, alpha=alpha)
    rows = [("original", np.nan, float(orig.lb), float(orig.ub), "normal")]
    for mb in mbars:
        lo, hi = _rm_interval(b, S, npre, npost, l, mb, alpha, method, int(grid_points),
                              float(grid_margin))
        rows.append(("relative_magnitudes", mb, float(lo), float(hi), method))
    if ms:
        sd = h.create_sensitivity_results_sm(b, S, npre, npost, method="FLCI", m_vec=ms,
                                             l_vec=l, alpha=alpha)
        rows += [("smoothness", float(r["m"]), float(r["lb"]), float(r["ub"]), "FLCI")
                 for r in sd.iter_rows(named=True)]
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    meta = {"moderndid": version("moderndid"), "ref": ref, "n_pre": npre,
            "n_post_used": npost, "grid_points": int(grid_points), "grid_margin": grid_margin}
    return SensitivityResult(table, _breakdown(table, "relative_magnitudes"),
                             _breakdown(table, "smoothness"), est, se, tuple(map(float, l_all)),
                             tuple(int(x) for x in rel_times), alpha, meta)


def sensitivity_from_event_study(result: Any, *, sigma: Any = None, weighted: bool = True,
                                 **kwargs: Any) -> SensitivityResult:
    """``sensitivity`` on the ``ATT(e)`` rows of a ``SunAbrahamResult``.

    Parameters
    ----------
    result : SunAbrahamResult
        Uses ``table`` (ATT(e) by rel_time), ``meta["ref_period"]`` and ``catt``.
    sigma : array or DataFrame, optional
        Joint covariance of the ATT(e) rows (rel_time order); default ``result.event_vcov``
        (DataFrame, rel_time on both axes), which sunab.py does not store yet.
    weighted : bool
        Target the overall ``ATT`` (post periods weighted by treated observations, as its
        row); else the first post period. Ignored if ``l_vec``/``weights`` are given.
    **kwargs
        Passed to ``sensitivity``.

    Returns
    -------
    SensitivityResult

    Raises
    ------
    HonestInputError
        No joint covariance, or any ``sensitivity`` input error.
    """
    es = result.table[result.table["term"] == "ATT(e)"].sort_values("rel_time")
    times = es["rel_time"].astype(int).to_numpy()
    sigma = getattr(result, "event_vcov", None) if sigma is None else sigma
    if sigma is None:
        raise HonestInputError("the result has no joint covariance of its ATT(e) rows (only "
                               "standard errors): pass sigma=, or store event_vcov")
    if isinstance(sigma, pd.DataFrame):
        sigma = sigma.loc[times, times].to_numpy()
    ref = int(kwargs.pop("ref", result.meta.get("ref_period", -1)))
    if weighted and "l_vec" not in kwargs and "weights" not in kwargs:
        post = result.catt[result.catt["rel_time"] > ref]
        kwargs["weights"] = (post.groupby("rel_time")["n_obs"].sum()
                             .reindex(times[times > ref], fill_value=0).to_numpy())
    return sensitivity(es["estimate"].to_numpy(), sigma, times, ref=ref, **kwargs)
