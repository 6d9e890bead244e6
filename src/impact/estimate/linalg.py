"""Weighted least squares with explicit (sparse) fixed effects and cluster-robust inference.

Used where no library gives what the estimator needs: the imputation estimator
(Borusyak, Jaravel and Spiess 2024) needs the fitted model's design to form the implied
weights of untreated observations, so the cell-level Y(0) model is solved here. The cell
tables are small (municipalities x months), so fixed effects are sparse dummy columns;
the person-month models never come here (pyfixest absorbs their fixed effects).

Conventions, chosen to equal pyfixest's ``feols(..., vcov={"CRV1": g})`` defaults
(``ssc(k_adj=True, k_fixef="nonnested", G_adj=True)``, pyfixest/utils/utils.py `get_ssc`,
mirroring R fixest's ``ssc(fixef.K="nested")``): CRV1 = G/(G-1) * (N-1)/(N-K) * sandwich,
with K = kept non-FE coefficients + FE levels of fixed effects *not* nested in the
clusters (minus one per extra FE); t tests with G-1 degrees of freedom. Checked against
pyfixest and statsmodels in tests/estimate/test_reference.py.

Collinear columns are dropped as fixest drops collinear variables: the structural
redundancy of two fixed effects (one level per connected component of their bipartite
graph) up front, any other by a Cholesky pass in column order that skips columns whose
remaining variance is below 1e-10 of their own (so later regressors go first).

Only numpy's LAPACK is used for dense algebra: with numpy's and scipy's separate
OpenBLAS thread pools alternating on two cores, small factorisations took 100x longer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from impact.distinct import unique
from impact.estimate.factors import BlockFactor, DenseFactor, Factor, SparseFactor

__all__ = ["Design", "WLSFit", "build_design", "wls_fit", "crv1_vcov", "crv1_parts", "lincom",
           "wald_f", "group_sums", "scatter_dummies", "writes_whole"]

_RANK_TOL = 1e-10


@dataclass(frozen=True)
class Design:
    """Design matrix: FE dummy blocks first, then the named numeric columns.

    ``Z`` is CSR (n x p); ``fe_codes`` holds each FE's integer codes (n,) and
    ``fe_levels`` its number of levels; ``x_names`` name the last ``len(x_names)`` columns.
    """

    Z: sp.csr_matrix
    fe_names: tuple[str, ...]
    fe_codes: tuple[np.ndarray, ...]
    fe_levels: tuple[int, ...]
    x_names: tuple[str, ...]

    @property
    def n_fe_cols(self) -> int:
        return int(sum(self.fe_levels))

    def x_index(self, name: str) -> int:
        return self.n_fe_cols + self.x_names.index(name)


def build_design(frame: pd.DataFrame, fe: Sequence[str], x: Sequence[str]) -> Design:
    """Sparse design from ``frame``: one dummy per level of each ``fe`` column, then ``x``."""
    n = len(frame)
    blocks, codes, levels = [], [], []
    for name in fe:
        c, uniq = pd.factorize(frame[name], sort=True)
        if (c < 0).any():
            raise ValueError(f"fixed effect {name!r} has missing values")
        blocks.append(sp.csr_matrix((np.ones(n), (np.arange(n), c)), shape=(n, len(uniq))))
        codes.append(c)
        levels.append(len(uniq))
    if x:
        xm = frame[list(x)].to_numpy(dtype="float64")
        if not np.isfinite(xm).all():
            bad = [c for c in x if not np.isfinite(frame[c].to_numpy(dtype="float64")).all()]
            raise ValueError(f"regressors {bad} have missing or infinite values")
        blocks.append(sp.csr_matrix(xm))
    Z = sp.hstack(blocks, format="csr") if blocks else sp.csr_matrix((n, 0))
    return Design(Z, tuple(fe), tuple(codes), tuple(levels), tuple(x))


@dataclass(frozen=True)
class WLSFit:
    """A weighted least-squares fit on the rows ``rows`` of a design.

    coef : (p,) with NaN for columns dropped as collinear; ``keep`` indexes kept columns;
    ``scale`` (r,) holds the equilibration (square roots of the normal matrix's diagonal);
    ``factor`` solves the equilibrated normal system of the kept columns (``factors``: a
    dense inverse for small designs; for large fixed effects their sparse LU, with block
    elimination for the regressors beside them); resid (n_rows,) are y - Z b on the
    fitted rows.
    """

    coef: np.ndarray
    keep: np.ndarray
    factor: Factor
    scale: np.ndarray
    resid: np.ndarray
    rows: np.ndarray

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """(Z_k' W Z_k)^{-1} rhs for rhs of shape (r,) or (r, m), kept columns only."""
        rhs = np.asarray(rhs, dtype="float64")
        s = self.scale if rhs.ndim == 1 else self.scale[:, None]
        return self.factor.solve(rhs / s) / s

    def bread_columns(self, pos: Sequence[int]) -> np.ndarray:
        """Columns ``pos`` (positions in ``keep``) of (Z_k' W Z_k)^{-1}: (r, len(pos))."""
        e = np.zeros((len(self.keep), len(pos)))
        e[np.asarray(pos, dtype=int), np.arange(len(pos))] = 1.0
        return self.solve(e)

    def bread(self) -> np.ndarray:
        """(Z_k' W Z_k)^{-1} (r x r), dense: for small designs only."""
        return self.bread_columns(np.arange(len(self.keep)))


#: designs with more fixed-effect columns than this are solved sparsely (``wls_fit``)
SPARSE_FROM = 600


def independent_columns(As: np.ndarray, tol: float = _RANK_TOL) -> np.ndarray:
    """Indices of a maximal set of independent columns of the PSD matrix ``As`` with unit
    diagonal, greedily in column order (a Cholesky pass that skips dependent columns)."""
    try:  # fast path: full rank
        L = np.linalg.cholesky(As)
        if np.min(np.diag(L)) ** 2 > tol:
            return np.arange(len(As))
    except np.linalg.LinAlgError:
        pass
    R = As.copy()
    keep = []
    for k in range(len(R)):
        if R[k, k] > tol:
            keep.append(k)
            col = R[k:, k] / np.sqrt(R[k, k])
            R[k:, k:] -= np.outer(col, col)
    return np.asarray(keep, dtype=int)


def _fe_redundant(design: Design, rows: np.ndarray) -> list[int]:
    """Columns of the first FE to drop: one level per connected component with the second.
    With more than two fixed effects only the first two are looked at: the others' levels
    are left to the collinearity pass (``wls_fit``)."""
    if len(design.fe_names) < 2:
        return []
    c1, c2 = design.fe_codes[0][rows], design.fe_codes[1][rows]
    n1, n2 = design.fe_levels[:2]
    graph = sp.csr_matrix((np.ones(len(rows)), (c1, n1 + c2)), shape=(n1 + n2, n1 + n2))
    _, comp = connected_components(graph, directed=False)
    present = np.zeros(n1, bool)
    present[c1] = True
    first = pd.Series(np.arange(n1)[present]).groupby(comp[:n1][present]).first()
    return first.tolist()


def wls_fit(design: Design, y: np.ndarray, w: np.ndarray, rows: np.ndarray | None = None,
            method: str = "auto", drop_collinear: bool = True) -> WLSFit:
    """Weighted least squares on ``rows`` (bool mask or index; default all rows).

    ``method``: ``dense`` forms and inverts the whole normal matrix (O(p^3) in the number
    of columns p, fine for a few hundred fixed-effect levels); ``sparse`` keeps the
    fixed-effect block sparse, decides the regressors' collinearity on their Schur
    complement given the fixed effects (the same decisions as the dense Cholesky pass,
    which meets the fixed effects first) and solves the kept system by block elimination
    (the fixed effects' sparse LU and the inverse of that Schur complement); ``auto``
    (default) is sparse from ``SPARSE_FROM`` fixed-effect columns on. Both give the same
    fit to rounding (tests/estimate/test_linalg.py).

    The sparse block is the first two fixed effects (one level of the first dropped per
    connected component of the two); further fixed effects (a client group, say, usually
    a few levels) join the regressors, whose collinearity, with each other and with the
    block, is decided on their dense Schur complement. The dense path drops the same
    levels and pivots in the same column order, so both keep the same columns. (With a
    third fixed effect the dense normal matrix is singular and its pivoting runs column by
    column in Python: minutes for the ~4,600 columns of a national cell table, hence the
    sparse path there.)

    ``drop_collinear=False`` (sparse only) skips the regressors' dense Schur complement,
    which costs O(k^2) memory in k regressors, and factorises all candidate columns at
    once; a regressor collinear with the others or the fixed effects then raises
    ``np.linalg.LinAlgError``. For designs of thousands of sparse dummy regressors.
    """
    n = design.Z.shape[0]
    rows = np.arange(n) if rows is None else (np.flatnonzero(rows) if np.asarray(rows).dtype == bool
                                              else np.asarray(rows))
    if method == "auto":
        method = "sparse" if design.n_fe_cols >= SPARSE_FROM else "dense"
    if method not in ("dense", "sparse"):
        raise ValueError(f"method={method!r} is not allowed (allowed: auto, dense, sparse)")
    Z = design.Z[rows]
    wr = np.asarray(w, dtype="float64")[rows]
    yr = np.asarray(y, dtype="float64")[rows]
    ZtW = Z.T.multiply(wr).tocsr()
    A = (ZtW @ Z).tocsr()
    b = np.asarray(ZtW @ yr).ravel()
    diag = A.diagonal()
    cand = np.setdiff1d(np.flatnonzero(diag > 0), _fe_redundant(design, rows))
    d = np.sqrt(diag[cand])
    if method == "dense":
        As = A[cand][:, cand].toarray() / np.outer(d, d)
        pos = independent_columns(As)
        factor: Factor = DenseFactor(As[np.ix_(pos, pos)])
    else:
        n_block = int(sum(design.fe_levels[:2]))  # the sparse block: the first two FEs
        pos, factor = _sparse_factor(A[cand][:, cand], d, int(np.sum(cand < n_block)),
                                     drop_collinear)
    keep, scale = cand[pos], d[pos]
    fit = WLSFit(np.empty(0), keep, factor, scale, np.empty(0), rows)
    beta_k = fit.solve(b[keep])
    coef = np.full(A.shape[0], np.nan)
    coef[keep] = beta_k
    resid = yr - Z[:, keep] @ beta_k
    return WLSFit(coef, keep, factor, scale, resid, rows)


def _sparse_factor(A: sp.csr_matrix, d: np.ndarray, n_fe: int, drop_collinear: bool = True
                   ) -> tuple[np.ndarray, Factor]:
    """Kept positions and factor of the candidate normal matrix ``A`` (fixed effects first,
    ``n_fe`` of them, none structurally redundant; ``d`` its diagonal's square roots)."""
    As = sp.csr_matrix(sp.diags(1.0 / d) @ A @ sp.diags(1.0 / d))
    if not drop_collinear:
        try:
            lu = SparseFactor(As)
        except RuntimeError as exc:  # SuperLU: "Factor is exactly singular"
            raise np.linalg.LinAlgError(f"collinear columns: {exc}") from None
        piv = np.abs(lu.lu.U.diagonal())
        if piv.min() <= _RANK_TOL:
            raise np.linalg.LinAlgError(
                f"collinear columns: {int(np.sum(piv <= _RANK_TOL))} pivot(s) below "
                f"{_RANK_TOL:g} in the equilibrated normal matrix")
        return np.arange(As.shape[0]), lu
    F = As[:n_fe][:, :n_fe]
    FX = As[:n_fe][:, n_fe:].toarray()
    XX = As[n_fe:][:, n_fe:].toarray()
    if n_fe:
        lu_f = SparseFactor(F)
        FinvB = lu_f.solve(FX) if FX.shape[1] else FX
        schur = XX - FX.T @ FinvB if FX.shape[1] else XX
    else:
        schur = XX
    x_pos = independent_columns(schur) if schur.shape[0] else np.zeros(0, dtype=int)
    pos = np.concatenate([np.arange(n_fe), n_fe + x_pos]).astype(int)
    if len(x_pos) == 0 and n_fe:
        return pos, lu_f
    if n_fe:  # the Schur complement of the kept regressors: no second sparse LU
        return pos, BlockFactor(lu_f, FX[:, x_pos], FinvB[:, x_pos],
                                 schur[np.ix_(x_pos, x_pos)])
    return pos, SparseFactor(As[pos][:, pos])


def _few(columns: dict[int, int]) -> bool:
    return len(columns) <= 8 and len(set(columns.values())) == len(columns)


def writes_whole(columns: dict[int, int], weights: np.ndarray | None = None) -> bool:
    """Whether ``scatter_dummies(A, codes, columns, weights)`` writes every row of the
    ``columns`` (a few unweighted levels, a column each: 1 or 0 in every row), so that
    they need not be zero before."""
    return weights is None and _few(columns)


def scatter_dummies(A: np.ndarray, codes: np.ndarray, columns: dict[int, int],
                    weights: np.ndarray | None = None) -> None:
    """Dummy columns of one categorical in one pass: ``A[i, columns[codes[i]]] = 1`` for the
    rows whose level has a column (a left-out level has none); with ``weights``, the
    row's weight instead of 1 (the dummies' products with one measure). ``A`` is
    column-major and zero in those columns (unless ``writes_whole``); nothing (n x k)
    sized is allocated beside it."""
    n = A.shape[0]
    flat = A.reshape(-1, order="F")  # a view: element (i, j) at j * n + i
    if not np.shares_memory(flat, A):
        raise ValueError("scatter_dummies needs a column-major (order='F') matrix")
    codes = np.asarray(codes, dtype=np.int64)
    if _few(columns):
        # few levels, a column each: a comparison per column, written whole (2-4x faster
        # than the gather and scatter below, four passes with index arrays whatever the
        # levels)
        for level, j in columns.items():
            if weights is None:
                np.equal(codes, level, out=A[:, j])
            else:   # the weight where the level is, the column's 0 elsewhere
                np.copyto(A[:, j], weights, where=codes == level)
        return
    lo = int(codes.min()) if len(codes) else 0
    col_of = np.full((int(codes.max()) - lo + 1) if len(codes) else 1, -1, np.int64)
    for level, j in columns.items():
        if 0 <= level - lo < len(col_of):
            col_of[level - lo] = j
    col = col_of[codes - lo]
    on = np.flatnonzero(col >= 0)
    flat[col[on] * n + on] = 1.0 if weights is None else np.asarray(weights)[on]


def group_sums(codes: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum the rows of ``values`` (n,) or (n, m) within integer groups -> (G,) or (G, m)."""
    G = sp.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))),
                      shape=(n_groups, len(codes)))
    out = G @ values
    return out.toarray() if sp.issparse(out) else np.asarray(out)


def _nested(fe_codes: np.ndarray, cl_codes: np.ndarray) -> bool:
    """True when every level of the fixed effect lies within one cluster."""
    pairs = pd.DataFrame({"f": fe_codes, "c": cl_codes}).drop_duplicates()
    return not pairs["f"].duplicated().any()


def fixest_df_k(design: Design, n_x_kept: int, cl_codes: np.ndarray, rows: np.ndarray) -> int:
    """K of the (N-1)/(N-K) factor as pyfixest ``k_fixef="nonnested"`` counts it."""
    n_fe = len(design.fe_names)
    if n_fe == 0:
        return n_x_kept
    levels = [len(unique(c[rows])) for c in design.fe_codes]
    k_fe_adj = sum(levels) - (n_fe - 1)
    nested = [_nested(c[rows], cl_codes) for c in design.fe_codes]
    k_nested = sum(lv for lv, is_n in zip(levels, nested) if is_n)
    n_nested = sum(nested)
    return n_x_kept + k_fe_adj - k_nested + n_nested if n_nested else n_x_kept + k_fe_adj


def crv1_parts(design: Design, fit: WLSFit, w: np.ndarray, clusters: np.ndarray,
               cols: Sequence[int], n_obs: float | None = None
               ) -> tuple[np.ndarray, float, int, int]:
    """CRV1 of the coefficients ``cols`` as parts: (SB, factor, G, df_k) with
    V = factor * SB' SB, SB (G x m) the cluster scores times the bread's columns.

    For many columns (thousands of event-study dummies) V itself need not be formed:
    standard errors are column norms of SB and a linear combination's variance is
    ``factor * |SB a|^2``. Small-sample factor G/(G-1) * (N-1)/(N-K), K per
    ``fixest_df_k``, N the fitted rows or ``n_obs``.

    Compressed data: when each row is the mean of ``w`` observations with the same
    regressors, nested in one cluster (person-months of a municipality-month cell), the
    coefficients and the cluster scores are those of the uncompressed regression, and with
    ``n_obs`` = the number of observations (frequency weights: pyfixest
    ``weights_type="fweights"``) so is V (tests/estimate/test_linalg.py).
    """
    rows = fit.rows
    cl, _ = pd.factorize(np.asarray(clusters)[rows])
    G = int(cl.max()) + 1
    N = len(rows) if n_obs is None else float(n_obs)
    pos = {c: i for i, c in enumerate(fit.keep)}
    missing = [c for c in cols if c not in pos]
    if missing:
        raise ValueError(f"columns {missing} were dropped as collinear; no variance")
    Zk = design.Z[rows][:, fit.keep]
    score = Zk.multiply((np.asarray(w, dtype="float64")[rows] * fit.resid)[:, None]).tocsc()
    S = group_sums(cl, score, G)                      # G x r
    idx = [pos[c] for c in cols]
    if len(idx) <= G:
        SB = S @ fit.bread_columns(idx)               # (G x r)(r x m)
    else:                                             # B symmetric: (S B)[:, idx] = (B S')[idx]'
        SB = fit.solve(S.T)[idx].T
    n_x_kept = int(np.sum(fit.keep >= design.n_fe_cols))
    df_k = fixest_df_k(design, n_x_kept, cl, rows)
    factor = G / max(G - 1, 1) * (N - 1) / (N - df_k)
    return SB, factor, G, df_k


def crv1_vcov(design: Design, fit: WLSFit, w: np.ndarray, clusters: np.ndarray,
              cols: Sequence[int], n_obs: float | None = None) -> tuple[np.ndarray, int, int]:
    """CRV1 covariance of the coefficients ``cols`` (design column indices, all kept).

    Returns (V, G, df_k). Small-sample factor G/(G-1) * (N-1)/(N-K), K per ``fixest_df_k``
    (``n_obs``: see ``crv1_parts``).
    """
    SB, factor, G, df_k = crv1_parts(design, fit, w, clusters, cols, n_obs)
    return factor * (SB.T @ SB), G, df_k


def lincom(coef: np.ndarray, V: np.ndarray, a: np.ndarray) -> tuple[float, float]:
    """Estimate and standard error of a'b."""
    a = np.asarray(a, dtype="float64")
    return float(a @ coef), float(np.sqrt(max(a @ V @ a, 0.0)))


def wald_f(coef: np.ndarray, V: np.ndarray, R: np.ndarray, df2: int) -> tuple[float, float, int]:
    """Joint test R b = 0: F = (Rb)'(R V R')^{-1}(Rb)/q with F(q, df2). Returns (F, p, q)."""
    from scipy import special  # stats.f.sf is special.fdtrc (same bits), a lighter import

    R = np.atleast_2d(R)
    rb = R @ coef
    M = R @ V @ R.T
    q = int(np.linalg.matrix_rank(M))
    if q == 0:
        return np.nan, np.nan, 0
    F = float(rb @ np.linalg.pinv(M) @ rb) / q
    return F, float(special.fdtrc(q, df2, F)), q
