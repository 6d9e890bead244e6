"""Municipality x month aggregates of the panel, and the panel's summary counts."""

from __future__ import annotations

from typing import Any

import duckdb

from impact.panel._sql import OPTIONAL, Inputs, exact_sum, month_of_t
from impact.panel.context import lm_columns
from impact.panel.params import PanelParams

__all__ = ["build_cells", "cell_columns", "summarise", "DURATION_BANDS"]

#: Duration bands (months since true start, inclusive) of the ``share_dur_*`` columns.
DURATION_BANDS = {
    "share_dur_0_5": (0, 5), "share_dur_6_11": (6, 11), "share_dur_12_23": (12, 23),
    "share_dur_24_59": (24, 59), "share_dur_60p": (60, None),
}
# person-month shares: column -> condition (integer sums divided by counts are exact,
# so the cells are byte-identical across runs and thread counts)
_SHARES = {
    "share_female": "sex = 'F'",
    "share_edu_low": "education_level = 'low'",
    "share_edu_high": "education_level = 'high'",
    "share_single_parent": "household = 'single_parent'",
    "share_couple_children": "household = 'couple_children'",
    **{
        k: f"duration BETWEEN {lo} AND {hi}" if hi is not None else f"duration >= {lo}"
        for k, (lo, hi) in DURATION_BANDS.items()
    },
    "share_left_truncated": "left_truncated = 1",
}


def cell_columns(params: PanelParams) -> list[str]:
    """The columns of ``cells``, in order, for these params."""
    return [
        "municipality", "region", "month", "t", "person_months", "clients", "exits_work",
        "exits_any", "mean_age", *_SHARES, "mean_prior_benefit_months", "mean_quality_score",
        "measured_person_months", *lm_columns(params), "adoption_month", "adopted",
        "adopted_share", "shock_id", "shock_event_time",
    ]


def _share(cond: str) -> str:
    return f"sum(CASE WHEN {cond} THEN 1 ELSE 0 END) / count(*)"


def _clients_sql(pieces: str) -> str:
    """Distinct clients per municipality and month, from the pieces instead of the
    person-months (``count(DISTINCT client_id)`` over the 63 million national
    person-months took 10 of the panel stage's 65 s, measured alone: the stage runs with
    nothing beside it, at the head of the run).

    A person-month is a piece's month (``build._person_months_sql`` expands each piece over
    ``seg_lo .. seg_hi``), so a client is in a municipality-month when one of its pieces
    there covers the month. A client's pieces in a municipality are merged where they
    share a month (sorted by first month, a new run starts after the months of every
    earlier one: spells of one client that overlap, or meet in a month when the panel did
    not join them); each merged run then counts once in each of its months, by +1 at its
    first month and -1 after its last, summed over the months in order (``build_cells``).
    Both windows order the pieces by ``piece_order`` after their months: two pieces with
    the same months must come in the same order in both, or a run could take in the other
    one's gap (DuckDB's parallel sort keeps no order among ties). The same integers as the
    distinct count: ``tests/panel/test_panel_cells.py``."""
    return f"""
        WITH iv AS (
            SELECT client_id, municipality, seg_lo AS lo, seg_hi AS hi, piece_order,
                max(seg_hi) OVER (PARTITION BY client_id, municipality
                                  ORDER BY seg_lo, seg_hi, piece_order
                                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before_hi
            FROM {pieces}
            WHERE client_id IS NOT NULL AND municipality IS NOT NULL AND seg_lo <= seg_hi
        ), runs AS (
            SELECT client_id, municipality, lo, hi,
                sum(CASE WHEN before_hi IS NULL OR lo > before_hi THEN 1 ELSE 0 END)
                    OVER (PARTITION BY client_id, municipality ORDER BY lo, hi, piece_order
                          ROWS UNBOUNDED PRECEDING) AS run
            FROM iv
        ), merged AS (
            SELECT municipality, min(lo) AS lo, max(hi) AS hi
            FROM runs GROUP BY client_id, municipality, run
        )
        SELECT municipality, t, sum(d) AS d FROM (
            SELECT municipality, lo AS t, 1 AS d FROM merged
            UNION ALL SELECT municipality, hi + 1 AS t, -1 AS d FROM merged
        ) GROUP BY municipality, t
    """


def build_cells(
    con: duckdb.DuckDBPyConnection, inputs: Inputs, params: PanelParams, person_months: str
) -> str:
    """Temporary table of the cells: one row per municipality x month of the window.

    Municipalities are those with at least one person-month; every month of the window
    is present (``person_months = 0`` and NULL means where nobody was at risk).
    ``person_months``: the view of ``inputs``' pieces expanded to months
    (``build._person_months_sql``; the distinct clients come from the pieces).

    Columns: ``municipality, region, month, t, person_months, clients`` (+, distinct
    clients), ``exits_work, exits_any``, ``mean_age``, the ``share_*`` columns (shares of
    person-months), ``mean_prior_benefit_months``, ``mean_quality_score`` (over measured
    person-months), ``measured_person_months`` (+), the ``lm_*`` columns,
    ``adoption_month`` and ``adopted`` (municipality-wide adoption only),
    ``adopted_share`` (+, share of person-months adopted, which includes team-level
    adoption), ``shock_id, shock_event_time`` (+).
    """
    name = inputs.name("cells")
    shares = ",\n".join(f"{_share(c)} AS {k}" for k, c in _SHARES.items())
    lm = "".join(f", g.{c}" for c in lm_columns(params))
    adopted = "coalesce(g.t >= g.muni_adopt_t, false)" if inputs.has("adoption") else "NULL"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {name} AS
        WITH a AS (
            SELECT municipality, t,
                count(*) AS person_months,
                sum(exit_work) AS exits_work,
                sum(exit_any) AS exits_any,
                sum(age) / count(age) AS mean_age,
                {shares},
                sum(prior_benefit_months) / count(prior_benefit_months)
                    AS mean_prior_benefit_months,
                {exact_sum('quality_score')} / count(quality_score) AS mean_quality_score,
                count(quality_score) AS measured_person_months,
                sum(adopted) / count(adopted) AS adopted_share
            FROM {person_months}
            GROUP BY municipality, t
        ), d AS ({_clients_sql(inputs.name("pieces"))}
        ), c AS (
            -- the changes summed up to each month: ctx adds a 0 at every month of the
            -- grid, so each has a row
            SELECT municipality, t, sum(sum(d)) OVER (PARTITION BY municipality ORDER BY t
                                                      ROWS UNBOUNDED PRECEDING) AS clients
            FROM (SELECT municipality, t, d FROM d
                  UNION ALL SELECT municipality, t, 0 AS d FROM {inputs.name('ctx')})
            GROUP BY municipality, t
        )
        SELECT g.municipality, g.region, {month_of_t('g.t')} AS month, g.t,
            CAST(coalesce(a.person_months, 0) AS BIGINT) AS person_months,
            CAST(coalesce(c.clients, 0) AS BIGINT) AS clients,
            CAST(coalesce(a.exits_work, 0) AS BIGINT) AS exits_work,
            CAST(coalesce(a.exits_any, 0) AS BIGINT) AS exits_any,
            a.* EXCLUDE (municipality, t, person_months, exits_work, exits_any,
                         measured_person_months, adopted_share),
            CAST(coalesce(a.measured_person_months, 0) AS BIGINT) AS measured_person_months
            {lm},
            {month_of_t('g.muni_adopt_t')} AS adoption_month,
            CAST({adopted} AS TINYINT) AS adopted,
            a.adopted_share,
            g.shock_id, g.shock_event_time
        FROM {inputs.name('ctx')} g
        LEFT JOIN a ON a.municipality = g.municipality AND a.t = g.t
        LEFT JOIN c ON c.municipality = g.municipality AND c.t = g.t
        ORDER BY g.municipality, g.t
    """)
    return name


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple:
    return con.sql(sql).fetchall()[0]


def summarise(
    con: duckdb.DuckDBPyConnection, inputs: Inputs, params: PanelParams, cells: str
) -> dict[str, Any]:
    """Summary counts of the panel (JSON-serialisable, exact integers).

    Keys: ``spells`` (merged spells with at least one month at risk in the window),
    ``person_months``, ``merged_spells`` (joins made by merge-gap joining),
    ``input_spells``, ``spells_after_merge``, ``spells_outside_window``, ``clients``,
    ``municipalities``, ``months``, ``left_truncated_spells``, ``censored_spells``
    (in the window and not ended by ``params.end``), ``exits_work``, ``exits_any``,
    ``measured_person_months``, ``measured_share`` (share of person-months with a
    ``quality_score``; None without quality table or person-months),
    ``adopted_share``, ``shock_person_months``, ``lm_missing_share`` (per ``lm_*``
    column, share of person-months with no value), ``assignments_unmatched``,
    ``tables_present`` (optional tables handed in), ``params``.
    """
    spells, orig = inputs.name("spells"), inputs.name("orig")
    n_input, n_after = _one(con, f"SELECT count(*), count(DISTINCT merged_id) FROM {orig}")
    inwin, clients, munis, lt, cens = _one(con, f"""
        SELECT count(*), count(DISTINCT client_id), count(DISTINCT municipality),
            count(*) FILTER (WHERE t_start < {params.t_start}),
            count(*) FILTER (WHERE t_exit IS NULL OR t_exit > {params.t_end})
        FROM {spells} WHERE lo <= hi
    """)
    lm_cols = lm_columns(params)
    lm_sums = "".join(
        f", sum(CASE WHEN {c} IS NULL THEN person_months ELSE 0 END)" for c in lm_cols
    )
    row = _one(con, f"""
        SELECT sum(person_months), sum(exits_work), sum(exits_any),
            sum(measured_person_months),
            sum(CASE WHEN adopted_share IS NOT NULL THEN adopted_share * person_months END),
            sum(CASE WHEN shock_event_time IS NOT NULL THEN person_months ELSE 0 END)
            {lm_sums}
        FROM {cells}
    """)
    pm, ew, ea, measured, adopted, shock_pm = (int(round(x or 0)) for x in row[:6])
    unmatched = None
    if inputs.has("caseworker_assignments"):
        unmatched = int(_one(con, f"""
            SELECT count(*) FROM {inputs['caseworker_assignments']} a
            ANTI JOIN {orig} o ON o.orig_spell_id = CAST(a.spell_id AS VARCHAR)
        """)[0])
    has_q, has_a = inputs.has("quality"), inputs.has("adoption")
    return {
        "spells": int(inwin),
        "person_months": pm,
        "merged_spells": int(n_input - n_after),
        "input_spells": int(n_input),
        "spells_after_merge": int(n_after),
        "spells_outside_window": int(n_after - inwin),
        "clients": int(clients),
        "municipalities": int(munis),
        "months": params.n_months,
        "left_truncated_spells": int(lt),
        "censored_spells": int(cens),
        "exits_work": ew,
        "exits_any": ea,
        "measured_person_months": measured if has_q else None,
        "measured_share": measured / pm if has_q and pm else None,
        "adopted_share": adopted / pm if has_a and pm else None,
        "shock_person_months": shock_pm,
        "lm_missing_share": {
            c: (int(v or 0) / pm if pm else None) for c, v in zip(lm_cols, row[6:])
        },
        "assignments_unmatched": unmatched,
        "tables_present": sorted(t for t in OPTIONAL if inputs.has(t)),
        "params": params.to_dict(),
    }
