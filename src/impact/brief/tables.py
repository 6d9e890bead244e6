"""Publication tables: specifications side by side, descriptives, validation.

Each table is one tidy :class:`pandas.DataFrame` of display strings rendered three ways
(Markdown, LaTeX, HTML), in the manner of fixest's ``etable`` and R's ``modelsummary``:
one column per model, the estimate over its standard error in parentheses, then the
interval and the model's facts. Built only from ``reports/tables`` and
``reports/data_quality.json``; counts under the disclosure minimum are shown as
``<min_cell``.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["regression_table", "descriptive_table", "validation_table", "write_table"]

BLOCK_TITLES = {"quality": "Effect of one point of process quality on the monthly exit-to-work rate (pp)",
                "adoption": "Effect of programme adoption on the monthly exit-to-work rate (pp)",
                "shock": "Effect of a business-park opening on the monthly exit-to-work rate (pp)"}


def _stars(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def _f(v, d=3) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return ""
    return "" if not np.isfinite(v) else f"{v:.{d}f}"


def regression_table(specs: pd.DataFrame, block: str) -> pd.DataFrame:
    """The specifications of ``block`` side by side (rows: statistics; columns: models)."""
    s = specs[specs["block"] == block]
    cols = {}
    for _, r in s.iterrows():
        name = str(r["specification"]) + (" (headline)" if str(r["headline"]) == "True" else "")
        p = float(r["p_value"]) if pd.notna(r["p_value"]) else float("nan")
        cols[name] = {
            "estimate": _f(r["estimate"]) + _stars(p),
            "": f"({_f(r['std_error'])})" if pd.notna(r["std_error"]) else "",
            "95% interval": (f"[{_f(r['ci_low'])}, {_f(r['ci_high'])}]"
                             if pd.notna(r["ci_low"]) else ""),
            "naive (raw outflow)": _f(r["naive_pp"]),
            "estimator": str(r["estimator"]),
            "fixed effects": "default" if pd.isna(r["fixed_effects"]) else str(r["fixed_effects"]),
            "sample": "" if pd.isna(r["sample"]) else str(r["sample"]),
            "clusters": "" if pd.isna(r["n_clusters"]) else str(int(float(r["n_clusters"]))),
            "inference": "" if pd.isna(r["ci_method"]) else str(r["ci_method"]),
        }
    out = pd.DataFrame(cols)
    out.index.name = ""
    return out


def descriptive_table(bench: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    """Clients, person-months, exits to work and rates per municipality (benchmark.csv)."""
    b = bench.copy()
    pub = b["published"].astype(str) == "True"
    out = pd.DataFrame({
        "municipality": b["municipality"], "name": b["name"], "region": b["region"],
        "clients": [_count(v, ok, min_cell) for v, ok in zip(b["clients"], pub)],
        "person-months": [_count(v, ok, 0) for v, ok in zip(b["person_months"], pub)],
        "exits to work": [_count(v, ok, min_cell) for v, ok in zip(b["exits_work"], pub)],
        "observed rate (pp)": [_f(v, 2) if ok else "" for v, ok in zip(b["observed_rate_pp"], pub)],
        "expected rate (pp)": [_f(v, 2) if ok else "" for v, ok in zip(b["expected_rate_pp"], pub)],
    })
    return out.set_index("municipality")


def _count(v, ok: bool, min_cell: int) -> str:
    if not ok or pd.isna(v):
        return "suppressed"
    v = int(round(float(v)))
    return f"<{min_cell}" if v < min_cell else f"{v:,}"


def validation_table(report: dict, min_cell: int) -> pd.DataFrame:
    """Rows read, kept and rejected per input table (rejections under ``min_cell`` as ``<n``)."""
    rows = []
    for name, t in sorted(report.get("tables", {}).items()):
        rej = int(t.get("rows_rejected", 0))
        rows.append({"table": name, "source": t.get("source", ""),
                     "rows read": f"{int(t.get('rows_read', 0)):,}",
                     "rows kept": f"{int(t.get('rows_kept', 0)):,}",
                     "rows rejected": "0" if rej == 0 else (f"<{min_cell}" if rej < min_cell else f"{rej:,}"),
                     "rejected share": f"{100 * float(t.get('reject_share', 0)):.2f}%"})
    for name in report.get("missing_optional_tables", []):
        rows.append({"table": name, "source": "not given", "rows read": "", "rows kept": "",
                     "rows rejected": "", "rejected share": ""})
    return pd.DataFrame(rows).set_index("table")


def _md(df: pd.DataFrame, title: str, note: str) -> str:
    head = [df.index.name or ""] + [str(c) for c in df.columns]
    lines = [f"**{title}**", "", "| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] + ["---:"] * len(df.columns)) + "|"]
    for idx, row in df.iterrows():
        cells = [str(idx)] + [str(v).replace("|", "\\|") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", note, ""])


_TEX = str.maketrans({"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                      "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}",
                      "\\": r"\textbackslash{}", "<": r"$<$", ">": r"$>$"})


def _tex(df: pd.DataFrame, title: str, note: str) -> str:
    e = lambda v: str(v).translate(_TEX)  # noqa: E731
    lines = [r"\begin{table}[htbp]", r"\centering", rf"\caption{{{e(title)}}}",
             r"\begin{tabular}{l" + "r" * len(df.columns) + "}", r"\hline",
             " & ".join([e(df.index.name or "")] + [e(c) for c in df.columns]) + r" \\", r"\hline"]
    for idx, row in df.iterrows():
        lines.append(" & ".join([e(idx)] + [e(v) for v in row]) + r" \\")
    lines += [r"\hline", r"\end{tabular}",
              rf"\par\footnotesize {e(note)}", r"\end{table}", ""]
    return "\n".join(lines)


def _html(df: pd.DataFrame, title: str, note: str) -> str:
    e = html.escape
    head = "".join(f"<th>{e(str(c))}</th>" for c in [df.index.name or ""] + list(df.columns))
    body = "".join("<tr>" + f"<th>{e(str(idx))}</th>" + "".join(f"<td>{e(str(v))}</td>" for v in row)
                   + "</tr>" for idx, row in df.iterrows())
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
            "<style>body{font-family:Georgia,serif;margin:2em}table{border-collapse:collapse;"
            "font-size:10pt}th,td{padding:3px 9px;text-align:right;border-bottom:1px solid #ddd}"
            "th:first-child{text-align:left}caption{font-weight:bold;text-align:left;"
            "margin-bottom:.4em}p{font-size:9pt;color:#555}</style></head><body>"
            f"<table><caption>{e(title)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table><p>{e(note)}</p></body></html>\n")


def write_table(df: pd.DataFrame, stem: Path, title: str, note: str) -> list[Path]:
    """``stem``.md, .tex and .html."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for suffix, fn in ((".md", _md), (".tex", _tex), (".html", _html)):
        path = stem.with_suffix(suffix)
        path.write_text(fn(df, title, note), encoding="utf-8")
        out.append(path)
    return out
