"""The briefs' section "For whom does it work" (national brief only: the group effects
are national estimates), from the tables of the ``heterogeneity`` stage:
``group_effects.csv``, ``heterogeneity_tests.csv`` and ``progress_effects.csv``.

Only published groups (disclosure control) are named; every number is a fact read from
those tables (:class:`~impact.brief.facts.Facts`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from impact.brief.facts import Facts, fmt
from impact.brief.figures import save_figure
from impact.brief.text import FOREST_TEXT, GROUP_TEXT
from impact.report.forest import adjusted_p, dimensions, forest_figure, published_mask

if TYPE_CHECKING:
    from impact.brief.build import Brief

__all__ = ["GROUPS", "PROGRESS", "TESTS", "for_whom", "programme_name"]

GROUPS, TESTS = "tables/group_effects.csv", "tables/heterogeneity_tests.csv"
PROGRESS = "tables/progress_effects.csv"


def programme_name(params: dict) -> str:
    """The analysed programme as the briefs name it (``gewogen_maatwerk``: Gewogen Maatwerk)."""
    return str(params.get("adoption", {}).get("programme", "")).replace("_", " ").title()


def for_whom(brief: Brief, F: Facts, T: dict[str, str], reports: Path, params: dict,
              lang: str, figures: Path) -> bool:
    """The section "For whom does it work" from ``group_effects.csv`` and
    ``heterogeneity_tests.csv`` (stage ``heterogeneity``), with the effects on
    intermediate results of ``progress_effects.csv``; left out without them.

    Only published groups (disclosure control) are named. A difference between groups is
    called clear only when the dimension's equality test has p < ``estimate.alpha``.
    Returns whether effects on intermediate results were reported.
    """
    beyond = _progress(F, T, reports, params)
    if not ((reports / GROUPS).exists() and (reports / TESTS).exists()):
        if beyond:
            brief.h(T["for_whom_h"])
            brief.p(beyond)
        return bool(beyond)
    # labels as written ('none' and the like stay text); empty cells are the suppressed ones
    groups = pd.read_csv(reports / GROUPS, dtype={"group": str}, keep_default_na=False,
                         na_values=[""])
    tests = pd.read_csv(reports / TESTS)
    pub = groups[published_mask(groups)]
    alpha = float(params.get("estimate", {}).get("alpha", 0.05))
    blocks = [b for b in ("quality", "adoption")
              if ((pub["block"] == b) & (pub["outcome"] == "work")).sum() >= 2]
    if not blocks:
        if beyond:
            brief.h(T["for_whom_h"])
            brief.p(beyond)
        return bool(beyond)
    words = GROUP_TEXT[lang]
    brief.h(T["for_whom_h"])
    dims = dimensions(pub[pub["outcome"] == "work"])
    brief.p(T["fw_intro"].format(dims=_join([_dim_word(words, d) for d in dims], T)))
    programme = programme_name(params)
    chance = False  # the caution that one clear difference among many can be chance, said once
    caveat_said = False
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
        # the dynamic-selection caveat, said once (for the first block that needs it)
        caveat = (" " + T["fw_duration_caveat"]
                  if "duration" in (best["dimension"], worst["dimension"])
                  and not caveat_said else "")
        caveat_said = caveat_said or bool(caveat)
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
    if beyond:
        brief.p(beyond)
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
    return bool(beyond)


def _progress(F: Facts, T: dict[str, str], reports: Path, params: dict) -> str:
    """The paragraph on intermediate results (``progress_effects.csv``): per 0/1 outcome
    (a step up the ladder first), the quality effect and the programme effect in
    percentage points with their ranges; measures on their own scale are left to the
    table. Empty when nothing is published."""
    if not (reports / PROGRESS).exists():
        return ""
    t = pd.read_csv(reports / PROGRESS)
    t = t[t["published"].astype(str).str.lower().eq("true") & t["estimate"].notna()]
    if "unit" in t:
        t = t[t["unit"].astype(str) == "pp"]
    else:  # a table from before the unit column: only what is 0/1 by definition
        t = t[t["outcome"].isin(["ladder_step_up", "goal_reached"])]
    order = {"ladder_step_up": 0, "goal_reached": 1}
    outcomes = sorted(t["outcome"].astype(str).unique(), key=lambda o: (order.get(o, 2), o))
    said = []
    for o in outcomes:
        what = T.get(f"fw_progress_{o}", T["fw_progress_other"]).format(
            measure=o.replace("_", " "))
        parts = []
        for block, key in (("quality", "fw_progress_quality"),
                           ("adoption", "fw_progress_adoption")):
            where = {"outcome": o, "block": block}
            tag = f"fw_progress_{o}_{block}"
            v = F.add(tag, "pp_signed", PROGRESS, "estimate", where)
            if v is None:
                continue
            lo = F.add(f"{tag}_ci_low", "pp_signed", PROGRESS, "ci_low", where)
            hi = F.add(f"{tag}_ci_high", "pp_signed", PROGRESS, "ci_high", where)
            rng = T["fw_range"].format(lo=lo, hi=hi) if lo and hi else ""
            if not rng:
                F.drop(f"{tag}_ci_low", f"{tag}_ci_high")
            parts.append(T[key].format(v=v, rng=rng, programme=programme_name(params)))
        if parts:  # "A step up the participation ladder: +4.63 ... (range ...); +7.09 ..."
            said.append(f"{what[:1].upper()}{what[1:]}: {'; '.join(parts)}.")
    return " ".join([T["fw_progress"], *said]) if said else ""


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
