"""Compose a brief (municipal or national, Dutch or English) from the output tables.

A brief is a list of blocks (heading, paragraph, bullet list, figure) plus its
:class:`~impact.brief.facts.Facts`; :mod:`impact.brief.render` turns it into HTML and
Typst/PDF. Only ``reports/tables``, ``reports/plots``, ``reports/metrics.json`` and
``params.yaml`` are read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from impact.brief.facts import Facts, fmt
from impact.brief.text import FIGURE_TEXT, FOREST_TEXT, GROUP_TEXT, TEXT
from impact.report.fair_figures import (
    DEFAULT_TEXT, funnel_figure, rank_figure, waterfall_figure,
)
from impact.report.figures import event_study_figure, save_png_svg
from impact.report.forest import adjusted_p, dimensions, forest_figure, published_mask

__all__ = ["Brief", "build_brief", "NATIONAL", "save_figure"]

NATIONAL = "NL01"
COMPONENTS = ("labour_market", "shocks", "composition", "quality", "residual")
DEC, BENCH = "tables/decomposition.csv", "tables/benchmark.csv"
GROUPS, TESTS = "tables/group_effects.csv", "tables/heterogeneity_tests.csv"


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


#: (figure file, text, text) of overlapping labels found by :func:`save_figure`
OVERLAPS: list[tuple[str, str, str]] = []


def text_overlaps(fig) -> list[tuple[str, str]]:
    """Pairs of visible, non-empty texts of ``fig`` whose drawn boxes overlap.

    Texts of one legend and an annotation's own box are compared like any other; a pair
    where one text sits inside the other's box by design does not occur in these figures.
    """
    from matplotlib.text import Text

    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    # tick labels whose tick lies outside the axis' view are kept (visible, with text) but
    # never drawn: leave them out
    hidden = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for loc, lab in zip(axis.get_majorticklocs(), axis.get_majorticklabels()):
                if not lo - 1e-9 * abs(hi - lo) <= loc <= hi + 1e-9 * abs(hi - lo):
                    hidden.add(id(lab))
    boxes = []
    for t in fig.findobj(Text):
        if (t.get_visible() and t.get_text().strip() and t.figure is fig
                and id(t) not in hidden):
            bb = t.get_window_extent(r)
            if bb.width > 0 and bb.height > 0:
                boxes.append((t.get_text(), bb.shrunk(0.96, 0.9)))
    out = []
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            if boxes[i][1].overlaps(boxes[j][1]):
                out.append((boxes[i][0], boxes[j][0]))
    return out


def decimal_comma(fig) -> None:
    """Tick labels with a decimal comma (Dutch), fixed after drawing."""
    fig.canvas.draw()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            labels = [t.get_text() for t in axis.get_ticklabels()]
            if any("." in t for t in labels):
                axis.set_ticks(axis.get_ticklocs(), [t.replace(".", ",") for t in labels])


def save_figure(fig, stem: Path, lang: str = "en") -> list[Path]:
    """PNG and SVG, without creation dates (byte-identical reruns).

    Overlapping labels are logged (and kept in :data:`OVERLAPS` for the tests)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    if lang == "nl":
        decimal_comma(fig)
    for a, b in text_overlaps(fig):
        logging.warning("%s: labels overlap: %r and %r", stem.name, a, b)
        OVERLAPS.append((stem.name, a, b))
    save_png_svg(fig, stem.with_suffix(".png"))
    return [stem.with_suffix(".png"), stem.with_suffix(".svg")]


def _programme(params: dict) -> str:
    return str(params.get("adoption", {}).get("programme", "")).replace("_", " ").title()


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
    programme = _programme(params)
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
    if national:
        _for_whom(brief, F, T, reports, params, lang, figures)

    # 6. how sure, what not
    brief.h(T["sure_h"])
    q = F.add("quality_effect", "pp_signed", "metrics.json", "quality.effect_pp")
    if q is not None:
        lo = F.add("quality_ci_low", "pp_signed", "metrics.json", "quality.ci_low")
        hi = F.add("quality_ci_high", "pp_signed", "metrics.json", "quality.ci_high")
        brief.p(T["sure_quality"].format(q=q, lo=lo, hi=hi))
    min_cell = F.add("min_cell", "count", "params.yaml", "privacy.min_cell")
    brief.ul(T["sure_list"].format(min_cell=min_cell).split("|"))

    # 7. method and source
    brief.h(T["method_h"])
    brief.p(T["method"])
    brief.blocks.append(("source", T["source"]))
    _check_confidence(brief, lang)
    return brief


def _for_whom(brief: Brief, F: Facts, T: dict[str, str], reports: Path, params: dict,
              lang: str, figures: Path) -> None:
    """The section "For whom does it work" from ``group_effects.csv`` and
    ``heterogeneity_tests.csv`` (stage ``heterogeneity``); left out without them.

    Only published groups (disclosure control) are named. A difference between groups is
    called clear only when the dimension's equality test has p < ``estimate.alpha``.
    """
    if not ((reports / GROUPS).exists() and (reports / TESTS).exists()):
        return
    # labels as written ('none' and the like stay text); empty cells are the suppressed ones
    groups = pd.read_csv(reports / GROUPS, dtype={"group": str}, keep_default_na=False,
                         na_values=[""])
    tests = pd.read_csv(reports / TESTS)
    pub = groups[published_mask(groups)]
    alpha = float(params.get("estimate", {}).get("alpha", 0.05))
    blocks = [b for b in ("quality", "adoption")
              if ((pub["block"] == b) & (pub["outcome"] == "work")).sum() >= 2]
    if not blocks:
        return
    words = GROUP_TEXT[lang]
    brief.h(T["for_whom_h"])
    dims = dimensions(pub[pub["outcome"] == "work"])
    brief.p(T["fw_intro"].format(dims=_join([_dim_word(words, d) for d in dims], T)))
    programme = _programme(params)
    chance = False  # the caution that one clear difference among many can be chance, said once
    for block in blocks:
        rows = pub[(pub["block"] == block) & (pub["outcome"] == "work")]
        tag = f"fw_{block}"
        best, worst = rows.loc[rows["estimate"].idxmax()], rows.loc[rows["estimate"].idxmin()]
        said = {}
        for role, r in (("best", best), ("worst", worst)):
            k = f"{tag}_{role}"
            said[role] = _group_phrase(F, words, k, r)
            said[role + "_v"] = F.add(k, "pp_signed", GROUPS, "estimate", _row(r))
            said[role + "_rng"] = _range(F, T, k, r)
        caveat = (" " + T["fw_duration_caveat"]
                  if "duration" in (best["dimension"], worst["dimension"]) else "")
        brief.p(T[tag].format(programme=programme, best=said["best"], v=said["best_v"],
                              rng=said["best_rng"], worst=said["worst"], w=said["worst_v"],
                              wrng=said["worst_rng"]) + caveat)
        clarity, clear = _clarity(F, T, words, tests, tag, block, "work",
                                  dimensions(rows), alpha)
        if clear and not chance:
            clarity, chance = clarity + " " + T["fw_chance"], True
        if clarity:
            brief.p(clarity)
        # groups whose effect differs from zero after the adjustment for multiple testing
        col, _, method = adjusted_p(rows)
        if col:
            n = F.add(f"{tag}_n", "count", GROUPS, "estimate",
                      {"block": block, "outcome": "work", "published": "True"}, agg="count")
            k = F.add(f"{tag}_rw", "count", GROUPS, col,
                      {"block": block, "outcome": "work", "published": "True",
                       col: {"lt": alpha}}, agg="count")
            if F.value(f"{tag}_rw") == 0:
                F.drop(f"{tag}_rw")
                brief.p(T["fw_rw_none"].format(n=n, method=method))
            else:
                mark = T["fw_rw_mark"] if block == blocks[0] else ""
                brief.p(T["fw_rw"].format(n=n, k=k, mark=mark, method=method))
    other = [_other_outcome(F, T, words, tests, pub, outcome, alpha)
             for outcome in ("education", "any")]
    if any(text for text, _ in other):
        text = " ".join(text for text, _ in other if text)
        if not chance and any(clear for _, clear in other):
            text += " " + T["fw_chance"]
        brief.p(text)
    shrink = T["fw_shrink"]
    rows = pub[(pub["block"] == blocks[0]) & (pub["outcome"] == "work")]
    rel = pd.to_numeric(rows["reliability"], errors="coerce")
    if rel.notna().any():  # the least reliable group, where shrinking matters most
        r = rows.loc[rel.idxmin()]
        g = _group_phrase(F, words, "fw_shrink", r)
        raw = F.add("fw_shrink_estimate", "pp_signed", GROUPS, "estimate", _row(r))
        shr = F.add("fw_shrink_shrunk", "pp_signed", GROUPS, "shrunk", _row(r))
        if shr is not None:
            shrink += " " + T["fw_shrink_example"].format(g=g, raw=raw, shr=shr)
        else:
            F.drop("fw_shrink_group", "fw_shrink_estimate")
    brief.p(shrink)
    fig = forest_figure(groups, tests, blocks[0], "work",
                        min_cell=int(params.get("privacy", {}).get("min_cell", 10)), alpha=alpha,
                        text=FOREST_TEXT[lang], labels=_label_words(groups, F.lang),
                        decimal="," if lang == "nl" else ".")
    name = f"for_whom_{blocks[0]}_work"
    save_figure(fig, figures / lang / name, lang)
    brief.fig(f"{lang}/{name}", T["fw_cap"] if blocks[0] == "quality" else T["fw_cap_adoption"])


def _row(r: pd.Series) -> dict[str, str]:
    """The fact address of a group row (block, outcome, dimension and group are unique)."""
    return {c: str(r[c]) for c in ("block", "outcome", "dimension", "group")}


def _dim_word(words: dict, dim: str) -> str:
    return words.get(dim, words["_other"])[0].format(dim=dim.replace("_", " "))


def _group_phrase(F: Facts, words: dict, key: str, r: pd.Series) -> str:
    """A group named in a sentence ("clients aged 35-44"); its label is a fact."""
    g = F.add(f"{key}_group", "group", GROUPS, "group", _row(r))
    dim = str(r["dimension"])
    return words.get(dim, words["_other"])[1].format(g=g, dim=dim.replace("_", " "))


def _label_words(groups: pd.DataFrame, lang: str) -> dict[str, str]:
    """The group labels of the figure: in Dutch in the words the text uses, in English as
    the table has them (the text's "no months" is the figure's "none")."""
    if lang == "en":
        return {}
    return {g: fmt(g, "group", lang) for g in groups["group"].astype(str).unique()}


def _range(F: Facts, T: dict[str, str], key: str, r: pd.Series) -> str:
    lo = F.add(f"{key}_ci_low", "pp_signed", GROUPS, "ci_low", _row(r))
    hi = F.add(f"{key}_ci_high", "pp_signed", GROUPS, "ci_high", _row(r))
    if lo is None or hi is None:  # a range is shown whole or not at all
        F.drop(f"{key}_ci_low", f"{key}_ci_high")
        return ""
    return T["fw_range"].format(lo=lo, hi=hi)


def _p_text(display: str) -> str:
    """'p = 0.012' or 'p <0.001' from a p fact's display (shown as it is: the brief's
    checks find every fact's display in the text)."""
    return f"p {display}" if display.startswith("<") else f"p = {display}"


def _join(items: list[str], T: dict[str, str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {T['fw_and']} " + items[-1]


def _tested(tests: pd.DataFrame, block: str, outcome: str, dims: list[str]) -> list[tuple[str, float]]:
    """(dimension, p) of the equality tests with a p-value, in ``dims`` order."""
    t = tests[(tests["block"] == block) & (tests["outcome"] == outcome)]
    p = dict(zip(t["dimension"].astype(str), pd.to_numeric(t["p_value"], errors="coerce")))
    return [(d, float(p[d])) for d in dims if d in p and pd.notna(p[d])]


def _clarity(F: Facts, T: dict[str, str], words: dict, tests: pd.DataFrame, tag: str,
             block: str, outcome: str, dims: list[str], alpha: float) -> tuple[str, bool]:
    """Whether the groups' effects differ, per dimension (clear only when p < alpha), and
    whether a clear difference was named."""
    tested = _tested(tests, block, outcome, dims)
    if not tested:
        return "", False
    where = lambda d: {"block": block, "outcome": outcome, "dimension": d}  # noqa: E731
    clear = [(d, p) for d, p in tested if p < alpha]
    if not clear:
        d = min(tested, key=lambda dp: dp[1])[0]
        p = F.add(f"{tag}_p_min", "p", TESTS, "p_value", where(d))
        return T["fw_no_difference"].format(p=p), False
    items = [T["fw_dim_p"].format(dim=_dim_word(words, d),
                                  p=_p_text(F.add(f"{tag}_p_{d}", "p", TESTS, "p_value", where(d))))
             for d, _ in clear]
    out = T["fw_difference"].format(dims=_join(items, T))
    rest = [_dim_word(words, d) for d, p in tested if p >= alpha]
    if rest:
        out += " " + T["fw_difference_rest"].format(dims=_join(rest, T))
    return out, True


def _other_outcome(F: Facts, T: dict[str, str], words: dict, tests: pd.DataFrame,
                   pub: pd.DataFrame, outcome: str, alpha: float) -> tuple[str, bool]:
    """One sentence on exit to education or any exit: the clear differences (the three
    with the smallest p, "among others" when there are more) or none; and whether a clear
    difference was named."""
    tested = []
    for block in ("quality", "adoption"):
        dims = dimensions(pub[(pub["block"] == block) & (pub["outcome"] == outcome)])
        tested += [(p, block, d) for d, p in _tested(tests, block, outcome, dims)]
    if not tested:
        return "", False
    tested.sort(key=lambda t: t[0])
    name = T[f"fw_outcome_{outcome}"]
    where = lambda b, d: {"block": b, "outcome": outcome, "dimension": d}  # noqa: E731
    clear = [t for t in tested if t[0] < alpha]
    if not clear:
        p, b, d = tested[0]
        shown = F.add(f"fw_{outcome}_p_min", "p", TESTS, "p_value", where(b, d))
        return T["fw_other_none"].format(outcome=name, p=_p_text(shown)), False
    named: dict[str, list[str]] = {}  # block -> "age (p = 0.012)", smallest p first
    for p, b, d in clear[:3]:
        shown = F.add(f"fw_{outcome}_{b}_p_{d}", "p", TESTS, "p_value", where(b, d))
        named.setdefault(b, []).append(f"{_dim_word(words, d)} ({_p_text(shown)})")
    items = [T["fw_other_item"].format(what=T[f"fw_what_{b}"], dims=_join(dims, T))
             for b, dims in named.items()]
    key = "fw_other" if len(clear) <= 3 else "fw_other_some"
    return T[key].format(outcome=name, items=_join(items, T)), True


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
