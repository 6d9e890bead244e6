"""Build the person-month risk set and the municipality x month cells in DuckDB.

The panel is defined once, as a temporary view over small materialised tables
(merged spells cut into pieces of constant attributes, caseworker x month quality,
municipality x month context): the view expands the pieces to months and hash-joins
the two month-varying tables. ``build_panel`` evaluates it once, to aggregate the
cells, and the stage script evaluates it once more when it writes ``person_months``.
Nothing person-month sized ever enters pandas or a table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import duckdb

from impact.panel._sql import Inputs, month_of_t, register_inputs
from impact.panel.caseworker import build_intake, build_quality
from impact.panel.cells import build_cells, summarise
from impact.panel.context import build_adoption, build_context, lm_columns
from impact.panel.expand import PanelSource
from impact.panel.params import PanelParams
from impact.panel.pieces import build_pieces
from impact.panel.spells import build_spells

__all__ = ["PanelResult", "build_panel", "connect", "person_month_columns", "PERSON_MONTH_COLUMNS",
           "TAIL_COLUMNS"]

#: Columns of ``person_months`` before the ``lm_*`` columns (architecture.md, "Panel"),
#: with the additions ``intake_caseworker_key`` and ``intake_quality_score`` at the end.
PERSON_MONTH_COLUMNS = (
    "spell_id", "client_id", "municipality", "region", "month", "t", "duration", "age",
    "sex", "education_level", "household", "prior_benefit_months", "ladder_step",
    "left_truncated", "caseworker_key", "team_key", "exit_work", "exit_any",
    "quality_score", "quality_a", "quality_b", "quality_n",
)
TAIL_COLUMNS = (
    "adoption_month", "adopted", "shock_id", "shock_event_time",
    "intake_caseworker_key", "intake_quality_score", "exit_education",
)


def person_month_columns(params: PanelParams) -> list[str]:
    """The columns of ``person_months``, in order, for these params."""
    return [*PERSON_MONTH_COLUMNS, *lm_columns(params), *TAIL_COLUMNS]


@dataclass(frozen=True)
class PanelResult:
    """The panel stage's result.

    Attributes
    ----------
    person_months : duckdb.DuckDBPyRelation
        Lazy relation, one row per merged spell x calendar month at risk in the window,
        ordered by ``municipality, spell_id, month``. Columns: ``PERSON_MONTH_COLUMNS``, then
        ``lm_<indicator>_muni, lm_<indicator>_region`` per indicator, then
        ``TAIL_COLUMNS`` (see :func:`build_panel`).
    cells : duckdb.DuckDBPyRelation
        One row per municipality (with at least one person-month) x every month of the
        window, ordered by ``municipality, month``; see :func:`impact.panel.cells.build_cells`.
    summary : dict
        JSON-serialisable counts; see :func:`impact.panel.cells.summarise`.
    params : PanelParams
    source : PanelSource or None
        The tables behind ``person_months``, for
        :func:`impact.panel.expand.write_person_months` (which writes the same rows
        without sorting them).
    """

    person_months: duckdb.DuckDBPyRelation
    cells: duckdb.DuckDBPyRelation
    summary: dict[str, Any] = field(default_factory=dict)
    params: PanelParams = field(default_factory=PanelParams)
    source: PanelSource | None = None


def connect(params: PanelParams, spill_dir: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection bounded by ``panel.memory_limit`` and ``panel.threads``.

    Beyond the limit DuckDB spills joins, sorts and aggregates to ``spill_dir`` (default
    its own ``.tmp`` beside the working directory; the stage passes a temporary folder).
    Settings: https://duckdb.org/docs/configuration/overview (``memory_limit``,
    ``threads``, ``temp_directory``).
    """
    from impact.spill import RELEASE

    config: dict[str, Any] = dict(RELEASE)  # freed memory back to the system
    if params.memory_limit:
        config["memory_limit"] = params.memory_limit
    if params.threads:
        config["threads"] = params.threads
    if spill_dir:
        config["temp_directory"] = spill_dir
    return duckdb.connect(config=config)


def _person_months_sql(inputs: Inputs, params: PanelParams, quality: str | None) -> str:
    """Pieces expanded to months, joined to the context and to quality on ``t``."""
    adopted = "coalesce(p.t >= p.adopt_t, false)" if inputs.has("adoption") else "NULL"
    if quality is None:
        q_cols = ("NULL::DOUBLE AS quality_score, NULL::DOUBLE AS quality_a, "
                  "NULL::DOUBLE AS quality_b, NULL::INTEGER AS quality_n")
        qi_col, q_join = "NULL::DOUBLE", ""
    else:
        q_cols = ("q.quality_score, q.quality_a, q.quality_b, "
                  "CAST(coalesce(q.quality_n, 0) AS INTEGER) AS quality_n")
        qi_col = "qi.quality_score"
        q_join = f"""
        LEFT JOIN {quality} q ON q.caseworker_key = p.caseworker_key AND q.t = p.t
        LEFT JOIN {quality} qi ON qi.caseworker_key = p.intake_caseworker_key
                              AND qi.t = p.t"""
    lm = "".join(f", ctx.{c}" for c in lm_columns(params))
    return f"""
        SELECT p.spell_id, p.client_id, p.municipality, p.region,
            {month_of_t('p.t')} AS month, p.t,
            CAST(p.t - p.t_start AS INTEGER) AS duration,
            CAST(p.t // 12 - p.birth_year AS INTEGER) AS age,
            p.sex, p.education_level, p.household, p.prior_benefit_months, p.ladder_step,
            CAST(p.t_start < {params.t_start} AS TINYINT) AS left_truncated,
            p.caseworker_key, p.team_key,
            CAST(coalesce(p.t = p.t_exit AND p.exit_reason = 'work', false) AS TINYINT)
                AS exit_work,
            CAST(coalesce(p.t = p.t_exit, false) AS TINYINT) AS exit_any,
            {q_cols}
            {lm},
            {month_of_t('p.adopt_t')} AS adoption_month,
            CAST({adopted} AS TINYINT) AS adopted,
            ctx.shock_id, ctx.shock_event_time,
            p.intake_caseworker_key,
            {qi_col} AS intake_quality_score,
            CAST(coalesce(p.t = p.t_exit AND p.exit_reason = 'education', false) AS TINYINT)
                AS exit_education,
            p.piece_order
        FROM (
            SELECT pc.*, CAST(r.t AS INTEGER) AS t
            FROM {inputs.name('pieces')} pc, range(pc.seg_lo, pc.seg_hi + 1) r(t)
        ) p
        LEFT JOIN {inputs.name('ctx')} ctx
            ON ctx.municipality = p.municipality AND ctx.t = p.t{q_join}
    """


def build_panel(
    con: duckdb.DuckDBPyConnection,
    tables: Mapping[str, Any],
    params: PanelParams,
) -> PanelResult:
    """Build the person-month risk set and municipality x month cells.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        Connection the relations in ``tables`` belong to. Temporary views and tables
        named ``_impact_panel_<id>_*`` are created on it; the returned relations read
        them, so keep ``con`` open until they are written.
    tables : mapping of str to duckdb.DuckDBPyRelation
        The validated tables (architecture.md, "Validated tables"): ``trajectories``,
        ``municipalities`` and ``labour_market`` are required; ``caseworker_assignments``,
        ``quality``, ``adoption`` and ``shocks`` are optional (missing or None: their
        columns are present and NULL). pandas / Arrow tables are accepted too.
    params : PanelParams

    Returns
    -------
    PanelResult
        ``person_months`` (lazy), ``cells`` (materialised, small), ``summary``.

    Raises
    ------
    PanelInputError
        A required table or a needed column is missing.

    Notes
    -----
    Person-month columns (architecture.md, "Panel"; additions marked +):

    - ``spell_id, client_id, municipality, region`` -- the merged spell (first input
      spell's id and covariates); ``month`` (date), ``t = year*12 + month - 1``.
    - ``duration = t - t(start_date)`` from the true start; ``age = year - birth_year``;
      ``left_truncated = 1`` when the start lies before ``params.start``.
    - ``caseworker_key, team_key`` -- caseworker of the month: the winning assignment
      covering the month (later start wins), else the trajectory's caseworker of the
      joined input spell that started last on or before the month. A NULL key in the
      winning assignment keeps the trajectory's key.
    - ``exit_work, exit_any`` -- 1 in the month of the merged end date, if inside the
      window; ``exit_work`` only when the (last spell's) exit reason is ``work``.
    - ``quality_score, quality_a, quality_b, quality_n`` -- see
      :func:`impact.panel.caseworker.build_quality` (``quality_n`` 0 when no
      measurement is near, NULL when there is no quality table).
    - ``lm_<i>_muni, lm_<i>_region`` per indicator ``i``.
    - ``adoption_month`` (team-level adoption of the team of the month, else the
      municipality's), ``adopted = month >= adoption_month`` (0 when never adopted, NULL
      without an adoption table); ``shock_id, shock_event_time``.
    - + ``intake_caseworker_key``: caseworker of the month of the true start (for the
      design's intake-caseworker variant); + ``intake_quality_score``: that
      caseworker's ``quality_score`` in this month; + ``exit_education``: as
      ``exit_work`` for exit reason ``education`` (outcomes beyond work, issue 9).
    """
    inputs = register_inputs(con, tables)
    build_spells(con, inputs, params)
    build_adoption(con, inputs, params)
    build_context(con, inputs, params)
    build_intake(con, inputs)
    build_pieces(con, inputs)
    quality = build_quality(con, inputs, params)
    view = inputs.name("person_months")
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {view} AS {_person_months_sql(inputs, params, quality)}"
    )
    cells = build_cells(con, inputs, params, view)
    summary = summarise(con, inputs, params, cells)
    # by municipality first: a batch read from the file then holds one or two of them, so
    # the passes that add up cluster blocks (by municipality or region) make a few large
    # blocks per batch, not one small block per municipality (docs/performance.md);
    # a spell has one municipality, so its months stay together and in order. The order
    # is (municipality, spell_id, t), sorted on the pieces' integer order (build_pieces):
    # at national size the sort of 63 million rows on the strings took 14 s more
    person_months = con.sql(
        f"SELECT * EXCLUDE (piece_order) FROM {view} ORDER BY piece_order, t")
    return PanelResult(
        person_months=person_months,
        cells=con.sql(f"SELECT * FROM {cells} ORDER BY municipality, t"),
        summary=summary,
        params=params,
        source=PanelSource(con, inputs, params, quality, view),
    )
