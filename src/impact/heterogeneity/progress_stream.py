"""The panel's person-months that ``progress`` needs, read from its Parquet file by DuckDB.

Notes
-----
``progress.review_frame`` uses the panel in two places only: the person-month of each
review (its covariates) and the interval means of quality over the person-months of each
review's spell since its baseline. At national scale the panel (64 million person-months)
must not be held in pandas whole, so with ``panel=`` (the file's path) both come from a
DuckDB query over the file (out of core: ``spill.spilling``'s memory limit, spilling to a
temporary folder), reading only the columns used:

- ``review_months``: a semi join of the file with the reviews' (client, month) keys, the
  rows put back in file order (DuckDB's ``file_row_number``). Then
  ``progress._with_person_month`` joins them exactly as it joins the whole panel.
  Memory: the kept rows, about one in six person-months when clients are reviewed every
  six months.
- ``interval_means``: each person-month with both quality halves goes to the first review
  of its spell at or after it (an ``ASOF JOIN`` on spell and ``t <= t_review``, as
  ``pd.merge_asof(direction="forward")`` does), and counts when it lies after that
  review's baseline month; the means are taken per review in the same query.

Measured on the full national simulation (63 million person-months, 20.6 million progress
rows, 9.9 million review months; 2 cores): the review months 10 s instead of 366 s for
the former pass in Arrow batches (hashing every batch's client ids in Python-driven
chunks), the interval means 31 s per measure instead of 124 s.

What the in-memory path decides on the whole panel is kept:

- dtypes: pandas makes an integer column with a missing value float64 (and a boolean one
  object) when it converts the whole file; ``io.whole_file_dtypes`` tells which columns
  have a missing value anywhere in the file and the kept rows are converted the same way;
- two rows of one client in one month are refused (``_with_person_month``'s error), here
  among the review months only: the rest of the panel is never held;
- of two reviews of one spell in one month (two spells of a client joined by the panel),
  the interval goes to the one ``merge_asof`` picks: the first after the same sort;
- a quality value missing as null or as NaN is missing (pandas' ``notna``; the file is
  read with ``can_have_nan``, see the query), and means skip
  missing ``quality_score`` values as pandas' do. Sums are compensated (DuckDB's
  ``fsum``), as pandas' group means are, so that the order in which DuckDB's threads add
  the rows is unlikely to show in the last bit of a mean (intervals hold a few months).

``tests/heterogeneity/test_progress_stream.py`` checks ``review_frame`` and the
``progress_effects`` table against the in-memory path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from impact.estimate.frames import month_index
from impact.heterogeneity.progress import _PM_COLS
from impact.io import whole_file_dtypes
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


def review_months(path: str | Path, client_id, t, *, con=None, threads: int | None = None
                  ) -> pd.DataFrame:
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
    keys = pa.table({"c": _strings(keys["c"]), "t": pa.array(keys["t"].to_numpy(dtype="int64"))})
    sel = ", ".join(f"p.{ident(c)}" for c in cols)
    with _connect(con, threads) as db:
        try:
            db.register("impact_review_keys", keys)
            got = db.sql(
                f"""SELECT p.file_row_number AS impact_row, {sel}
                    FROM read_parquet({literal(path)}, file_row_number = true) p
                    SEMI JOIN impact_review_keys k
                    ON CAST(p.client_id AS VARCHAR) = k.c AND p.t = k.t""").to_arrow_table()
        finally:
            db.unregister("impact_review_keys")
    order = np.argsort(got.column("impact_row").to_numpy(), kind="stable")
    got = got.drop_columns(["impact_row"]).take(pa.array(order))
    target = pa.schema([schema.field(c) for c in cols], metadata=schema.metadata)
    # DuckDB gives back its own types (string views, plain strings): the file's, for the
    # same pandas dtypes as a read of the file (not-null flags aside)
    got = pa.table([got.column(c).cast(target.field(c).type) for c in cols], schema=target)
    df = got.to_pandas(date_as_object=False)
    del got
    for c, dtype in whole_file_dtypes(f, cols).items():
        df[c] = df[c].astype(dtype)
    return df


def _strings(values: pd.Series) -> pa.Array:
    """A pandas string column as an Arrow string array (no Python object per value)."""
    arr = pa.array(values.astype("string"), from_pandas=True)
    return arr if arr.type == pa.string() else arr.cast(pa.string())


def interval_means(path: str | Path, rk: pd.DataFrame, *, con=None,
                   threads: int | None = None) -> pd.DataFrame:
    """Means of ``quality_a``, ``quality_b`` and ``quality_score`` over each review's
    interval (module notes) from the panel file: ``rk`` holds the outcome reviews
    (``spell_id``, ``t_review``, ``base_t``) in ``review_frame``'s order. A frame of the
    three means aligned with ``rk``'s rows (NaN for a review with no person-month
    counted): what ``review_frame``'s merge with its in-memory group means gives each
    review, without a merge that copies the reviews' frame."""
    n = len(rk)
    rows = pa.table({"i": pa.array(np.arange(n, dtype="int64")),
                     "spell_id": _strings(rk["spell_id"]),
                     "t_review": pa.array(rk["t_review"].to_numpy(dtype="int64"))})
    # merge_asof(direction="forward") takes, of equal months of a spell, the first review
    # in the order of the right frame: the same sort as review_frame's, then the first
    rk = (rk.sort_values("t_review").drop_duplicates(["spell_id", "t_review"], keep="first")
          .reset_index(drop=True))
    reviews = pa.table({
        "spell_id": _strings(rk["spell_id"]),
        "t_review": pa.array(rk["t_review"].to_numpy(dtype="int64")),
        "base_t": pa.array(rk["base_t"].to_numpy(dtype="float64"))})
    del rk
    qa, qb, qs = (f"CAST(q.{ident(c)} AS DOUBLE)" for c in _Q)
    with _connect(con, threads) as db:
        try:
            db.register("impact_reviews", reviews)
            db.register("impact_review_rows", rows)
            # isnan(NULL) is NULL: a null or a NaN half leaves the person-month out.
            # can_have_nan: without it DuckDB trusts a file's min/max statistics, which
            # pyarrow writes without its NaNs, and folds isnan() to false (duckdb#25521)
            got = db.sql(
                f"""WITH q AS (
                        SELECT CAST(spell_id AS VARCHAR) AS spell_id, t, {qa} AS a,
                               {qb} AS b, {qs} AS s
                        FROM read_parquet({literal(path)}, can_have_nan = true) q
                        WHERE NOT isnan({qa}) AND NOT isnan({qb})),
                    m AS (
                        SELECT r.spell_id, r.t_review, fsum(q.a) / count(*) AS quality_a,
                               fsum(q.b) / count(*) AS quality_b,
                               fsum(q.s) FILTER (WHERE NOT isnan(q.s))
                                 / count(*) FILTER (WHERE NOT isnan(q.s)) AS quality_score
                        FROM q ASOF JOIN impact_reviews r
                          ON q.spell_id = r.spell_id AND q.t <= r.t_review
                        WHERE q.t > r.base_t
                        GROUP BY r.spell_id, r.t_review)
                    SELECT k.i, m.quality_a, m.quality_b, m.quality_score
                    FROM impact_review_rows k JOIN m
                      ON k.spell_id = m.spell_id AND k.t_review = m.t_review"""
            ).to_arrow_table()
        finally:
            db.unregister("impact_reviews")
            db.unregister("impact_review_rows")
    at = got.column("i").to_numpy()
    out = {}
    for c in _Q:  # a review without a person-month counted, or without a quality_score: NaN
        v = np.full(n, np.nan)
        v[at] = np.asarray(got.column(c).to_numpy(zero_copy_only=False), dtype="float64")
        out[c] = v
    return pd.DataFrame(out)
