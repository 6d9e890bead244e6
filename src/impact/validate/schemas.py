"""Schemas of the validated tables (architecture.md, "Validated tables").

These state what ``validate`` guarantees to every later stage; :func:`check_output`
asserts them on each result (a failure is a bug in validate, not in the user's data).
Extra columns are allowed (``strict=False``). :func:`to_arrow` turns a validated frame
into an Arrow table with dates as ``date32``.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

from impact.ingest.contract import EDUCATION, EXIT_REASON, HOUSEHOLD, SEX, UNIT_TYPE
from impact.validate.parse import DATE_DTYPE

__all__ = ["SCHEMAS", "check_output", "to_arrow", "DATE_COLUMNS"]

_GM = r"^GM\d{4}$"


def _s(nullable: bool = False, *checks: pa.Check) -> pa.Column:
    return pa.Column("str", nullable=nullable, checks=list(checks))


def _d(nullable: bool = False) -> pa.Column:
    return pa.Column(DATE_DTYPE, nullable=nullable)


def _i(nullable: bool = False, lo: int | None = None, hi: int | None = None) -> pa.Column:
    checks = []
    if lo is not None:
        checks.append(pa.Check.ge(lo))
    if hi is not None:
        checks.append(pa.Check.le(hi))
    return pa.Column("Int64", nullable=nullable, checks=checks)


def _f(nullable: bool = False) -> pa.Column:
    return pa.Column("float64", nullable=nullable)


_code = pa.Check.str_matches(_GM)

SCHEMAS: dict[str, pa.DataFrameSchema] = {
    "municipalities": pa.DataFrameSchema(
        {"municipality": _s(False, _code), "name": _s(True), "region": _s(), "province": _s(True),
         "population": _i(True, 0)},
        unique=["municipality"], strict=False, ordered=True,
    ),
    "trajectories": pa.DataFrameSchema(
        {
            "spell_id": _s(), "client_id": _s(), "municipality": _s(False, _code),
            "caseworker_key": _s(True), "team_key": _s(True),
            "start_date": _d(), "end_date": _d(True),
            "exit_reason": _s(True, pa.Check.isin(EXIT_REASON)),
            "birth_year": _i(False, 1900, 2010),
            "sex": _s(False, pa.Check.isin(SEX)),
            "education_level": _s(False, pa.Check.isin(EDUCATION)),
            "household": _s(False, pa.Check.isin(HOUSEHOLD)),
            "prior_benefit_months": _i(False, 0),
            "ladder_step": _i(True, 1, 6),
        },
        unique=["spell_id"], strict=False, ordered=True,
    ),
    "caseworker_assignments": pa.DataFrameSchema(
        {"spell_id": _s(), "caseworker_key": _s(), "team_key": _s(True),
         "start_date": _d(), "end_date": _d(True)},
        strict=False, ordered=True,
    ),
    "quality": pa.DataFrameSchema(
        {"unit_type": _s(False, pa.Check.isin(UNIT_TYPE)), "unit_key": _s(),
         "municipality": _s(False, _code), "date": _d(), "instrument": _s(), "score": _f(),
         "rater_id": _s(True)},
        strict=False, ordered=True,
    ),
    "adoption": pa.DataFrameSchema(
        {"municipality": _s(False, _code), "team_key": _s(True), "programme": _s(),
         "adoption_date": _d()},
        strict=False, ordered=True,
    ),
    "labour_market": pa.DataFrameSchema(
        {"area": _s(), "month": _d(), "indicator": _s(), "value": _f()},
        unique=["area", "month", "indicator"], strict=False, ordered=True,
    ),
    "progress": pa.DataFrameSchema(
        {"spell_id": _s(), "date": _d(), "measure": _s(), "value": _f()},
        strict=False, ordered=True,
    ),
    "shocks": pa.DataFrameSchema(
        {"shock_id": _s(), "municipality": _s(False, _code), "date": _d(), "type": _s(),
         "jobs": _i(True, 0), "description": _s(True)},
        unique=["shock_id"], strict=False, ordered=True,
    ),
}

#: Date columns of each validated table (written as Arrow date32).
DATE_COLUMNS: dict[str, tuple[str, ...]] = {
    name: tuple(c for c, col in schema.columns.items() if str(col.dtype).startswith("datetime64"))
    for name, schema in SCHEMAS.items()
}


def check_output(name: str, df: pd.DataFrame) -> None:
    """Assert the validated-table schema of ``name`` on ``df`` (raises on a bug)."""
    SCHEMAS[name].validate(df, lazy=False)
    for col in DATE_COLUMNS[name]:  # pandera does not check the unit
        if str(df[col].dtype) != DATE_DTYPE:
            raise TypeError(f"{name}.{col}: dtype {df[col].dtype}, expected {DATE_DTYPE}")


def to_arrow(name: str, df: pd.DataFrame):
    """A validated frame as a ``pyarrow.Table`` with its date columns as ``date32``."""
    import pyarrow as pa_

    table = pa_.Table.from_pandas(df, preserve_index=False)
    for col in DATE_COLUMNS.get(name, ()):
        i = table.schema.get_field_index(col)
        table = table.set_column(i, col, table.column(col).cast(pa_.date32()))
    return table.replace_schema_metadata(None)
