"""The data contract's input tables as data: names, columns, kinds and simple rules.

One declarative description shared by the readers (which tables to look for, which
columns hold numbers that a decimal-comma file writes with a comma) and by
:mod:`impact.validate` (which columns must be there, how each is typed, which values are
allowed). Cross-column rules (an end before a start, overlapping spells, unknown
municipalities) are not declarative and live in the validators.

Column kinds
------------
``text``
    a string; numbers stored as numbers (SPSS, Stata, Excel) become their integer text,
    leading zeros of text values are kept; empty strings are missing.
``municipality``
    a CBS municipality code, normalised to ``GM`` + 4 digits.
``date``
    ISO ``YYYY-MM-DD``, ``YYYYMMDD`` or a native date/datetime type.
``int`` / ``number``
    an integer (nullable ``Int64``) / a float.
``category``
    one of ``allowed`` (matched case-insensitively, written in the canonical spelling).
``period``
    ``YYYY-MM``, ``YYYY-Qn`` or ``YYYY``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "ColumnKind",
    "ColumnSpec",
    "TableSpec",
    "TABLES",
    "TABLE_NAMES",
    "REQUIRED_TABLES",
    "numeric_columns",
]

ColumnKind = Literal["text", "municipality", "date", "int", "number", "category", "period"]


@dataclass(frozen=True)
class ColumnSpec:
    """One contract column.

    Attributes
    ----------
    name : str
        Lower-case column name (file column names are matched case-insensitively).
    kind : ColumnKind
        How the values are parsed (module docstring).
    required : bool
        The column must be present in the file. An absent optional column is added as
        all-missing and noted in the report.
    nullable : bool
        Values may be missing. A missing value in a non-nullable column rejects the row
        (``missing_value:<column>``), unless ``fill_null`` says what it means.
    allowed : tuple of str
        For ``category``: the allowed values in their canonical spelling.
    fill_null : str or None
        For ``category``: the value a missing entry stands for (``'unknown'``); such
        entries are counted in the report, not rejected.
    min, max : int or None
        Inclusive range for ``int`` columns (``out_of_range:<column>``).
    """

    name: str
    kind: ColumnKind
    required: bool = True
    nullable: bool = False
    allowed: tuple[str, ...] = ()
    fill_null: str | None = None
    min: int | None = None
    max: int | None = None


@dataclass(frozen=True)
class TableSpec:
    """One contract table: its columns and primary key (checked for duplicates)."""

    name: str
    required: bool
    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...] = field(default=())

    def column(self, name: str) -> ColumnSpec:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def _c(name: str, kind: ColumnKind = "text", **kw) -> ColumnSpec:
    return ColumnSpec(name, kind, **kw)


_OPT = {"required": False, "nullable": True}

SEX = ("F", "M", "X", "unknown")
EDUCATION = ("low", "medium", "high", "unknown")
HOUSEHOLD = ("single", "single_parent", "couple", "couple_children", "other", "unknown")
EXIT_REASON = ("work", "education", "moved", "other")
UNIT_TYPE = ("caseworker", "team", "municipality")

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        TableSpec(
            "municipalities", True,
            (
                _c("municipality", "municipality"),
                _c("name", nullable=True),
                _c("region"),
                _c("province", **_OPT),
                _c("population", "int", min=0, **_OPT),
            ),
            key=("municipality",),
        ),
        TableSpec(
            "trajectories", True,
            (
                _c("spell_id"),
                _c("client_id"),
                _c("municipality", "municipality"),
                _c("caseworker_id", **_OPT),
                _c("team_id", **_OPT),
                _c("start_date", "date"),
                _c("end_date", "date", nullable=True),
                _c("exit_reason", "category", nullable=True, allowed=EXIT_REASON),
                _c("birth_year", "int", min=1900, max=2010),
                _c("sex", "category", allowed=SEX, fill_null="unknown"),
                _c("education_level", "category", allowed=EDUCATION, fill_null="unknown"),
                _c("household", "category", allowed=HOUSEHOLD, fill_null="unknown"),
                _c("prior_benefit_months", "int", min=0),
                _c("ladder_step", "int", min=1, max=6, **_OPT),
            ),
            key=("spell_id",),
        ),
        TableSpec(
            "caseworker_assignments", False,
            (
                _c("spell_id"),
                _c("caseworker_id"),
                _c("team_id", **_OPT),
                _c("start_date", "date"),
                _c("end_date", "date", **_OPT),
            ),
        ),
        TableSpec(
            "quality", False,
            (
                _c("unit_type", "category", allowed=UNIT_TYPE),
                _c("unit_id"),
                _c("municipality", "municipality"),
                _c("date", "date"),
                _c("instrument"),
                _c("score", "number"),
                _c("rater_id", **_OPT),
            ),
        ),
        TableSpec(
            "adoption", False,
            (
                _c("municipality", "municipality"),
                _c("team_id", **_OPT),
                _c("programme"),
                _c("adoption_date", "date"),
            ),
            key=("municipality", "team_id", "programme"),
        ),
        TableSpec(
            "labour_market", True,
            (
                _c("area"),
                _c("period", "period"),
                _c("indicator"),
                _c("value", "number"),
            ),
            key=("area", "period", "indicator"),
        ),
        TableSpec(
            "progress", False,
            (
                _c("spell_id"),
                _c("date", "date"),
                _c("measure"),
                _c("value", "number"),
            ),
        ),
        TableSpec(
            "shocks", False,
            (
                _c("shock_id"),
                _c("municipality", "municipality"),
                _c("date", "date"),
                _c("type"),
                _c("jobs", "int", min=0, **_OPT),
                _c("description", **_OPT),
            ),
            key=("shock_id",),
        ),
    )
}

TABLE_NAMES: tuple[str, ...] = tuple(TABLES)
REQUIRED_TABLES: tuple[str, ...] = tuple(n for n, t in TABLES.items() if t.required)


def numeric_columns(table: str) -> tuple[str, ...]:
    """Columns of ``table`` holding numbers (written with a decimal comma in Dutch CSV)."""
    return tuple(c.name for c in TABLES[table].columns if c.kind in ("int", "number"))
