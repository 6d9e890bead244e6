"""Numbers of a brief, each with where it came from.

A brief never types a number: every number it shows is a :class:`Fact` read from an output
table (``reports/tables/*.csv``, ``reports/metrics.json``, ``reports/plots/*.csv``) or,
for the confidence level and the disclosure minimum, from ``params.yaml``. The facts are
written beside each brief (``<code>.facts.json``) and :func:`resolve` reads each one back
from its source, so a test can check every number of every brief.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import yaml

__all__ = ["Fact", "Facts", "fmt", "resolve"]

#: kind -> decimals shown
DECIMALS = {"pp": 2, "pp_signed": 2, "ratio": 2, "p": 3, "rank": 0, "count": 0, "pct": 0,
            "score": 1}
#: kind ``group`` (a client-group label of ``group_effects.csv``): the words a brief's
#: sentences use for the labels of the default ``heterogeneity.groups`` ("clients with no
#: months of benefit ..."); other labels as they are
GROUP_WORDS = {"nl": {"low": "laag", "medium": "middelbaar", "high": "hoog",
                      "single": "alleenstaand", "single parent": "alleenstaande ouder",
                      "couple": "samenwonend", "none": "geen"},
               "en": {"none": "no"}}
#: comparisons a fact's ``where`` may hold instead of a value: ``{"p_value": {"lt": 0.05}}``
COMPARE = {"lt": lambda x, b: x < b, "le": lambda x, b: x <= b,
           "gt": lambda x, b: x > b, "ge": lambda x, b: x >= b}


def fmt(value: Any, kind: str, lang: str) -> str:
    """``value`` as the brief shows it: decimal comma in Dutch, a sign on changes; a
    ``group`` label in the words of the brief's language."""
    if kind == "text":
        return str(value)
    if kind == "group":
        return GROUP_WORDS.get(lang, {}).get(str(value), str(value))
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"a brief cannot show {value!r} ({kind})")
    d = DECIMALS[kind]
    r = round(v, d) + 0.0  # + 0.0: no '-0.00'
    s = f"{r:+.{d}f}" if kind == "pp_signed" and r != 0 else f"{r:.{d}f}"
    if kind == "p" and v < 0.001:
        s = "<0.001"
    s = s.replace("-", "\u2212")  # a true minus sign
    return s.replace(".", ",") if lang == "nl" else s


@dataclass(frozen=True)
class Fact:
    """One number of a brief and its source.

    ``source``: a path under ``reports/`` (CSV or JSON) or ``params.yaml``; ``where``: the
    row of a CSV (column -> value or list of values, compared as text; or column ->
    ``{"lt"|"le"|"gt"|"ge": number}``, compared as numbers, empty cells never match);
    ``column``: the CSV column or the dotted JSON/YAML key; ``agg``: ``None`` (the one
    row's value), ``count`` (rows matching ``where`` with a value in ``column``),
    ``confidence_pct`` (100 (1 - value)).
    """

    key: str
    kind: str
    source: str
    column: str
    where: dict[str, Any] = field(default_factory=dict)
    agg: str | None = None
    value: Any = None
    display: str = ""


class Facts:
    """The facts of one brief, read from the output folder as they are added."""

    def __init__(self, reports: Path, params_path: Path, lang: str):
        self.reports, self.params_path, self.lang = Path(reports), Path(params_path), lang
        self.items: dict[str, Fact] = {}
        self._cache: dict[str, Any] = {}

    def _load(self, source: str):
        if source not in self._cache:
            self._cache[source] = load_source(self.reports, self.params_path, source)
        return self._cache[source]

    def add(self, key: str, kind: str, source: str, column: str,
            where: Mapping[str, Any] | None = None, agg: str | None = None) -> str | None:
        """Read a number, remember it, return its display text (None when missing/suppressed)."""
        value = lookup(self._load(source), column, dict(where or {}), agg)
        if value is None:
            return None
        fact = Fact(key, kind, source, column, dict(where or {}), agg, value,
                    fmt(value, kind, self.lang))
        self.items[key] = fact
        return fact.display

    def drop(self, *keys: str) -> None:
        """Forget facts that end up not shown (every fact kept must appear in the brief)."""
        for key in keys:
            self.items.pop(key, None)

    def get(self, key: str) -> str:
        return self.items[key].display

    def value(self, key: str) -> Any:
        return self.items[key].value

    def to_json(self) -> list[dict[str, Any]]:
        return [asdict(f) for f in sorted(self.items.values(), key=lambda f: f.key)]


def load_source(reports: Path, params_path: Path, source: str):
    if source == "params.yaml":
        return yaml.safe_load(Path(params_path).read_text())
    path = Path(reports) / source
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _num(text: Any) -> Any:
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return text
    if text in ("", None):
        return None
    try:
        f = float(text)
    except (TypeError, ValueError):
        return text
    return int(f) if f.is_integer() and "." not in str(text) else f


def lookup(data, column: str, where: dict[str, Any], agg: str | None) -> Any:
    """The value a fact names, or None when it is missing or suppressed."""
    if isinstance(data, pd.DataFrame):
        rows = data
        for c, v in where.items():
            if isinstance(v, dict):
                x = pd.to_numeric(rows[c], errors="coerce")
                keep = pd.Series(True, index=rows.index)
                for op, bound in v.items():
                    keep &= COMPARE[op](x, float(bound)).fillna(False)
                rows = rows[keep]
                continue
            allowed = [str(x) for x in (v if isinstance(v, list) else [v])]
            rows = rows[rows[c].isin(allowed)]
        if agg == "count":
            return int((rows[column] != "").sum())
        if len(rows) != 1:
            raise LookupError(f"{len(rows)} rows match {where} (want exactly one)")
        value = _num(rows[column].iloc[0])
    else:
        value = data
        for part in column.split("."):
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if agg == "confidence_pct":
        return round(100 * (1 - float(value)), 6)
    return value


def resolve(reports: Path, params_path: Path, fact: Mapping[str, Any]) -> Any:
    """Read a written fact (a dict of ``<code>.facts.json``) back from its source."""
    data = load_source(reports, params_path, fact["source"])
    return lookup(data, fact["column"], dict(fact["where"]), fact["agg"])
