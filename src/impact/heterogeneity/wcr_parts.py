"""Building blocks of the wild cluster restricted bootstrap (``heterogeneity.wcr``): the
Gram blocks of column runs, the per-cluster cross products with the controls and the
cluster aggregates of the fixed-effect term. The formulas they serve are in ``wcr``'s
module notes; nothing here depends on the bootstrap weights."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from impact.estimate.linalg import build_design, wls_fit

if TYPE_CHECKING:
    from impact.estimate.cgram import ClusterGrams
    from impact.heterogeneity.wcr import CellFE

#: bytes of the buffer into which control columns are gathered in cluster order
_BLOCK_BYTES = 1 << 26


def _solve_spd(M: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """M^{-1} rhs for a symmetric positive definite M, equilibrated by its diagonal."""
    d = np.sqrt(np.diag(M))
    dd = d if rhs.ndim == 1 else d[:, None]
    return np.linalg.solve(M / np.outer(d, d), rhs / dd) / dd


def _runs(cols: list[int]) -> list[tuple[int, int, int]]:
    """Contiguous runs of sorted column indices: (position in cols, first, stop)."""
    out, i = [], 0
    while i < len(cols):
        j = i
        while j + 1 < len(cols) and cols[j + 1] == cols[j] + 1:
            j += 1
        out.append((i, cols[i], cols[j] + 1))
        i = j + 1
    return out


def _gram_block(A: np.ndarray, rows: list[int], cols: list[int]) -> np.ndarray:
    """A[:, rows].T @ A[:, cols] (sorted unique indices) from views of contiguous runs."""
    out = np.empty((len(rows), len(cols)))
    for i, a0, a1 in _runs(rows):
        for j, b0, b1 in _runs(cols):
            out[i:i + a1 - a0, j:j + b1 - b0] = A[:, a0:a1].T @ A[:, b0:b1]
    return out


def _cluster_cross(A: np.ndarray, Ts: np.ndarray, zs: slice, ex: list[int],
                   order: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster Z~_g'T_g (G, H, m) and T_g'W_g (G, m, kx).

    ``Ts`` holds the partialled columns T (Z~ in columns ``zs``) with rows in cluster order
    (``order``; cluster g in rows ``bounds[g]:bounds[g+1]``); the control columns ``ex`` of
    A are gathered into that order a block of columns at a time, in one reused buffer of
    at most ``_BLOCK_BYTES`` (A itself is not copied).
    """
    n, m = Ts.shape
    seg = list(zip(bounds[:-1], bounds[1:]))
    ZT = np.stack([Ts[s:e, zs].T @ Ts[s:e] for s, e in seg])
    TW = np.zeros((len(seg), m, len(ex)))
    if not ex:
        return ZT, TW
    nb = int(max(1, min(len(ex), _BLOCK_BYTES // (8 * max(n, 1)))))
    buf = np.empty((n, nb), order="F")
    for j0 in range(0, len(ex), nb):
        cols = ex[j0:j0 + nb]
        for i, j in enumerate(cols):
            np.take(A[:, j], order, out=buf[:, i])
        Wb = buf[:, :len(cols)]
        for g, (s, e) in enumerate(seg):
            TW[g, :, j0:j0 + len(cols)] = Ts[s:e].T @ Wb[s:e]
    return ZT, TW


class _FEParts:
    """Cluster aggregates of the fixed-effect term (module docstring, [FE]).

    With p the cell x cluster pairs, Ts_p the sums of the partialled columns over a pair's
    rows and D_p its cell's fixed-effect dummies (the kept columns of ``cell_demean``'s
    WLS, whose factor ``solve`` applies (D'ND)^{-1}): ``by_cluster(j)`` (G, f) has rows
    sum_{p in g} Ts_p[j] D_p.
    """

    def __init__(self, fe: CellFE, pair_cell: np.ndarray, pair_cluster: np.ndarray,
                 sums: np.ndarray, pair_count: np.ndarray, G: int):
        """``pair_cell``, ``pair_cluster`` (P,): each pair's cell code and cluster index;
        ``sums`` (P, m) the partialled columns summed over the pair's rows; ``pair_count``
        (P,) its rows."""
        C = len(fe.cells)
        n_c = np.bincount(pair_cell, weights=pair_count, minlength=C).astype("float64")
        design = build_design(fe.cells, list(fe.fe), [])
        fit = wls_fit(design, np.zeros(C), n_c, n_c > 0)   # the factor cell_demean uses
        self.solve = fit.solve
        P = len(pair_cell)
        self.Dp = design.Z[:, fit.keep].tocsr()[pair_cell]   # (P, f)
        self.Cp = sp.csr_matrix((np.ones(P), (pair_cluster, np.arange(P))), shape=(G, P))
        self.sums = sums
        self._cache: dict[int, np.ndarray] = {}

    @classmethod
    def from_rows(cls, fe: CellFE, Ts: np.ndarray, cl_sorted: np.ndarray, order: np.ndarray,
                  G: int) -> "_FEParts":
        """From the partialled columns ``Ts`` with rows in cluster order (``order``)."""
        code = np.asarray(fe.cell_code)[order].astype("int64")
        pair, uniq = pd.factorize(code * G + cl_sorted)     # cell x cluster pairs
        P = len(uniq)
        sums = np.stack([np.bincount(pair, weights=Ts[:, j], minlength=P)
                         for j in range(Ts.shape[1])], axis=1)  # (P, m)
        return cls(fe, uniq // G, uniq % G, sums, np.bincount(pair, minlength=P), G)

    def by_cluster(self, j: int) -> np.ndarray:
        if j not in self._cache:
            self._cache[j] = np.asarray(
                (self.Cp @ self.Dp.multiply(self.sums[:, [j]]).tocsr()).todense())
        return self._cache[j]


def _row_aggregates(A: np.ndarray, need: list[int], tgt: list[int], ex_glob: list[int],
                    Pi: np.ndarray | None, zsl: slice, cl: np.ndarray, G: int,
                    fe: CellFE | None) -> tuple[np.ndarray, np.ndarray, _FEParts | None]:
    """(Z~_g'T_g, T_g'W_g, FE parts) from A's rows: T = A[:, need[tgt]] minus the
    controls' fit (``Pi``), sorted by cluster code ``cl``."""
    N = A.shape[0]
    T = np.empty((N, len(tgt)))
    for i, j in enumerate(tgt):
        T[:, i] = A[:, need[j]]
    if ex_glob:
        for i, a0, a1 in _runs(ex_glob):
            T -= A[:, a0:a1] @ Pi[i:i + a1 - a0]
    order = np.argsort(cl, kind="stable")
    bounds = np.searchsorted(cl[order], np.arange(G + 1))
    Ts = T[order]
    del T
    ZT, TW = _cluster_cross(A, Ts, zsl, ex_glob, order, bounds)
    fparts = _FEParts.from_rows(fe, Ts, cl[order], order, G) if fe is not None else None
    return ZT, TW, fparts


def _gram_aggregates(grams: ClusterGrams, need: list[int], tgt: list[int],
                     ex_glob: list[int], Pi: np.ndarray | None, zsl: slice,
                     fe: CellFE | None) -> tuple[np.ndarray, np.ndarray, _FEParts | None]:
    """The same aggregates from the cluster blocks C_g of A's Gram matrix: T = A M with
    M selecting the target columns minus the controls' fit, so Z~_g'T_g = M_z'C_g M,
    T_g'W_g = M'C_g[:, W] and T's pair sums are A's times M."""
    M = np.zeros((grams.C.shape[1], len(tgt)))
    M[[need[j] for j in tgt], np.arange(len(tgt))] = 1.0
    if ex_glob:
        M[ex_glob] -= Pi
    CM = grams.C @ M                                                        # (G, k, m)
    ZT = np.einsum("kh,gkm->ghm", M[:, zsl], CM)
    TW = CM[:, ex_glob, :].transpose(0, 2, 1)
    fparts = (_FEParts(fe, grams.pair_cell, grams.pair_cluster, grams.pair_sums @ M,
                       grams.pair_count, len(grams.labels)) if fe is not None else None)
    return ZT, TW, fparts
