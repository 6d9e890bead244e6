"""What one table's validation hands to the next: codes, the window, known units."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from impact.validate.lineage import CodeMap

__all__ = ["Context", "TableOutcome", "window_bounds", "make_key"]


def window_bounds(window: tuple[str, str]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``('2016-01', '2023-12')`` → first day of the first month, last day of the last."""
    try:
        start = pd.Timestamp(f"{window[0]}-01")
        end = pd.Timestamp(f"{window[1]}-01") + pd.offsets.MonthEnd(0)
    except (ValueError, TypeError, IndexError) as exc:
        raise ValueError(
            f"window = {window!r} is not allowed (allowed: two months 'YYYY-MM', start <= end)"
        ) from exc
    if end < start:
        raise ValueError(f"window = {window!r}: the end month lies before the start month")
    return start, end


def make_key(municipality: pd.Series, ident: pd.Series) -> pd.Series:
    """``"<municipality as given, normalised>:<id>"``; missing when either is missing."""
    key = municipality.astype("str") + ":" + ident.astype("str")
    return key.where(municipality.notna() & ident.notna()).astype("str")


@dataclass
class Context:
    """Shared state, filled table by table in dependency order.

    Attributes
    ----------
    codes : CodeMap
        Old → classification-year municipality codes.
    start, end : Timestamp
        First and last day of the study window.
    known : set of str
        Municipality codes (mapped) kept in ``municipalities``.
    regions : set of str
        Region codes of the kept municipalities.
    spells : DataFrame
        Kept spells: ``spell_id``, ``given`` (municipality as given, normalised).
    caseworker_keys, team_keys : set of str
        Keys seen in trajectories and caseworker assignments.
    instrument_ranges : dict of str to (float, float)
        Declared score range per quality instrument (``data.instrument_ranges``).
    """

    codes: CodeMap
    start: pd.Timestamp
    end: pd.Timestamp
    known: set[str] = field(default_factory=set)
    regions: set[str] = field(default_factory=set)
    spells: pd.DataFrame | None = None
    caseworker_keys: set[str] = field(default_factory=set)
    team_keys: set[str] = field(default_factory=set)
    instrument_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class TableOutcome:
    """One validated table, its rejects and its part of the report."""

    table: pd.DataFrame
    rejects: pd.DataFrame
    report: dict
