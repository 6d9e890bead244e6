"""Cluster-robust Wald tests of a family of group effects: H0 R b = r, the equality of all
effects and their joint nullity, with F(q, G-1) or Hotelling's T² reference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from impact.estimate.multiplicity._arrays import vector as _vector

__all__ = ["RANK_RTOL", "WaldResult", "equality_test", "wald_test", "zero_test"]

#: eigenvalues of R V R' below this share of the largest count as zero (``wald_test``)
RANK_RTOL = 1e-10


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
