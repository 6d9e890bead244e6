"""Distinct clients per group, counted in passes over the panel file on integer keys.

A pass meets each client's person-months batch by batch and must count every client once
per group. ``ClientCodes`` numbers the client ids in the order they are first seen (a
batch's ids are looked up once per run of equal ids: the panel is written spell by spell,
so a batch of 262,144 person-months holds about as many runs as spells), and
``DistinctCounter`` keeps the distinct (client code, group) keys, each batch's made
unique at once and the lot compacted whenever it has grown by as much as it held. This
replaced DuckDB tables of (group, client id) rows that each pass filled with a batch's
distinct string pairs and counted at the end: the same counts (a missing client id is no
client, as ``count(DISTINCT)`` skips NULL), no string hashing per row and no spilling.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["ClientCodes", "DistinctCounter", "factorize", "first_codes", "local_codes",
           "per_group", "run_starts", "unique"]


def unique(a) -> np.ndarray:
    """``np.unique(a)`` (the sorted distinct values) of a 1-d array, by a sort for integers.

    NumPy 2.3+ finds the distinct values of a plain ``np.unique`` call by hashing, which
    is slow when most values are distinct (client x group keys): 20 million int64 keys
    took 21 s hashed, 0.2 s sorted (here, 2 cores; ``return_inverse`` still sorts: 3.3 s).
    Other dtypes (floats: NaN) go to ``np.unique``. The sort is NumPy's stable one: keys
    made from codes numbered as they come, in file order (clients, then months), arrive
    in long sorted runs, which it merges (timsort) in about a quarter of the time of the
    default introsort (20 sorted runs of a million keys: 1.9 -> 0.4 s; random keys: no
    slower); the sorted distinct values are the same."""
    a = np.asarray(a)
    if a.ndim != 1 or not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
        return np.unique(a)
    s = np.sort(a, kind="stable")
    if len(s) < 2:
        return s
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def local_codes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(distinct codes, each row's position among them)`` by hashing, in order of first
    appearance: for adding a batch's ``bincount`` into running sums at the distinct codes,
    where ``np.unique(return_inverse=True)`` sorted every row for an order nobody uses
    (the sums are the same bits: ``bincount`` adds in row order either way)."""
    inv, uniq = pd.factorize(np.asarray(codes))
    return np.asarray(uniq), inv


def factorize(values, use_na_sentinel: bool = True) -> tuple[np.ndarray, object]:
    """``pd.factorize(values, use_na_sentinel=...)``: the same codes and uniques. For text
    held by Arrow (the panel's string columns) whose equal values come in runs (a batch of
    the panel is a few municipalities, spell by spell), the runs are found first (one
    comparison of neighbours) and only their first values factorised, as ``ClientCodes``
    does: hashing every string of a batch was the streamed passes' largest cost after
    their matrix products (performance.md, sixteenth round)."""
    arr = _arrow_text(values)
    if arr is not None and len(arr) > 1:
        n = len(arr)
        starts = run_starts(arr)
        if len(starts) * 4 <= n:               # runs worth it (else hashing every value)
            runs = pd.Series(arr.take(pa.array(starts)).to_pandas(), dtype=values.dtype)
            local, uniq = pd.factorize(runs, use_na_sentinel=use_na_sentinel)
            return np.repeat(np.asarray(local, dtype="int64"), np.diff(np.r_[starts, n])), uniq
    return pd.factorize(values, use_na_sentinel=use_na_sentinel)


def run_starts(arr: pa.Array) -> np.ndarray:
    """The first position of each run of equal values of ``arr`` (consecutive missing
    values are one run): one comparison of neighbours."""
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype="int64")
    change = np.asarray(pc.not_equal(arr[1:], arr[:-1]).fill_null(True), dtype=bool)
    if arr.null_count:                         # a missing value after one: the same run
        change &= ~np.asarray(pc.and_(pc.is_null(arr[1:]), pc.is_null(arr[:-1])), dtype=bool)
    return np.flatnonzero(np.r_[True, change])


def _arrow_text(values) -> pa.Array | None:
    """The Arrow string array behind a pandas Series of text (one chunk), else None."""
    if not isinstance(values, pd.Series):
        return None
    data = values.array
    if not hasattr(data, "__arrow_array__") or not pd.api.types.is_string_dtype(values.dtype):
        return None
    arr = data.__arrow_array__()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return None
    return arr


def per_group(group, client, n_groups: int) -> np.ndarray:
    """Distinct clients per group 0..n_groups-1 (int64) of the rows' ``group`` and
    ``client`` codes (non-negative integers), from the sorted distinct keys
    ``client * n_groups + group``."""
    key = np.asarray(client, dtype="int64") * int(n_groups) + np.asarray(group, dtype="int64")
    return np.bincount(unique(key) % n_groups, minlength=n_groups).astype("int64")


class ClientCodes:
    """Codes 0, 1, ... of client ids in the order they are first seen (-1: missing)."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.codes)

    def __call__(self, col) -> np.ndarray:
        """The codes of ``col`` (an Arrow array or anything ``pa.array`` takes)."""
        col = col if isinstance(col, (pa.Array, pa.ChunkedArray)) else pa.array(col)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if not pa.types.is_string(col.type):
            col = col.cast(pa.string())
        n = len(col)
        if n == 0:
            return np.zeros(0, dtype="int64")
        starts = run_starts(col)               # runs of equal ids, each looked up once
        seen = self.codes
        run = np.fromiter((-1 if s is None else seen.setdefault(s, len(seen))
                           for s in col.take(pa.array(starts)).to_pylist()),
                          dtype="int64", count=len(starts))
        return np.repeat(run, np.diff(np.r_[starts, n]))


class DistinctCounter:
    """Distinct clients per group (``n_groups`` groups 0..n-1), added batch by batch;
    the keys are compacted once the batches' add up to ``compact_at`` and to as many as
    are kept (so each key is sorted a bounded number of times on average)."""

    def __init__(self, n_groups: int, compact_at: int = 1 << 20) -> None:
        self.n, self.compact_at = int(n_groups), int(compact_at)
        self.kept = np.zeros(0, dtype="int64")   # sorted distinct keys client * n + group
        self.pending: list[np.ndarray] = []
        self.size = 0

    def add(self, group: np.ndarray, client: np.ndarray) -> None:
        """Count ``client`` codes (-1: missing, left out) in ``group`` (0..n-1; other
        values left out), element by element."""
        group, client = np.asarray(group, dtype="int64"), np.asarray(client, dtype="int64")
        m = (client >= 0) & (group >= 0) & (group < self.n)
        keys = unique(client[m] * self.n + group[m])
        self.pending.append(keys)
        self.size += len(keys)
        if self.size > max(len(self.kept), self.compact_at):
            self._compact()

    def _compact(self) -> None:
        self.kept = unique(np.concatenate([self.kept, *self.pending]))
        self.pending, self.size = [], 0

    def counts(self, size: int | None = None) -> np.ndarray:
        """Distinct clients per group (int64, length ``n_groups``; ``size``: of the groups
        0..size-1 only, for a counter of groups numbered as they come, ``n_groups`` a
        bound)."""
        self._compact()
        n = self.n if size is None else int(size)
        g = self.kept % self.n
        return np.bincount(g[g < n], minlength=n).astype("int64")


def aggregated(table: pa.Table, keys: list[str], aggregations: list, text: list[str]
               ) -> pa.RecordBatch | None:
    """``table.group_by(keys).aggregate(aggregations)`` in one thread (a stage's CPU is
    what counts), as one record batch with the columns ``text`` decoded (``io.decoded``:
    keys read dictionary-encoded by ``io.stored_batches``); None when there is no group."""
    from impact.io import decoded

    out = table.group_by(keys, use_threads=False).aggregate(aggregations)
    if out.num_rows == 0:
        return None
    return decoded(out.combine_chunks().to_batches()[0], text)


def first_codes(clusters, step: int = 1 << 20):
    """``(codes(lo, hi), G)``: the codes of ``pd.factorize(clusters)`` (0..G-1 in order of
    first appearance) of rows lo..hi-1. Integer labels of a small range go through a
    table made a million rows at a time, so no code is held per row (the national
    hazard's cells: an int64 each was 0.5 GB beside its fit's 4 GB); other labels are
    factorised whole."""
    v = np.asarray(clusters)
    if v.dtype.kind in "iu" and len(v):
        lo, hi = int(v.min()), int(v.max())
        if hi - lo < 1 << 24 and hi < 1 << 63:   # (a uint64 label above int64's range)
            table = np.full(hi - lo + 1, -1, np.int64)
            G = 0
            for s in range(0, len(v), step):
                u = pd.unique(v[s:s + step]).astype(np.int64) - lo  # first seen first
                new = u[table[u] < 0]
                table[new] = np.arange(G, G + len(new))
                G += len(new)
            return (lambda a, b: table[np.subtract(v[a:b], lo, dtype=np.int64)]), G
    cl = pd.factorize(v)[0]
    return (lambda a, b: cl[a:b]), int(cl.max()) + 1
