"""The quality hazard's binomial cells straight from the panel's Parquet file, batch by batch.

Notes
-----
``hazard.quality_hazard`` builds the quality model's dense n x k matrix (about 60 columns,
most of them dummies) over the whole sample and then groups its rows into binomial cells.
Memory is that matrix, about 2.6 times over while it is built: 4.4 GB at the peak on the
built-in panel's 2.8 million person-months, linear in the rows.

The cells are a partition of the person-months by key values (cluster, municipality-month
cell, rounded quality, the level of each categorical control, the value of each numeric
control), and a cell's exits and trials are sums: so the partition of a batch's rows can
be merged with the partition of the rows before it by grouping the batches' cells on the
same keys again. This module reads the sample in batches (``quality_stream._batches``),
codes the keys with ``quality.model_columns`` (the function ``quality_frame`` uses) and
codes kept across batches (``quality_stream._Codes``), compresses each batch, and merges.
No dummy column is ever made: the cells' design is held as the level codes (``CodedRows``),
its rows made a chunk at a time by the fit (``rowsource``). Memory is one batch plus the
distinct cells and their keys, each key in the smallest type that holds it exactly.

With a continuous control (``prior_benefit_months``) nearly every person-month is a cell
of its own (2.79 million cells in 2.85 million person-months on the built-in data). Merging
the batches' cells then costs about three copies of every key and gains nothing, so a merge
that leaves more than 90% of its rows stops the merging: the batches' cells are kept as
they are (rows with the same keys in two batches stay two cells). The binomial likelihood
is a sum over the rows either way, so the fit is the same; only ``n_cells`` is larger.

The decisions ``quality_frame`` takes on the whole sample are taken after the pass, with
the same outcome (as in ``quality_stream``): a categorical control's left-out level is its
most frequent (the level with the most trials), a labour-market column is a control only
when complete and not constant on the sample (when one is not, the cells are grouped again
without it, so the cells are the in-memory path's, unless merging has stopped: then the key
is only dropped), and with one cluster the pass is
repeated with caseworker clusters. The fit itself is ``hazard.fit_cells``, shared with the
in-memory path; tests/estimate/test_hazard_stream.py checks the two give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from impact.estimate.coded_rows import CodedRows, Scaled
from impact.estimate.frames import lm_candidates, warn
from impact.estimate.groups import group_index
from impact.estimate.params import EstimateParams
from impact.estimate.quality import model_columns, model_reads
from impact.estimate.quality_stream import BATCH_ROWS, _batches, _Codes, _first_rows, _Screen

__all__ = ["HazardCells", "hazard_cells_file", "quality_hazard_file"]

#: merge the batches' cells once this many are waiting and they are at least twice the
#: cells of the last merge: memory stays within a few times the distinct cells, and when
#: the cells barely compress (a continuous control) each row is regrouped a bounded number
#: of times (a fixed threshold regrouped all cells so far every 2^22 rows: quadratic)
_MERGE_ROWS = 1 << 22
#: a merge that keeps more than this share of its rows stops the merging (module notes)
_MERGE_PAYS = 0.9


@dataclass(frozen=True)
class HazardCells:
    """The hazard's binomial cells: design ``X`` (``CodedRows``, cells x ``xnames``,
    quality first), ``exits``, ``trials``, each cell's municipality-month ``cell`` code into
    ``cells`` and its ``cluster`` code, and the person-months behind them (``n_obs``)."""

    X: "CodedRows"
    xnames: list[str]
    exits: np.ndarray
    trials: np.ndarray
    cell: np.ndarray
    cluster: np.ndarray
    cells: pd.DataFrame
    n_obs: int


class _Pass(_Screen):
    """One pass over the batches: the merged cells with their key columns."""

    def __init__(self, params: EstimateParams, lm: list[str], cluster_col: str,
                 round_to: float, capacity: int = 0) -> None:
        super().__init__(lm)
        self.poured = _Poured(capacity)       # the cells once merging has stopped
        self.params, self.cluster_col, self.round_to = params, cluster_col, round_to
        self.first: dict[str, _Codes] = {}
        self.clusters, self.munis, self.cells = _Codes(), _Codes(), _Codes()
        self.cell_info: list[tuple] = []
        self.keys: list[str] | None = None    # key names in order: cluster, cell, quality, ...
        self.cats: list[str] = []             # categorical controls, in model order
        self.nums: list[str] = []             # numeric controls and lm columns, in model order
        self.parts: list[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]] = []
        self.waiting = 0
        self.merged = 0                       # cells after the last merge
        self.merging = True                   # False once a merge did not pay
        self.n_obs = 0

    def add(self, s: pd.DataFrame) -> None:
        cols, raw, t = model_columns(s, self.params, {"y": "exit_work"}, {}, self.lm)
        cats = {c: self.first.setdefault(c, _Codes())(v) if first else np.asarray(v)
                for c, (v, first) in raw.items()}
        s, cols, cats, t = self.screen(s, cols, cats, t)
        if len(s) == 0:
            return
        cl = self.clusters(s[self.cluster_col].astype(str))
        muni, region = s["municipality"].astype(str), s["region"].astype(str)
        cell = self.cells(self.munis(muni) * (1 << 32) + (t + (1 << 31)))
        new = _first_rows(cell, len(self.cell_info))
        self.cell_info += zip(muni.iloc[new].tolist(), region.iloc[new].tolist(),
                              t[new].tolist())
        q = cols["quality_a"]
        if self.round_to > 0:  # as hazard.quality_hazard rounds, kept as the grid's index
            q = np.round(q / self.round_to)   # (``Scaled`` codes; the same cells)
        nums = [c for c in cols if c not in ("y", "quality_a", "quality_b", "quality_score")]
        if self.keys is None:
            self.cats, self.nums = list(cats), nums
            self.keys = ["cluster", "cell", "quality", *self.nums, *self.cats]
        key = {"cluster": cl, "cell": cell, "quality": q, **{c: cols[c] for c in self.nums},
               **cats}
        cells, exits, trials = _compress(key, self.keys, cols["y"] / 100.0)
        self.parts.append(({k: _small(v) for k, v in cells.items()}, exits, trials))
        self.waiting += len(exits)
        self.n_obs += len(s)
        if (self.merging and self.waiting >= max(_MERGE_ROWS, 2 * self.merged)
                and len(self.parts) > 1):
            self.merge()
        if not self.merging:
            for part in self.parts:
                self.poured.add(*part)
            self.parts = []

    def merge(self, keys: list[str] | None = None) -> None:
        """The waiting parts as one set of cells (grouped on ``keys``, default all); once
        a merge has not paid, only put together (module notes)."""
        keys = keys or self.keys
        if self.poured.n:
            self.parts = [self.poured.take(), *self.parts]
        if not self.parts:
            return
        if len(self.parts) == 1 and (keys == self.keys or not self.merging):
            for k in set(self.keys) - set(keys):  # each part is grouped on all keys
                self.parts[0][0].pop(k)
            return
        rows = sum(len(p[1]) for p in self.parts)
        key = {}
        for k in keys:  # one key at a time, each part's copy released as it is joined
            key[k] = np.concatenate([p[0].pop(k) for p in self.parts])
        exits = np.concatenate([p[1] for p in self.parts])
        trials = np.concatenate([p[2] for p in self.parts])
        self.parts = []
        if self.merging:
            key, exits, trials = _compress(key, keys, exits, trials)
            self.merging = len(exits) <= _MERGE_PAYS * rows
        self.parts = [(key, exits, trials)]
        self.waiting = self.merged = len(exits)


class _Poured:
    """The cells of the batches once merging has stopped, each key written into one array
    as its batches come (``add``) instead of kept as parts and joined at the end: the join
    held every key twice (3 GB of cells at national size, 7.8 GB at the pass's end).

    The arrays are made for ``capacity`` rows (the file's; more than there can be cells),
    empty: memory is taken only as rows are written. A part of a wider type than its key's
    array so far widens the array (the type ``np.concatenate`` would give): the same values
    in the same order as joining the parts."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.n = int(capacity), 0
        self.cols: dict[str, np.ndarray] = {}

    def add(self, key: dict[str, np.ndarray], exits: np.ndarray, trials: np.ndarray) -> None:
        m = len(exits)
        if self.n + m > self.capacity:  # more than the file's rows: never, but stay right
            self.capacity = max(2 * self.capacity, self.n + m)
            for k, v in self.cols.items():
                self.cols[k] = self._moved(v, v.dtype)
        for k, v in {**key, "#exits": exits, "#trials": trials}.items():
            have = self.cols.get(k)
            dtype = v.dtype if have is None else np.result_type(have, v)
            if have is None or dtype != have.dtype:
                self.cols[k] = have = (np.empty(self.capacity, dtype) if have is None
                                       else self._moved(have, dtype))
            have[self.n:self.n + m] = v
        self.n += m

    def _moved(self, v: np.ndarray, dtype) -> np.ndarray:
        out = np.empty(self.capacity, dtype)
        out[:self.n] = v[:self.n]
        return out

    def take(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """The cells so far as one part (views of the arrays' written rows); the arrays are
        the part's now."""
        cols = {k: v[:self.n] for k, v in self.cols.items()}
        exits, trials = cols.pop("#exits"), cols.pop("#trials")
        self.cols, self.n = {}, 0
        return cols, exits, trials


def _small(v: np.ndarray) -> np.ndarray:
    """``v`` in the smallest type that holds every value exactly: integer codes, and
    floats that are all whole numbers (a 0/1 flag, a month count, the index of quality's
    0.1 grid), in the narrowest signed integer; other floats as float32 when each survives
    the round trip. Joining parts of two types widens exactly, so a key's values never
    change (a whole -0.0 becomes 0: the same number)."""
    if v.dtype.kind == "f" and len(v):
        lo, hi = v.min(), v.max()   # NaN when there is one: not whole
        if -2.0 ** 31 <= lo and hi < 2.0 ** 31 and bool((np.trunc(v) == v).all()):
            v = v.astype(np.int64)
    if v.dtype.kind in "iu" and len(v):
        lo, hi = int(v.min()), int(v.max())
        for t in (np.int8, np.int16, np.int32):
            if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max:
                return v.astype(t)
    elif v.dtype == np.float64:
        f = v.astype(np.float32)
        if np.array_equal(f, v, equal_nan=True):
            return f
    return v


def _compress(key: dict[str, np.ndarray], names: list[str], y: np.ndarray,
              weight: np.ndarray | None = None
              ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Group rows on the ``names`` columns of ``key`` (cells in order of first appearance):
    (each cell's key values, exits, trials). ``weight``: trials per row (default 1)."""
    gid, n_g = group_index([key[k] for k in names], sort=False)
    exits = np.bincount(gid, weights=y, minlength=n_g)
    trials = (np.bincount(gid, weights=weight, minlength=n_g) if weight is not None
              else np.bincount(gid, minlength=n_g).astype("float64"))
    first = np.empty(n_g, np.int64)
    first[gid[::-1]] = np.arange(len(gid) - 1, -1, -1)  # first row of each cell
    return {k: key[k][first] for k in names}, exits, trials


def hazard_cells_file(path: str | Path, params: EstimateParams, sample: str = "all",
                      round_to: float = 0.1, batch_rows: int = BATCH_ROWS
                      ) -> HazardCells | None:
    """The binomial cells of ``hazard.quality_hazard`` from the panel file ``path`` (module
    notes); None when no person-month has both quality halves (or the file lacks them)."""
    path = Path(path)
    schema = pq.ParquetFile(path).schema_arrow.names
    if "quality_a" not in schema or "quality_b" not in schema:
        return None
    lm = lm_candidates(schema, params.estimate.lm_controls)
    cluster_col = "region" if params.estimate.cluster == "region" else "municipality"
    columns = list(dict.fromkeys(model_reads(schema, params, {"y": "exit_work"}) + (
        ["left_truncated"] if sample == "inflow" else [])))
    p = _run(path, params, lm, cluster_col, columns, sample, batch_rows, round_to)
    if p.n_obs and len(p.clusters) < 2:
        warn(f"quality: one {params.estimate.cluster} only; standard errors clustered by "
             "caseworker instead")
        p = _run(path, params, lm, "caseworker_key",
                 list(dict.fromkeys(columns + ["caseworker_key"])), sample, batch_rows,
                 round_to)
    lm_keep = p.lm_keep()
    if p.dropped:
        warn(f"quality: {p.dropped} person-months dropped for missing "
             f"{[c for c in p.bad if c not in lm]}")
    if p.n_obs == 0:
        return None
    nums = [c for c in p.nums if c not in lm or c in lm_keep]
    # a labour-market column left out: its cells merge as the in-memory path's never split
    # (once merging has stopped paying, the key is only dropped: more cells, same fit)
    p.merge(["cluster", "cell", "quality", *nums, *p.cats])
    key, exits, trials = p.parts[0]
    p.parts = []
    xnames = ["quality", *nums]
    num = [(j, key.pop(c)) for j, c in enumerate(xnames)]
    if round_to > 0:  # quality as the index of its grid (``_Pass.add``)
        num[0] = (0, Scaled(num[0][1], round_to))
    cats = []
    for c in p.cats:
        codes = key.pop(c)
        lo = int(codes.min()) if len(codes) else 0  # bins can be negative
        shifted = np.subtract(codes, lo, dtype=np.int64)
        counts = np.bincount(shifted, weights=trials)
        levels = np.flatnonzero(np.bincount(shifted))
        del shifted
        # the most frequent level (most person-months) is left out, the first on a tie
        drop = levels[int(np.argmax(counts[levels]))]
        cmap = np.full(len(counts), -1, np.int64)
        for lv in levels.tolist():
            if lv != drop:
                cmap[lv] = len(xnames)
                xnames.append(f"{c}[{lv + lo}]")
        cats.append((codes, lo, cmap))
    X = CodedRows(len(exits), len(xnames), num, cats)
    cells = pd.DataFrame(p.cell_info, columns=["municipality", "region", "t"])
    cells["regmonth"] = cells["region"] + ":" + cells["t"].astype(str)
    cells["munimonth"] = cells["municipality"] + ":" + cells["t"].astype(str)
    return HazardCells(X, xnames, exits, trials, key["cell"], key["cluster"], cells, p.n_obs)


def quality_hazard_file(path: str | Path, params: EstimateParams, link: str = "cloglog",
                        sample: str = "all", round_to: float = 0.1,
                        batch_rows: int = BATCH_ROWS):
    """``hazard.quality_hazard`` (fixed effects absorbed) on the panel file ``path`` read in
    batches (``sample``: ``all`` or ``inflow``): the same result from the same cells."""
    from impact.estimate.hazard import _family, _fe_names, fit_cells

    _family(link)
    c = hazard_cells_file(path, params, sample, round_to, batch_rows)
    if c is None:
        raise ValueError("quality_hazard: no person-month has quality_a and quality_b")
    # consume: the cells are this call's alone, so the fit overwrites them in place
    return fit_cells(c.X, c.xnames, c.exits, c.trials, c.cell, c.cluster, c.cells,
                     _fe_names(params), link, params.estimate.alpha, consume=True)


def _run(path, params, lm, cluster_col, columns, sample, batch_rows, round_to) -> _Pass:
    p = _Pass(params, lm, cluster_col, round_to,
              capacity=pq.ParquetFile(path).metadata.num_rows)
    for s in _batches(path, columns, sample, batch_rows):
        p.add(s)
    p.merge()
    return p
