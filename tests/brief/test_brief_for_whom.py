"""The brief section "For whom does it work" / "Voor wie werkt het", from a synthetic pair
of heterogeneity tables in a small synthetic reports folder (no pipeline outputs)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from brief_checks import check_brief
from for_whom_tables import group_tables, write_tables
from impact import io
from impact.brief import build
from impact.brief.facts import Facts, lookup
from impact.brief.render import compile_pdf, render_html, render_typst, visible_text
from impact.report.figures import set_theme

PARAMS = {"estimate": {"alpha": 0.05}, "privacy": {"min_cell": 10},
          "adoption": {"programme": "gewogen_maatwerk"}}
LARGEST, SMALLEST = ("quality", "work", "age", "25-34"), ("quality", "work", "education", "high")
EFFECTS = {LARGEST: 0.61, SMALLEST: -0.2, ("adoption", "work", "duration", "60+"): 0.9,
           ("adoption", "work", "ladder_step", "1"): -0.15}
NAMES = {"en": ("clients aged 25-34", "clients with high education", "single parent"),
         "nl": ("klanten van 25-34 jaar", "klanten met opleidingsniveau hoog", "alleenstaande ouder")}


def _reports(root, p_tests=None, tables=True, adjusted="p_romano_wolf"):
    """A minimal reports folder: the national and one municipal decomposition, a benchmark,
    empty metrics blocks, and (``tables``) the two heterogeneity tables."""
    reports = root / "reports"
    (reports / "tables").mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    rows = []
    for code, name in (("NL01", "Nederland"), ("GM0001", "Aastad")):
        for comp, v in (("observed_change", 0.12), ("composition", 0.03), ("labour_market", 0.06),
                        ("shocks", 0.01), ("quality", 0.04), ("residual", -0.02)):
            ci = (np.nan, np.nan) if comp == "observed_change" else (v - 0.05, v + 0.05)
            rows.append({"municipality": code, "name": name, "period_from": "2022",
                         "period_to": "2023", "component": comp, "contribution_pp": v,
                         "ci_low": ci[0], "ci_high": ci[1], "rate_from_pp": 1.4,
                         "rate_to_pp": 1.52, "status": "ok"})
    pd.DataFrame(rows).to_csv(reports / "tables/decomposition.csv", index=False)
    bench = pd.DataFrame({"municipality": ["GM0001", "GM0002"], "name": ["Aastad", "Beedorp"],
                          "published": [True, True], "funnel_signal": ["within", "above_95"],
                          "expected_rate_pp": [1.4, 1.3], "observed_rate_pp": [1.5, 1.6],
                          "oe_ratio": [1.07, 1.23], "quality_contribution_pp": [0.02, 0.05],
                          "quality_ci_low": [-0.01, 0.01], "quality_ci_high": [0.05, 0.09]})
    for rank in ("rank_naive", "rank_quality"):
        bench[rank], bench[f"{rank}_low"], bench[f"{rank}_high"] = [2.0, 1.0], [1.0, 1.0], [2.0, 2.0]
    bench.to_csv(reports / "tables/benchmark.csv", index=False)
    (reports / "metrics.json").write_text(json.dumps({"quality": None, "adoption": None,
                                                      "shock": None}))
    if tables:
        groups, tests = group_tables(p_tests, effects=EFFECTS, adjusted=adjusted)
        # a group kept out of publication although the table still holds its (large)
        # numbers: the brief must go by 'published', never by whether a number is there
        hide = groups["group"] == "single parent"
        groups.loc[hide, "published"] = False
        groups.loc[hide, "estimate"] = 5.0
        write_tables(reports / "tables", groups, tests)
    return reports


def _brief(root, code="NL01", lang="en"):
    reports = root / "reports"
    return build.build_brief(reports, root / "params.yaml", PARAMS, code, lang,
                             reports / "briefs" / "figures")


def _section(brief) -> str:
    """The text of the section, from its heading to the next heading."""
    out, on = [], False
    for kind, value in brief.blocks:
        if kind == "h":
            on = value in ("For whom does it work?", "Voor wie werkt het?")
            continue
        if on and kind == "p":
            out.append(value)
    return " ".join(out)


@pytest.fixture(scope="module")
def no_difference(tmp_path_factory):
    set_theme()
    root = tmp_path_factory.mktemp("no_difference")
    _reports(root)
    return root


@pytest.fixture(scope="module")
def difference(tmp_path_factory):
    set_theme()
    root = tmp_path_factory.mktemp("difference")
    _reports(root, {("quality", "work", "age"): 0.012, ("adoption", "any", "household"): 0.03},
             adjusted="p_adjusted")
    return root


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_names_largest_and_smallest_and_no_clear_difference(no_difference, lang):
    brief = _brief(no_difference, lang=lang)
    text = _section(brief)
    largest, smallest, hidden = NAMES[lang]
    if lang == "en":
        assert f"largest for {largest}: +0.61 percentage points (range +" in text
        assert f"smallest for {smallest}: \u22120.20 percentage points (range \u2212" in text
        assert "There is no clear difference between the groups" in text
        assert "differ clearly" not in text
        assert "For exit to education, there is no clear difference between groups" in text
        assert "For small groups they are the better guide." in text
    else:
        assert f"grootst bij {largest}: +0,61 procentpunt (marge +" in text
        assert f"kleinst bij {smallest}: \u22120,20 procentpunt (marge \u2212" in text
        assert "Er is geen duidelijk verschil tussen de groepen" in text
        assert "verschillen duidelijk" not in text
        assert "Voor kleine groepen zijn zij daarom de betere gids." in text
    # the programme's largest and smallest group too
    assert ("clients who have been on benefit for 60+ months: +0.90" in text if lang == "en"
            else "klanten die 60+ maanden in de bijstand zitten: +0,90" in text)
    # a group by time on benefit among the largest/smallest brings the selection caveat
    caveat = ("read those differences with care" if lang == "en"
              else "lees die verschillen voorzichtig")
    assert text.count(caveat) == 1  # said once, though both blocks name a duration group
    # unpublished groups are never named, nor their numbers shown
    assert hidden not in text and "5.00" not in text and "5,00" not in text
    figs = [v[0] for k, v in brief.blocks if k == "fig"]
    assert f"{lang}/for_whom_quality_work" in figs
    # every number of the section is a fact read from the two tables
    sources = {f.source for f in brief.facts.items.values() if f.key.startswith("fw_")}
    assert sources == {"tables/group_effects.csv", "tables/heterogeneity_tests.csv"}


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_claims_a_difference_only_where_the_test_rejects(difference, lang):
    text = _section(_brief(difference, lang=lang))
    if lang == "en":
        assert "The groups differ clearly by age (test: p = 0.012)." in text
        assert ("By step on the participation ladder, education, household, time on benefit "
                "and earlier benefit there is no clear difference.") in text
        assert "only just clear can still be chance" in text
        # the programme's tests do not reject: no claim there
        assert "There is no clear difference between the groups" in text
        assert ("For leaving benefit for any reason, groups differ clearly in the effect of "
                "the programme by household (p = 0.030).") in text
    else:
        assert "De groepen verschillen duidelijk naar leeftijd (toets: p = 0,012)." in text
        assert "is er geen duidelijk verschil." in text
        assert "Er is geen duidelijk verschil tussen de groepen" in text
        assert ("Bij uitstroom om welke reden dan ook verschillen groepen duidelijk in het "
                "effect van de aanpak naar huishouden (p = 0,030).") in text
    # the caution about many comparisons is said once
    assert text.count("can still be chance") + text.count("kan daarom nog toeval zijn") == 1
    # the adjustment the table names: Romano-Wolf for quality, Holm for the programme
    assert "(Romano-Wolf)" in text and "(Holm)" in text


def test_section_absent_without_tables(tmp_path):
    set_theme()
    _reports(tmp_path, tables=False)
    brief = _brief(tmp_path)
    assert not any(k == "h" and "For whom" in v for k, v in brief.blocks)
    assert not any(k == "fig" and "for_whom" in v[0] for k, v in brief.blocks)
    assert not any(f.startswith("fw_") for f in brief.facts.items)
    # one table without the other: left out too
    groups, tests = group_tables()
    write_tables(tmp_path / "reports" / "tables", groups, tests)
    (tmp_path / "reports" / "tables" / "heterogeneity_tests.csv").unlink()
    assert not any(k == "h" and "For whom" in v for k, v in _brief(tmp_path).blocks)


def test_municipal_briefs_leave_it_out(no_difference):
    brief = _brief(no_difference, code="GM0001", lang="nl")
    assert not any(k == "h" and v == "Voor wie werkt het?" for k, v in brief.blocks)


def _render_and_check(source, tmp_path) -> dict[str, str]:
    """Render the national brief of a copy of ``source`` in both languages, HTML and PDF,
    and run the pipeline's brief checks on it (every fact read back from its table, no
    stray number, 2 to 4 PDF pages); returns the HTML pages."""
    root = tmp_path / "repo"
    shutil.copytree(source, root)
    out = root / "reports" / "briefs"
    figures = out / "figures"
    pages = {}
    for lang in ("en", "nl"):
        brief = build.build_brief(root / "reports", root / "params.yaml", PARAMS, "NL01", lang,
                                  figures)
        pages[lang] = render_html(brief, figures, "../index.html", "")
        (out / f"NL01.{lang}.html").write_text(pages[lang], encoding="utf-8")
        io.write_json(brief.facts.to_json(), out / f"NL01.{lang}.facts.json")
        (out / f"NL01.{lang}.pdf").write_bytes(compile_pdf(render_typst(brief), out, f"NL01.{lang}"))
        check_brief(root, f"NL01.{lang}")
    return pages


def test_brief_renders_and_every_number_reads_back(no_difference, tmp_path):
    """HTML and PDF of the national brief with the section pass the brief checks."""
    pages = _render_and_check(no_difference, tmp_path)
    assert "For whom does it work?" in visible_text(pages["en"])
    assert "Voor wie werkt het?" in visible_text(pages["nl"])


def test_facts_count_with_a_comparison(tmp_path):
    df = pd.DataFrame({"g": ["a", "b", "c", "d"], "p": ["0.01", "0.2", "", "0.049"],
                       "published": ["True", "True", "True", "False"]}).astype(str)
    assert lookup(df, "p", {"published": "True", "p": {"lt": 0.05}}, "count") == 1
    assert lookup(df, "p", {"p": {"ge": 0.01, "le": 0.2}}, "count") == 3
    F = Facts(tmp_path, tmp_path / "params.yaml", "nl")
    (tmp_path / "t.csv").write_text("group,x\nsingle parent,1\n3-4,2\n")
    assert F.add("g", "group", "t.csv", "group", {"x": "1"}) == "alleenstaande ouder"
    assert F.add("h", "group", "t.csv", "group", {"x": "2"}) == "3-4"


def _progress_table(reports):
    """Effects on intermediate results: a published step up (both blocks), a goal whose
    quality row is unpublished (blank), and a measure on its own scale (not in the text)."""
    rows = [("ladder_step", "ladder_step_up", "quality", "pp", 4.63, 4.23, 5.03, True),
            ("ladder_step", "ladder_step_up", "adoption", "pp", 7.09, 5.25, 8.93, True),
            ("goal_reached", "goal_reached", "quality", "pp", None, None, None, False),
            ("goal_reached", "goal_reached", "adoption", "pp", 5.09, 4.19, 6.0, True),
            ("self_efficacy", "self_efficacy", "quality", "value", 0.31, 0.2, 0.42, True)]
    t = pd.DataFrame(rows, columns=["measure", "outcome", "block", "unit", "estimate",
                                    "ci_low", "ci_high", "published"])
    t.to_csv(reports / "tables" / "progress_effects.csv", index=False)


@pytest.fixture(scope="module")
def with_progress(tmp_path_factory, no_difference):
    root = tmp_path_factory.mktemp("with_progress") / "repo"
    shutil.copytree(no_difference, root)
    _progress_table(root / "reports")
    return root


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_intermediate_results_reported_from_the_progress_table(with_progress, lang):
    brief = _brief(with_progress, lang=lang)
    text = _section(brief)
    if lang == "en":
        assert ("A step up the participation ladder: +4.63 percentage points per quality "
                "point (range +4.23 to +5.03); +7.09 percentage points through the approach "
                "Gewogen Maatwerk (range +5.25 to +8.93)." in text)
        assert ("A reached personal goal: +5.09 percentage points through the approach "
                "Gewogen Maatwerk (range +4.19 to +6.00)." in text)
        assert "self efficacy" not in text and "0.31" not in text
    else:
        assert ("Een stap hoger op de participatieladder: +4,63 procentpunt per punt "
                "kwaliteit (marge +4,23 tot +5,03); +7,09 procentpunt door de aanpak "
                "Gewogen Maatwerk (marge +5,25 tot +8,93)." in text)
        assert "Een bereikt persoonlijk doel: +5,09 procentpunt door de aanpak" in text
    # the unpublished quality effect on goals is not said
    assert text.count("reached personal goal") + text.count("bereikt persoonlijk doel") == 1
    # 'what the data cannot say' no longer says a step up the ladder does not count
    bullets = [v for k, v in brief.blocks if k == "ul"][-1]
    assert not any("participation ladder" in b or "participatieladder" in b for b in bullets)
    assert any("intermediate results" in b or "tussenresultaten" in b for b in bullets)
    sources = {f.source for f in brief.facts.items.values() if f.key.startswith("fw_progress")}
    assert sources == {"tables/progress_effects.csv"}


def test_without_progress_the_ladder_caveat_stays(no_difference):
    brief = _brief(no_difference)
    bullets = [v for k, v in brief.blocks if k == "ul"][-1]
    assert any("step up the participation ladder does not count" in b for b in bullets)
    assert "next review" not in _section(brief)


def test_progress_alone_makes_the_section(tmp_path):
    """Without group tables but with published effects on intermediate results the
    section has its heading and that paragraph only."""
    set_theme()
    reports = _reports(tmp_path, tables=False)
    _progress_table(reports)
    brief = _brief(tmp_path)
    text = _section(brief)
    assert text.startswith("Work is not the only aim of guidance.")
    assert "+4.63 percentage points" in text
    assert not any(k == "fig" and "for_whom" in v[0] for k, v in brief.blocks)


def test_brief_with_progress_renders_and_reads_back(with_progress, tmp_path):
    """The national brief with the progress paragraph still passes the brief checks."""
    pages = _render_and_check(with_progress, tmp_path)
    assert "Work is not the only aim of guidance." in visible_text(pages["en"])
