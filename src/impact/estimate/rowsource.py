"""Regressors read a chunk of rows at a time: the row sources and the chunked products of
the binomial fit (``feglm``).

A row source has ``shape``, ``rows(lo, hi)`` (its rows lo..hi-1 as a CSR matrix),
``split(lo, hi, dense, sparse)`` (those rows' dense columns as an array and the sparse
ones as CSR), ``column_nnz()``, ``select(columns)`` and ``take(row mask)``: ``CSRRows`` wraps a scipy
matrix, ``coded_rows.CodedRows`` makes the rows from integer codes. ``Blocks`` splits
each chunk into its dense and sparse columns and ``Acc`` accumulates X'WX and the cell
sums over the chunks, so no per-row product of the whole matrix is ever held.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["Acc", "Blocks", "CSRRows", "as_rows", "row_major_times", "t_times", "times"]


def row_major_times(D: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``D * w[:, None]`` in row-major order. A sparse matrix times a dense block reads
    the block row by row: scipy copies a column-major one to row-major first (``ravel``;
    6 s of a 43 s hazard fit). The product's values, and BLAS's ``D.T @ Dw`` on it, are
    the same bits either way."""
    return np.multiply(D, w[:, None], order="C")


class CSRRows:
    """A scipy sparse matrix as a row source: ``rows(lo, hi)`` its CSR row slice."""

    def __init__(self, X):
        self.X = sp.csr_matrix(X)  # no copy when it is one already
        self.shape = self.X.shape

    def rows(self, lo: int, hi: int) -> sp.csr_matrix:
        return self.X[lo:hi]

    def column_nnz(self) -> np.ndarray:
        return np.bincount(self.X.indices, minlength=self.shape[1])

    def split(self, lo: int, hi: int, dense: np.ndarray, sparse: np.ndarray):
        """Rows lo..hi-1 as (the ``dense`` columns, an array; the ``sparse`` ones, CSR)."""
        part = self.X[lo:hi]
        return part[:, dense].toarray(), part[:, sparse].tocsr()

    def select(self, cols) -> "CSRRows":
        return self if len(cols) == self.shape[1] else CSRRows(self.X[:, cols])

    def take(self, keep: np.ndarray) -> "CSRRows":
        return CSRRows(self.X[keep])


def as_rows(X):
    """A row source (``rows``, ``column_nnz``, ``select``, ``shape``) for X: dense, sparse,
    or already one."""
    return X if hasattr(X, "rows") else CSRRows(X)


class Blocks:
    """The regressors read ``chunk`` rows at a time, each chunk split into its dense
    columns (``dense``: quality, the numeric controls, dummies of common levels; a
    dense array) and its sparse rest (``sparse``: dummies of rare levels; CSR). A sparse
    x sparse product costs O(n k^2) when some columns are dense; on the blocks the dense
    part goes through BLAS and the sparse products see only the sparse columns (the hazard
    on the built-in data: its Gram matrices 17.9 -> 3 s)."""

    def __init__(self, X, share: float = 0.125, chunk: int = 1 << 18):
        self.src = as_rows(X)
        self.shape = self.src.shape
        nnz = self.src.column_nnz()
        self.dense = np.flatnonzero(nnz > share * self.shape[0])
        self.sparse = np.flatnonzero(nnz <= share * self.shape[0])
        self.chunk = max(int(chunk), 1)

    def select(self, cols: np.ndarray) -> "Blocks":
        """The blocks of the columns ``cols`` (increasing), renumbered in order: each keeps
        its side (dense or sparse), so the column counts are not taken again."""
        cols = np.asarray(cols)
        if (np.diff(cols) <= 0).any():
            raise ValueError("Blocks.select: columns must be increasing")
        out = Blocks.__new__(Blocks)
        out.src, out.chunk = self.src.select(cols), self.chunk
        out.shape = (self.shape[0], len(cols))
        out.dense = np.flatnonzero(np.isin(cols, self.dense))
        out.sparse = np.flatnonzero(np.isin(cols, self.sparse))
        return out

    def chunks(self):
        """(lo, hi, dense block, sparse block) for each chunk of rows, in order."""
        for lo in range(0, self.shape[0], self.chunk):
            hi = min(lo + self.chunk, self.shape[0])
            yield (lo, hi, *self.src.split(lo, hi, self.dense, self.sparse))

    def gram(self, w: np.ndarray) -> np.ndarray:
        acc = Acc(self, 1)
        for lo, hi, D, S in self.chunks():
            acc.add(D, S, w[lo:hi], np.zeros(hi - lo, np.int64))
        return acc.gram()

    def cell_sums(self, code: np.ndarray, w: np.ndarray, C: int) -> np.ndarray:
        """(C, k) sums of w * X over the rows of each cell (``code`` the rows' cells)."""
        acc = Acc(self, C)
        for lo, hi, D, S in self.chunks():
            acc.add(D, S, w[lo:hi], code[lo:hi])
        return acc.sums()


class Acc:
    """X'WX and the cell sums Ind'(W X), W_c accumulated chunk by chunk (``Blocks``)."""

    def __init__(self, blocks: Blocks, C: int):
        self.b, self.C = blocks, C
        d, s = len(blocks.dense), len(blocks.sparse)
        self.dd, self.sd, self.ss = np.zeros((d, d)), np.zeros((s, d)), np.zeros((s, s))
        self.cd, self.cs = np.zeros((C, d)), np.zeros((C, s))
        self.Wc = np.zeros(C)

    def add(self, D: np.ndarray, S, w: np.ndarray, code: np.ndarray) -> None:
        Dw = row_major_times(D, w)
        self.dd += D.T @ Dw
        self.sd += np.asarray(S.T @ Dw)
        # the sparse block's entries (row, column, value): the products with it are sums
        # over these, made by ``bincount`` (in a national hazard's 325 s under cProfile,
        # scipy's sparse x sparse products took 28 s and the diagonal weighting 8 s)
        S = sp.csr_matrix(S)
        row = np.repeat(np.arange(S.shape[0]), np.diff(S.indptr))
        col, wv = S.indices.astype(np.int64), S.data * w[row]
        s = S.shape[1]
        if len(col):
            self.ss += _within_rows(S.indptr, col, S.data, wv, s)
            self.cs += np.bincount(code[row].astype(np.int64) * s + col, weights=wv,
                                   minlength=self.C * s).reshape(self.C, s)
        # the cells' indicator (C x rows) built in compressed-column form: no conversion
        ind = sp.csc_matrix((np.ones(len(w)), code, np.arange(len(w) + 1)),
                            shape=(self.C, len(w)))
        self.cd += ind @ Dw
        self.Wc += np.bincount(code, weights=w, minlength=self.C)

    def select(self, blocks: Blocks, cols: np.ndarray) -> "Acc":
        """The sums of the columns ``cols`` (increasing; ``blocks`` this one's
        ``Blocks.select(cols)``): sub-blocks of these, the same numbers."""
        cols = np.asarray(cols)
        if (np.diff(cols) <= 0).any():
            raise ValueError("Acc.select: columns must be increasing")
        out = Acc.__new__(Acc)
        out.b, out.C, out.Wc = blocks, self.C, self.Wc
        d = np.flatnonzero(np.isin(self.b.dense, cols))
        s = np.flatnonzero(np.isin(self.b.sparse, cols))
        out.dd, out.sd = self.dd[np.ix_(d, d)], self.sd[np.ix_(s, d)]
        out.ss = self.ss[np.ix_(s, s)]
        out.cd, out.cs = self.cd[:, d], self.cs[:, s]
        return out

    def gram(self) -> np.ndarray:
        d, s, k = self.b.dense, self.b.sparse, self.b.shape[1]
        out = np.empty((k, k))
        out[np.ix_(d, d)] = self.dd
        out[np.ix_(s, d)] = self.sd
        out[np.ix_(d, s)] = self.sd.T
        out[np.ix_(s, s)] = self.ss
        return out

    def sums(self) -> np.ndarray:
        out = np.empty((self.C, self.b.shape[1]))
        out[:, self.b.dense] = self.cd
        out[:, self.b.sparse] = self.cs
        return out


def _within_rows(ptr: np.ndarray, col: np.ndarray, val: np.ndarray, wval: np.ndarray,
                 s: int) -> np.ndarray:
    """S'WS (s x s) from S's entries in row order (``ptr`` its row pointers, ``col`` and
    ``val`` the entries, ``wval`` the weighted values): the sum over every ordered pair of
    entries of one row, as ``bincount`` over the pairs (a row holds a few entries)."""
    m = np.diff(ptr)
    per = np.repeat(m, m)                   # each entry's row length
    first = np.repeat(ptr[:-1], m)          # each entry's row start
    a = np.repeat(np.arange(len(col)), per)                 # an entry, once per partner
    start = np.repeat(np.cumsum(per) - per, per)
    b = np.repeat(first, per) + (np.arange(len(a)) - start)   # its partners in the row
    return np.bincount(col[a] * s + col[b], weights=val[a] * wval[b],
                       minlength=s * s).reshape(s, s)


def times(D: np.ndarray, S, v: np.ndarray, blocks: Blocks) -> np.ndarray:
    """X_chunk @ v from the chunk's blocks."""
    return D @ v[blocks.dense] + S @ v[blocks.sparse]


def t_times(D: np.ndarray, S, u: np.ndarray, blocks: Blocks, out: np.ndarray) -> None:
    """out += X_chunk' u, from the chunk's blocks."""
    out[blocks.dense] += D.T @ u
    out[blocks.sparse] += S.T @ u
