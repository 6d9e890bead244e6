"""Checks of the publication set of a finished pipeline run (called by the pipeline tests).

Every number a brief shows is a fact read back here from its source table and formatted
again; every number in a brief's text is one of its facts; each brief's PDF carries the
same numbers on 2 to 4 pages; every embedded figure has content; the figures' labels do
not overlap; the disclosure scan of reports/ is clean.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image
from pypdf import PdfReader

from impact.brief import build, figures
from impact.brief.facts import fmt, resolve
from impact.brief.render import visible_text
from impact.disclosure import identifier_values, scan_outputs

NUMBER = re.compile(r"(?<![\w.,])[+\u2212<-]?\d+(?:[.,]\d+)*")


def expected_codes(repo: Path) -> list[str]:
    params = yaml.safe_load((repo / "params.yaml").read_text())["briefs"]
    bench = pd.read_csv(repo / "reports/tables/benchmark.csv")
    pub = bench[bench["published"]]
    m = params["municipalities"]
    if m == "auto":
        pub = pub.sort_values(["person_months", "municipality"], ascending=[False, True])
        return sorted(pub["municipality"].head(params["auto_count"]))
    if m == "all":
        return sorted(pub["municipality"])
    return [] if m == "none" else list(m)


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return a == b


def check_brief(repo: Path, stem: str) -> None:
    reports, lang = repo / "reports", stem.split(".")[1]
    facts = json.loads((reports / "briefs" / f"{stem}.facts.json").read_text())
    assert len(facts) >= 8, stem
    for f in facts:  # each number read back from its source and formatted again
        value = resolve(reports, repo / "params.yaml", f)
        assert _same(value, f["value"]), (stem, f)
        assert fmt(value, f["kind"], lang) == f["display"], (stem, f)
    displays = {f["display"] for f in facts}
    shown = displays | {d.lstrip("+\u2212<") for d in displays}
    # numbers inside a label read from a table (a client group such as '35-44') are from it
    shown |= {n for f in facts if f["kind"] in ("text", "group") for n in NUMBER.findall(f["display"])}
    page = (reports / "briefs" / f"{stem}.html").read_text()
    text = " ".join(visible_text(page).split())
    for f in facts:
        assert f["display"] in text, (stem, f["key"], f["display"])
    strays = [n for n in NUMBER.findall(text) if n not in shown and n.lstrip("+\u2212<") not in shown]
    assert not strays, f"{stem}: numbers not from a table: {strays}"
    # nothing from the network; base64 figures are left out of the check (their alphabet
    # spells "http" by chance: it did in a Dutch figure of the built-in data)
    no_data = re.sub(r'data:[a-z/+.-]+;base64,[A-Za-z0-9+/=]+', "", page)
    assert "http" not in no_data.replace('href="', "")
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 2, stem
    for b64 in images:  # no empty figure
        img = np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("L"), float)
        assert img.shape[0] > 200 and img.shape[1] > 400
        assert (img < 200).mean() > 0.01, f"{stem}: a figure is (nearly) blank"
    if lang == "nl":
        assert "Bron: CBS" in text
    else:
        assert "Source: CBS" in text
    pdf = reports / "briefs" / f"{stem}.pdf"
    reader = PdfReader(pdf)
    assert 2 <= len(reader.pages) <= 4, (stem, len(reader.pages))
    pdf_text = " ".join(" ".join(p.extract_text() or "" for p in reader.pages).split())
    for f in facts:
        assert f["display"] in pdf_text, (stem, "pdf", f["key"], f["display"])


def check_briefs(repo: Path) -> None:
    reports = repo / "reports"
    params = yaml.safe_load((repo / "params.yaml").read_text())
    langs = params["briefs"]["languages"]
    want = sorted(f"{c}.{lang}" for c in ["NL01", *expected_codes(repo)] for lang in langs)
    got = sorted(p.name[: -len(".html")] for p in (reports / "briefs").glob("*.html"))
    assert got == want
    for stem in want:
        check_brief(repo, stem)
    # labels of the brief figures do not overlap (rebuilt here, in a scratch folder)
    figures.OVERLAPS.clear()
    for stem in want[:4]:
        code, lang = stem.split(".")
        build.build_brief(reports, repo / "params.yaml", params, code, lang, repo.parent / "scratch_fig")
    assert figures.OVERLAPS == []
    index = (reports / "index.html").read_text()
    for stem in want:
        assert f'briefs/{stem}.html"' in index and f'briefs/{stem}.pdf"' in index
    for p in sorted((reports / "publication").glob("*")) + sorted((reports / "figures").rglob("*.png")):
        assert p.relative_to(reports).as_posix() in index, p
    assert "href=\"data_quality" not in index and "href=\"metrics.json" not in index  # internal
    for name in ("regression_quality", "regression_adoption", "descriptives_municipalities",
                 "validation"):
        for suffix in (".md", ".tex", ".html"):
            assert (reports / "publication" / f"{name}{suffix}").stat().st_size > 200
    findings = scan_outputs(reports, identifier_values(repo / "data/validated"),
                            params["privacy"]["min_cell"])
    assert findings == [], findings
