"""Small SQL helpers shared by the panel modules: literals, month arithmetic, inputs.

The panel works on an integer month ``t = year * 12 + month - 1`` throughout (integer
joins and ranges are cheap and exact) and turns it back into a date only on output.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

import duckdb

from impact.spill import literal as lit  # noqa: F401 (re-exported: the SQL string literal)
from impact.stage import UserError

__all__ = [
    "PanelInputError",
    "Inputs",
    "lit",
    "t_of",
    "month_of_t",
    "exact_sum",
    "register_inputs",
    "REQUIRED",
    "OPTIONAL",
]


class PanelInputError(UserError, ValueError):
    """A validated table handed to the panel lacks a table or column it needs."""


#: Columns the panel reads from each validated table (architecture.md, "Validated tables").
REQUIRED: dict[str, tuple[str, ...]] = {
    "trajectories": (
        "spell_id", "client_id", "municipality", "caseworker_key", "team_key",
        "start_date", "end_date", "exit_reason", "birth_year", "sex", "education_level",
        "household", "prior_benefit_months", "ladder_step",
    ),
    "municipalities": ("municipality", "region"),
    "labour_market": ("area", "indicator", "value"),  # + month (or raw period)
}
OPTIONAL: dict[str, tuple[str, ...]] = {
    "caseworker_assignments": ("spell_id", "caseworker_key", "team_key", "start_date", "end_date"),
    "quality": ("unit_type", "unit_key", "date", "instrument", "score"),
    "adoption": ("team_key", "municipality", "programme", "adoption_date"),
    "shocks": ("shock_id", "municipality", "date", "type"),
}


def t_of(expr: str) -> str:
    """SQL for the integer month of a date expression (NULL stays NULL)."""
    return f"(year(CAST({expr} AS DATE)) * 12 + month(CAST({expr} AS DATE)) - 1)"


def month_of_t(expr: str) -> str:
    """SQL for the first day of integer month ``expr`` as a DATE."""
    return f"make_date(CAST(({expr}) // 12 AS BIGINT), CAST(({expr}) % 12 + 1 AS BIGINT), 1)"


def exact_sum(expr: str) -> str:
    """Order-independent sum of a double (exact DECIMAL accumulation, 12 decimals).

    A parallel floating-point SUM depends on the order threads combine partial sums, so
    its last bits can differ between runs; summing in DECIMAL keeps outputs
    byte-identical at a rounding of 1e-12.
    """
    return f"CAST(SUM(CAST({expr} AS DECIMAL(38, 12))) AS DOUBLE)"


@dataclass
class Inputs:
    """Names of the views holding the tables handed to :func:`build_panel`.

    Attributes
    ----------
    prefix : str
        Unique prefix of every temporary view and table this build creates.
    views : dict
        Table name -> view name, for the tables present.
    lm_has_month : bool
        True when ``labour_market`` has the validated ``month`` column (else ``period``).
    """

    prefix: str
    views: dict[str, str] = field(default_factory=dict)
    lm_has_month: bool = True

    def has(self, table: str) -> bool:
        """Whether an (optional) table was handed in."""
        return table in self.views

    def __getitem__(self, table: str) -> str:
        return self.views[table]

    def name(self, suffix: str) -> str:
        """Name of a temporary object of this build."""
        return f"{self.prefix}_{suffix}"


def _columns(con: duckdb.DuckDBPyConnection, view: str) -> set[str]:
    return {c.lower() for c in con.sql(f"SELECT * FROM {view} LIMIT 0").columns}


def _as_view(con: duckdb.DuckDBPyConnection, obj: Any, view: str) -> None:
    """Make ``obj`` (a DuckDB relation, or anything DuckDB can scan) visible as ``view``."""
    if isinstance(obj, duckdb.DuckDBPyRelation):
        obj.create_view(view, replace=True)
        try:
            con.sql(f"SELECT * FROM {view} LIMIT 0")
            return
        except duckdb.CatalogException:  # a relation of another connection: copy it over
            obj = obj.to_arrow_table()
    con.register(view, obj)


def register_inputs(
    con: duckdb.DuckDBPyConnection, tables: Mapping[str, Any]
) -> Inputs:
    """Expose the handed-in tables as temporary views and check their columns.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The connection the panel is built on.
    tables : mapping of str to relation
        Validated tables: DuckDB relations of ``con`` (preferred: they stay lazy), or
        pandas / Arrow tables. Optional tables may be missing or None.

    Raises
    ------
    PanelInputError
        A required table is missing, or a table lacks a column the panel needs.
    """
    inputs = Inputs(prefix=f"_impact_panel_{uuid.uuid4().hex[:10]}")
    for table, needed in {**REQUIRED, **OPTIONAL}.items():
        obj = tables.get(table)
        if obj is None:
            if table in REQUIRED:
                raise PanelInputError(
                    f"panel: the validated table '{table}' is required but was not given "
                    f"(got tables: {', '.join(sorted(tables)) or 'none'})"
                )
            continue
        view = inputs.name(f"in_{table}")
        _as_view(con, obj, view)
        have = _columns(con, view)
        if table == "labour_market":
            inputs.lm_has_month = "month" in have or "period" not in have
            needed = needed + (("month",) if inputs.lm_has_month else ("period",))
        missing = [c for c in needed if c not in have]
        if missing:
            raise PanelInputError(
                f"panel: table '{table}' lacks column(s) {', '.join(missing)} "
                f"(has: {', '.join(sorted(have))}); expected the validated schema of "
                f"docs/architecture.md"
            )
        inputs.views[table] = view
    return inputs
