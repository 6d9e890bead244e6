"""Accumulators that add up a matrix's rows batch by batch: integer codes in order of first
appearance across batches (``_Codes``) and the raw cluster blocks and cell x cluster pair
sums of the rows (``GramSums``). Shared by every pass that reads the panel file in batches
(``quality_stream``, ``decompose``, ``benchmark``, ``heterogeneity``, value-added)."""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple

import numpy as np
import pandas as pd

from impact.distinct import factorize, local_codes, unique
from impact.estimate.cgram import ClusterGrams, cluster_grams
from impact.estimate.linalg import scatter_dummies, writes_whole

__all__ = ["GramSums", "Indicator"]


class _Codes:
    """Integer codes in order of first appearance, kept across batches; a missing value
    is a value of its own.

    Each batch is factorised on its own first (``distinct.factorize``: text in runs by
    its runs), then only its distinct values are numbered globally: integer keys (the
    passes' cell and pair keys, tens of thousands a batch) in a hash table of pandas in C
    (``Int64HashTable``: ``lookup``, then ``map_keys_to_values`` for the new ones; 15,000
    keys in 2 ms, its ``Int64Factorizer`` took 9), other keys (booleans too) in a dict
    (for a few thousand strings a batch as fast as pandas' object table). The dict for
    every key was a third of value-added's time (docs/performance.md, seventeenth
    round); a growing ``pd.Index``, appended to and re-hashed every batch, was quadratic
    in the values seen."""

    _NA = object()  # the key of a missing value

    def __init__(self) -> None:
        self._ints = None                     # Int64HashTable while every key is int64
        self._int_keys: list[np.ndarray] = []  # its keys in code order, batch by batch
        self._n_ints = 0
        self.map: dict | None = None          # else value -> code
        self._index: pd.Index | None = None

    @staticmethod
    def _int64(uniq) -> np.ndarray | None:
        """``uniq`` as int64 when they are plain (non-nullable) integers."""
        dtype = getattr(uniq, "dtype", None)
        if not isinstance(dtype, np.dtype) or dtype.kind not in "iu":
            return None
        arr = np.asarray(uniq)
        if dtype.kind == "u" and len(arr) and arr.max() >= 1 << 63:
            return None
        return arr.astype(np.int64, copy=False)

    def _keys(self, uniq) -> list:
        keys = list(uniq.tolist())
        na = np.asarray(pd.isna(uniq), dtype=bool)
        for i in np.flatnonzero(na):
            keys[i] = self._NA
        return keys

    def _global(self, uniq, add: bool) -> np.ndarray:
        """The codes of the distinct values ``uniq`` (-1 if new and not ``add``)."""
        ints = self._int64(uniq)
        if ints is not None and self.map is None and self._ints is None:
            try:                              # pandas' internal module (pinned in uv.lock)
                from pandas._libs.hashtable import Int64HashTable

                self._ints = Int64HashTable(1 << 10)
            except (ImportError, AttributeError):   # another pandas: the dict
                self.map = {}
        if ints is not None and self.map is None:
            out = np.asarray(self._ints.lookup(ints), dtype=np.int64)
            new = out < 0
            if add and new.any():             # distinct values: numbered in their order
                out[new] = np.arange(self._n_ints, self._n_ints + int(new.sum()))
                self._ints.map_keys_to_values(ints[new], out[new])
                self._int_keys.append(ints[new])
                self._n_ints += int(new.sum())
            return out
        if self.map is None:                  # other keys now: the int codes to a dict
            seen = np.concatenate(self._int_keys).tolist() if self._int_keys else []
            self.map, self._ints, self._int_keys = {k: i for i, k in enumerate(seen)}, None, []
        m = self.map
        keys = self._keys(uniq)
        if add:
            return np.fromiter((m.setdefault(k, len(m)) for k in keys), dtype="int64",
                               count=len(keys))
        return np.fromiter((m.get(k, -1) for k in keys), dtype="int64", count=len(keys))

    def __call__(self, values) -> np.ndarray:
        return self.of_distinct(*factorize(values, use_na_sentinel=False))

    def of_distinct(self, local: np.ndarray, uniq) -> np.ndarray:
        """The codes of rows given as positions ``local`` into their distinct values
        ``uniq`` (in order of first appearance, as ``pd.factorize`` gives them): for a
        caller that has them cheaper than by factorising the values themselves."""
        n0 = len(self)
        glob = self._global(uniq, add=True)
        if len(self) != n0:
            self._index = None
        return glob[local]

    def lookup(self, values) -> np.ndarray:
        """The codes of ``values`` (-1 for a value not seen before), adding none."""
        local, uniq = factorize(values, use_na_sentinel=False)
        return self._global(uniq, add=False)[local]

    @property
    def index(self) -> pd.Index:
        """The values seen, in code order (missing as NaN)."""
        if self._index is None:
            seen = (list(self.map) if self.map is not None else
                    np.concatenate(self._int_keys).tolist() if self._int_keys else [])
            self._index = pd.Index([np.nan if k is self._NA else k for k in seen])
        return self._index

    @property
    def values(self) -> np.ndarray:
        return np.asarray(self.index)

    def __len__(self) -> int:
        return len(self.map) if self.map is not None else self._n_ints


class GramSums:
    """Raw cluster blocks and cell x cluster pair sums of a matrix whose rows come in
    batches (module notes): each batch's rows are given as named numeric columns and
    categorical level codes, with their cluster labels, municipality, region and month.

    Every numeric column and every level seen gets a column of the sums (``col``: key
    ``("num", name)`` or ``(variable, level)`` -> column); clusters, cells (municipality x
    month) and pairs are numbered in order of first appearance, as ``pd.factorize`` of
    the concatenated rows would. Shared by the quality 2SLS and the decomposition model
    (``decompose.stream``).

    ``only`` (numeric column name -> bool): only the blocks of those columns against every
    column are made; the other columns' blocks with each other stay NaN (so a use of one
    shows), for a caller that has them from another pass over the same rows. A second
    pass that adds k_new columns to k then costs O(n k_new k), not O(n k^2).
    """

    def __init__(self, only: Callable[[str], bool] | None = None) -> None:
        self.only = only
        self.col: dict[tuple, int] = {}
        self.clusters, self.munis, self.cells, self.pairs = _Codes(), _Codes(), _Codes(), _Codes()
        self.cell_info: list[tuple] = []      # (municipality, region, t) per cell code
        self.pair_cell: list[int] = []
        self.pair_cluster: list[int] = []
        self.C = np.zeros((0, 0, 0))
        self.S = np.zeros((0, 0))             # pair sums
        self.n_pair = np.zeros(0)
        self.n_obs = 0
        self._buf = np.empty(0)               # A's memory, kept for the next batch

    def add(self, cols: Mapping[str, np.ndarray], cats: Mapping[str, np.ndarray], clusters,
            muni: pd.Series, region: pd.Series, t: np.ndarray) -> None:
        """Add rows: ``cols`` float columns (or ``Indicator``s), ``cats`` integer level
        codes (kept across batches by the caller), ``clusters`` labels, ``muni``/``region``
        as strings."""
        n = len(t)
        if n == 0:
            return
        for c in cols:
            self.col.setdefault(("num", c), len(self.col))
        for c, codes in cats.items():
            for lv in _distinct(codes).tolist():
                self.col.setdefault((c, lv), len(self.col))
        cl = self.clusters(clusters)
        cell = self.cells(self.munis(muni) * (1 << 32) + (t + (1 << 31)))
        new = _first_rows(cell, len(self.cell_info))  # first row of each new cell
        self.cell_info += zip(muni.iloc[new].tolist(), region.iloc[new].tolist(),
                              t[new].tolist())
        pair = self.pairs(cell * (1 << 32) + cl)
        new = _first_rows(pair, len(self.pair_cell))
        self.pair_cell += cell[new].tolist()
        self.pair_cluster += cl[new].tolist()
        # the rows sorted by cluster before A is built (gathering the rows of a column-major
        # A took most of the time), so each cluster's block is a contiguous view; the
        # panel file is in municipality order, so mostly they are already
        if (np.diff(cl) >= 0).all():
            order = slice(None)
        else:
            order = np.argsort(cl, kind="stable")
            cl, cell = cl[order], cell[order]
        k = len(self.col)
        # with ``only``, A's columns reordered: the others first, then these
        cols_at, kb = self._layout()
        pos = np.arange(k) if cols_at is None else np.argsort(cols_at)
        dense = [c for c, v in cols.items() if not isinstance(v, Indicator)]
        at = [int(pos[self.col[("num", c)]]) for c in dense]
        levels = [(codes[order], None, {lv: int(pos[j]) for (cc, lv), j in self.col.items()
                                        if cc == c}) for c, codes in cats.items()]
        levels += _indicator_groups(cols, order, lambda c: int(pos[self.col[("num", c)]]))
        # the dense columns and the dummies written whole are not zeroed first (the
        # data-driven check's ``_matrix`` at a quarter of national size: 5.4 -> 3.4 CPU s)
        whole = [j for _, weights, columns in levels if writes_whole(columns, weights)
                 for j in columns.values()]
        A = self._matrix(n, k, at + whole)
        for c, j in zip(dense, at):
            A[:, j] = cols[c][order]
        for codes, weights, columns in levels:
            scatter_dummies(A, codes, columns, weights)
        self._grow(k)
        # the rows are in cluster order, so ``cluster_grams`` takes each cluster's block as
        # a view (no gather); its clusters and pairs are the batch's own, mapped back here.
        # Its pair sums are made a column at a time, but a level's columns (a categorical's
        # dummies, an ``Indicator`` group) at once below: a ``bincount`` over pair x level
        grams, resorted = cluster_grams(A, cl, cell, only_from=kb, summed=np.asarray(at))
        assert resorted is None   # the rows came in cluster order
        P = len(grams.pair_cell)
        for codes, weights, columns in levels:
            _level_sums(grams.pair_sums, grams.pair_code, P, codes, weights, columns)
        glob = np.asarray(grams.labels, dtype="int64")
        idx = self.pairs.lookup(grams.pair_cell * (1 << 32) + glob[grams.pair_cluster])
        if cols_at is None:
            self.C[glob] += grams.C
            self.S[idx] += grams.pair_sums
        else:
            self.C[np.ix_(glob, cols_at, cols_at)] += grams.C
            self.S[np.ix_(idx, cols_at)] += grams.pair_sums
        self.n_pair[idx] += grams.pair_count
        self.n_obs += n

    def _matrix(self, n: int, k: int, filled: list[int]) -> np.ndarray:
        """An n x k column-major matrix in the memory of the previous batch's (grown when
        too small), zero except in the columns ``filled``, which the caller writes whole.
        A fresh array per batch (about 150 MB at 2^17 rows and 150 columns) is a new
        ``mmap`` whose every page the kernel faults in and zeroes (system time; slow on a
        virtual machine whose memory is reclaimed, performance.md's twelfth round)."""
        if self._buf.size < n * k:
            self._buf = np.empty(0)           # freed before the larger one is made
            self._buf = np.empty(n * k)
        A = self._buf[:n * k].reshape(k, n).T   # (n, k), column-major
        zero = np.ones(k, dtype=bool)
        zero[filled] = False
        for j in np.flatnonzero(zero):
            A[:, j] = 0.0
        return A

    def _layout(self) -> tuple[np.ndarray | None, int | None]:
        """With ``only``: the column at each position of A (the others first, then the
        ``only`` columns) and the number of the others; ``(None, None)`` without."""
        if self.only is None:
            return None, None
        new = np.array([kind == "num" and bool(self.only(name)) for kind, name in self.col],
                       dtype=bool)
        return np.concatenate([np.flatnonzero(~new), np.flatnonzero(new)]), int((~new).sum())

    def _grow(self, k: int) -> None:
        G, P = len(self.clusters), len(self.pairs)
        # cluster blocks with room to spare too: the file is in municipality order, so a
        # new cluster comes with most batches, and copying every block each time was
        # quadratic in the clusters (G x k x k: 60 MB at national size with k = 150)
        g0, k0 = self.C.shape[0], self.C.shape[1]
        if G > g0 or k != k0:
            cap = max(G, 2 * g0) if G > g0 else g0
            C = np.zeros((cap, k, k))
            C[:g0, :k0, :k0] = self.C
            self.C = C
        # pair rows with room to spare (capacity doubling): new pairs appear in most
        # batches, and copying every pair's sums each time would be quadratic
        cap, kk = self.S.shape
        if P > cap or k != kk:
            cap = max(P, 2 * cap) if P > cap else cap
            S = np.zeros((cap, k))
            S[:self.S.shape[0], :kk] = self.S
            self.S = S
            n_pair = np.zeros(cap)
            n_pair[:len(self.n_pair)] = self.n_pair
            self.n_pair = n_pair

    def count(self, key: tuple) -> float:
        """Rows with a 1 in the column ``key`` (a level's dummy: the sum of its column, from
        the pair sums, which every column has)."""
        return float(self.S[:len(self.pairs), self.col[key]].sum())

    def raw(self, sel: list[int], release: bool = False) -> ClusterGrams:
        """The raw cluster blocks and pair sums of the columns ``sel`` (in that order). The
        pass is over: the batches' matrix memory is given back (``add`` makes it anew).
        ``release``: so are the sums themselves, once copied (no more ``add``, ``count``
        or ``raw``)."""
        self._buf = np.empty(0)
        P, G = len(self.pairs), len(self.clusters)
        out = ClusterGrams(self.C[:G, sel][:, :, sel],
                           np.asarray(self.clusters.values, dtype=object), None, self.n_obs,
                           None, np.asarray(self.pair_cell, dtype="int64"),
                           np.asarray(self.pair_cluster, dtype="int64"), self.S[:P, sel],
                           self.n_pair[:P].copy() if release else self.n_pair[:P])
        if release:
            self.C = self.S = self.n_pair = None
        return out

    def cell_table(self) -> pd.DataFrame:
        """The cells (municipality x month) in code order, with their fixed-effect keys."""
        return cell_frame(self.cell_info)


class Indicator(NamedTuple):
    """A column of ``GramSums.add`` given by its structure: ``weight`` x (``codes`` ==
    ``level``), 1 for ``weight`` None: a categorical's dummy, or its product with one
    measure. The columns of the same ``codes`` and ``weight`` arrays (the same objects)
    are written into the matrix by one scatter and their cell x cluster pair sums made by
    one ``bincount`` over pair x level, not one pass each (nationally 69 of the
    data-driven quality check's 136 columns, in 18 groups, and the 165 GATES columns of
    its second pass, in 45). The sums are those of the dense column, to the bit: the same
    values added in the same order, zeros left out."""

    codes: np.ndarray
    level: int
    weight: np.ndarray | None = None


def _indicator_groups(cols: Mapping[str, object], order, column: Callable[[str], int]
                      ) -> list[tuple]:
    """The ``Indicator`` columns of ``cols`` by their (codes, weight) objects: (codes,
    weights, {level: matrix column}) each, rows in ``order``."""
    groups: dict[tuple[int, int], tuple] = {}
    for c, v in cols.items():
        if isinstance(v, Indicator):
            key = (id(v.codes), id(v.weight))
            if key not in groups:
                w = None if v.weight is None else np.asarray(v.weight, dtype="float64")[order]
                groups[key] = (np.asarray(v.codes, dtype="int64")[order], w, {})
            groups[key][2][int(v.level)] = column(c)
    return list(groups.values())


#: ``_level_sums`` bins every pair x level up to this many bins a row (and 1,024 more rows)
_DENSE_BINS = 4


def _level_sums(sums: np.ndarray, pair: np.ndarray, P: int, codes: np.ndarray,
                weights: np.ndarray | None, columns: Mapping[int, int]) -> None:
    """Write into ``sums`` (P x k, zero in the group's columns) the pair sums of one level
    group's columns, from one ``bincount`` over pair x level (rows in the matrix's order):
    over every pair x level when they are at most a few a row, else over those present
    only (a categorical of many levels in batches of many pairs: bins of every pair x
    level, made anew each batch, cost more in page faults than the sums)."""
    if not columns or not len(codes):
        return
    lo = min(int(codes.min()), min(columns))
    L = max(int(codes.max()), max(columns)) - lo + 1
    key = pair * L + (codes - lo)
    if P * L <= _DENSE_BINS * (len(key) + 1024):
        by = np.bincount(key, weights=weights, minlength=P * L).reshape(P, L)
        for level, j in columns.items():
            sums[:, j] = by[:, level - lo]
        return
    col_of = np.full(L, -1, dtype=np.int64)
    for level, j in columns.items():
        col_of[level - lo] = j
    uniq, inv = local_codes(key)            # the pairs x levels present, hashed
    total = np.bincount(inv, weights=weights, minlength=len(uniq))
    col = col_of[uniq % L]
    on = col >= 0
    sums[(uniq // L)[on], col[on]] = total[on]


def cell_frame(info) -> pd.DataFrame:
    """The cell table of (municipality, region, t) tuples (Python values), with the
    fixed-effect keys ``regmonth`` and ``munimonth``."""
    cells = pd.DataFrame(info, columns=["municipality", "region", "t"])
    cells["regmonth"] = cells["region"] + ":" + cells["t"].astype(str)
    cells["munimonth"] = cells["municipality"] + ":" + cells["t"].astype(str)
    return cells


def _distinct(codes: np.ndarray) -> np.ndarray:
    """``np.unique(codes)``; for small non-negative integer codes (first-appearance codes)
    by counting, in linear time."""
    codes = np.asarray(codes)
    if (codes.dtype.kind in "iu" and len(codes) and codes.min() >= 0
            and codes.max() < 4 * len(codes) + 1024):
        return np.flatnonzero(np.bincount(codes))
    return unique(codes)


def _first_rows(codes: np.ndarray, known: int) -> np.ndarray:
    """The first row of each code from ``known`` on (codes numbered in order of first
    appearance, so these rows are in code order).

    Numbered so, a new code's first row is the row whose code exceeds every code before it
    (and ``known - 1``): a running maximum, linear, where ``np.unique``'s sort took 27 of a
    national benchmark's 316 profiled seconds. Codes not numbered so (checked: the rows
    found must hold ``known``, ``known + 1``, ... up to the largest code) fall back to it."""
    c = np.asarray(codes).astype(np.int64, copy=False)
    if len(c) == 0:
        return np.zeros(0, dtype=np.int64)
    before = np.empty(len(c), dtype=np.int64)
    before[0] = known - 1
    np.maximum.accumulate(c[:-1], out=before[1:])
    np.maximum(before, known - 1, out=before)
    first = np.flatnonzero(c > before)
    top = max(int(before[-1]), int(c[-1]))       # the largest code (or known - 1)
    if top - known + 1 == len(first) and np.array_equal(
            c[first], np.arange(known, known + len(first))):
        return first
    uniq, first = np.unique(c, return_index=True)
    return first[uniq >= known]
