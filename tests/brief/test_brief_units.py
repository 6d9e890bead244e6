"""Units of the briefs: number formatting, facts read back, Typst escaping, params."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from impact.brief.facts import Facts, fmt, resolve
from impact.brief.params import BriefParams
from impact.brief.render import compile_pdf, typst_escape
from impact.config import ConfigError


@pytest.mark.parametrize("value, kind, lang, shown", [
    (1.2345, "pp", "nl", "1,23"), (1.2345, "pp", "en", "1.23"),
    (-0.0712, "pp_signed", "nl", "\u22120,07"), (0.0712, "pp_signed", "en", "+0.07"),
    (-0.001, "pp_signed", "en", "0.00"),  # no '-0.00' and no sign on a zero
    (12.0, "rank", "nl", "12"), (0.0004, "p", "nl", "<0,001"), (0.0356, "p", "en", "0.036"),
    ("2023", "text", "nl", "2023"),
])
def test_fmt(value, kind, lang, shown):
    assert fmt(value, kind, lang) == shown


def test_fmt_refuses_a_missing_number():
    with pytest.raises(ValueError):
        fmt(float("nan"), "pp", "en")


def test_facts_are_read_back_from_their_source(tmp_path):
    (tmp_path / "tables").mkdir()
    pd.DataFrame({"municipality": ["GM0001", "GM0002", "GM0003"], "rate": [1.5, "", 2.25],
                  "signal": ["above_95", "within", "above_998"]}).to_csv(
        tmp_path / "tables/b.csv", index=False)
    (tmp_path / "metrics.json").write_text(json.dumps({"adoption": {"att_pp": 0.2}, "shock": None}))
    params = tmp_path / "params.yaml"
    params.write_text("estimate:\n  alpha: 0.1\n")
    F = Facts(tmp_path, params, "nl")
    assert F.add("r", "pp", "tables/b.csv", "rate", {"municipality": "GM0001"}) == "1,50"
    assert F.add("s", "pp", "tables/b.csv", "rate", {"municipality": "GM0002"}) is None  # suppressed
    assert F.add("n", "count", "tables/b.csv", "municipality",
                 {"signal": ["above_95", "above_998"]}, agg="count") == "2"
    assert F.add("att", "pp_signed", "metrics.json", "adoption.att_pp") == "+0,20"
    assert F.add("sh", "pp", "metrics.json", "shock.effect_pp") is None  # a null block
    assert F.add("c", "pct", "params.yaml", "estimate.alpha", agg="confidence_pct") == "90"
    written = F.to_json()
    assert [f["key"] for f in written] == ["att", "c", "n", "r"]
    for f in written:
        assert resolve(tmp_path, params, f) == f["value"]
    with pytest.raises(LookupError):  # a fact must name exactly one row
        F.add("x", "pp", "tables/b.csv", "rate", {"signal": ["above_95", "above_998"]})


def test_typst_escape_keeps_text_literal(tmp_path):
    from pypdf import PdfReader

    text = "'s-Hertogenbosch: #1 * _x_ [a] <b> @c $d$ // e = f - g + h \\ i ~ j"
    src = f"#set document(date: none)\n#set smartquote(enabled: false)\n{typst_escape(text)}\n"
    pdf = tmp_path / "t.pdf"
    pdf.write_bytes(compile_pdf(src, tmp_path, "t"))
    got = " ".join(PdfReader(pdf).pages[0].extract_text().split())
    assert got == " ".join(text.split())
    assert compile_pdf(src, tmp_path, "t") == pdf.read_bytes()  # byte-identical


def test_brief_params():
    p = BriefParams.from_dict({})
    assert p.municipalities == "auto" and p.languages == ("nl", "en") and p.pdf
    assert p.codes(["GM0003", "GM0001", "GM0002"], [5.0, 9.0, 5.0]) == ["GM0001", "GM0002",
                                                                         "GM0003"]
    assert BriefParams.from_dict({"auto_count": 1}).codes(["A", "B"], [1.0, 2.0]) == ["B"]
    assert BriefParams.from_dict({"municipalities": ["GM0363"]}).codes(["GM0599"], [1.0]) == ["GM0363"]
    for bad in ({"municipalities": "some"}, {"municipalities": ["Amsterdam"]},
                {"languages": ["de"]}, {"auto_count": 9}, {"pdf": "yes"}, {"colour": 1}):
        with pytest.raises(ConfigError):
            BriefParams.from_dict(bad)


def test_text_overlaps_ignores_tick_labels_outside_the_view():
    """Tick labels of ticks outside the axis limits are never drawn (matplotlib keeps them
    as visible texts): they cannot overlap anything. Drawn texts still can."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from impact.brief.figures import text_overlaps

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_xticks([0, 1, 2])
    ax.set_yticks([-1, 0, 1])
    ax.set(xlim=(0.5, 2), ylim=(-0.5, 1))  # x tick 0 and y tick -1 lie outside
    ax.set_xticklabels(["HIDDENX", "1", "2"])
    ax.set_yticklabels(["HIDDENY", "0", "1"])
    # a drawn text exactly where the undrawn label of the tick outside the view would be
    fig.canvas.draw()
    bb = ax.xaxis.get_majorticklabels()[0].get_window_extent()
    fig.text(bb.x0 / fig.bbox.width, bb.y0 / fig.bbox.height, "DRAWN HERE")
    assert not [p for p in text_overlaps(fig) if "HIDDENX" in p or "HIDDENY" in p]
    ax.text(1, 0, "same place")
    ax.text(1, 0, "same place too")
    assert ("same place", "same place too") in text_overlaps(fig)
    plt.close(fig)


def test_text_overlaps_compares_an_annotations_text_not_its_leader_line():
    """A label with a long diagonal leader line: the line's bounding rectangle covers a
    text the line never touches (matplotlib's ``Annotation.get_window_extent`` includes
    it; at national size the brief's funnel logged dozens of such false overlaps). The
    labels' own boxes are compared; an annotation whose text does sit on another's is
    still found."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from impact.brief.figures import text_overlaps

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.set(xlim=(0, 10), ylim=(0, 10))
    ax.annotate("LEADER", (1, 1), xytext=(9, 9), textcoords="data", ha="right",
                arrowprops=dict(arrowstyle="-"))
    ax.text(2.2, 7.5, "BESIDE")   # inside the line's rectangle, far from line and label
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    beside = [t for t in ax.texts if t.get_text() == "BESIDE"][0]
    assert ax.texts[0].get_window_extent(r).overlaps(beside.get_window_extent(r))  # the trap
    assert text_overlaps(fig) == []
    ax.annotate("ON TOP", (1, 1), xytext=(9, 9), textcoords="data", ha="right",
                arrowprops=dict(arrowstyle="-"))
    assert ("LEADER", "ON TOP") in text_overlaps(fig)
    plt.close(fig)


def test_decimal_comma_keeps_the_view_and_the_names():
    """The Dutch pass writes decimal points as commas and changes nothing else: the view
    limits stay the figure's own (setting the ticks widened them to the ticks just outside,
    which moved every point under the funnel's labels and made two of them overlap),
    names with a point keep it, mathtext gets a comma without a space, and what else is
    asked of a formatter reaches the axis' own."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from impact.brief.figures import _comma, decimal_comma

    def figure():
        fig, (ax, names) = plt.subplots(1, 2, figsize=(6, 3))
        ax.plot([0.03, 0.97], [0.12, 3.9])   # ticks at -0.25 and 1.25, -1 and 5 lie outside
        names.barh([0, 1], [0.4, 0.9])
        names.set_yticks([0, 1], ["Middelburg (Z.)", "Bergen (L.)"])
        fig.draw_without_rendering()
        return fig

    en, nl = figure(), figure()
    decimal_comma(nl)
    decimal_comma(nl)   # a second pass adds nothing
    nl.draw_without_rendering()
    for a, b in zip(en.axes, nl.axes):
        assert a.get_xlim() == b.get_xlim() and a.get_ylim() == b.get_ylim()
    xs = [t.get_text() for t in nl.axes[0].get_xticklabels() if t.get_text()]
    assert "0,25" in xs and "0,75" in xs and not any("." in t for t in xs)
    names = [t.get_text() for t in nl.axes[1].get_yticklabels()]
    assert names == ["Middelburg (Z.)", "Bergen (L.)"]
    xs = [t.get_text() for t in nl.axes[1].get_xticklabels() if t.get_text()]
    assert any("," in t for t in xs) and not any("." in t for t in xs)
    fmt = nl.axes[0].xaxis.get_major_formatter()
    fmt.set_useOffset(False)          # ScalarFormatter's own setting, through the wrapper
    assert fmt(0.5) == "0,50" and fmt.format_data_short(0.25).strip().startswith("0,25")
    assert _comma("$\\mathdefault{0.4}$") == "$\\mathdefault{0{,}4}$" and _comma(12.5) == "12,5"
    plt.close(en)
    plt.close(nl)
