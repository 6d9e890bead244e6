"""Pieces: month ranges of a spell over which every person-level attribute is constant.

The segments of :mod:`impact.panel.spells` are cut further wherever a caseworker
assignment starts or stops covering months, and each piece gets its caseworker and
team of the month, region, adoption month and intake caseworker. All of this is
spell-sized work; expanding the pieces to months (in :mod:`impact.panel.build`) then
yields the person-months with no person-month-sized aggregation or join for any of it.

Resolving assignments on intervals instead of months: the caseworker of a month is the
winning assignment among those covering it (later start wins), else the segment's
trajectory caseworker. Neither the set of covering assignments nor the segment changes
between consecutive *boundaries* (a segment start, an assignment's first month, the month
after its last), so the winner is found once per elementary interval between
boundaries: a per-spell join of intervals with that spell's few assignments.
"""

from __future__ import annotations

import duckdb

from impact.panel._sql import Inputs
from impact.panel.caseworker import WINNER_KEY, assignments_sql

__all__ = ["build_pieces"]


def _split_sql(inputs: Inputs) -> str:
    """Segments cut at assignment boundaries, with the caseworker and team of the months."""
    segments, spells = inputs.name("segments"), inputs.name("spells")
    if not inputs.has("caseworker_assignments"):
        return f"SELECT * FROM {segments}"
    return f"""
        WITH a AS (
            SELECT * FROM (
                SELECT a.*, greatest(a.a_lo, a.lo) AS c_lo,
                    least(coalesce(a.a_hi, a.hi), a.hi) AS c_hi
                FROM ({assignments_sql(inputs)}) a
            ) WHERE c_lo <= c_hi
        ),
        pts AS (
            SELECT spell_id, seg_lo AS p FROM {segments}
            UNION SELECT spell_id, c_lo FROM a
            UNION SELECT spell_id, c_hi + 1 FROM a
            UNION SELECT spell_id, hi + 1 FROM {spells} WHERE lo <= hi
        ),
        el AS (
            SELECT * FROM (
                SELECT spell_id, p AS p_lo,
                    lead(p) OVER (PARTITION BY spell_id ORDER BY p) - 1 AS p_hi
                FROM pts
            ) WHERE p_hi IS NOT NULL
        ),
        won AS (
            SELECT el.spell_id, el.p_lo,
                arg_max({{'ck': a.caseworker_key, 'tk': a.team_key}}, {WINNER_KEY}) AS w
            FROM el JOIN a ON a.spell_id = el.spell_id
                AND a.c_lo <= el.p_lo AND el.p_lo <= a.c_hi
            GROUP BY el.spell_id, el.p_lo
        )
        SELECT s.* EXCLUDE (seg_lo, seg_hi, caseworker_key, team_key),
            CAST(el.p_lo AS INTEGER) AS seg_lo, CAST(el.p_hi AS INTEGER) AS seg_hi,
            coalesce(won.w.ck, s.caseworker_key) AS caseworker_key,
            coalesce(won.w.tk, s.team_key) AS team_key
        FROM el
        JOIN {segments} s ON s.spell_id = el.spell_id
            AND s.seg_lo <= el.p_lo AND el.p_lo <= s.seg_hi
        LEFT JOIN won ON won.spell_id = el.spell_id AND won.p_lo = el.p_lo
    """


def build_pieces(con: duckdb.DuckDBPyConnection, inputs: Inputs) -> str:
    """Temporary table ``pieces``: the segments' columns, cut by assignments, plus
    ``region``, ``adopt_t`` (integer adoption month: the team's if the team of the piece
    adopted, else the municipality's), ``intake_caseworker_key`` and ``piece_order``.

    Requires the tables of :func:`~impact.panel.spells.build_spells`,
    :func:`~impact.panel.caseworker.build_intake` and
    :func:`~impact.panel.context.build_adoption`.
    """
    name = inputs.name("pieces")
    # piece_order: the pieces numbered by (municipality, spell_id, first month); a spell's
    # pieces do not overlap, so ordering person-months by (piece_order, t) is ordering them
    # by (municipality, spell_id, t) on two integers instead of strings (build_panel)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {name} AS
        SELECT x.*, reg.region, coalesce(ta.adopt_t, ma.adopt_t) AS adopt_t,
            it.intake_caseworker_key,
            row_number() OVER (ORDER BY x.municipality, x.spell_id, x.seg_lo) AS piece_order
        FROM ({_split_sql(inputs)}) x
        LEFT JOIN (
            SELECT CAST(municipality AS VARCHAR) AS municipality,
                min(CAST(region AS VARCHAR)) AS region
            FROM {inputs['municipalities']} GROUP BY 1
        ) reg ON reg.municipality = x.municipality
        LEFT JOIN {inputs.name('team_adopt')} ta ON ta.team_key = x.team_key
        LEFT JOIN {inputs.name('muni_adopt')} ma ON ma.municipality = x.municipality
        LEFT JOIN {inputs.name('intake')} it ON it.spell_id = x.spell_id
    """)
    return name
