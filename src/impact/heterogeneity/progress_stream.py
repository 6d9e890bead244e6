"""The panel's person-months that ``progress`` needs, read from its Parquet file in batches.

Notes
-----
``progress.review_frame`` uses the panel in two places only: the person-month of each
review (its covariates) and the interval means of quality over the person-months of each
review's spell since its baseline. At national scale the panel (64 million person-months)
must not be held in pandas whole, so with ``panel=`` (the file's path) both come from one
pass over the file each, ``batch_rows`` rows at a time, reading only the columns used:

- ``review_months``: the rows whose (client, month) is a review's, kept in Arrow and made
  a pandas frame once at the end. Then ``progress._with_person_month`` joins them exactly
  as it joins the whole panel. Memory: one batch plus at most one row per review month.
- ``interval_means``: each person-month with both quality halves goes to the first review
  of its spell at or after it (a binary search on the reviews sorted by spell and month,
  as ``pd.merge_asof(direction="forward")`` does), and counts when it lies after that
  review's baseline month; sums and counts per review add up over the batches, so spells
  cut by a batch boundary do not matter. Memory: one batch plus arrays the size of the
  reviews; time linear in the person-months (no sort of the panel, unlike an ASOF join).

What the in-memory path decides on the whole panel is kept:

- dtypes: pandas makes an integer column with a missing value float64 (and a boolean one
  object) when it converts the whole file; the pass records which columns have a missing
  value anywhere in the file and converts the kept rows' columns the same way;
- two rows of one client in one month are refused (``_with_person_month``'s error), here
  among the review months only: the rest of the panel is never held;
- of two reviews of one spell in one month (two spells of a client joined by the panel),
  the interval goes to the one ``merge_asof`` picks: the first after the same sort;
- a quality value missing as null or as NaN is missing (pandas' ``notna``), and means skip
  missing ``quality_score`` values as pandas' do. Sums are plain, not compensated as
  pandas' group means are: intervals are short, the difference is of the order of 1e-16.

``tests/heterogeneity/test_progress_stream.py`` checks ``review_frame`` and the
``progress_effects`` table against the in-memory path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from impact.estimate.frames import month_index
from impact.heterogeneity.progress import _PM_COLS

__all__ = ["BATCH_ROWS", "progress_keys", "review_months", "interval_means"]

#: rows per batch: the 5 columns of the interval pass take about 60 bytes a row, all
#: columns of the review-month pass about 250 (2^18 rows: about 65 MB per batch)
BATCH_ROWS = 1 << 18
_Q = ("quality_a", "quality_b", "quality_score")


def progress_keys(progress: pd.DataFrame, trajectories: pd.DataFrame
                  ) -> tuple[pd.Series, np.ndarray]:
    """(client, month) of every ``progress`` row, every measure: the months whose
    person-months ``review_frame`` may join, for one pass over the file for all measures
    (``review_frame`` drops a review without client, month or value; these keys keep it)."""
    client = trajectories.set_index(trajectories["spell_id"].astype(str))["client_id"]
    c = progress["spell_id"].astype(str).map(client).astype("string")
    return c.reset_index(drop=True), month_index(progress["date"])


def _encoder(values: pd.Series, field_type: pa.DataType) -> tuple[pd.Index, pa.Array]:
    """The distinct ``values`` as a pandas index (codes of the small side) and as an Arrow
    array of the file column's type (codes of a batch's column: ``pc.index_in``)."""
    uniq = pd.Index(pd.unique(values.astype("string").dropna()).astype(str))
    arr = pa.array(np.asarray(uniq, dtype=object), type=pa.string())
    return uniq, (arr if arr.type == field_type else arr.cast(field_type))


def _codes(col: pa.ChunkedArray | pa.Array, value_set: pa.Array) -> np.ndarray:
    """Position of each value of ``col`` in ``value_set`` (-1: absent or missing)."""
    return np.asarray(pc.fill_null(pc.index_in(col, value_set=value_set), -1),
                      dtype="int64")


def _months(col: pa.ChunkedArray | pa.Array, missing: int) -> np.ndarray:
    """A month column as int64 (``missing`` for a null)."""
    return np.asarray(pc.fill_null(pc.cast(col, pa.int64()), missing), dtype="int64")


def review_months(path: str | Path, client_id, t, batch_rows: int | None = None
                  ) -> pd.DataFrame:
    """The panel file's person-months whose (client, month) is one of the keys
    ``client_id`` x ``t`` (element by element; missing ones are ignored), in file order,
    with ``client_id``, ``t`` and the columns ``_with_person_month`` gathers, as the whole
    file read by ``io.read_person_months`` would have them (module notes)."""
    f = pq.ParquetFile(path)
    schema = f.schema_arrow
    names = schema.names
    cols = ["client_id", "t"] + [c for c in _PM_COLS if c in names and c not in
                                 ("client_id", "t")]
    cols += [c for c in names if c.startswith("lm_")]
    keys = pd.DataFrame({"c": pd.array(client_id, dtype="string"),
                         "t": np.asarray(t, dtype="float64")}).dropna()
    uniq, value_set = _encoder(keys["c"], schema.field("client_id").type)
    code = uniq.get_indexer(keys["c"].astype(str)).astype("int64")
    kt = keys["t"].to_numpy(dtype="int64")
    t0 = int(kt.min()) if len(kt) else 0
    span = int(kt.max()) - t0 + 1 if len(kt) else 1
    wanted = pa.array(np.unique(code * span + (kt - t0)), type=pa.int64())
    parts: list[pa.RecordBatch] = []
    with_nulls: set[str] = set()
    for batch in f.iter_batches(batch_size=batch_rows or BATCH_ROWS, columns=cols):
        with_nulls.update(c for c in cols if batch.column(c).null_count)
        bc = _codes(batch.column("client_id"), value_set)
        rel = _months(batch.column("t"), t0 - 1) - t0
        hit = (bc >= 0) & (rel >= 0) & (rel < span)
        if not hit.any():
            continue
        key = pa.array(bc[hit] * span + rel[hit], type=pa.int64())
        hit[hit] = np.asarray(pc.is_in(key, value_set=wanted), dtype=bool)
        if hit.any():
            parts.append(batch.filter(pa.array(hit)))
    table = pa.Table.from_batches(parts, schema=pa.schema([schema.field(c) for c in cols]))
    df = table.replace_schema_metadata(schema.metadata).to_pandas(date_as_object=False)
    for c in with_nulls:  # as converted with the missing values of the rows not kept
        kind = df[c].dtype.kind if isinstance(df[c].dtype, np.dtype) else ""
        if kind in ("i", "u"):
            df[c] = df[c].astype("float64")
        elif kind == "b":
            df[c] = df[c].astype(object)
    return df


def interval_means(path: str | Path, rk: pd.DataFrame, batch_rows: int | None = None
                   ) -> pd.DataFrame:
    """Means of ``quality_a``, ``quality_b`` and ``quality_score`` over each review's
    interval (module notes) from the panel file: ``rk`` holds the outcome reviews
    (``spell_id``, ``t_review``, ``base_t``) in ``review_frame``'s order. The frame of
    ``review_frame``'s in-memory group means: indexed by (``spell_id``, ``t_review``), a
    row per review with at least one person-month counted."""
    f = pq.ParquetFile(path)
    # merge_asof(direction="forward") takes, of equal months of a spell, the first review
    # in the order of the right frame: the same sort as review_frame's, then the first
    rk = (rk.sort_values("t_review").drop_duplicates(["spell_id", "t_review"], keep="first")
          .reset_index(drop=True))
    uniq, value_set = _encoder(rk["spell_id"], f.schema_arrow.field("spell_id").type)
    sc = uniq.get_indexer(rk["spell_id"].astype(str)).astype("int64")
    tr = rk["t_review"].to_numpy(dtype="int64")
    t0 = int(tr.min()) if len(tr) else 0
    span = int(tr.max()) - t0 + 1 if len(tr) else 1
    order = np.argsort(sc * span + (tr - t0), kind="stable")
    rk, sc, tr = rk.iloc[order].reset_index(drop=True), sc[order], tr[order]
    key = sc * span + (tr - t0)
    base_t = rk["base_t"].to_numpy(dtype="float64")
    n_r = len(rk)
    sums, counts = np.zeros((len(_Q), n_r)), np.zeros((len(_Q), n_r))
    cols = ["spell_id", "t", *_Q]
    for batch in f.iter_batches(batch_size=batch_rows or BATCH_ROWS, columns=cols):
        if not n_r:
            break
        q = [np.asarray(pc.cast(batch.column(c), pa.float64()).to_numpy(zero_copy_only=False),
                        dtype="float64") for c in _Q]
        ok = ~np.isnan(q[0]) & ~np.isnan(q[1])
        bc = _codes(batch.column("spell_id"), value_set)
        t = _months(batch.column("t"), t0 - 1)
        ok &= (bc >= 0) & (t - t0 < span)
        # the first review of the spell at or after the month (months before the first
        # review month search from it: the spell's first review is the one)
        k = bc * span + np.clip(t - t0, 0, span - 1)
        i = np.searchsorted(key, k, side="left")
        ok &= i < n_r
        i = np.where(ok, i, 0)
        ok &= (sc[i] == bc) & (t > base_t[i])
        for j, v in enumerate(q):
            use = ok & ~np.isnan(v)
            sums[j] += np.bincount(i[use], weights=v[use], minlength=n_r)
            counts[j] += np.bincount(i[use], minlength=n_r)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = pd.DataFrame({c: sums[j] / counts[j] for j, c in enumerate(_Q)})
    means.index = pd.MultiIndex.from_arrays([rk["spell_id"], rk["t_review"]])
    return means[counts[0] > 0]
