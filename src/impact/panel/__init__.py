"""Person-month risk set and municipality x month cells, built in DuckDB.

``build_panel(con, tables, params)`` takes the validated tables as DuckDB relations and
returns a :class:`PanelResult`: a lazy ``person_months`` relation (one row per spell and
calendar month at risk, ordered by ``spell_id, month``), the ``cells`` relation
(municipality x month aggregates) and a ``summary`` dict. The definitions follow the data
contract (at-risk months, exit to work, duration from the true start, merge-gap joining,
caseworker of the month, quality near the month); see :mod:`impact.panel.build`.
"""

from impact.panel._sql import PanelInputError
from impact.panel.build import PanelResult, build_panel, connect, person_month_columns
from impact.panel.cells import cell_columns
from impact.panel.params import PanelParams

__all__ = [
    "PanelParams", "PanelResult", "PanelInputError", "build_panel", "connect",
    "person_month_columns",
    "cell_columns",
]
