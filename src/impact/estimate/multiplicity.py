"""Inference on a family of H group effects from one clustered model: joint Wald tests,
multiplicity-adjusted p-values and empirical-Bayes shrinkage towards the overall effect.

Used for effects estimated separately per pre-specified client group (e.g. ladder step
1, 2, 3-4, 5-6) from one interaction model with municipality-clustered inference.

Conventions (as every estimator here hands them over): for the H estimates ``est`` a
*cluster score matrix* ``S`` (G x H, one row per cluster) with ``V = S.T @ S`` their
covariance, small-sample factors already folded in (CRV1: ``linalg.crv1_parts`` gives
``SB`` and ``factor``, and ``S = sqrt(factor) * SB``); intervals and tests use t(G-1),
joint tests F(q, G-1). All functions are pure NumPy/SciPy on arrays; the tests and the
adjustment return frozen dataclasses.

* ``equality_test`` / ``zero_test``: cluster-robust Wald F tests of H0 b_1 = ... = b_H and
  H0 b = 0 (``WaldResult``).
* ``romano_wolf`` / ``westfall_young``: family-wise adjusted p-values of H0_h: b_h = null_h
  from a multiplier (wild) bootstrap of the cluster scores, step-down (Romano and Wolf
  2005) or single-step max-T (Westfall and Young 1993) (``MaxTResult``);
  ``bootstrap_t`` gives the draws behind them and ``max_t_adjust`` runs the same
  step-down on any other draws (e.g. WCR t's from ``wild.wild_cluster_bootstrap``, which
  keep the family-wise error near nominal with few clusters where the score draws do not;
  see ``romano_wolf``).
* ``shrink_to_overall``: normal-normal empirical Bayes of the group effects towards the
  overall effect, tau^2 by Paule-Mandel (``ShrinkResult``); ``paule_mandel`` is the
  estimating equation on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from impact.estimate.wild import WildWeights, draw_weights

__all__ = ["WaldResult", "equality_test", "zero_test", "wald_test", "MaxTResult",
           "bootstrap_t", "max_t_adjust", "romano_wolf", "westfall_young", "ShrinkResult",
           "paule_mandel", "shrink_to_overall"]

#: eigenvalues of R V R' below this share of the largest count as zero (``wald_test``)
RANK_RTOL = 1e-10
#: relative tolerance for ties between an observed and a bootstrap |t| (as ``wild``)
_TIE = 1e-10


def _vector(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype="float64")
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


# --------------------------------------------------------------------------- Wald tests

@dataclass(frozen=True)
class WaldResult:
    """Cluster-robust Wald test of R b = r.

    statistic: F = W / df_num; p_value: from F(df_num, df_den) (chi2(df_num) when df_den
    is infinite); wald: W = (Rb - r)'(R V R')^+(Rb - r); df_num: rank of R V R' (the
    restrictions actually tested); n_restrictions: rows of R; df_den: the reference F's
    denominator df (``df`` as passed, or df - df_num + 1 with ``hotelling=True``, when
    statistic is W (df - q + 1) / (q df)); hypothesis: "equal", "zero" or "custom". NaN
    statistic and p-value when nothing is testable (df_num = 0, e.g. H = 1 for
    ``equality_test``).
    """

    statistic: float
    p_value: float
    wald: float
    df_num: int
    df_den: float
    n_restrictions: int
    hypothesis: str


def wald_test(est, V, R, df, r=None, *, hotelling: bool = False,
              hypothesis: str = "custom") -> WaldResult:
    """Wald F test of ``R b = r`` with a possibly rank-deficient ``R V R'``.

    Parameters
    ----------
    est : array (H,)
        Estimates b (all finite).
    V : array (H, H)
        Their covariance (e.g. ``S.T @ S``).
    R : array (q, H)
        Restriction matrix.
    df : float
        Denominator degrees of freedom (G - 1 for cluster-robust V); ``np.inf`` gives the
        chi-squared test.
    r : array (q,), optional
        Right-hand side (default 0).
    hotelling : bool
        False (default): F = W / q against F(q, df), the convention of Stata, statsmodels
        and pyfixest for clustered V. True: Hotelling's T^2 reference (Notes).
    hypothesis : str
        Label stored in the result.

    Returns
    -------
    WaldResult

    Notes
    -----
    With d = R b - r and M = R V R' = U diag(lambda) U' (symmetric eigendecomposition),
    eigenvalues lambda_k <= ``RANK_RTOL`` * max(lambda) count as zero. Then
    ``W = sum_{k kept} (u_k' d)^2 / lambda_k`` (= d' M^+ d, Moore-Penrose inverse),
    ``df_num = q_eff`` = number of kept eigenvalues, ``F = W / q_eff`` and
    ``p = P(F(q_eff, df) >= F)``. A single tolerance decides both the rank and the
    inverse, so the numerator degrees of freedom and the quadratic form always agree
    (``np.linalg.matrix_rank`` and ``np.linalg.pinv`` use different default cut-offs).

    Rank deficiency arises when V is singular: fewer clusters than estimates (a CRV
    covariance has rank <= G - 1, as the OLS scores sum to zero), or estimates that are
    exact linear combinations of each other (a group present in one cluster only, a
    duplicated column). The test then covers the q_eff directions of R b that have
    sampling variance; the part of d outside the range of M (a direction with zero
    estimated variance) is ignored rather than given infinite weight. When d lies in the
    range of M, W does not depend on which generalised inverse or which equivalent R
    (same row space) is used. This is the cluster-robust Wald test of e.g. Cameron and
    Miller (2015, *J. Human Resources* 50(2), 317-372) with the F(q, G-1) reference
    that Stata and pyfixest use for clustered V.

    Small samples. In the model where each cluster contributes one i.i.d. normal vector
    and the estimate is their mean (the CRV1 covariance is then the sample covariance
    over G, a Wishart with df = G - 1 degrees of freedom), W is Hotelling's T^2 and
    ``W (df - q + 1) / (q df) ~ F(q, df - q + 1)`` exactly (Hotelling 1931, *Ann. Math.
    Statist.* 2(3), 360-378); ``hotelling=True`` uses that reference. The default F(q, df)
    is then anti-conservative for q > 1 (about 6.3% at a nominal 5% for q = 3, G = 31;
    tests/estimate/test_multiplicity.py checks both against this model). Neither fixes the
    larger problem of uneven leverage: with a cluster-level regressor the CRV variance is
    dominated by a few extreme clusters, its effective degrees of freedom are far below
    G - 1, and both references over-reject (simulated in the same tests: about 15-20% for
    H = 4 group effects of a normal municipality-level regressor with G = 31).
    """
    b = _vector(est, "est")
    V = np.asarray(V, dtype="float64")
    R = np.atleast_2d(np.asarray(R, dtype="float64"))
    H = b.size
    if V.shape != (H, H):
        raise ValueError(f"V must be ({H}, {H}) for {H} estimates, got {V.shape}")
    if R.shape[1] != H:
        raise ValueError(f"R must have {H} columns, got shape {R.shape}")
    if not (np.isfinite(b).all() and np.isfinite(V).all()):
        raise ValueError("est and V must be finite (drop groups without an estimate first)")
    if not (df > 0):
        raise ValueError(f"df must be positive, got {df!r}")
    rhs = np.zeros(R.shape[0]) if r is None else _vector(r, "r")
    d = R @ b - rhs
    M = R @ (0.5 * (V + V.T)) @ R.T
    lam, U = np.linalg.eigh(M)
    top = lam.max() if lam.size else 0.0
    keep = lam > RANK_RTOL * top if top > 0 else np.zeros(lam.size, bool)
    q = int(keep.sum())
    if q == 0:
        return WaldResult(np.nan, np.nan, np.nan, 0, float(df), R.shape[0], hypothesis)
    proj = U[:, keep].T @ d
    W = float(np.sum(proj ** 2 / lam[keep]))
    if np.isinf(df):
        return WaldResult(W / q, float(stats.chi2.sf(W, q)), W, q, float(df), R.shape[0],
                          hypothesis)
    if hotelling:
        if df - q + 1 <= 0:
            raise ValueError(f"Hotelling's reference needs df >= q, got df={df}, q={q}")
        F, df2 = W * (df - q + 1) / (q * df), float(df - q + 1)
    else:
        F, df2 = W / q, float(df)
    return WaldResult(F, float(stats.f.sf(F, q, df2)), W, q, df2, R.shape[0], hypothesis)


def equality_test(est, V, df, *, hotelling: bool = False) -> WaldResult:
    """Cluster-robust Wald F test that all H effects are equal, H0: b_1 = ... = b_H.

    Parameters
    ----------
    est : array (H,)
    V : array (H, H)
        Covariance of ``est`` (``S.T @ S``).
    df : float
        Denominator degrees of freedom, G - 1.
    hotelling : bool
        Hotelling's T^2 reference instead of F(H-1, G-1) (``wald_test``).

    Returns
    -------
    WaldResult (``hypothesis="equal"``); df_num = 0 and NaN statistic when H = 1.

    Notes
    -----
    R is the (H-1) x H matrix of successive contrasts, row h = e_h - e_{h+1}, so
    ``F = (Rb)'(R V R')^{-1}(Rb) / (H-1)`` with p from F(H-1, G-1). Any R with the same
    row space (e.g. all b_h - b_1) gives the same F. A rank-deficient R V R' is handled by
    ``wald_test`` (pseudo-inverse, numerator df reduced to its rank).
    """
    b = _vector(est, "est")
    H = b.size
    if H < 2:
        return WaldResult(np.nan, np.nan, np.nan, 0, float(df), 0, "equal")
    R = np.eye(H)[:-1] - np.eye(H)[1:]
    return wald_test(b, V, R, df, hotelling=hotelling, hypothesis="equal")


def zero_test(est, V, df, *, hotelling: bool = False) -> WaldResult:
    """Cluster-robust Wald F test that all H effects are zero, H0: b = 0.

    ``F = b' V^{-1} b / H`` with p from F(H, G-1) (``wald_test`` with R = I; a singular V
    reduces the numerator df to its rank; ``hotelling`` as there).
    """
    b = _vector(est, "est")
    return wald_test(b, V, np.eye(b.size), df, hotelling=hotelling, hypothesis="zero")


# ----------------------------------------------------- multiplicity-adjusted p-values

@dataclass(frozen=True)
class MaxTResult:
    """Family-wise adjusted p-values of H0_h: b_h = null_h, h = 1..H.

    p_adjusted (H,): the method's adjusted p-values; p_single (H,): unadjusted bootstrap
    p-values from the same draws; t_stat (H,): (est - null) / std_error; std_error (H,):
    column norms of S; method: "romano-wolf" (step-down) or "westfall-young" (single-step
    max-T); n_boot: draws (excluding the +1); enumerated: all weight vectors used (exact,
    no +1); weights; n_clusters: G.
    """

    p_adjusted: np.ndarray
    p_single: np.ndarray
    t_stat: np.ndarray
    std_error: np.ndarray
    method: str
    n_boot: int
    weights: str
    enumerated: bool
    n_clusters: int


def _scores(S, H: int | None = None) -> np.ndarray:
    S = np.asarray(S, dtype="float64")
    if S.ndim == 1:
        S = S[:, None]
    if S.ndim != 2:
        raise ValueError(f"S must be (G, H), got shape {S.shape}")
    if H is not None and S.shape[1] != H:
        raise ValueError(f"S must have one column per estimate ({H}), got {S.shape}")
    if S.shape[0] < 2:
        raise ValueError(f"need at least 2 clusters (rows of S), got {S.shape[0]}")
    if not np.isfinite(S).all():
        raise ValueError("S must be finite")
    return S


def bootstrap_t(S, *, B: int = 9999, weights: WildWeights = "rademacher", seed: int = 0
                ) -> tuple[np.ndarray, bool]:
    """Multiplier-bootstrap t draws of the H estimates from their cluster scores.

    Returns ``(T, enumerated)`` with ``T[b, h] = (w_b . S[:, h]) / se_h``, ``se_h`` the
    column norm of S, and w_b the cluster weights of ``wild.draw_weights`` (all 2^G sign
    vectors for Rademacher with G <= 10, all 6^G Webb vectors when 6^G <= B, otherwise B
    i.i.d. draws from ``np.random.default_rng(seed)``). See ``romano_wolf``.
    """
    S = _scores(S)
    se = np.sqrt((S ** 2).sum(axis=0))
    if not np.all(se > 0):
        raise ValueError(f"every column of S needs a positive norm (standard error); "
                         f"zero in columns {np.flatnonzero(~(se > 0)).tolist()}")
    Wt, enumerated = draw_weights(S.shape[0], B, weights, np.random.default_rng(seed))
    return (Wt @ S) / se, enumerated


def max_t_adjust(t_stat, t_boot, *, stepdown: bool = True, plus_one: bool = True
                 ) -> np.ndarray:
    """Max-T adjusted p-values from observed statistics and any joint bootstrap draws.

    Parameters
    ----------
    t_stat : array (H,)
        Observed statistics (signed t's; only |t| is used).
    t_boot : array (B, H)
        Their draws under H0, one row per draw, the same weights for all H columns
        (for ``wild.wild_cluster_bootstrap``: one call per coefficient with the same
        ``seed``, weights and clusters; stack the ``t_boot`` arrays as columns).
    stepdown : bool
        True: Romano-Wolf step-down; False: single-step max-T (``romano_wolf``,
        ``westfall_young``).
    plus_one : bool
        Count the observed statistic as one draw, (1 + #) / (B + 1); False for an
        enumeration of all weight vectors (then p is the exact share).

    Returns
    -------
    array (H,) of adjusted p-values (formulas in ``romano_wolf``).
    """
    a_obs = np.abs(_vector(t_stat, "t_stat"))
    a_boot = np.abs(np.asarray(t_boot, dtype="float64"))
    if a_boot.ndim != 2 or a_boot.shape[1] != a_obs.size or a_boot.shape[0] < 1:
        raise ValueError(f"t_boot must be (B, {a_obs.size}), got shape {a_boot.shape}")
    if not (np.isfinite(a_obs).all() and np.isfinite(a_boot).all()):
        raise ValueError("t_stat and t_boot must be finite")
    plus = 1 if plus_one else 0
    order = np.argsort(-a_obs, kind="stable")
    if stepdown:  # max over the not-yet-rejected set {order[j:]}: a right-to-left cummax
        maxes = np.maximum.accumulate(a_boot[:, order][:, ::-1], axis=1)[:, ::-1]
    else:
        maxes = a_boot.max(axis=1)[:, None]
    count = (maxes >= (a_obs[order] * (1 - _TIE))[None, :]).sum(axis=0)
    p_ord = np.maximum.accumulate(np.minimum(1.0, (count + plus) / (a_boot.shape[0] + plus)))
    p_adj = np.empty_like(p_ord)
    p_adj[order] = p_ord  # monotone in |t| by the cumulative max above
    return p_adj


def _max_t(est, S, null, B, weights, seed, stepdown: bool) -> MaxTResult:
    b = _vector(est, "est")
    S = _scores(S, b.size)
    if not np.isfinite(b).all():
        raise ValueError("est must be finite (drop groups without an estimate first)")
    nul = np.broadcast_to(_vector(null, "null"), b.shape)
    T, enumerated = bootstrap_t(S, B=B, weights=weights, seed=seed)
    se = np.sqrt((S ** 2).sum(axis=0))
    t = (b - nul) / se
    p_adj = max_t_adjust(t, T, stepdown=stepdown, plus_one=not enumerated)
    plus = 0 if enumerated else 1
    p_single = np.minimum(1.0, ((np.abs(T) >= np.abs(t) * (1 - _TIE)).sum(axis=0) + plus)
                          / (T.shape[0] + plus))
    return MaxTResult(p_adj, p_single, t, se, "romano-wolf" if stepdown else "westfall-young",
                      T.shape[0], weights, enumerated, S.shape[0])


def romano_wolf(est, S, *, null=0.0, B: int = 9999, weights: WildWeights = "rademacher",
                seed: int = 0) -> MaxTResult:
    """Romano-Wolf step-down adjusted p-values of H0_h: b_h = null, h = 1..H.

    Parameters
    ----------
    est : array (H,)
        Estimates (finite).
    S : array (G, H)
        Cluster scores, ``V = S.T @ S``.
    null : float or array (H,)
        Hypothesised values.
    B : int
        Bootstrap draws when the weights are not enumerated.
    weights : {"rademacher", "webb"}
        Cluster weights (``wild.draw_weights``); Webb's six-point for very few clusters.
    seed : int
        Seed of ``np.random.default_rng``.

    Returns
    -------
    MaxTResult (``p_adjusted`` are the adjusted p-values; also the single bootstrap
    p-values, t statistics and standard errors).

    Raises
    ------
    ValueError
        Shapes that do not match, non-finite input, a zero standard error, G < 2.

    Notes
    -----
    Statistics |t_h| = |est_h - null_h| / se_h with se_h = sqrt(V_hh) = ||S[:, h]||.
    Bootstrap (multiplier / wild score bootstrap, e.g. Kline and Santos 2012; Chernozhukov,
    Chetverikov and Kato 2013, *Ann. Statist.* 41(6), for the max statistic): with cluster
    weights w_b (mean 0, variance 1), ``t*_bh = (w_b . S[:, h]) / se_h``. The draws are
    centred at zero whatever the truth (so they mimic the statistics under H0), have
    exactly unit variance with Rademacher weights, and keep the dependence between the H
    estimates (corr(t*_h, t*_k) = V_hk / (se_h se_k)). t* is scale-free per column, so
    the small-sample factor folded into S cancels in the draws and enters only the
    observed t. For OLS, w_b . S[:, h] / sqrt(factor) is exactly b*_h - b_h of the
    unrestricted wild cluster bootstrap (WCU) refit on y* = X b + w_g u, so t*_bh is that
    deviation over its own bootstrap standard deviation (checked against refits in the
    tests).

    Few clusters. The draws are *not* re-studentised (one se for all draws) and the null
    is not imposed, so they carry none of the randomness of the CRV standard error: the
    bootstrap behaves like a normal reference and is lighter-tailed than the observed
    t's when the CRV variance has few effective degrees of freedom (few clusters, or a
    cluster-level regressor whose extreme clusters dominate). The method is valid as G
    grows but anti-conservative with few clusters. Simulated family-wise error at a
    nominal 5%, global null, H = 4 (measured when this was written; the tests print
    current values): one i.i.d. normal vector per cluster (the most favourable case)
    about 8.3% with G = 31 and 6.8% with G = 100 (4000 sets each); group effects of a
    normal municipality-level regressor with G = 31 about 16-20% (Bonferroni on CRV1
    t(G-1) about 9%). With few clusters use WCR draws instead (null imposed,
    re-studentised: ``wild.wild_cluster_bootstrap`` per coefficient with one seed, then
    ``max_t_adjust``), which held the family-wise error at 4-5.5% in the latter case;
    that needs the regression design, not only S. The adjusted p-values are never below
    the bootstrap single p-values, but can be below t(G-1) p-values.

    Step-down (Romano and Wolf 2005, *Econometrica* 73(4), 1237-1282, and 2016, *Statist. Probab. Lett.* 113, 38-40, for the adjusted p-values): order the
    hypotheses by |t| descending, |t_(1)| >= ... >= |t_(H)|; for the j-th,
    ``p*_(j) = (1 + #{b : max_{k >= j} |t*_b(k)| >= |t_(j)|}) / (B + 1)``, the max over
    the hypotheses not rejected before it; then ``p_adj_(j) = max_{i <= j} p*_(i)``
    (monotonicity). The +1 counts the observed statistic as one draw (its own maximum
    over the remaining set is >= |t_(j)| by construction), which keeps p >= 1/(B+1) and
    the Monte Carlo test valid for any B (Davison and Hinkley 1997, ch. 4; Clarke,
    Romano and Wolf 2020, *Stata J.* 20(4) use the same). When the weights are
    enumerated (all 2^G sign vectors, G <= 10) the p-values are the exact shares, no +1.
    Ties within a relative 1e-10 count as exceedances. The same algorithm is pyfixest's
    ``rwolf`` (``_get_rwolf_pval``), which bootstraps with WCR refits instead of scores.
    """
    return _max_t(est, S, null, B, weights, seed, stepdown=True)


def westfall_young(est, S, *, null=0.0, B: int = 9999, weights: WildWeights = "rademacher",
                   seed: int = 0) -> MaxTResult:
    """Single-step max-T adjusted p-values (Westfall and Young 1993, *Resampling-Based
    Multiple Testing*, Wiley): ``p_adj_h = (1 + #{b : max_k |t*_bk| >=
    |t_h|}) / (B + 1)``, same draws and conventions as ``romano_wolf``.

    Never below ``romano_wolf`` (whose step-down maxima run over subsets), equal for the
    largest |t|. The Westfall-Young *step-down* max-T is the ``romano_wolf`` algorithm
    itself, and their free step-down min-P with a common t(G-1) transform of the draws
    (pyfixest ``wyoung``) is too, up to the +1, because the transform is monotone and the
    same for every hypothesis.
    """
    return _max_t(est, S, null, B, weights, seed, stepdown=False)


# ------------------------------------------------------------------------- shrinkage

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
