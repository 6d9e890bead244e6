"""The panel's person-months that ``progress`` needs, read from its Parquet file.

Notes
-----
``progress.review_frame`` uses the panel in two places only: the person-month of each
review (its covariates) and the interval means of quality over the person-months of each
review's spell since its baseline. At national scale the panel (64 million person-months)
must not be held in pandas whole, so with ``panel=`` (the file's path) both come from the
file, reading only the columns used:

- ``review_months``: a DuckDB semi join of the file's (client, month) columns with the
  reviews' keys (out of core: ``spill.spilling``'s memory limit, spilling to a temporary
  folder) gives the row numbers (DuckDB's ``file_row_number``); a pass over the file in
  batches takes those rows' columns, in file order, in Arrow's memory (a DuckDB result
  of the columns, once dropped, stayed with DuckDB's allocator: 1.4 GB at national
  size). Then ``progress.review_frame`` joins them exactly as it joins the whole panel.
  Memory: the kept rows, about one in six person-months when clients are reviewed every
  six months; ``review_frame`` asks for one measure's at a time and frees each column
  once gathered.
- ``interval_means``: each person-month with both quality halves goes to the first review
  of its spell at or after it (as ``pd.merge_asof(direction="forward")`` does), and counts
  when it lies after that review's baseline month. One pass over the file in batches:
  the reviews are sorted by (spell, month) once, each batch's person-months find theirs
  by a binary search (a batch's spell ids are looked up once per run of equal ids; the
  panel is written spell by spell) and are added to its sums by ``np.bincount``.

Measured on the full national simulation (63 million person-months, 20.6 million progress
rows, 9.9 million review months; 2 cores): the review months of one measure about 18 s
(the row numbers from DuckDB, then the pass taking them); one DuckDB query of every
measure's rows and columns took 10-30 s, the former pass in Arrow batches hashing every
batch's client ids in Python-driven chunks 366 s. The interval means took 124 s per
measure in Arrow batches hashing every row's spell id, 31 s (eighth round) and 69 s (on
the municipality-ordered panel, ninth) in a DuckDB ``ASOF JOIN``, which sorts all 63
million rows by their string spell id; by binary search over the sorted reviews, 47 s
and 25 s for the two measures (9.8 and 4.3 million reviews) where the ``ASOF JOIN``
took 69 s each.

What the in-memory path decides on the whole panel is kept:

- dtypes: pandas makes an integer column with a missing value float64 (and a boolean one
  object) when it converts the whole file; ``io.whole_file_dtypes`` tells which columns
  have a missing value anywhere in the file and the kept rows are converted the same way;
- two rows of one client in one month are refused (``_with_person_month``'s error), here
  among the review months only: the rest of the panel is never held;
- of two reviews of one spell in one month (two spells of a client joined by the panel),
  the interval goes to the one ``merge_asof`` picks: the first after the same sort;
- a quality value missing as null or as NaN is missing (pandas' ``notna``), and means skip
  missing ``quality_score`` values as pandas' do. Sums run in file order (intervals hold
  a few months, so they agree with pandas' compensated group means to the last bits;
  tested to 1e-12).

``tests/heterogeneity/test_progress_stream.py`` checks ``review_frame`` and the
``progress_effects`` table against the in-memory path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from impact.distinct import local_codes, run_starts
from impact.estimate.frames import month_index
from impact.heterogeneity.progress import _PM_COLS
from impact.heterogeneity.progress_reviews import text_array
from impact.io import decoded, text_columns, whole_file_dtypes
from impact.spill import ident, literal, spilling

__all__ = ["progress_keys", "review_months", "interval_means"]

_Q = ("quality_a", "quality_b", "quality_score")


def progress_keys(progress: pd.DataFrame, trajectories: pd.DataFrame
                  ) -> tuple[pd.Series, np.ndarray]:
    """(client, month) of every ``progress`` row, every measure: the months whose
    person-months ``review_frame`` may join, for one query over the file for all measures
    (``review_frame`` drops a review without client, month or value; these keys keep it)."""
    client = trajectories.set_index(trajectories["spell_id"].astype(str))["client_id"]
    c = progress["spell_id"].astype(str).map(client).astype("string")
    return c.reset_index(drop=True), month_index(progress["date"])


def _connect(con, threads: int | None):
    """``con`` as given, or a new spilling connection (closed by the caller's ``with``)."""
    if con is not None:
        from contextlib import nullcontext

        return nullcontext(con)
    return spilling("impact-progress-", threads=threads)


def review_months(path: str | Path, client_id, t, *, con=None, threads: int | None = None,
                  batch_rows: int = 1 << 18) -> pd.DataFrame:
    """The panel file's person-months whose (client, month) is one of the keys
    ``client_id`` x ``t`` (element by element; missing ones are ignored), in file order,
    with ``client_id``, ``t`` and the columns ``_with_person_month`` gathers except the
    quality columns (the interval means come from ``interval_means``, so this frame is
    for ``review_frame(..., panel=)`` only), as the whole file read by
    ``io.read_person_months`` would have them (module notes). ``con``: a DuckDB connection
    to use (else one of ``spill.spilling`` with ``threads`` threads)."""
    f = pq.ParquetFile(path)
    schema = f.schema_arrow
    names = schema.names
    cols = ["client_id", "t"] + [c for c in _PM_COLS if c in names and c not in
                                 ("client_id", "t") + _Q]
    cols += [c for c in names if c.startswith("lm_")]
    keys = pd.DataFrame({"c": pd.array(client_id, dtype="string"),
                         "t": np.asarray(t, dtype="float64")}).dropna().drop_duplicates()
    keys = pa.table({"c": text_array(keys["c"]), "t": pa.array(keys["t"].to_numpy(dtype="int64"))})
    with _connect(con, threads) as db:
        try:
            db.register("impact_review_keys", keys)
            rows = db.sql(
                f"""SELECT p.file_row_number AS impact_row
                    FROM read_parquet({literal(path)}, file_row_number = true) p
                    SEMI JOIN impact_review_keys k
                    ON CAST(p.client_id AS VARCHAR) = k.c AND p.t = k.t""").fetchnumpy()
        finally:
            db.unregister("impact_review_keys")
    rows = np.sort(np.asarray(rows["impact_row"], dtype="int64"))
    # the rows themselves from a pass over the file in Arrow's memory (DuckDB's allocator
    # kept most of a result of the rows' columns after it was dropped: 1.4 GB at national
    # size), in file order and with the file's types
    # text read dictionary-encoded and decoded once taken (``io.decoded``): the pass's
    # CPU time at national size 19 -> 9 s
    text = text_columns(f, cols)
    parts, start = [], 0
    for batch in pq.ParquetFile(path, read_dictionary=text).iter_batches(
            batch_size=batch_rows, columns=cols):
        lo, hi = np.searchsorted(rows, [start, start + batch.num_rows])
        if hi > lo:
            parts.append(decoded(batch.take(pa.array(rows[lo:hi] - start)), text))
        start += batch.num_rows
    target = pa.schema([schema.field(c) for c in cols], metadata=schema.metadata)
    got = (pa.Table.from_batches(parts).select(cols).replace_schema_metadata(schema.metadata)
           if parts else target.empty_table())
    del parts
    # a block per column (``review_frame`` frees each once gathered), Arrow's buffers
    # freed as they are converted
    df = got.to_pandas(date_as_object=False, split_blocks=True, self_destruct=True)
    del got
    for c, dtype in whole_file_dtypes(f, cols).items():
        df[c] = df[c].astype(dtype)
    return df


def interval_means(path: str | Path, rk: pd.DataFrame, *,
                   batch_rows: int = 1 << 18) -> pd.DataFrame:
    """Means of ``quality_a``, ``quality_b`` and ``quality_score`` over each review's
    interval (module notes) from the panel file: ``rk`` holds the outcome reviews
    (``spell_id``, ``t_review``, ``base_t``) in ``review_frame``'s order. A frame of the
    three means aligned with ``rk``'s rows (NaN for a review with no person-month
    counted): what ``review_frame``'s merge with its in-memory group means gives each
    review, without a merge that copies the reviews' frame.

    One pass over the file in batches of ``batch_rows``: each person-month's review is
    found by a binary search among the reviews sorted by (spell, month), and its values
    are added to that review's sums (``np.bincount``). A batch's spells are looked up once
    per run of equal ids (the panel is written spell by spell; any order gives the same
    sums)."""
    n = len(rk)
    if n == 0:
        return pd.DataFrame({c: np.zeros(0) for c in _Q})
    spells, code = _spell_codes(rk["spell_id"])
    t_rev = rk["t_review"].to_numpy(dtype="int64")
    t0 = int(t_rev.min())
    span = int(t_rev.max()) - t0 + 1
    key = code * span + (t_rev - t0)
    # merge_asof(direction="forward") takes, of equal months of a spell, the first review
    # in the order of the right frame: the same sort as review_frame's, then the first
    first = (pd.DataFrame({"t_review": t_rev, "k": key}).sort_values("t_review")
             .drop_duplicates("k", keep="first").index.to_numpy())
    first = first[np.argsort(key[first], kind="stable")]
    keys, base_t = key[first], rk["base_t"].to_numpy(dtype="float64")[first]
    m = len(keys)
    sums = np.zeros((5, m))  # a, b, count, score, count of score
    f = pq.ParquetFile(path)
    for batch in f.iter_batches(batch_size=batch_rows, columns=["spell_id", "t", *_Q]):
        pos, ok, t = _reviews_of(batch, spells, keys, span, t0)
        qa, qb, qs = (np.asarray(batch.column(c).to_numpy(zero_copy_only=False),
                                 dtype="float64") for c in _Q)
        ok &= ~np.isnan(qa) & ~np.isnan(qb)  # a NaN or a null (NaN here) leaves it out
        ok[ok] &= t[ok] > base_t[pos[ok]]
        # the batch's reviews numbered locally: a bincount as long as all the reviews
        # per batch cost O(reviews) a batch, quadratic in all (85 of the 600 s of the
        # national intermediate results, cProfiled); the same sums in the same order
        at, local = local_codes(pos[ok])
        u = len(at)
        sums[0, at] += np.bincount(local, qa[ok], minlength=u)
        sums[1, at] += np.bincount(local, qb[ok], minlength=u)
        sums[2, at] += np.bincount(local, minlength=u)
        has_s = ~np.isnan(qs[ok])
        sums[3, at] += np.bincount(local[has_s], qs[ok][has_s], minlength=u)
        sums[4, at] += np.bincount(local[has_s], minlength=u)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = {"quality_a": sums[0] / sums[2], "quality_b": sums[1] / sums[2],
                 "quality_score": sums[3] / sums[4]}
    at = np.searchsorted(keys, key)  # every review's (spell, month) is among the keys
    return pd.DataFrame({c: v[at] for c, v in means.items()})


def _spell_codes(spell_id: pd.Series) -> tuple[dict, np.ndarray]:
    """The code of each distinct spell id of the reviews (a dict to look up: an object
    Index's ``get_indexer`` took 24 ms a batch for a few thousand ids, a dict 1 ms) and
    each review's code."""
    code, uniq = pd.factorize(pd.array(spell_id, dtype="string"))
    return ({s: i for i, s in enumerate(np.asarray(uniq, dtype=object).tolist())},
            code.astype("int64"))


def _reviews_of(batch: pa.RecordBatch, spells: dict, keys: np.ndarray, span: int,
                t0: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each person-month of ``batch``: the position in ``keys`` of the first review of
    its spell at or after its month, whether there is one, and its month."""
    sp = batch.column("spell_id")
    if not pa.types.is_string(sp.type):
        sp = sp.cast(pa.string())
    rows = len(sp)
    # runs of equal spell ids, each looked up once (a null id has no review)
    starts = run_starts(sp)
    ids = sp.take(pa.array(starts)).to_pylist()
    run_code = np.fromiter((spells.get(s, -1) for s in ids), dtype=np.int64, count=len(ids))
    code = np.repeat(run_code, np.diff(np.r_[starts, rows])).astype("int64")
    tcol = batch.column("t")
    t = np.asarray(tcol.fill_null(0).to_numpy(), dtype="int64")
    ok = (code >= 0) & (t < t0 + span)
    if tcol.null_count:  # a month missing: no review (the in-memory merge finds none)
        ok &= np.asarray(tcol.is_valid(), dtype=bool)
    # before the reviews' first month: the spell's first review is the one
    k = code * span + np.clip(t - t0, 0, span - 1)
    pos = np.searchsorted(keys, k)
    ok &= pos < len(keys)
    pos = np.where(ok, pos, 0)
    ok &= keys[pos] // span == code if len(keys) else False
    return pos, ok, t
