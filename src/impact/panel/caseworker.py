"""Caseworker assignments, intake caseworker, and caseworker quality by month.

Everything here is computed on tables far smaller than the person-month panel
(assignments, spells, caseworker x month); :mod:`impact.panel.pieces` resolves which
assignment holds in which month, and quality is hash-joined to the panel on
``(caseworker_key, t)``.
"""

from __future__ import annotations

import duckdb

from impact.panel._sql import Inputs, lit, t_of
from impact.panel.params import PanelParams

__all__ = ["assignments_sql", "build_intake", "build_quality", "WINNER_KEY"]

# Which assignment wins where several cover a month: the later start_date; among equal
# starts the later end (open = latest), then the larger keys (only for determinism).
WINNER_KEY = """{'sd': a.start_date,
                  'ed': coalesce(a.end_date, DATE '9999-12-31'),
                  'ck': coalesce(a.caseworker_key, ''), 'tk': coalesce(a.team_key, '')}"""


def assignments_sql(inputs: Inputs) -> str:
    """Assignments mapped to merged spells with their covered month range ``a_lo..a_hi``.

    An assignment covers ``month(start_date) .. month(end_date)``; an open one (NULL
    end) until the end month of its own input spell (data contract: "null = until the
    spell ends"), or the window end while that spell is open.
    Assignments of spells joined into a merged spell count for the merged spell.
    """
    return f"""
        SELECT o.merged_id AS spell_id, sp.lo, sp.hi, sp.t_start,
            CAST(x.caseworker_key AS VARCHAR) AS caseworker_key,
            CAST(x.team_key AS VARCHAR) AS team_key,
            CAST(x.start_date AS DATE) AS start_date,
            CAST(x.end_date AS DATE) AS end_date,
            {t_of('x.start_date')} AS a_lo,
            {t_of('coalesce(CAST(x.end_date AS DATE), o.end_date, sp.end_date)')} AS a_hi
        FROM {inputs['caseworker_assignments']} x
        JOIN {inputs.name('orig')} o ON o.orig_spell_id = CAST(x.spell_id AS VARCHAR)
        JOIN {inputs.name('spells')} sp ON sp.spell_id = o.merged_id
        WHERE x.start_date IS NOT NULL
    """


def build_intake(con: duckdb.DuckDBPyConnection, inputs: Inputs) -> str:
    """Temporary table ``intake(spell_id, intake_caseworker_key)``.

    The caseworker of the month of the spell's true start, by the same rules as the
    caseworker of the month (an assignment covering that month, else the trajectory's
    caseworker of the input spell that started last in that month), also when that
    month lies before the study window.
    """
    name, orig = inputs.name("intake"), inputs.name("orig")
    base = f"""
        SELECT merged_id AS spell_id,
            arg_max({{'ck': caseworker_key}}, {{'sd': start_date, 'id': orig_spell_id}}).ck
                AS base_ck
        FROM {orig}
        WHERE {t_of('start_date')} = {t_of('merged_start')}
        GROUP BY merged_id
    """
    if inputs.has("caseworker_assignments"):
        assigned = f"""
            SELECT a.spell_id, arg_max({{'ck': a.caseworker_key}}, {WINNER_KEY}).ck AS a_ck
            FROM ({assignments_sql(inputs)}) a
            WHERE a.a_lo <= a.t_start AND (a.a_hi IS NULL OR a.a_hi >= a.t_start)
            GROUP BY a.spell_id
        """
    else:
        assigned = "SELECT NULL::VARCHAR AS spell_id, NULL::VARCHAR AS a_ck WHERE false"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {name} AS
        SELECT b.spell_id, coalesce(a.a_ck, b.base_ck) AS intake_caseworker_key
        FROM ({base}) b LEFT JOIN ({assigned}) a USING (spell_id)
    """)
    return name


def build_quality(
    con: duckdb.DuckDBPyConnection, inputs: Inputs, params: PanelParams
) -> str | None:
    """Temporary table of quality per caseworker x month of the window.

    Columns ``caseworker_key, t, quality_score, quality_a, quality_b, quality_n``: over
    the caseworker's measurements (``unit_type = 'caseworker'``, ``instrument =
    params.quality_instrument``) dated in months ``t - w .. t + w``, the mean score, the
    means over odd- and even-numbered sessions and the number of measurements. A
    session is one ``(unit_key, date)``; sessions are numbered 1, 2, ... by date per
    caseworker over all dates (not only those in the window). Rows exist only where
    ``quality_n > 0``. Returns None when there is no ``quality`` table.

    Notes
    -----
    Cost: measurements are first summed per caseworker x measurement month, and each
    such sum is spread over the ``2w + 1`` months it counts for; caseworker-months are
    far fewer than person-months.
    """
    if not inputs.has("quality"):
        return None
    name, w = inputs.name("quality_cm"), params.quality_window_months
    t0, t1 = params.t_start, params.t_end
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {name} AS
        WITH q AS (
            SELECT CAST(unit_key AS VARCHAR) AS ck, CAST(date AS DATE) AS d,
                CAST(score AS DECIMAL(38, 12)) AS score
            FROM {inputs['quality']}
            WHERE unit_type = 'caseworker'
              AND instrument = {lit(params.quality_instrument)}
              AND unit_key IS NOT NULL AND date IS NOT NULL AND score IS NOT NULL
        ),
        sess AS (
            SELECT ck, d, row_number() OVER (PARTITION BY ck ORDER BY d) % 2 = 1 AS odd
            FROM (SELECT DISTINCT ck, d FROM q)
        ),
        cm AS (
            SELECT q.ck, {t_of('q.d')} AS tm,
                sum(q.score) AS s, count(*) AS n,
                sum(q.score) FILTER (WHERE sess.odd) AS sa,
                count(*) FILTER (WHERE sess.odd) AS na,
                sum(q.score) FILTER (WHERE NOT sess.odd) AS sb,
                count(*) FILTER (WHERE NOT sess.odd) AS nb
            FROM q JOIN sess USING (ck, d)
            GROUP BY q.ck, tm
        )
        SELECT cm.ck AS caseworker_key, CAST(r.t AS INTEGER) AS t,
            CAST(sum(s) AS DOUBLE) / sum(n) AS quality_score,
            CAST(sum(sa) AS DOUBLE) / nullif(sum(na), 0) AS quality_a,
            CAST(sum(sb) AS DOUBLE) / nullif(sum(nb), 0) AS quality_b,
            CAST(sum(n) AS INTEGER) AS quality_n
        FROM cm, range(greatest(cm.tm - {w}, {t0}), least(cm.tm + {w}, {t1}) + 1) r(t)
        GROUP BY cm.ck, r.t
    """)
    return name

