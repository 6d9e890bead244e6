"""Municipality x month context: region, labour market, adoption, shocks.

All of these vary by municipality (or its region, or a team) and month only, so they
are computed once on a grid of (municipalities with person-months) x (window months),
a few tens of thousands of rows at national scale, and hash-joined to the panel.
"""

from __future__ import annotations

import duckdb

from impact.panel._sql import Inputs, lit, t_of
from impact.panel.params import PanelParams

__all__ = ["build_adoption", "build_context", "lm_columns"]


def lm_columns(params: PanelParams) -> list[str]:
    """Names of the labour-market columns, ``lm_<indicator>_muni`` then ``_region``."""
    return [f"lm_{i}_{level}" for i in params.indicators for level in ("muni", "region")]


def _lm_long_sql(inputs: Inputs) -> str:
    """``(area, t0, plen, indicator, value)``: one row per value and its month span.

    The validated table has ``month`` (already expanded to months, ``plen = 1``); a raw
    ``period`` column (``YYYY-MM``, ``YYYY-Qn``, ``YYYY``) is expanded here so the panel
    also accepts an unexpanded table.
    """
    view = inputs["labour_market"]
    common = "CAST(area AS VARCHAR) AS area, CAST(indicator AS VARCHAR) AS indicator, " \
             "CAST(value AS DOUBLE) AS value"
    if inputs.lm_has_month:
        return f"SELECT {common}, {t_of('month')} AS t0, 1 AS plen FROM {view}"
    p = "upper(trim(CAST(period AS VARCHAR)))"
    year = f"CAST(substr({p}, 1, 4) AS INTEGER)"
    return f"""
        SELECT {common},
            CASE WHEN regexp_full_match({p}, '\\d{{4}}-\\d{{2}}')
                     THEN {year} * 12 + CAST(substr({p}, 6, 2) AS INTEGER) - 1
                 WHEN regexp_full_match({p}, '\\d{{4}}-Q[1-4]')
                     THEN {year} * 12 + (CAST(substr({p}, 7, 1) AS INTEGER) - 1) * 3
                 WHEN regexp_full_match({p}, '\\d{{4}}') THEN {year} * 12 END AS t0,
            CASE WHEN regexp_full_match({p}, '\\d{{4}}-\\d{{2}}') THEN 1
                 WHEN regexp_full_match({p}, '\\d{{4}}-Q[1-4]') THEN 3 ELSE 12 END AS plen
        FROM {view}
    """


def _lm_wide_sql(inputs: Inputs, params: PanelParams) -> str:
    """``(area, t, <indicator>...)`` for the window; the finest period wins a clash."""
    cols = ", ".join(
        f"arg_min(value, {{'plen': plen, 'v': value}}) FILTER (WHERE indicator = {lit(i)})"
        f' AS "{i}"'
        for i in params.indicators
    )
    wanted = ", ".join(lit(i) for i in params.indicators)
    return f"""
        SELECT l.area, CAST(r.t AS INTEGER) AS t, {cols}
        FROM ({_lm_long_sql(inputs)}) l, range(l.t0, l.t0 + l.plen) r(t)
        WHERE l.t0 IS NOT NULL AND l.value IS NOT NULL AND l.indicator IN ({wanted})
          AND r.t BETWEEN {params.t_start} AND {params.t_end}
        GROUP BY l.area, r.t
    """


def _shock_sql(inputs: Inputs, params: PanelParams) -> str:
    """Shock per municipality x month: the most recent past event (event time >= 0), else
    the nearest coming one; ties go to the later date, then the smaller id. A month after
    one opening and before the next thus stays in the first opening's post-period."""
    if not inputs.has("shocks"):
        return ("SELECT NULL::VARCHAR AS municipality, NULL::INTEGER AS t, "
                "NULL::VARCHAR AS shock_id, NULL::INTEGER AS shock_event_time WHERE false")
    lo, hi = params.shock_event_window
    return f"""
        SELECT municipality, t, shock_id, shock_event_time FROM (
            SELECT s.municipality, CAST(r.t AS INTEGER) AS t, s.shock_id,
                CAST(r.t - s.ts AS INTEGER) AS shock_event_time,
                row_number() OVER (PARTITION BY s.municipality, r.t
                                   ORDER BY (r.t < s.ts), abs(r.t - s.ts), s.d DESC,
                                            s.shock_id) AS rn
            FROM (
                SELECT CAST(municipality AS VARCHAR) AS municipality,
                    CAST(shock_id AS VARCHAR) AS shock_id, CAST(date AS DATE) AS d,
                    {t_of('date')} AS ts
                FROM {inputs['shocks']}
                WHERE type = {lit(params.shock_type)} AND date IS NOT NULL
            ) s,
            range(greatest(s.ts + {lo}, {params.t_start}),
                  least(s.ts + {hi}, {params.t_end}) + 1) r(t)
        ) WHERE rn = 1
    """


def build_context(con: duckdb.DuckDBPyConnection, inputs: Inputs, params: PanelParams) -> str:
    """Temporary table ``ctx``: one row per municipality (with person-months) x month.

    Columns: ``municipality, t, region``, the :func:`lm_columns`, ``muni_adopt_t``
    (integer adoption month of a municipality-wide adoption of ``params.programme``,
    the earliest if several), ``shock_id, shock_event_time``.
    """
    name = inputs.name("ctx")
    lm_select = "".join(
        f', lm_m."{i}" AS lm_{i}_muni, lm_r."{i}" AS lm_{i}_region' for i in params.indicators
    )
    lm_join = ""
    if params.indicators:
        lm_join = """
            LEFT JOIN lmw lm_m ON lm_m.area = g.municipality AND lm_m.t = g.t
            LEFT JOIN lmw lm_r ON lm_r.area = reg.region AND lm_r.t = g.t"""
    lm_cte = f"lmw AS ({_lm_wide_sql(inputs, params)})," if params.indicators else ""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {name} AS
        WITH {lm_cte}
        g AS (
            SELECT m.municipality, CAST(r.t AS INTEGER) AS t
            FROM (SELECT DISTINCT municipality FROM {inputs.name('segments')}) m,
                range({params.t_start}, {params.t_end} + 1) r(t)
        ),
        reg AS (
            SELECT CAST(municipality AS VARCHAR) AS municipality,
                min(CAST(region AS VARCHAR)) AS region
            FROM {inputs['municipalities']} GROUP BY 1
        ),
        ad AS (SELECT * FROM {inputs.name('muni_adopt')}),
        sh AS ({_shock_sql(inputs, params)})
        SELECT g.municipality, g.t, reg.region{lm_select},
            ad.adopt_t AS muni_adopt_t, sh.shock_id, sh.shock_event_time
        FROM g
        LEFT JOIN reg ON reg.municipality = g.municipality{lm_join}
        LEFT JOIN ad ON ad.municipality = g.municipality
        LEFT JOIN sh ON sh.municipality = g.municipality AND sh.t = g.t
        ORDER BY g.municipality, g.t
    """)
    return name


def build_adoption(con: duckdb.DuckDBPyConnection, inputs: Inputs, params: PanelParams) -> None:
    """Temporary tables ``team_adopt(team_key, adopt_t)`` and ``muni_adopt(municipality,
    adopt_t)``: integer adoption months of ``params.programme``, from the rows with a
    ``team_key`` and the rows without one (municipality-wide); the earliest if several.
    Empty when there is no adoption table.
    """
    for unit, cond in (("team_key", "team_key IS NOT NULL"), ("municipality", "team_key IS NULL")):
        name = inputs.name("team_adopt" if unit == "team_key" else "muni_adopt")
        if inputs.has("adoption"):
            body = f"""
                SELECT CAST({unit} AS VARCHAR) AS {unit},
                    CAST(min({t_of('adoption_date')}) AS INTEGER) AS adopt_t
                FROM {inputs['adoption']}
                WHERE programme = {lit(params.programme)} AND {cond}
                  AND adoption_date IS NOT NULL
                GROUP BY 1
            """
        else:
            body = f"SELECT NULL::VARCHAR AS {unit}, NULL::INTEGER AS adopt_t WHERE false"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {body}")
