"""Per-cluster cross products of a demeaned matrix: cluster-robust fits without the rows.

Notes
-----
Every statistic of a linear (2SLS or OLS) fit with CRV1 errors is a function of the
cluster blocks of the Gram matrix, C_g = A_g'A_g (rows of cluster g): with b = (Z'X)^{-1}
Z'y from Z'X = sum_g C_g[Z, X], the cluster score of coefficient h is

    s_gh = r_h' Z_g'u_g = r_h' (C_g[Z, y] - C_g[Z, X] b),   r_h = row h of (Z'X)^{-1},

and the wild cluster restricted bootstrap (``heterogeneity.wcr``) needs only such forms
plus, for fixed effects not nested in the clusters, the column sums over each cell x
cluster pair. So when many models share most columns (the heterogeneity analysis: one
demeaned headline matrix, a few interaction columns per group dimension), the blocks of
the shared columns are computed once (``cluster_grams``) and each model adds only its
own columns' blocks (``ClusterGrams.extend``): O(n k_new k) per model instead of several
passes over all n x k entries. The rows must be sorted by cluster for that (each block a
contiguous view); ``cluster_grams`` returns the order when they are not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from impact.estimate.pmreg import (
    PMFit, PMMulti, _independent, _multi_solve, cell_fitted, cluster_codes,
)

__all__ = ["ClusterGrams", "cluster_grams", "cluster_grams_by", "demean_grams", "fit_pm_grams",
           "fit_pm_multi_grams"]


@dataclass(frozen=True)
class ClusterGrams:
    """Cluster blocks of the Gram matrix of a column-major matrix A (rows sorted by
    cluster) and, with cell codes, column sums per cell x cluster pair.

    ``C`` (G, k, k): C[g] = A_g'A_g for the rows ``bounds[g]:bounds[g+1]`` of cluster
    ``labels[g]``; ``n_obs`` rows in all. With ``pair_code`` (n,) each row's cell x
    cluster pair, ``pair_cell``, ``pair_cluster`` (P,) that pair's cell code and cluster
    index, ``pair_sums`` (P, k) the sums of A's columns over the pair's rows and
    ``pair_count`` (P,) its rows.
    """

    C: np.ndarray = field(repr=False)
    labels: np.ndarray
    bounds: np.ndarray | None = field(repr=False)
    n_obs: int
    pair_code: np.ndarray | None = field(default=None, repr=False)
    pair_cell: np.ndarray | None = field(default=None, repr=False)
    pair_cluster: np.ndarray | None = field(default=None, repr=False)
    pair_sums: np.ndarray | None = field(default=None, repr=False)
    pair_count: np.ndarray | None = field(default=None, repr=False)

    @property
    def gram(self) -> np.ndarray:
        """A'A."""
        return self.C.sum(axis=0)

    def subset(self, keep: np.ndarray) -> "ClusterGrams":
        """The blocks of the clusters ``keep`` (bool per cluster, their order kept), as
        if only their rows were there: a half of a sample split, say. Without row
        positions (``extend`` needs the rows)."""
        keep = np.asarray(keep, dtype=bool)
        pk = keep[self.pair_cluster] if self.pair_cell is not None else None
        if self.bounds is not None:
            n_obs = int(np.diff(self.bounds)[keep].sum())
        elif pk is not None:  # blocks added up from batches: rows from the pair counts
            n_obs = int(self.pair_count[pk].sum())
        else:
            raise ValueError("subset needs row positions or pair counts")
        out = ClusterGrams(self.C[keep], self.labels[keep], None, n_obs)
        if self.pair_cell is None:
            return out
        remap = np.cumsum(keep) - 1
        return ClusterGrams(out.C, out.labels, None, n_obs, None, self.pair_cell[pk],
                            remap[self.pair_cluster[pk]], self.pair_sums[pk],
                            self.pair_count[pk])

    def columns(self, sel) -> "ClusterGrams":
        """The blocks and pair sums of the columns ``sel`` only (in that order). Without
        row positions (``extend`` needs the rows)."""
        return ClusterGrams(self.C[:, sel][:, :, sel], self.labels, None, self.n_obs, None,
                            self.pair_cell, self.pair_cluster,
                            None if self.pair_sums is None else self.pair_sums[:, sel],
                            self.pair_count)

    def extend(self, A: np.ndarray, k: int, j: int) -> "ClusterGrams":
        """The blocks of A[:, :j] from these of A[:, :k] (the same rows, in the same
        order): only the new columns k..j-1 are multiplied, cluster by cluster."""
        if A.shape[0] != self.n_obs or self.bounds is None:
            raise ValueError(f"A has {A.shape[0]} rows, the blocks {self.n_obs} "
                             f"{'' if self.bounds is not None else '(and no row positions)'}")
        G = len(self.labels)
        C = np.empty((G, j, j))
        C[:, :k, :k] = self.C[:, :k, :k]
        for g in range(G):
            s, e = self.bounds[g], self.bounds[g + 1]
            cross = A[s:e, k:j].T @ A[s:e, :j]        # views of a column-major array
            C[g, k:, :] = cross
            C[g, :k, k:] = cross[:, :k].T
        sums = None
        if self.pair_code is not None:
            P = len(self.pair_cell)
            sums = np.empty((P, j))
            sums[:, :k] = self.pair_sums[:, :k]
            for c in range(k, j):
                sums[:, c] = np.bincount(self.pair_code, weights=A[:, c], minlength=P)
        return ClusterGrams(C, self.labels, self.bounds, self.n_obs, self.pair_code,
                            self.pair_cell, self.pair_cluster, sums, self.pair_count)


def cluster_grams(A: np.ndarray, clusters, cell_code: np.ndarray | None = None,
                  only_from: int | None = None, summed: np.ndarray | None = None
                  ) -> tuple[ClusterGrams, np.ndarray | None]:
    """The cluster blocks of A's Gram matrix (and, with ``cell_code``, the cell x cluster
    pair sums): ``(grams, order)``.

    Clusters are indexed in order of first appearance (as ``pd.factorize``, so as
    ``pmreg.fit_pm_multi`` orders its scores). When the rows are not sorted by cluster,
    ``order`` is the stable sort that does it and the blocks are taken in that order
    (A gathered once); None when they already are, and ``extend`` needs that.
    ``only_from``: only the blocks of the columns from ``only_from`` on against every
    column; the others' with each other are NaN (``sums.GramSums(only=)``). ``summed``:
    the columns whose pair sums are made here (None: all); the others' are 0, for a
    caller that makes them another way (``sums.GramSums.add``: a level's columns at once).
    """
    cl, labels = cluster_codes(clusters)
    if (cl < 0).any():
        raise ValueError("missing cluster labels")
    G = int(cl.max()) + 1
    order = None
    if (np.diff(cl) < 0).any():
        order = np.argsort(cl, kind="stable")
        A = np.asfortranarray(A[order])
        cl = cl[order]
        cell_code = None if cell_code is None else np.asarray(cell_code)[order]
    bounds = np.searchsorted(cl, np.arange(G + 1))
    if only_from is None:   # A_g'A_g: numpy's symmetric product (BLAS syrk)
        C = np.stack([A[s:e].T @ A[s:e] for s, e in zip(bounds[:-1], bounds[1:])])
    else:
        C = np.full((G, A.shape[1], A.shape[1]), np.nan)
        for g, (s, e) in enumerate(zip(bounds[:-1], bounds[1:])):
            _only_block(C[g], A[s:e], only_from)
    grams = ClusterGrams(C, np.asarray(labels), bounds, A.shape[0])
    if cell_code is not None:
        code = np.asarray(cell_code, dtype="int64")
        pair, uniq = pd.factorize(code * G + cl)
        P = len(uniq)
        if summed is None:
            sums = np.stack([np.bincount(pair, weights=A[:, c], minlength=P)
                             for c in range(A.shape[1])], axis=1).reshape(P, A.shape[1])
        else:
            sums = np.zeros((P, A.shape[1]))
            for c in summed:
                sums[:, c] = np.bincount(pair, weights=A[:, c], minlength=P)
        grams = ClusterGrams(C, grams.labels, bounds, A.shape[0], pair, uniq // G, uniq % G,
                             sums, np.bincount(pair, minlength=P))
    return grams, order


def _only_block(C: np.ndarray, A: np.ndarray, k0: int) -> None:
    """Into the k x k block ``C``: the products of A's columns from ``k0`` on with every
    column (``cluster_grams(only_from=)``). A column of those that is 0 in every row of
    A (the data-driven check's GATES columns of a split in the clusters of its other
    half: about half of them) has 0 products, not made (the check's second pass: 39 ->
    26 CPU s nationally); the other products are the same sums of the same rows."""
    new = A[:, k0:]                                   # views of a column-major array
    nz = np.flatnonzero(new.any(axis=0))
    if len(nz) == new.shape[1]:
        cross = new.T @ A
        C[k0:, :] = cross
        C[:k0, k0:] = cross[:, :k0].T
        return
    C[k0:, :] = 0.0
    C[:k0, k0:] = 0.0
    if not len(nz):
        return
    sub = np.asfortranarray(new[:, nz])
    at = k0 + nz
    old = sub.T @ A[:, :k0]
    C[at, :k0] = old
    C[:k0, at] = old.T
    C[np.ix_(at, at)] = sub.T @ sub


def cluster_grams_by(make: Callable[[int, int], np.ndarray], bounds: np.ndarray, labels,
                     cell_code: np.ndarray) -> ClusterGrams:
    """Cluster blocks and cell x cluster pair sums of a matrix made one cluster at a time:
    ``make(s, e)`` returns its rows s..e-1, cluster g's rows being
    ``bounds[g]:bounds[g+1]``; so no n x k matrix is held. Each cluster's pairs are its
    cells in increasing code order (``pair_code`` numbers them across clusters)."""
    G = len(bounds) - 1
    C, cells, counts, sums, codes = [], [], [], [], []
    P = 0
    for g in range(G):
        s, e = int(bounds[g]), int(bounds[g + 1])
        A = make(s, e)
        C.append(A.T @ A)
        uniq, inv, cnt = np.unique(cell_code[s:e], return_inverse=True, return_counts=True)
        sums.append(_pair_sums(inv, len(uniq), A))
        cells.append(uniq)
        counts.append(cnt)
        codes.append(P + inv)
        P += len(uniq)
    k = C[0].shape[0] if C else 0
    pair_cluster = np.repeat(np.arange(G), [len(u) for u in cells])
    return ClusterGrams(np.stack(C) if C else np.zeros((0, k, k)), np.asarray(labels),
                        np.asarray(bounds), int(bounds[-1] - bounds[0]),
                        np.concatenate(codes).astype("int64") if codes else None,
                        np.concatenate(cells).astype("int64") if cells else None,
                        pair_cluster, np.concatenate(sums) if sums else None,
                        np.concatenate(counts) if counts else None)


def _pair_sums(inv: np.ndarray, P: int, A: np.ndarray) -> np.ndarray:
    """(P, k) column sums of A's rows by pair index ``inv`` (0..P-1). A ``bincount`` per
    column: a sparse product converts a column-major A to row-major first (2.5x slower)."""
    out = np.empty((P, A.shape[1]))
    for j in range(A.shape[1]):
        out[:, j] = np.bincount(inv, weights=A[:, j], minlength=P)
    return out


def demean_grams(grams: ClusterGrams, cells: pd.DataFrame, fe: Sequence[str],
                 sums: bool = True) -> ClusterGrams:
    """The cluster blocks of the matrix with the cell fixed effects ``fe`` projected out
    (``pmreg.cell_demean`` of its rows) from those of the raw matrix and its cell x
    cluster pair sums, reading no row.

    With m_c the projection of cell c (``pmreg.cell_fitted`` of the cell sums, on the
    cells present), S_p and n_p the column sums and rows of pair p = (cell c, cluster g):

        sum_{i in g} (a_i - m_c(i))(a_i - m_c(i))' = C_g - sum_{p in g} (S_p m_c' + m_c S_p'
                                                                  - n_p m_c m_c'),

    and the pair sums become S_p - n_p m_c (``sums=False``: not made, the result's
    ``pair_sums`` None, for a caller that needs only the blocks). ``cells``: the cell table
    that the pair cell codes index (cells without a pair are left out of the projection).
    Exact algebra; in floating point the subtraction loses digits only as far as the fixed
    effects explain the columns (tests/estimate/test_cgram.py compares it with demeaning
    the rows).

    Memory: a few P x k arrays at most. Pairs already in cluster order are taken as
    views where they are row-major (else copied so, as a gather would), and pairs that
    are the cells themselves in order (one cluster) take the cells' projection as it is:
    the same numbers either way (tests/estimate/test_cgram.py).
    """
    if grams.pair_cell is None:
        raise ValueError("demean_grams needs the cell x cluster pair sums")
    nC, P = len(cells), len(grams.pair_cell)
    n_c = np.bincount(grams.pair_cell, weights=grams.pair_count, minlength=nC)
    M = cell_fitted(_pair_sums(grams.pair_cell, nC, grams.pair_sums), n_c, cells, fe,
                    overwrite=True)
    if not (P == nC and np.array_equal(grams.pair_cell, np.arange(P))):
        M = M[grams.pair_cell]                                                # (P, k)
    pc = grams.pair_cluster
    ordered = bool((pc[1:] >= pc[:-1]).all())
    order = slice(None) if ordered else np.argsort(pc, kind="stable")
    pb = np.searchsorted(pc[order], np.arange(len(grams.labels) + 1))
    C = grams.C.copy()
    for g in range(len(grams.labels)):
        idx = slice(pb[g], pb[g + 1]) if ordered else order[pb[g]:pb[g + 1]]
        # row-major, as a gather makes them: a column-major view (``GramSums.raw``'s
        # sums are one) takes another BLAS path, whose products round differently
        S, Mg = np.ascontiguousarray(grams.pair_sums[idx]), np.ascontiguousarray(M[idx])
        X = S.T @ Mg
        C[g] -= X + X.T - (Mg.T * grams.pair_count[idx]) @ Mg
    if sums:
        M *= grams.pair_count[:, None]
        np.subtract(grams.pair_sums, M, out=M)
    return ClusterGrams(C, grams.labels, grams.bounds, grams.n_obs, grams.pair_code,
                        grams.pair_cell, grams.pair_cluster, M if sums else None,
                        grams.pair_count)


def fit_pm_grams(grams: ClusterGrams, names: Sequence[str], y: str | Sequence[str], x: str,
                 exog: Sequence[str], instrument: str | None, df_fe: int,
                 wild_parts: bool = False) -> PMFit | list[PMFit]:
    """``pmreg.fit_pm`` (coefficient on x, its CRV1 SE, the first-stage F and, with
    ``wild_parts``, the score bootstrap's cluster parts) from the cluster blocks of A's
    Gram matrix instead of A: the same algebra, cluster scores from the blocks (module
    notes). ``y`` a list: one fit per outcome.

    The wild parts are sums over a cluster of products of two columns with the controls
    partialled out, a~_i = a_i'u with u = e_a - E pi_a: sum_g z~ x~ = u_z' C_g u_x."""
    single = isinstance(y, str)
    ys = [y] if single else list(y)
    col = {n: i for i, n in enumerate(names)}
    C = grams.C
    G_all = grams.gram
    ex = _independent(G_all, [col[e] for e in exog])
    X = [col[x]] + ex
    Zc = ([col[instrument]] if instrument else [col[x]]) + ex
    Szx = G_all[np.ix_(Zc, X)]
    yc = [col[v] for v in ys]
    b = np.linalg.solve(Szx, G_all[np.ix_(Zc, yc)])                    # (len X, O)
    r = np.linalg.inv(Szx)[0]
    CZ = C[:, Zc, :]                                                    # (G, |Z|, k)
    # s_g = r'(C_g[Z, y] - C_g[Z, X] b): (G, O)
    s = (np.einsum("z,gzo->go", r, CZ[:, :, yc])
         - np.einsum("z,gzx,xo->go", r, CZ[:, :, X], b))
    G = C.shape[0]
    N = grams.n_obs
    df_k = len(X) + df_fe
    ssc = G / max(G - 1, 1) * (N - 1) / (N - df_k)
    se = np.sqrt(ssc * (s * s).sum(axis=0))
    f1 = float("nan")
    if instrument:  # first stage: x on instrument + exog, CRV1 Wald F of the instrument
        Szz = G_all[np.ix_(Zc, Zc)]
        pi = np.linalg.solve(Szz, G_all[Zc, col[x]])
        r1 = np.linalg.inv(Szz)[0]
        s1 = np.einsum("z,gz->g", r1, CZ[:, :, col[x]] - CZ[:, :, Zc] @ pi)
        f1 = float(pi[0] ** 2 / (ssc * (s1 @ s1)))
    wa = [None] * len(ys)
    wc = None
    if wild_parts:
        U = {j: _partial_vec(G_all, ex, j) for j in {col[instrument or x], col[x], *yc}}
        uz, ux = U[col[instrument or x]], U[col[x]]
        zx = float(uz @ G_all @ ux)
        Cz = np.einsum("k,gkl->gl", uz, C)                                  # (G, k)
        wc = Cz @ ux / zx
        wa = [Cz @ U[j] / zx for j in yc]
    out = [PMFit(float(b[0, o]), float(se[o]), N, G, df_k, f1, wa[o], wc)
           for o in range(len(ys))]
    return out[0] if single else out


def _partial_vec(G_all: np.ndarray, ex: list[int], j: int) -> np.ndarray:
    """u with A u = column j of A minus its least-squares projection on the columns ``ex``
    (``pmreg._partial`` as coefficients on A's columns)."""
    u = np.zeros(G_all.shape[0])
    u[j] = 1.0
    if ex:
        u[ex] = -np.linalg.solve(G_all[np.ix_(ex, ex)], G_all[ex, j])
    return u


def fit_pm_multi_grams(grams: ClusterGrams, names: Sequence[str], y: str, xs: Sequence[str],
                       exog: Sequence[str], instruments: Sequence[str] | None, df_fe: int
                       ) -> PMMulti:
    """``pmreg.fit_pm_multi`` from the cluster blocks of A's Gram matrix instead of A: the
    same coefficients, scores (G x H, ``grams.labels`` order) and covariance."""
    col = {n: i for i, n in enumerate(names)}
    C = grams.C
    keep_h, X, Zc, Szx, b = _multi_solve(grams.gram, col, y, xs, exog, instruments)
    G, N = C.shape[0], grams.n_obs
    df_k = len(X) + df_fe
    c = G / max(G - 1, 1) * (N - 1) / (N - df_k)
    H = len(keep_h)
    R = np.linalg.inv(Szx)[:H]                                          # (H, |Z|)
    CZ = C[:, Zc, :]
    zu = CZ[:, :, col[y]] - CZ[:, :, X] @ b                             # (G, |Z|) Z_g'u_g
    S = np.sqrt(c) * zu @ R.T                                           # (G, H)
    coef = np.full(len(xs), np.nan)
    scores = np.full((G, len(xs)), np.nan)
    coef[keep_h] = b[:H]
    scores[:, keep_h] = S
    return PMMulti(tuple(xs), coef, scores.T @ scores, scores, N, G, df_k,
                   np.asarray(grams.labels))
