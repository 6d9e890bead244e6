"""The result of validation: typed tables, rejects and the data-quality report."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

__all__ = ["ValidationResult", "render_markdown"]


@dataclass(frozen=True)
class ValidationResult:
    """Validated tables, rejected rows and the data-quality report.

    Attributes
    ----------
    tables : dict of str to DataFrame
        Typed tables per architecture.md "Validated tables" (plus extra columns kept);
        absent optional tables are absent.
    rejects : dict of str to DataFrame
        For every table read: its rejected rows (possibly none) with the raw values as
        text, ``row`` (1-based data row of the file), ``rule`` (first failing rule) and
        ``reason`` (every failing rule's message).
    report : dict
        JSON-serialisable data-quality report: per table ``rows_read``, ``rows_kept``,
        ``rows_rejected``, ``reject_share``, ``rejected_by_rule``, ``rejected_examples``
        (per rule the first three rejected rows as ``'row <n>: <reason>'``), ``rows_written``,
        ``extra_columns``, ``missing_optional_columns``, ``merger_mappings``, ``notes``
        and table-specific counts; top level ``rejected_rows`` (total),
        ``merger_mappings`` (all tables), ``missing_optional_tables``, ``notes``.
    """

    tables: Mapping[str, pd.DataFrame]
    rejects: Mapping[str, pd.DataFrame]
    report: Mapping[str, Any]

    def manifest(self) -> dict[str, Any]:
        """``{"tables": {name: {"rows": n}}}`` for ``data/validated/manifest.json``."""
        return {"tables": {k: {"rows": int(len(v))} for k, v in sorted(self.tables.items())}}

    def report_markdown(self, masked: bool = False) -> str:
        """The report as readable Markdown (internal: it names codes and counts exactly);
        ``masked``: identifiers in reasons replaced by their column name."""
        return render_markdown(mask_identifiers(self.report) if masked else self.report)


#: columns whose values identify a client, spell, caseworker, team or rater
IDENTIFIER_COLUMNS = ("client_id", "spell_id", "caseworker_id", "team_id", "unit_id", "rater_id")
_UNIT_KEY = re.compile(r", key [^\s)]+\)")  # a unit's <municipality>:<id> key
_QUOTED_ID = re.compile(r"\b(" + "|".join(IDENTIFIER_COLUMNS) + r") (['\"])(.*?)\2")


def mask_identifiers(report: Any) -> Any:
    """A copy of ``report`` in which every quoted identifier in a reason
    (``client_id 'C002'``) reads ``client_id <client_id>``: the report goes to
    ``reports/``, which carries no identifier; the row number finds the row, and
    ``data/rejects`` keeps the full reason."""
    if isinstance(report, dict):
        return {k: mask_identifiers(v) for k, v in report.items()}
    if isinstance(report, list):
        return [mask_identifiers(v) for v in report]
    if isinstance(report, str):
        report = _QUOTED_ID.sub(lambda m: f"{m.group(1)} <{m.group(1)}>", report)
        return _UNIT_KEY.sub(", key <key>)", report)
    return report


def _md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in r) + " |" for r in rows]
    return lines


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


_SHOWN = {
    "source", "rows_read", "rows_kept", "rows_rejected", "reject_share", "rows_written",
    "rejected_by_rule", "rejected_examples", "extra_columns", "missing_optional_columns", "merger_mappings", "notes",
}


def render_markdown(report: Mapping[str, Any]) -> str:
    """Render a validation report dict (see :class:`ValidationResult`) as Markdown."""
    out = [
        "# Data-quality report",
        "",
        "Internal: exact counts and codes; not for publication.",
        "",
        f"- classification year: {report.get('classification_year')}",
        f"- window: {report.get('window', {}).get('start')} .. {report.get('window', {}).get('end')}",
        f"- rows read: {report.get('rows_read')}, kept: {report.get('rows_kept')}, "
        f"rejected: {report.get('rejected_rows')} "
        f"(threshold per table: {report.get('max_reject_share', 0):.1%})",
        "",
    ]
    tables = report.get("tables", {})
    out += _md_table(
        ["table", "file", "rows read", "kept", "rejected", "share", "rows written"],
        [
            [name, t.get("source"), t.get("rows_read"), t.get("rows_kept"), t.get("rows_rejected"),
             f"{t.get('reject_share', 0):.2%}", t.get("rows_written")]
            for name, t in tables.items()
        ],
    )
    missing = report.get("missing_optional_tables") or []
    if missing:
        out += ["", f"Optional tables not given: {', '.join(missing)}."]
    for note in report.get("notes") or []:
        out.append(f"- {note}")
    for name, t in tables.items():
        out += ["", f"## {name}", ""]
        if t.get("rejected_by_rule"):
            examples = t.get("rejected_examples") or {}
            out += _md_table(
                ["rule", "rows rejected", "first rows (row in the file: reason)"],
                [[k, v, "<br>".join(_md_cell(e) for e in examples.get(k, []))]
                 for k, v in t["rejected_by_rule"].items()],
            )
            out.append("")
        if t.get("extra_columns"):
            out.append(f"- extra columns kept: {', '.join(t['extra_columns'])}")
        if t.get("missing_optional_columns"):
            out.append(f"- optional columns absent (left empty): {', '.join(t['missing_optional_columns'])}")
        for note in t.get("notes") or []:
            out.append(f"- {note}")
        for key, value in t.items():
            if key not in _SHOWN:
                out.append(f"- {key}: `{json.dumps(value, sort_keys=True, default=str)}`")
        if t.get("merger_mappings"):
            out += ["", "Merger mappings applied:", ""]
            out += _md_table(
                ["column", "from", "", "to", "", "rows"],
                [[m["column"], m["from"], m.get("from_name"), m["to"], m.get("to_name"), m["rows"]]
                 for m in t["merger_mappings"]],
            )
    return "\n".join(out) + "\n"
