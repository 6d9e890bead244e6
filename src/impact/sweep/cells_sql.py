"""A grid cell's unit x month frame aggregated by DuckDB straight from the Parquet file.

The same frame as :func:`impact.sweep.cells.cell_frame` (the definitions are in that
module's notes), without the person-month panel ever entering pandas: DuckDB scans the
columns it needs, filters the sample and aggregates to municipality x month in bounded
memory, and only the cell table (~municipalities x months rows) comes back. Means
propagate a missing value as pandas' ``bincount`` does (a cell with any missing value in
a column gets NaN there); sums are accumulated in exact DECIMAL (``panel._sql.
exact_sum``), so the result does not depend on DuckDB's thread order and agrees with the
pandas version to about 1e-12 (tests/sweep/test_cells_sql.py).

The grid's cells of one outcome share its aggregations (``sample_frames_sql``, stage
``sweep_frames@<outcome>``): the frame depends only on the outcome and the sample, and
``no_crisis`` is ``all`` without the crisis months, so the default grid's 24 cells take 3
scans of the panel, not 24 (at national scale each scan took 5-13 s of the cell's 6-16).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import duckdb
import pandas as pd

from impact.estimate.frames import month_index
from impact.panel._sql import exact_sum, lit

__all__ = ["cell_frame_sql", "sample_frames_sql", "with_adoption"]

_EDGES = (6, 12, 24, 60)  # duration bands 0_5 | 6_11 | 12_23 | 24_59 | 60p (frames.py)


def _mix(lm: list[str]) -> dict[str, str]:
    """Client-mix column -> SQL value per person-month (NULL = missing)."""
    def share(col: str, level: str) -> str:
        return f"CAST(coalesce({col} = {lit(level)}, false) AS DOUBLE)"

    dur = "coalesce(duration, 0)"
    band = {
        "6_11": f"{dur} >= 6 AND {dur} < 12", "12_23": f"{dur} >= 12 AND {dur} < 24",
        "24_59": f"{dur} >= 24 AND {dur} < 60", "60p": f"{dur} >= 60",
    }
    mix = {
        "mean_age": "CAST(age AS DOUBLE)",
        "share_female": share("sex", "F"),
        "share_edu_low": share("education_level", "low"),
        "share_edu_high": share("education_level", "high"),
        "share_single_parent": share("household", "single_parent"),
        "share_couple_children": share("household", "couple_children"),
        "share_left_truncated": "CAST(left_truncated AS DOUBLE)",
        "mean_prior_benefit_months": "CAST(prior_benefit_months AS DOUBLE)",
        **{f"share_dur_{b}": f"CAST(coalesce({cond}, false) AS DOUBLE)"
           for b, cond in band.items()},
    }
    mix.update({c: f'CAST("{c}" AS DOUBLE)' for c in lm})
    return mix


def _aggregate_sql(source: str, exits: str, lm: list[str]) -> str:
    """Municipality x month sums and means of ``source`` (rows with ``exits`` 0/1)."""
    means = ",\n".join(
        f"CASE WHEN count({v}) < count(*) OR bool_or(isnan({v})) THEN 'NaN'::DOUBLE "
        f"ELSE {exact_sum(v)} / count(*) END AS \"{c}\""
        for c, v in _mix(lm).items())
    return f"""
        SELECT municipality, CAST(t AS BIGINT) AS t, CAST(count(*) AS DOUBLE) AS person_months,
               CAST(sum({exits}) AS DOUBLE) AS exits_work, first(region) AS region,
               {means}
        FROM {source}
        GROUP BY municipality, t
        ORDER BY municipality, t
    """


def _base(sample: str) -> str:
    """The sample whose aggregation a sample's frame is cut from: ``no_crisis`` is ``all``
    without the crisis months, so both take one aggregation."""
    return "all" if sample == "no_crisis" else sample


def _aggregate(con: duckdb.DuckDBPyConnection, src: str, outcome: str, sample: str,
               lm: list[str]) -> pd.DataFrame:
    """The unit x month sums and means of ``outcome`` on the base ``sample`` (every month)."""
    where = {"all": "true", "inflow": "left_truncated = 0",
             "age_25_54": "age >= 25 AND age <= 54"}[sample]
    rows = f"(SELECT * FROM {src} WHERE {where})"
    if outcome == "month":
        return con.execute(_aggregate_sql(rows, "exit_work", lm)).df()
    k = int(outcome.split("_")[1])
    t_max = con.execute(f"SELECT max(t) FROM {src}").fetchall()[0][0]
    # spells starting in the window: did the spell exit to work within k months?
    intake = f"""(
        SELECT r.*, CAST(coalesce(e.hit, false) AS INTEGER) AS _hit
        FROM {rows} r
        LEFT JOIN (SELECT spell_id, bool_or(left_truncated = 0 AND exit_work = 1
                                            AND duration < {k}) AS hit
                   FROM {rows} GROUP BY spell_id) e USING (spell_id)
        WHERE r.left_truncated = 0 AND r.duration = 0)"""
    return con.execute(f"SELECT * FROM ({_aggregate_sql(intake, '_hit', lm)}) "
                       f"WHERE t <= {int(t_max) - k + 1} ORDER BY municipality, t").df()


def sample_frames_sql(panel: str | Path, outcome: str, samples: Sequence[str],
                      crisis: tuple[str, str], con: duckdb.DuckDBPyConnection | None = None
                      ) -> dict[str, pd.DataFrame]:
    """The frames of one ``outcome`` on each of ``samples`` from the person-month Parquet
    file ``panel``, without the adoption columns (``with_adoption`` adds them): one
    aggregation per base sample (``no_crisis`` is ``all`` without the crisis months), so
    the grid's cells of an outcome share them (stage ``sweep_frames@<outcome>``)."""
    if outcome not in ("month", "within_6", "within_12"):
        raise ValueError(f"outcome={outcome!r} is not a grid outcome")
    for sample in samples:
        if sample not in ("all", "no_crisis", "inflow", "age_25_54"):
            raise ValueError(f"sample={sample!r} is not a grid sample")
    con = con or duckdb.connect()
    # can_have_nan: isnan() is not folded to false from the file's statistics, which
    # pyarrow writes without its NaNs (duckdb#25521)
    src = f"read_parquet({lit(str(panel))}, can_have_nan = true)"
    names = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()]
    lm = [c for c in names if c.startswith("lm_") and c.endswith("_muni")]
    bases: dict[str, pd.DataFrame] = {}
    out = {}
    for sample in samples:
        if _base(sample) not in bases:
            bases[_base(sample)] = _aggregate(con, src, outcome, _base(sample), lm)
        f = bases[_base(sample)]
        if sample == "no_crisis":
            lo, hi = (int(month_index([f"{m}-01"])[0]) for m in crisis)
            f = f[(f["t"] < lo) | (f["t"] > hi)]
        f = f[f["person_months"] > 0].reset_index(drop=True)
        f["municipality"] = f["municipality"].astype(str)
        f["region"] = f["region"].astype(str)
        f["t"] = f["t"].astype("int64")
        out[sample] = f
    return out


def with_adoption(frame: pd.DataFrame, adoption_month: dict[str, int]) -> pd.DataFrame:
    """A sample frame with the cell columns ``unit`` (the municipality) and ``g`` (its
    adoption month, NaN for never)."""
    f = frame.copy()
    f["municipality"] = f["municipality"].astype(str)
    f["region"] = f["region"].astype(str)
    f["t"] = f["t"].astype("int64")
    f["unit"] = f["municipality"]
    f["g"] = f["unit"].map(adoption_month).astype("float64")
    return f


def cell_frame_sql(panel: str | Path, outcome: str, sample: str, crisis: tuple[str, str],
                   adoption_month: dict[str, int],
                   con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """The grid cell's unit x month frame from the person-month Parquet file ``panel``
    (columns and values as :func:`impact.sweep.cells.cell_frame`)."""
    frames = sample_frames_sql(panel, outcome, [sample], crisis, con)
    return with_adoption(frames[sample], adoption_month)
