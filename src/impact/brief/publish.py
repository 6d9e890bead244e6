"""The ``publish`` stage: briefs, publication tables, the report index, the disclosure scan.

Reads only the output folder (``reports/``) and ``params.yaml``; the validated tables are
read for one purpose, to know the identifiers the scan must not find.
"""

from __future__ import annotations

import html
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from impact import io
from impact.brief.build import NATIONAL, build_brief
from impact.brief.params import BriefParams
from impact.brief.render import compile_pdf, render_html, render_typst
from impact.compute import ComputeParams, executor
from impact.brief.tables import (
    BLOCK_TITLES, descriptive_table, regression_table, validation_table, write_table,
)
from impact.disclosure import identifier_values, scan_outputs
from impact.report.figures import set_theme
from impact.stage import UserError

__all__ = ["DisclosureError", "publish"]

LANG_NAMES = {"nl": "Nederlands", "en": "English"}


class DisclosureError(UserError):
    """An output file carries an identifier or a cell under the disclosure minimum."""


@dataclass
class Published:
    briefs: list[str]
    tables: list[str]


def publish(reports: Path, params_path: Path, raw_params: dict, bparams: BriefParams,
            min_cell: int, validated: Path) -> Published:
    briefs_dir = io.clean_dir(reports / "briefs")
    pub_dir = io.clean_dir(reports / "publication")
    figures = briefs_dir / "figures"
    set_theme()
    bench = pd.read_csv(reports / "tables" / "benchmark.csv")
    pub = bench[bench["published"].astype(str) == "True"]
    codes = bparams.codes(list(pub["municipality"]), list(pub["person_months"].astype(float)))
    unknown = [c for c in codes if c not in set(pub["municipality"])]
    if unknown:
        known = set(bench["municipality"])
        for c in unknown:
            why = "suppressed (too few clients)" if c in known else "not in the data"
            logging.warning("briefs.municipalities: %s is %s: no brief", c, why)
        codes = [c for c in codes if c not in unknown]
    jobs = [(code, lang) for code in [NATIONAL] + codes for lang in bparams.languages]
    # one worker per language: a language's briefs share figure files (figures/<lang>/),
    # so they are drawn by one process; languages run side by side when there are cores
    per_lang = [([c for c, lg in jobs if lg == lang], lang, reports, params_path, raw_params,
                 bparams, figures) for lang in bparams.languages]
    n = max(1, min(len(per_lang), os.cpu_count() or 1))
    with executor(ComputeParams(workers=n)) as ex:
        futures = [ex.submit(_briefs_of_language, task) for task in per_lang]
        # meanwhile (the workers started: no thread of this process is forked) the
        # publication tables, and the identifiers the scan looks for (nationally 3.4
        # million, about 7 s that waited for the briefs)
        tables = _publication_tables(reports, pub_dir, min_cell)
        ids = identifier_values(validated)
        for f in tqdm(futures, desc="briefs", disable=None):
            f.result()
    written = [f"{code}.{lang}" for code, lang in jobs]
    _index(reports, written, bparams, bench)
    findings = scan_outputs(reports, ids, min_cell)
    io.write_json({"min_cell": min_cell, "findings": [str(f) for f in findings]},
                  reports / "disclosure_scan.json")
    if findings:
        raise DisclosureError(
            f"the disclosure scan found {len(findings)} problem(s) in reports/: "
            + "; ".join(str(f) for f in findings[:5])
            + ". Nothing may leave the pipeline like this: raise the suppression (privacy."
              "min_cell) or fix the stage that wrote the file (reports/disclosure_scan.json "
              "lists them all).")
    return Published(written, tables)


def _briefs_of_language(task: tuple) -> None:
    """Build, render and write the briefs of ``codes`` in one language (a worker's share)."""
    codes, lang, reports, params_path, raw_params, bparams, figures = task
    set_theme()
    briefs_dir = reports / "briefs"
    for code in tqdm(codes, desc=f"briefs ({lang})", unit="brief", disable=None):
        brief = build_brief(reports, params_path, raw_params, code, lang, figures)
        stem = f"{code}.{lang}"
        other = [f'<a href="{code}.{o}.html">{LANG_NAMES[o]}</a>'
                 for o in bparams.languages if o != lang]
        if bparams.pdf:
            other.append(f'<a href="{stem}.pdf">PDF</a>')
        page = render_html(brief, figures, "../index.html", " · ".join(other))
        (briefs_dir / f"{stem}.html").write_text(page, encoding="utf-8")
        io.write_json(brief.facts.to_json(), briefs_dir / f"{stem}.facts.json")
        if bparams.pdf:
            (briefs_dir / f"{stem}.pdf").write_bytes(
                compile_pdf(render_typst(brief), briefs_dir, stem))


def _publication_tables(reports: Path, out: Path, min_cell: int) -> list[str]:
    specs = pd.read_csv(reports / "tables" / "specifications.csv")
    names = []
    note = ("Standard errors in parentheses; * p<0.05, ** p<0.01, *** p<0.001. Naive: raw "
            "outflow difference, no adjustment. Intervals as the inference row says.")
    for block, title in BLOCK_TITLES.items():
        if (specs["block"] == block).any():
            write_table(regression_table(specs, block), out / f"regression_{block}", title, note)
            names.append(f"regression_{block}")
    bench = pd.read_csv(reports / "tables" / "benchmark.csv")
    write_table(descriptive_table(bench, min_cell), out / "descriptives_municipalities",
                "Clients, person-months and exits to work by municipality (study window)",
                f"Municipalities with fewer than {min_cell} clients or exits to work are "
                "suppressed, and one more where a total would give them away.")
    names.append("descriptives_municipalities")
    report = json.loads((reports / "data_quality.json").read_text())
    write_table(validation_table(report, min_cell), out / "validation",
                "Input validation: rows read, kept and rejected per table",
                f"Rejections under {min_cell} shown as <{min_cell}. The full report is "
                "internal (data_quality.md).")
    names.append("validation")
    return names


def _index(reports: Path, briefs: list[str], bparams: BriefParams, bench: pd.DataFrame) -> None:
    """reports/index.html: every brief, publication table, table and figure, linked."""
    e = html.escape
    names = dict(zip(bench["municipality"], bench["name"]))
    rows = []
    for code in dict.fromkeys(s.split(".")[0] for s in briefs):
        label = "Nederland / the Netherlands" if code == NATIONAL else f"{names.get(code, code)} ({code})"
        links = []
        for lang in bparams.languages:
            links.append(f'<a href="briefs/{code}.{lang}.html">{lang.upper()} HTML</a>')
            if bparams.pdf:
                links.append(f'<a href="briefs/{code}.{lang}.pdf">{lang.upper()} PDF</a>')
        rows.append(f"<tr><th>{e(label)}</th><td>{' · '.join(links)}</td></tr>")

    def listing(folder: str, suffixes: tuple[str, ...]) -> str:
        files = sorted(p for p in (reports / folder).rglob("*")
                       if p.is_file() and p.suffix in suffixes)
        return "".join(f'<li><a href="{e(p.relative_to(reports).as_posix())}">'
                       f"{e(p.relative_to(reports / folder).as_posix())}</a></li>" for p in files)

    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>impact: outputs</title>
<style>body{{font-family:Georgia,serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}}
h1,h2{{color:#1f4e79}}table{{border-collapse:collapse}}th,td{{padding:3px 12px 3px 0;text-align:left}}
ul{{columns:2}}li{{font-size:10.5pt}}</style></head><body>
<h1>impact: outputs</h1>
<p>Everything here is built from the pipeline's output tables under disclosure control
(no cell under the minimum, no client or caseworker identifier). Analyst diagnostics
(data_quality, metrics.json) are internal and not linked.</p>
<h2>Policy briefs</h2><table>{''.join(rows)}</table>
<h2>Publication tables</h2><ul>{listing("publication", (".md", ".tex", ".html"))}</ul>
<h2>Tables</h2><ul>{listing("tables", (".csv", ".md", ".json"))}</ul>
<h2>Figures</h2><ul>{listing("figures", (".png", ".svg"))}</ul>
<h2>Brief figures</h2><ul>{listing("briefs/figures", (".png", ".svg"))}</ul>
</body></html>
"""
    (reports / "index.html").write_text(page, encoding="utf-8")
