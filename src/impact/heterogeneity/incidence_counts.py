"""Person-month counts by client group and duration for the cumulative incidence
(:mod:`impact.heterogeneity.incidence`, step 1): one pass in DuckDB, out of core, or pandas
for small frames."""

from __future__ import annotations

from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd

from impact.spill import ident as _ident

__all__ = ["ALL_LABEL", "COUNT_COLUMNS", "IncidenceInputError", "incidence_counts"]

#: Columns of :func:`incidence_counts` (``exits_education`` only with an education column).
COUNT_COLUMNS = ("group", "duration", "at_risk", "clients", "exits_work", "exits_education",
                 "exits_any", "group_clients")
ALL_LABEL = "all"
_VIEW = "_impact_incidence_pm"


class IncidenceInputError(ValueError):
    """The person-months or the counts break an assumption of the estimator."""


def _counts_sql(group_col: str | None, max_duration: int, client_col: str,
                exit_cols: dict[str, str | None]) -> str:
    g = _ident(group_col) if group_col else "NULL"
    w, a = _ident(exit_cols["work"]), _ident(exit_cols["any"])
    e = _ident(exit_cols["education"]) if exit_cols["education"] else "0"
    # a row is invalid when an exit flag is not 0/1 (NULL included) or work + education > any
    bad = (f"NOT coalesce({w} IN (0, 1) AND {e} IN (0, 1) AND {a} IN (0, 1) "
           f"AND {w} + {e} <= {a}, false)")
    return f"""
        WITH cm AS (  -- one row per group x duration x client: person-month sized, spills
            SELECT {g} AS g, duration AS d, {_ident(client_col)} AS client,
                count(*) AS n, sum({w}) AS w, sum({e}) AS e, sum({a}) AS a,
                count_if({bad}) AS bad
            FROM {_VIEW}
            WHERE duration <= {int(max_duration)}
            GROUP BY ALL
        )
        SELECT g, d, grouping(d) AS total_row,
            sum(n)::BIGINT AS at_risk, count(DISTINCT client)::BIGINT AS clients,
            sum(w)::BIGINT AS exits_work, sum(e)::BIGINT AS exits_education,
            sum(a)::BIGINT AS exits_any, sum(bad)::BIGINT AS bad
        FROM cm
        GROUP BY GROUPING SETS ((g, d), (g))
    """


def _counts_duckdb(data: Any, con, group_col, max_duration, client_col, exit_cols) -> pd.DataFrame:
    if isinstance(data, duckdb.DuckDBPyRelation):
        rel = data
    else:
        con = con if con is not None else duckdb.connect()
        rel = con.from_df(data) if isinstance(data, pd.DataFrame) else con.from_arrow(data)
    missing = {group_col, client_col, "duration", *exit_cols.values()} - {None} - set(rel.columns)
    if missing:
        raise IncidenceInputError(f"person-months lack the column(s) {sorted(missing)}")
    out = rel.query(_VIEW, _counts_sql(group_col, max_duration, client_col, exit_cols)).df()
    if group_col is None:
        out["g"] = None
    totals = out[out["total_row"] == 1]
    cells = out[out["total_row"] == 0].drop(columns="total_row")
    cells = cells.merge(totals[["g", "clients"]].rename(columns={"clients": "group_clients"}),
                        on="g", how="left", validate="many_to_one")
    return cells


def _counts_pandas(data: Any, group_col, max_duration, client_col, exit_cols) -> pd.DataFrame:
    if isinstance(data, duckdb.DuckDBPyRelation):
        data = data.df()
    elif not isinstance(data, pd.DataFrame):
        data = data.to_pandas()
    missing = {group_col, client_col, "duration", *exit_cols.values()} - {None} - set(data.columns)
    if missing:
        raise IncidenceInputError(f"person-months lack the column(s) {sorted(missing)}")
    pm = data.loc[data["duration"] <= max_duration]
    flags = {k: pm[c] if c else pd.Series(0, index=pm.index) for k, c in exit_cols.items()}
    ok = pd.Series(True, index=pm.index)
    for v in flags.values():
        ok &= v.isin([0, 1]).fillna(False).astype(bool)
    ok &= (flags["work"].fillna(9) + flags["education"].fillna(9) <= flags["any"].fillna(-1))
    frame = pd.DataFrame({
        "g": pm[group_col] if group_col else None, "d": pm["duration"],
        "client": pm[client_col], "w": flags["work"], "e": flags["education"],
        "a": flags["any"], "bad": (~ok).astype("int64"),
    })
    by = frame.groupby(["g", "d"], dropna=False, sort=False)
    cells = by.agg(at_risk=("d", "size"), clients=("client", "nunique"), exits_work=("w", "sum"),
                   exits_education=("e", "sum"), exits_any=("a", "sum"), bad=("bad", "sum"))
    cells = cells.reset_index()
    per_group = (frame.groupby("g", dropna=False, sort=False)["client"].nunique()
                 .rename("group_clients").reset_index())
    return cells.merge(per_group, on="g", how="left", validate="many_to_one")


def _label(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _finish_counts(cells: pd.DataFrame, group_col: str | None, missing_group: str,
                   missing_label: str, has_education: bool) -> pd.DataFrame:
    """Shared by both engines: checks, group labels, order and types."""
    if len(cells) and cells["bad"].sum() > 0:
        raise IncidenceInputError(
            f"{int(cells['bad'].sum())} person-month(s) have exit flags that are not 0/1 or with "
            "exit_work + exit_education > exit_any")
    if len(cells) and (cells["d"] < 0).any():
        raise IncidenceInputError("negative durations in the person-months")
    if group_col is None:
        cells = cells.assign(group=ALL_LABEL, _na=False)
    else:
        isna = cells["g"].isna().to_numpy()
        if missing_group == "drop":
            cells, isna = cells.loc[~isna], isna[~isna]
        labels = [missing_label if m else _label(v) for v, m in zip(cells["g"], isna)]
        if isna.any() and missing_label in {lab for lab, m in zip(labels, isna) if not m}:
            raise IncidenceInputError(f"{group_col} has the value {missing_label!r} and missing "
                                      "values; pass another missing_label")
        cells = cells.assign(group=labels, _na=isna)
    # natural order of the group values, missing last, then duration
    cells = cells.sort_values(["_na", "g", "d"], kind="mergesort").rename(columns={"d": "duration"})
    cols = [c for c in COUNT_COLUMNS if has_education or c != "exits_education"]
    out = cells[cols].reset_index(drop=True)
    out["group"] = out["group"].astype(str)
    for c in cols[1:]:
        out[c] = out[c].astype("int64")
    return out


def incidence_counts(
    person_months: Any,
    group_col: str | None = None,
    max_duration: int = 120,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    engine: Literal["duckdb", "pandas"] = "duckdb",
    missing_group: Literal["own", "drop"] = "own",
    missing_label: str = "missing",
    education_col: str | None = "exit_education",
    work_col: str = "exit_work",
    any_col: str = "exit_any",
    client_col: str = "client_id",
) -> pd.DataFrame:
    """Person-months at risk and exits by group and duration (one row per group x duration).

    Parameters
    ----------
    person_months
        The panel's person-months (architecture.md, "Panel"): a DuckDB relation (aggregated
        on its own connection, with that connection's memory limit), a pandas DataFrame or
        an Arrow table. Needs ``duration``, ``client_id``, ``exit_work``, ``exit_any``,
        ``exit_education`` (unless ``education_col=None``) and ``group_col``. One row per
        spell and month at risk is assumed (not checked: duplicates would count twice).
    group_col
        Column of the client group (categorical: ``ladder_step``, ``education_level``,
        ``household``, ...; band continuous ones such as ``age`` first). None: one group
        labelled ``"all"``.
    max_duration
        Durations above it are **dropped**. Nothing is lost for ``d <= max_duration``: the
        estimate at ``d`` only uses the risk sets at ``0..d`` (pooling the tail into one row
        would not be a one-month step and is not offered).
    con
        Connection for pandas / Arrow input (bounded by ``impact.panel.connect``); default
        a fresh in-memory connection. Ignored for a relation.
    engine
        ``"duckdb"`` (default; out of core, linear in person-months) or ``"pandas"`` (small
        frames, tests; a relation is fetched whole).
    missing_group
        Person-months whose group value is missing: ``"own"`` (default) keeps them as a
        group labelled ``missing_label`` (listed last), so the groups still add up to all
        spells and missingness stays visible; ``"drop"`` leaves them out.
    education_col
        The exit-to-education flag; None when the panel has none: the table then has no
        ``exits_education`` column and ``other`` (in :func:`cumulative_incidence`)
        includes exits to education.
    work_col, any_col, client_col
        Other column names, for panels that spell them differently.

    Returns
    -------
    pandas.DataFrame
        :data:`COUNT_COLUMNS`: ``group`` (string; the value as text, whole floats without
        ``.0``), ``duration`` (int, only durations with someone at risk), ``at_risk``
        (person-months, i.e. spells at risk, at that duration), ``clients`` (distinct
        clients among them), ``exits_work``, ``exits_education``, ``exits_any``,
        ``group_clients`` (distinct clients of the group over durations
        ``0..max_duration``; the same on every row of a group). Ordered by group (natural
        order of the values, missing last), then duration.

    Raises
    ------
    IncidenceInputError
        A column is missing, a duration is negative, an exit flag is not 0/1, or
        ``exit_work + exit_education > exit_any`` in some person-month (checked on the
        person-months with ``duration <= max_duration``, the ones aggregated).
    """
    if isinstance(max_duration, bool) or not isinstance(max_duration, (int, np.integer)) \
            or max_duration < 0:
        raise ValueError(f"max_duration must be an integer >= 0, got {max_duration!r}")
    if missing_group not in ("own", "drop"):
        raise ValueError(f"missing_group must be 'own' or 'drop', got {missing_group!r}")
    exit_cols = {"work": work_col, "education": education_col, "any": any_col}
    if engine == "duckdb":
        cells = _counts_duckdb(person_months, con, group_col, max_duration, client_col, exit_cols)
    elif engine == "pandas":
        cells = _counts_pandas(person_months, group_col, max_duration, client_col, exit_cols)
    else:
        raise ValueError(f"engine must be 'duckdb' or 'pandas', got {engine!r}")
    return _finish_counts(cells, group_col, missing_group, missing_label, education_col is not None)
