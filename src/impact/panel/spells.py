"""Merge-gap joining of a client's spells and the month segments that expand them.

Three temporary tables, all one pass of window functions over ``trajectories`` (linear
in spells, after DuckDB's sort by client):

``orig``
    one row per input spell: the merged spell it belongs to (``merged_id``, the id of the
    group's first spell), the start of the next input spell of the group, the merged
    end date and exit reason (those of the group's last spell).
``spells``
    one row per merged spell: the first spell's id, client covariates and start date, the
    last spell's end date and exit reason, ``n_orig`` (input spells joined), and the
    integer months ``t_start`` (true start), ``t_exit`` (month of the end date, NULL when
    open) and the at-risk range ``lo .. hi`` clipped to the study window (empty when
    ``lo > hi``: the spell lies outside the window).
``segments``
    the at-risk range of each merged spell cut where a joined input spell starts: input
    spell *i* of a group covers months ``month(start_i) .. month(start_{i+1}) - 1`` (the
    last one to the merged end), clipped to the window, empty pieces dropped. Each
    segment carries the trajectory caseworker and team of its input spell, which is the
    caseworker of those months unless an assignment overrides it. Expanding segments to
    months gives exactly the merged spell's person-months, each once.
"""

from __future__ import annotations

import duckdb

from impact.panel._sql import Inputs, t_of
from impact.panel.params import PanelParams

__all__ = ["build_spells", "SPELL_COLUMNS"]

#: Client covariates carried from the first spell of a merged group to every person-month.
SPELL_COLUMNS = (
    "client_id", "municipality", "birth_year", "sex", "education_level", "household",
    "prior_benefit_months", "ladder_step",
)

_TYPED = """
    CAST(spell_id AS VARCHAR) AS orig_spell_id,
    CAST(client_id AS VARCHAR) AS client_id,
    CAST(municipality AS VARCHAR) AS municipality,
    CAST(caseworker_key AS VARCHAR) AS caseworker_key,
    CAST(team_key AS VARCHAR) AS team_key,
    CAST(start_date AS DATE) AS start_date,
    CAST(end_date AS DATE) AS end_date,
    CAST(exit_reason AS VARCHAR) AS exit_reason,
    CAST(birth_year AS BIGINT) AS birth_year,
    CAST(sex AS VARCHAR) AS sex,
    CAST(education_level AS VARCHAR) AS education_level,
    CAST(household AS VARCHAR) AS household,
    CAST(prior_benefit_months AS BIGINT) AS prior_benefit_months,
    CAST(ladder_step AS BIGINT) AS ladder_step
"""


def _orig_sql(view: str, gap_days: int) -> str:
    order = "ORDER BY start_date, orig_spell_id"
    return f"""
    WITH s AS (SELECT {_TYPED} FROM {view}),
    j AS (
        SELECT *,
            CASE WHEN lag(end_date) OVER w IS NOT NULL
                      AND start_date - lag(end_date) OVER w - 1 < {int(gap_days)}
                      AND municipality = lag(municipality) OVER w
                 THEN 0 ELSE 1 END AS new_spell
        FROM s WINDOW w AS (PARTITION BY client_id {order})
    ),
    g AS (
        SELECT *, sum(new_spell) OVER (
            PARTITION BY client_id {order} ROWS UNBOUNDED PRECEDING) AS grp
        FROM j
    )
    SELECT *,
        first_value(orig_spell_id) OVER gw AS merged_id,
        first_value(start_date) OVER gw AS merged_start,
        lead(start_date) OVER gw AS next_start,
        last_value(end_date) OVER gf AS merged_end,
        last_value(exit_reason) OVER gf AS merged_exit,
        count(*) OVER gf AS n_orig
    FROM g
    WINDOW gw AS (PARTITION BY client_id, grp {order}),
           gf AS (PARTITION BY client_id, grp {order}
                  ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
    """


def build_spells(con: duckdb.DuckDBPyConnection, inputs: Inputs, params: PanelParams) -> None:
    """Create the temporary tables ``orig``, ``spells`` and ``segments`` of this build.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
    inputs : Inputs
        Registered input views (``trajectories`` is used).
    params : PanelParams
        ``merge_gap_days`` and the window.

    Notes
    -----
    Spells of one client, ordered by start date, are joined when
    ``start_date - previous end_date - 1 < merge_gap_days`` (days without benefit) and
    both are paid by the same municipality: a client who moves starts a new spell in the
    new municipality, whose months, caseworkers, programme and shocks are its own.
    A previous spell that is still open never joins (overlap is a validation reject).
    """
    orig, spells, segments = (inputs.name(x) for x in ("orig", "spells", "segments"))
    t0, t1 = params.t_start, params.t_end
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {orig} AS "
        + _orig_sql(inputs["trajectories"], params.merge_gap_days)
    )
    covariates = ", ".join(SPELL_COLUMNS)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {spells} AS
        SELECT merged_id AS spell_id, {covariates},
            caseworker_key, team_key,
            start_date, merged_end AS end_date, merged_exit AS exit_reason, n_orig,
            CAST({t_of('start_date')} AS INTEGER) AS t_start,
            CAST({t_of('merged_end')} AS INTEGER) AS t_exit,
            CAST(greatest({t_of('start_date')}, {t0}) AS INTEGER) AS lo,
            CAST(least(coalesce({t_of('merged_end')}, {t1}), {t1}) AS INTEGER) AS hi
        FROM {orig} WHERE orig_spell_id = merged_id
    """)
    sp_cols = ", ".join(f"sp.{c}" for c in SPELL_COLUMNS)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {segments} AS
        SELECT * FROM (
            SELECT sp.spell_id, {sp_cols}, sp.exit_reason, sp.t_start, sp.t_exit,
                o.caseworker_key, o.team_key,
                CAST(greatest({t_of('o.start_date')}, sp.lo) AS INTEGER) AS seg_lo,
                CAST(least(coalesce({t_of('o.next_start')} - 1, sp.hi), sp.hi) AS INTEGER)
                    AS seg_hi
            FROM {orig} o JOIN {spells} sp ON o.merged_id = sp.spell_id
        ) WHERE seg_lo <= seg_hi
    """)
