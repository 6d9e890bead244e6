"""The hazard's binomial cells' design held as integer codes (``CodedRows``), a row source
of ``rowsource``: the fit makes its rows a chunk at a time (``hazard_stream`` builds it)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["CodedRows", "Scaled", "compact"]


def compact(v: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``v[keep]`` written over the front of ``v`` (a view of it returned): one array's
    kept values at a time, not a copy of every array."""
    m = int(np.count_nonzero(keep))
    v[:m] = v[keep]
    return v[:m]


class Scaled:
    """Numbers held as integer codes times a ``step`` (a numeric column of ``CodedRows``):
    row i reads ``float64(codes[i]) * step``, the very number of ``np.round(x / step) *
    step`` when ``codes`` are ``np.round(x / step)``. The hazard's quality rounded to 0.1,
    nationally: 1 byte a cell instead of 8 (62 million cells)."""

    def __init__(self, codes: np.ndarray, step: float):
        self.codes, self.step = codes, float(step)

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, idx) -> np.ndarray:
        # in float64 whatever the codes' type (a float32 code times a Python float
        # would stay float32)
        return np.multiply(self.codes[idx], self.step, dtype=np.float64)


def _nnz(v) -> int:
    return int(np.count_nonzero(v.codes if isinstance(v, Scaled) else v))


def _take(v, keep: np.ndarray):
    return Scaled(v.codes[keep], v.step) if isinstance(v, Scaled) else v[keep]


def _compact(v, keep: np.ndarray):
    return Scaled(compact(v.codes, keep), v.step) if isinstance(v, Scaled) else compact(v, keep)


class CodedRows:
    """The cells' design held as codes (a ``rowsource`` row source): ``num`` pairs
    (column, values) and ``cats`` triples (codes, offset, cmap), ``cmap[code - offset]``
    the column of that level's dummy (-1: the left-out level). 8 bytes per numeric value
    (fewer where a smaller type holds it, or as ``Scaled`` codes) and 1 or 2 per
    categorical control and row, where a CSR matrix holds 12 per non-zero; ``rows`` makes
    the CSR rows of a chunk."""

    def __init__(self, n: int, k: int, num: list, cats: list):
        self.shape, self.num, self.cats = (n, k), num, cats

    def rows(self, lo: int, hi: int) -> sp.csr_matrix:
        # one slot per numeric column and categorical control, in column order: numeric
        # columns come first and the dummy blocks follow in control order
        m = len(self.num) + len(self.cats)
        col = np.empty((hi - lo, m), np.int64)
        val = np.empty((hi - lo, m))
        for j, (c, v) in enumerate(self.num):
            col[:, j], val[:, j] = c, v[lo:hi]
        for j, (codes, off, cmap) in enumerate(self.cats, len(self.num)):
            col[:, j] = cmap[np.subtract(codes[lo:hi], off, dtype=np.int64)]
            val[:, j] = col[:, j] >= 0
        nz = val != 0
        ptr = np.concatenate([[0], np.cumsum(nz.sum(axis=1))])
        return sp.csr_matrix((val[nz], col[nz], ptr), shape=(hi - lo, self.shape[1]))

    def split(self, lo: int, hi: int, dense: np.ndarray, sparse: np.ndarray):
        """Rows lo..hi-1 as (the ``dense`` columns, column-major; the ``sparse`` ones,
        CSR), made from the codes directly (through ``rows`` it took four times as long).
        A categorical control's dummies are one scatter of ones (a comparison per level
        made a pass over the chunk for each), its rare levels' entries a (row, column)
        list; each control and column has at most one entry per row."""
        n, k = hi - lo, self.shape[1]
        pd_, ps = np.full(k + 1, -1, np.int64), np.full(k + 1, -1, np.int64)
        pd_[dense], ps[sparse] = np.arange(len(dense)), np.arange(len(sparse))
        D = np.zeros((n, len(dense)), order="F")  # written by column (see Acc.add)
        flat = D.T.reshape(-1)  # a view: element (i, j) of D at j * n + i
        rows, cols, vals = [], [], []
        for c, v in self.num:
            if pd_[c] >= 0:
                D[:, pd_[c]] = v[lo:hi]
            else:
                x = v[lo:hi]
                r = np.flatnonzero(x)
                rows.append(r)
                cols.append(np.full(len(r), ps[c], np.int64))
                vals.append(x[r].astype(np.float64))
        for codes, off, cmap in self.cats:
            m = cmap[np.subtract(codes[lo:hi], off, dtype=np.int64)]  # -1: left out
            j = pd_[m]  # pd_[-1] = -1
            r = np.flatnonzero(j >= 0)
            flat[j[r] * n + r] = 1.0
            j = ps[m]
            r = np.flatnonzero(j >= 0)
            rows.append(r)
            cols.append(j[r])
            vals.append(np.ones(len(r)))
        if not rows:
            return D, sp.csr_matrix((n, len(sparse)))
        S = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(n, len(sparse)))
        return D, S

    def column_nnz(self) -> np.ndarray:
        out = np.zeros(self.shape[1], np.int64)
        for c, v in self.num:
            out[c] = _nnz(v)
        for codes, off, cmap in self.cats:
            n = np.bincount(np.subtract(codes, off, dtype=np.int64), minlength=len(cmap))
            out[cmap[cmap >= 0]] = n[cmap >= 0]
        return out

    def select(self, cols) -> "CodedRows":
        """The columns ``cols`` (increasing), renumbered in order."""
        cols = np.asarray(cols, np.int64)
        if len(cols) == self.shape[1]:
            return self
        new = np.full(self.shape[1] + 1, -1, np.int64)  # new[-1] = -1: cmap's -1 stays
        new[cols] = np.arange(len(cols))
        num = [(int(new[c]), v) for c, v in self.num if new[c] >= 0]
        cats = [(codes, off, new[cmap]) for codes, off, cmap in self.cats]
        return CodedRows(self.shape[0], len(cols), num, cats)

    def take(self, keep: np.ndarray) -> "CodedRows":
        return CodedRows(int(np.count_nonzero(keep)), self.shape[1],
                         [(c, _take(v, keep)) for c, v in self.num],
                         [(codes[keep], off, cmap) for codes, off, cmap in self.cats])

    def compact(self, keep: np.ndarray) -> "CodedRows":
        """``take(keep)`` with each array's kept rows moved to its front: the rows made
        are the same, this design's arrays are overwritten (``hazard.fit_cells(consume=)``)."""
        return CodedRows(int(np.count_nonzero(keep)), self.shape[1],
                         [(c, _compact(v, keep)) for c, v in self.num],
                         [(compact(codes, keep), off, cmap) for codes, off, cmap in self.cats])
