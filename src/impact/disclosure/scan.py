"""Scan output files for identifiers and small cells.

The scan is the last line of defence, run by the ``publish`` stage over ``reports/`` (and
by the tests on planted faults); the stages suppress as they write
(:mod:`impact.disclosure.suppress`). It checks

- **identifiers**, in every file under the root: a CSV column or JSON key named like an
  identifier (``client_id``, ``caseworker_id``, ...), and any value of the data's identifier columns
  appearing as a whole token in text (CSV, JSON, Markdown, HTML, LaTeX, SVG, Typst) or in
  the text layer of a PDF. Purely numeric identifiers shorter than 8 digits cannot be told
  from counts and are matched by column name only. Raster images (PNG) carry no text
  layer to scan: they are drawn from the scanned tables.
- **small cells**, in the publication set (every file except those listed as internal):
  a count of persons (a column or key of :data:`COUNT_COLUMNS`) that is below
  ``min_cell``. Suppressed cells are empty (CSV) or null (JSON), never a small number.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from impact.io import present_columns

__all__ = ["COUNT_COLUMNS", "IDENTIFIER_NAMES", "INTERNAL", "Finding", "identifier_values",
           "scan_outputs"]

#: names (of columns or JSON keys) whose values identify persons or caseworkers
IDENTIFIER_NAMES = frozenset({"client_id", "caseworker_id", "caseworker_key", "spell_id",
                              "rater_id", "bsn"})
#: names of columns or keys that count persons (clients) or their exits
COUNT_COLUMNS = frozenset({"clients", "n_clients", "persons", "n_persons", "exits_work",
                           "exits", "exits_any", "exits_education", "spells", "n_spells"})
#: analyst diagnostics kept exact and never linked from the publication set (design.md):
#: scanned for identifiers, not for small cells
INTERNAL = ("data_quality.json", "data_quality.md", "metrics.json", "validation/")
TEXT_SUFFIXES = {".csv", ".json", ".md", ".html", ".tex", ".svg", ".typ", ".txt"}
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_:.\-]*[A-Za-z0-9]|[A-Za-z0-9]")


@dataclass(frozen=True)
class Finding:
    path: str
    kind: str  # identifier | identifier_column | small_cell
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.kind}: {self.detail}"


def identifier_values(validated: Path) -> set[str]:
    """Every client, spell, caseworker and rater identifier in the validated tables.

    Caseworker keys are ``<municipality>:<caseworker_id>``; both the key and the raw id are
    returned. Numeric ids under 8 characters are left out (see the module notes).
    """
    wanted = {"trajectories.parquet": ["client_id", "spell_id", "caseworker_key"],
              "caseworker_assignments.parquet": ["caseworker_key"],
              "quality.parquet": ["unit_key", "rater_id"]}
    out: set[str] = set()
    for name, cols in wanted.items():
        path = validated / name
        if not path.exists():
            continue
        cols = present_columns(path, cols)
        if not cols:
            continue
        # only these columns (every column of the trajectories was read before)
        kind = present_columns(path, ["unit_type"]) if name == "quality.parquet" else []
        table = pq.read_table(path, columns=cols + kind)
        for c in cols:
            col = table.column(c)
            if kind and c == "unit_key":
                kinds = table.column("unit_type").cast(pa.large_string())
                col = col.filter(pc.equal(kinds, "caseworker"))
            vals = _distinct_text(col)
            out.update(vals)
            if c in ("caseworker_key", "unit_key"):
                out.update(v.split(":", 1)[1] for v in vals if ":" in v)
    return {v for v in out if v and not (v.isdigit() and len(v) < 8)}


def _distinct_text(col) -> list[str]:
    """The distinct non-missing values of an Arrow column as text: a text column's by
    Arrow (pandas turned each of 3.4 million national ids into a Python object first);
    any other as pandas writes it (``astype(str)``), an integer column's both as integers
    and as floats (pandas makes a column with a missing value floats, ``900000001.0``, and
    an output may show either)."""
    t = col.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pc.unique(col.drop_null().cast(pa.large_string())).to_pylist()
    if pa.types.is_integer(t):   # both forms hold pandas' either way
        ints = pc.unique(col.drop_null().cast(t)).to_pylist()
        return [str(v) for v in ints] + [str(float(v)) for v in ints]
    return list(col.to_pandas().dropna().astype(str).unique())


def _internal(rel: str) -> bool:
    return any(rel == name or rel.startswith(name) for name in INTERNAL)


def _small(value, min_cell: int) -> bool:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return False
    return v == v and v < min_cell


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader  # the PDF's text layer

    return "\n".join(page.extract_text() or "" for page in PdfReader(path).pages)


def _json_walk(obj, key=None):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _json_walk(v, k)
    elif isinstance(obj, list):
        for v in obj:
            yield from _json_walk(v, key)
    else:
        yield key, obj


def _scan_file(path: Path, rel: str, ids: set[str], min_cell: int) -> list[Finding]:
    found: list[Finding] = []
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        text = _pdf_text(path)
    elif suffix in TEXT_SUFFIXES:
        text = path.read_text(encoding="utf-8", errors="replace")
    else:
        return found
    hits = sorted({t for t in _TOKEN.findall(text) if t in ids})
    if hits:
        found.append(Finding(rel, "identifier", f"{len(hits)} identifier value(s), e.g. "
                                                f"{hits[0]!r}"))
    if suffix == ".csv":
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        named = sorted(c for c in df.columns if c.lower() in IDENTIFIER_NAMES)
    elif suffix == ".json":
        named = sorted({k for k, _ in _json_walk(json.loads(text))
                        if isinstance(k, str) and k.lower() in IDENTIFIER_NAMES})
    else:
        named = []
    if named:
        found.append(Finding(rel, "identifier_column", ", ".join(named)))
    if _internal(rel):
        return found
    if suffix == ".csv":
        for col in df.columns:
            if col.lower() in COUNT_COLUMNS:
                small = [v for v in df[col] if v != "" and _small(v, min_cell)]
                if small:
                    found.append(Finding(rel, "small_cell", f"column {col!r}: {len(small)} "
                                                            f"value(s) under {min_cell}, e.g. {small[0]}"))
    elif suffix == ".json":
        for key, value in _json_walk(json.loads(text)):
            if isinstance(key, str) and key.lower() in COUNT_COLUMNS and _small(value, min_cell):
                found.append(Finding(rel, "small_cell", f"key {key!r}: {value} under {min_cell}"))
    return found


def scan_outputs(root: Path, identifiers: Iterable[str], min_cell: int) -> list[Finding]:
    """Every finding in the files under ``root`` (sorted by path); empty when clean."""
    ids = set(identifiers)
    out: list[Finding] = []
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        out.extend(_scan_file(path, path.relative_to(root).as_posix(), ids, min_cell))
    return out
