"""OLS and 2SLS on the person-month panel with cell-level fixed effects projected out exactly.

Why not pyfixest here: its alternating projections over nine fixed-effect dimensions took
76 s per demeaning on 2.8 million person-months. But the fixed effects of the quality
model (municipality and region x month, or municipality x month) are all functions of
the municipality-month *cell*, so the projection of any person-level column on them is
the cell-weighted least-squares fit of its cell means (Frisch-Waugh-Lovell): one
``bincount`` per column, one small WLS on ~3,000 cells (``linalg.wls_fit``), one gather.
The client-level categorical controls are low-dimensional and enter as dummy columns.
2SLS and OLS then run on the demeaned columns (FWL holds for 2SLS with exogenous
controls in both stages).

Inference equals pyfixest ``feols(..., vcov={"CRV1": g})`` with default ``ssc()``:
G/(G-1) * (N-1)/(N-K), K = kept regressors + fixed-effect levels not nested in the
clusters (region x month; municipality levels nested in municipality clusters are not
counted, as in R fixest); t(G-1). Reference tests (tests/estimate/test_reference.py)
check coefficients and standard errors against pyfixest (absorbed FE) and linearmodels
``IV2SLS`` (explicit dummies).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from impact.estimate.linalg import build_design, fixest_df_k, independent_columns, wls_fit

__all__ = ["PMFit", "PMMulti", "cell_demean", "cell_fitted", "cluster_codes", "fit_pm",
           "fit_pm_multi"]


@dataclass(frozen=True)
class PMFit:
    """One person-month regression: coefficient of interest, SE, sample sizes."""

    coef: float
    se: float
    n_obs: int
    n_clusters: int
    df_k: int
    first_stage_f: float = float("nan")
    #: cluster score parts of the coefficient for ``scorewild.score_wild`` (None unless
    #: asked for): s_g(b0) = wild_a[g] - b0 * wild_c[g]
    wild_a: np.ndarray | None = None
    wild_c: np.ndarray | None = None


@dataclass(frozen=True)
class PMMulti:
    """A person-month regression with several coefficients of interest (``fit_pm_multi``).

    ``coef`` (H,), ``V`` (H, H) CRV1 covariance and ``scores`` (G, H) with
    ``V = scores.T @ scores`` (small-sample factor folded in), in the order of ``xs``;
    ``kept`` names the ``xs`` actually estimated (a column collinear with the others or
    with the controls is dropped and gets NaN).
    """

    names: tuple[str, ...]
    coef: np.ndarray
    V: np.ndarray
    scores: np.ndarray
    n_obs: int
    n_clusters: int
    df_k: int
    #: the cluster label of each row of ``scores``
    cluster_labels: np.ndarray | None = None


def cluster_codes(labels) -> tuple[np.ndarray, np.ndarray]:
    """(code per row in order of first appearance, the distinct labels) of cluster labels.
    An Arrow-backed array is factorised as it is (in C: 0.05 s for a million strings,
    where an object array takes 0.6 s); anything else as a NumPy array."""
    codes, uniq = pd.factorize(labels if isinstance(labels, pd.api.extensions.ExtensionArray)
                               else np.asarray(labels))
    return codes, np.asarray(uniq)


def cell_demean(A: np.ndarray, cells: pd.DataFrame, cell_code: np.ndarray,
                fe: list[str]) -> np.ndarray:
    """Subtract from each column of A (n x k, in place) its projection on cell-level FE.

    ``cells`` has one row per cell code (0..C-1) with the FE columns ``fe``; the
    projection is the WLS fit of cell means on the FE dummies with cell counts as weights.
    """
    C = len(cells)
    n_c = np.bincount(cell_code, minlength=C).astype("float64")
    sums = np.stack([np.bincount(cell_code, weights=A[:, j], minlength=C)
                     for j in range(A.shape[1])], axis=1)
    fitted = cell_fitted(sums, n_c, cells, fe)
    if A.strides[0] == A.itemsize:  # column-major (or a block of columns of one):
        # column by column, each a contiguous gather from its cell values (3x faster than
        # row blocks on a column-major matrix; the same subtraction, the same bits)
        by_col = np.ascontiguousarray(fitted.T)
        for j in range(A.shape[1]):
            A[:, j] -= by_col[j][cell_code]
        return A
    step = 1 << 18
    for s in range(0, A.shape[0], step):
        A[s:s + step] -= fitted[cell_code[s:s + step]]
    return A


def cell_fitted(sums: np.ndarray, n_c: np.ndarray, cells: pd.DataFrame,
                fe: Sequence[str], overwrite: bool = False) -> np.ndarray:
    """(C, k) projection of each column on the cell-level fixed effects, per cell: the
    WLS fit of the cell means ``sums / n_c`` on the FE dummies of ``cells`` with weights
    ``n_c`` (cells with ``n_c == 0`` get 0). Subtracting it from every row of a cell is
    ``cell_demean``. ``overwrite``: the caller gives ``sums`` up; the result is made in
    its memory when it is float64 (the means and the result share one array either
    way)."""
    own = overwrite and isinstance(sums, np.ndarray) and sums.dtype == np.float64
    means = np.divide(sums, np.maximum(n_c, 1)[:, None], out=sums if own else None)
    del sums
    design = build_design(cells, list(fe), [])
    fit = wls_fit(design, means[:, 0], n_c, n_c > 0)
    Zk = design.Z[fit.rows][:, fit.keep]
    mw = means[fit.rows]
    mw *= n_c[fit.rows][:, None]
    coef = fit.solve(np.asarray(Zk.T @ mw))
    del mw
    means.fill(0.0)  # the result, in the means' memory
    means[fit.rows] = Zk @ coef
    return means


def _independent(G: np.ndarray, cols: list[int]) -> list[int]:
    """Subset of ``cols`` whose Gram block is full rank (greedy in column order)."""
    dg = np.diag(G)[cols]
    idx = [c for c, v in zip(cols, dg) if v > 1e-12 * max(dg.max(initial=0), 1e-300)]
    if not idx:
        return []
    d = np.sqrt(np.diag(G)[idx])
    return [idx[i] for i in independent_columns(G[np.ix_(idx, idx)] / np.outer(d, d))]


def fit_pm(A: np.ndarray, names: list[str], y: str | Sequence[str], x: str, exog: list[str],
           instrument: str | None, clusters: np.ndarray, df_fe: int,
           wild_parts: bool = False, gram: np.ndarray | None = None) -> PMFit | list[PMFit]:
    """OLS (instrument None) or just-identified 2SLS of y on x and exog, A demeaned.

    ``df_fe``: fixed-effect levels counted in K (fixest "nonnested"). Returns the
    coefficient on ``x`` with its CRV1 standard error and, with ``wild_parts``, the
    cluster score parts under H0 b = b0 (FWL: with the controls partialled out of y, x
    and the instrument z, s_g(b0) = sum_{i in g} z~_i (y~_i - b0 x~_i) / z~'x~).

    ``y`` a list of outcome columns: one fit per outcome, returned as a list. They share
    the regressors, so the residuals of all come from one pass over A and the score
    weights (row 0 of (Z'X)^{-1} applied to z_i) from one more, where separate calls
    make two passes each.
    """
    single = isinstance(y, str)
    ys = [y] if single else list(y)
    col = {n: i for i, n in enumerate(names)}
    # A is Fortran-ordered: one BLAS gemm, no copy (``gram`` given: computed by the caller)
    G_all = A.T @ A if gram is None else gram
    ex = _independent(G_all, [col[e] for e in exog])
    X = [col[x]] + ex
    Zc = ([col[instrument]] if instrument else [col[x]]) + ex
    Szz = G_all[np.ix_(Zc, Zc)]
    Szx = G_all[np.ix_(Zc, X)]
    yc = [col[v] for v in ys]
    # just identified: b = (Z'X)^{-1} Z'y (2SLS = IV); OLS when Z = X; one column per y
    b = np.linalg.solve(Szx, G_all[np.ix_(Zc, yc)])
    full = np.zeros((A.shape[1], len(ys)))
    full[X] = b
    U = A[:, yc] - A @ full if len(ys) > 1 else (A[:, yc[0]] - _matvec(A, X, b[:, 0]))[:, None]
    cl, _ = cluster_codes(clusters)
    G = int(cl.max()) + 1
    N = A.shape[0]
    df_k = len(X) + df_fe
    ssc = G / max(G - 1, 1) * (N - 1) / (N - df_k)
    # only V[0, 0] is reported: its cluster scores are (row 0 of (Z'X)^{-1}) sum_g z_i u_i,
    # one matrix-vector product and one bincount instead of one bincount per regressor
    v0 = _matvec(A, Zc, np.linalg.inv(Szx)[0])
    ses = []
    for o in range(len(ys)):
        s = np.bincount(cl, weights=v0 * U[:, o], minlength=G)
        ses.append(float(np.sqrt(ssc * (s @ s))))
    f1 = float("nan")
    if instrument:  # first stage: x on instrument + exog, CRV1 Wald F of the instrument
        pi = np.linalg.solve(Szz, G_all[Zc, col[x]])
        v = A[:, col[x]] - _matvec(A, Zc, pi)
        s1 = np.bincount(cl, weights=_matvec(A, Zc, np.linalg.inv(Szz)[0]) * v, minlength=G)
        f1 = float(pi[0] ** 2 / (ssc * (s1 @ s1)))
    out = []
    if wild_parts:
        zt, xt = (_partial(A, G_all, ex, col[c]) for c in (instrument or x, x))
        zx = float(zt @ xt)
        wc = np.bincount(cl, weights=zt * xt, minlength=G) / zx
    for o, v in enumerate(ys):
        wa = None
        if wild_parts:
            wa = np.bincount(cl, weights=zt * _partial(A, G_all, ex, col[v]), minlength=G) / zx
        out.append(PMFit(float(b[0, o]), ses[o], N, G, df_k, f1, wa,
                         wc if wild_parts else None))
    return out[0] if single else out


def fit_pm_multi(A: np.ndarray, names: list[str], y: str, xs: list[str], exog: list[str],
                 instruments: list[str] | None, clusters: np.ndarray, df_fe: int,
                 gram: np.ndarray | None = None) -> PMMulti:
    """OLS (``instruments`` None) or just-identified 2SLS of y on several ``xs``, A demeaned.

    The interaction models of the heterogeneity analysis (one quality effect per client
    group: ``quality_a x D_h`` instrumented by ``quality_b x D_h``) need H endogenous
    regressors at once. Same algebra and small-sample convention as ``fit_pm``:
    b = (Z'X)^{-1} Z'y, per-cluster scores s_g = (Z'X)^{-1} sum_{i in g} z_i u_i, V = c S'S
    with c = G/(G-1) (N-1)/(N-K), K = kept regressors + ``df_fe`` (fixest "nonnested").
    An ``xs`` column whose instrument is collinear with the rest is dropped (NaN).
    ``gram`` is ``A.T @ A`` when the caller fits several models on one matrix.
    """
    col = {n: i for i, n in enumerate(names)}
    G_all = A.T @ A if gram is None else gram
    keep_h, X, Zc, Szx, b = _multi_solve(G_all, col, y, xs, exog, instruments)
    u = A[:, col[y]] - _matvec(A, X, b)
    cl, labels = cluster_codes(clusters)
    G = int(cl.max()) + 1
    N = A.shape[0]
    df_k = len(X) + df_fe
    c = G / max(G - 1, 1) * (N - 1) / (N - df_k)
    H = len(keep_h)
    # scores of the H coefficients: s_g = sum_{i in g} (rows 0..H-1 of (Z'X)^{-1}) z_i u_i,
    # one (n x H) product and H bincounts instead of one bincount per regressor
    rows = np.zeros((A.shape[1], H))
    rows[Zc] = np.linalg.inv(Szx)[:H].T
    zu = (A @ rows) * u[:, None]
    S = np.sqrt(c) * np.stack([np.bincount(cl, weights=zu[:, h], minlength=G)
                               for h in range(H)], axis=1)
    coef = np.full(len(xs), np.nan)
    scores = np.full((G, len(xs)), np.nan)
    coef[keep_h] = b[:H]
    scores[:, keep_h] = S
    V = scores.T @ scores
    return PMMulti(tuple(xs), coef, V, scores, N, G, df_k, np.asarray(labels))


def _multi_solve(G_all: np.ndarray, col: dict[str, int], y: str, xs, exog, instruments):
    """The kept columns and coefficients of ``fit_pm_multi`` from the Gram matrix:
    (kept xs positions, X and Z column indices, Z'X, b). An interaction whose instrument
    is collinear with the controls (an empty group) is dropped with its endogenous column."""
    zs = list(instruments) if instruments is not None else list(xs)
    if len(zs) != len(xs):
        raise ValueError(f"{len(xs)} endogenous columns but {len(zs)} instruments")
    ex = _independent(G_all, [col[e] for e in exog])
    keep_h = [h for h, z in enumerate(zs)
              if col[z] in _independent(G_all, ex + [col[zs[k]] for k in range(h + 1)])]
    X = [col[xs[h]] for h in keep_h] + ex
    Zc = [col[zs[h]] for h in keep_h] + ex
    Szx = G_all[np.ix_(Zc, X)]
    return keep_h, X, Zc, Szx, np.linalg.solve(Szx, G_all[Zc, col[y]])


def _partial(A: np.ndarray, G_all: np.ndarray, ex: list[int], j: int) -> np.ndarray:
    """Column j of A minus its least-squares projection on the columns ``ex``."""
    if not ex:
        return A[:, j].copy()
    pi = np.linalg.solve(G_all[np.ix_(ex, ex)], G_all[ex, j])
    return A[:, j] - _matvec(A, ex, pi)


def _matvec(A: np.ndarray, cols: list[int], b: np.ndarray) -> np.ndarray:
    """A[:, cols] @ b without copying A."""
    full = np.zeros(A.shape[1])
    full[cols] = b
    return A @ full


def fe_df(cells: pd.DataFrame, fe: list[str], cell_cluster: np.ndarray) -> int:
    """FE levels counted in K under fixest's "nonnested" rule, from the cell table."""
    design = build_design(cells, fe, [])
    rows = np.arange(len(cells))
    return fixest_df_k(design, 0, pd.factorize(cell_cluster)[0], rows)
