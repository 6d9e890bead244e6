"""Compose a brief (municipal or national, Dutch or English) from the output tables.

A brief is a list of blocks (heading, paragraph, bullet list, figure) plus its
:class:`~impact.brief.facts.Facts`; :mod:`impact.brief.render` turns it into HTML and
Typst/PDF. Only ``reports/tables``, ``reports/plots``, ``reports/metrics.json`` and
``params.yaml`` are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from impact.brief.facts import Facts
from impact.brief.figures import save_figure
from impact.brief.for_whom import for_whom, programme_name
from impact.brief.text import FIGURE_TEXT, TEXT
from impact.report.fair_figures import DEFAULT_TEXT, funnel_figure, rank_figure
from impact.report.waterfall import waterfall_figure
from impact.report.figures import event_study_figure

__all__ = ["Brief", "build_brief", "NATIONAL", "save_figure"]

NATIONAL = "NL01"
COMPONENTS = ("labour_market", "shocks", "composition", "quality", "residual")
DEC, BENCH = "tables/decomposition.csv", "tables/benchmark.csv"


@dataclass
class Brief:
    code: str
    lang: str
    name: str
    title: str
    subtitle: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)
    facts: Facts | None = None

    def h(self, text: str) -> None:
        self.blocks.append(("h", text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def ul(self, items: list[str]) -> None:
        self.blocks.append(("ul", [i for i in items if i]))

    def fig(self, stem: str, caption: str) -> None:
        self.blocks.append(("fig", (stem, caption)))


def build_brief(reports: Path, params_path: Path, params: dict, code: str, lang: str,
                figures: Path) -> Brief:
    """The brief of ``code`` (a municipality, or ``NL01`` for the national brief)."""
    T, F = TEXT[lang], Facts(reports, params_path, lang)
    ftext_all = {**DEFAULT_TEXT, **FIGURE_TEXT["en"], **FIGURE_TEXT[lang]}
    ftext = {k: v for k, v in ftext_all.items() if k in DEFAULT_TEXT}
    dec = pd.read_csv(reports / DEC, dtype={"period_from": str, "period_to": str})
    bench = pd.read_csv(reports / BENCH)
    national = code == NATIONAL
    rows = dec[dec["municipality"] == code]
    if not len(rows):
        raise LookupError(f"{code} is not in {DEC}")
    name = str(rows["name"].iloc[0]) if not national else ("Nederland" if lang == "nl" else "the Netherlands")
    last = rows.loc[rows["period_to"] == rows["period_to"].max()]
    p0, p1 = str(last["period_from"].iloc[0]), str(last["period_to"].iloc[0])
    title = T["title_national"] if national else T["title"].format(name=name)
    brief = Brief(code, lang, name, title, T["subtitle"].format(p0=p0, p1=p1), facts=F)
    key = {"municipality": code, "period_from": p0, "period_to": p1}
    F.add("period_from", "text", DEC, "period_from", {**key, "component": "observed_change"})
    F.add("period_to", "text", DEC, "period_to", {**key, "component": "observed_change"})
    stem = figures / lang / code

    # 1. what happened
    brief.h(T["happened_h"])
    obs = F.add("observed_change", "pp_signed", DEC, "contribution_pp", {**key, "component": "observed_change"})
    r0 = F.add("rate_from", "pp", DEC, "rate_from_pp", {**key, "component": "observed_change"})
    r1 = F.add("rate_to", "pp", DEC, "rate_to_pp", {**key, "component": "observed_change"})
    if obs is None or r0 is None or r1 is None:
        brief.p(_suppressed(lang))
    else:
        brief.p(T["happened"].format(p0=p0, p1=p1, rate0=r0, rate1=r1, obs=obs))
        # 2. where from
        brief.h(T["where_h"])
        F.add("confidence", "pct", "params.yaml", "estimate.alpha", agg="confidence_pct")
        brief.p(T["where"].format(p0=p0, p1=p1))
        items = []
        for comp in COMPONENTS:
            w = {**key, "component": comp}
            v = F.add(f"dec_{comp}", "pp_signed", DEC, "contribution_pp", w)
            lo = F.add(f"dec_{comp}_ci_low", "pp_signed", DEC, "ci_low", w)
            hi = F.add(f"dec_{comp}_ci_high", "pp_signed", DEC, "ci_high", w)
            if v is not None:
                rng = T["range"].format(lo=lo, hi=hi) if lo is not None and hi is not None else ""
                if not rng:  # a range is shown whole or not at all
                    F.drop(f"dec_{comp}_ci_low", f"dec_{comp}_ci_high")
                items.append(T[f"c_{comp}"].format(v=v, rng=rng))
        brief.ul(items)
        pairs = sorted(rows["period_to"].unique())[-3:]
        show = rows[rows["period_to"].isin(pairs)].copy()
        if national:
            show["name"] = name
        save_figure(waterfall_figure(show, text=ftext), stem.with_name(f"{code}_waterfall"), lang)
        brief.fig(f"{lang}/{code}_waterfall", T["waterfall_cap"])

    # 3. standing
    curve_path = reports / "tables" / "funnel_curve.csv"
    if national:
        brief.h(T["national_stands_h"])
        n = F.add("n_ranked", "count", BENCH, "rank_naive", {}, agg="count")
        above = F.add("n_above", "count", BENCH, "municipality",
                      {"funnel_signal": ["above_95", "above_998"]}, agg="count")
        below = F.add("n_below", "count", BENCH, "municipality",
                      {"funnel_signal": ["below_95", "below_998"]}, agg="count")
        brief.p(T["national_stands"].format(n=n, above=above, below=below))
        brief.p(T["ranks_note"])
    else:
        brief.h(T["stands_h"].format(name=name))
        w = {"municipality": code}
        e = F.add("expected_rate", "pp", BENCH, "expected_rate_pp", w)
        o = F.add("observed_rate", "pp", BENCH, "observed_rate_pp", w)
        oe = F.add("oe_ratio", "ratio", BENCH, "oe_ratio", w)
        if e is None or o is None or oe is None:
            brief.p(_suppressed(lang))
        else:
            brief.p(T["stands"].format(expected=e, observed=o, oe=oe))
            sig = str(bench.loc[bench["municipality"] == code, "funnel_signal"].iloc[0])
            brief.p(T["signal_" + sig.split("_")[0]].format(name=name))
            vals = {k: F.add(k, kind, BENCH, col, w) for k, kind, col in (
                ("rn", "rank", "rank_naive"), ("rnl", "rank", "rank_naive_low"),
                ("rnh", "rank", "rank_naive_high"), ("rq", "rank", "rank_quality"),
                ("rql", "rank", "rank_quality_low"), ("rqh", "rank", "rank_quality_high"),
                ("qc", "pp_signed", "quality_contribution_pp"),
                ("qlo", "pp_signed", "quality_ci_low"), ("qhi", "pp_signed", "quality_ci_high"))}
            vals["n"] = F.add("n_ranked", "count", BENCH, "rank_naive", {}, agg="count")
            if all(v is not None for v in vals.values()):
                brief.p(T["ranks"].format(name=name, **vals) + " " + T["ranks_note"])
    if bench["published"].astype(str).eq("True").any() and curve_path.exists():
        curve = pd.read_csv(curve_path)
        hl = None if national else code
        save_figure(funnel_figure(bench, curve, text=ftext, highlight=hl),
                    stem.with_name(f"{code}_funnel"), lang)
        brief.fig(f"{lang}/{code}_funnel", T["funnel_cap"])
        save_figure(rank_figure(bench, text=ftext, highlight=hl, max_units=24, keep=9),
                    stem.with_name(f"{code}_ranks"), lang)
        brief.fig(f"{lang}/{code}_ranks", T["rank_cap"])

    # 4. the programme
    programme = programme_name(params)
    att = F.add("att", "pp_signed", "metrics.json", "adoption.att_pp")
    if att is not None:
        brief.h(T["programme_h"].format(programme=programme))
        lo = F.add("att_ci_low", "pp_signed", "metrics.json", "adoption.ci_low")
        hi = F.add("att_ci_high", "pp_signed", "metrics.json", "adoption.ci_high")
        brief.p(T["programme"].format(att=att, lo=lo, hi=hi))
        p = F.add("pretrend_p", "p", "metrics.json", "adoption.pretrend_p_value")
        alpha = float(params.get("estimate", {}).get("alpha", 0.05))
        if p is not None:
            key_p = "pretrend_warn" if F.value("pretrend_p") < alpha else "pretrend_ok"
            brief.p(T[key_p].format(p=p))
        path = pd.read_csv(reports / "plots" / "adoption_event_study.csv")
        if len(path):
            fig = event_study_figure(path, title=ftext_all["event_title"].format(programme=programme),
                                     xlabel=ftext_all["event_xlabel"], ylabel=ftext_all["event_ylabel"],
                                     labels=(ftext_all["waterfall_ci"], _estimate_word(lang)))
            save_figure(fig, figures / lang / "adoption_event_study", lang)
            brief.fig(f"{lang}/adoption_event_study", T["event_cap"])

    # 5. for whom (national brief only: the group effects are national estimates)
    beyond = national and for_whom(brief, F, T, reports, params, lang, figures)

    # 6. how sure, what not
    brief.h(T["sure_h"])
    q = F.add("quality_effect", "pp_signed", "metrics.json", "quality.effect_pp")
    if q is not None:
        lo = F.add("quality_ci_low", "pp_signed", "metrics.json", "quality.ci_low")
        hi = F.add("quality_ci_high", "pp_signed", "metrics.json", "quality.ci_high")
        brief.p(T["sure_quality"].format(q=q, lo=lo, hi=hi))
    min_cell = F.add("min_cell", "count", "params.yaml", "privacy.min_cell")
    sure = T["sure_list"].format(min_cell=min_cell).split("|")
    if beyond:  # steps up the ladder and reached goals were reported above
        sure[2] = T["sure_recorded_progress"]
    brief.ul(sure)

    # 7. method and source
    brief.h(T["method_h"])
    brief.p(T["method"])
    brief.blocks.append(("source", T["source"]))
    _check_confidence(brief, lang)
    return brief


def _check_confidence(brief: Brief, lang: str) -> None:
    """The texts say '95%': only true when params' alpha is 0.05."""
    if "confidence" in brief.facts.items and brief.facts.value("confidence") != 95:
        conf = brief.facts.get("confidence")
        brief.blocks = [(k, _swap95(v, conf)) for k, v in brief.blocks]


def _swap95(v, conf):
    if isinstance(v, str):
        return v.replace("95%", f"{conf}%")
    if isinstance(v, list):
        return [_swap95(x, conf) for x in v]
    if isinstance(v, tuple):
        return tuple(_swap95(x, conf) for x in v)
    return v


def _estimate_word(lang: str) -> str:
    return "schatting" if lang == "nl" else "estimate"


def _suppressed(lang: str) -> str:
    return ("Deze cijfers tonen we niet: er zijn te weinig klanten (privacy)." if lang == "nl"
            else "These figures are not shown: there are too few clients (privacy).")
