"""Forest plots of the group effects (impact.report.forest), from a synthetic pair of tables."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.text import Text

from for_whom_tables import group_tables
from impact.brief.figures import decimal_comma, text_overlaps
from impact.brief.text import FOREST_TEXT
from impact.report.figures import save_png_svg, set_theme
from impact.report.forest import forest_figure, forest_figures

P_TESTS = {("quality", "work", "age"): 0.012, ("quality", "work", "household"): 0.0004}


@pytest.fixture(scope="module")
def tables():
    set_theme()
    return group_tables(P_TESTS)


@pytest.fixture(scope="module")
def quality_work(tables):
    fig = forest_figure(*tables, "quality", "work", min_cell=10)
    yield fig
    plt.close(fig)


def _gid(fig, gid):
    return [a for a in fig.findobj() if getattr(a, "get_gid", lambda: None)() == gid]


def _rows(groups, block="quality", outcome="work"):
    return groups[(groups["block"] == block) & (groups["outcome"] == outcome)].reset_index(drop=True)


def _tick_y(fig) -> dict[str, float]:
    ax = fig.axes[0]
    return {t.get_text().removesuffix(" *"): y for t, y in zip(ax.get_yticklabels(), ax.get_yticks())}


def test_one_point_per_published_group_and_none_for_the_others(tables, quality_work):
    rows = _rows(tables[0])
    pub = rows[rows["published"]]
    [points] = _gid(quality_work, "forest-estimate")
    [shrunk] = _gid(quality_work, "forest-shrunk")
    assert len(points.get_xdata()) == len(pub) == len(rows) - 2
    assert len(shrunk.get_xdata()) == len(pub)
    np.testing.assert_allclose(sorted(points.get_xdata()), sorted(pub["estimate"]))
    # every group has a row; unpublished rows (labels unique in this table) carry no point
    y = _tick_y(quality_work)
    for label in ("5-6", "55+"):
        assert label in y and y[label] not in set(points.get_ydata()) | set(shrunk.get_ydata())
    notes = _gid(quality_work, "forest-unpublished")
    assert len(notes) == 2
    assert {n.get_text() for n in notes} == {"not published (fewer than 10 clients or exits)"}
    assert sorted(n.get_position()[1] for n in notes) == sorted([y["5-6"], y["55+"]])


def test_headings_carry_the_equality_test(tables, quality_work):
    titles = {t.get_position()[1]: t.get_text() for t in _gid(quality_work, "forest-heading")}
    tests = {t.get_position()[1]: t.get_text() for t in _gid(quality_work, "forest-test")}
    assert set(titles) == set(tests) and len(titles) == 6
    by_title = {titles[y]: tests[y] for y in titles}
    assert by_title["Age"].endswith("p = 0.01")
    assert by_title["Household"].endswith("p < 0.001")
    assert by_title["Participation-ladder step at intake"].endswith("p = 0.50")
    assert "Benefit history (months in 5 years before)" in by_title
    # in the order of the default groups, top to bottom
    assert [titles[y] for y in sorted(titles, reverse=True)][:2] == [
        "Participation-ladder step at intake", "Age"]


def test_romano_wolf_marks_and_axis_words(tables, quality_work):
    rows = _rows(tables[0])
    starred = {t.get_text().removesuffix(" *") for t in quality_work.axes[0].get_yticklabels()
               if t.get_text().endswith(" *")}
    want = set(rows.loc[rows["published"] & (rows["p_romano_wolf"] < 0.05), "group"])
    assert starred == want and want
    assert "per quality point" in quality_work.axes[0].get_xlabel()
    assert "leaving for work" in quality_work.axes[0].get_xlabel()


def test_every_block_and_outcome_and_no_overlapping_labels(tables):
    figs = forest_figures(*tables, min_cell=10)
    try:
        assert set(figs) == {f"for_whom_{b}_{o}" for b in ("quality", "adoption")
                             for o in ("work", "education", "any")}
        xl = figs["for_whom_adoption_education"].axes[0].get_xlabel()
        assert "leaving for education" in xl and "per quality point" not in xl
        for name in ("for_whom_quality_work", "for_whom_adoption_work"):
            assert text_overlaps(figs[name]) == [], name
    finally:
        for f in figs.values():
            plt.close(f)
    nl = forest_figure(*tables, "quality", "work", text=FOREST_TEXT["nl"], decimal=",")
    en = forest_figure(*tables, "quality", "work")
    try:
        assert text_overlaps(nl) == []
        assert any("p = 0,01" in t.get_text() for t in nl.findobj(Text))
        # decimal commas on the axis, and the brief's comma pass leaves its range alone
        decimal_comma(nl)
        labels = [t.get_text() for t in nl.axes[0].get_xticklabels() if t.get_text()]
        assert any("," in t for t in labels) and not any("." in t for t in labels)
        assert nl.axes[0].get_xlim() == en.axes[0].get_xlim()
    finally:
        plt.close(nl)
        plt.close(en)


def test_the_axis_label_stays_inside_the_figure(tables):
    """Every block and outcome's axis label, in both languages, within the figure's width
    (centred under the axis, the programme's label for any exit ran off its right edge)."""
    figs = [*forest_figures(*tables, min_cell=10).values(),
            *forest_figures(*tables, min_cell=10, text=FOREST_TEXT["nl"], decimal=",").values()]
    try:
        for fig in figs:
            fig.canvas.draw()
            box = fig.axes[0].xaxis.label.get_window_extent(fig.canvas.get_renderer())
            assert box.x0 >= 0 and box.x1 <= fig.bbox.width, fig.axes[0].get_xlabel()
    finally:
        for f in figs:
            plt.close(f)


def test_a_dimension_without_test_and_bad_text(tables):
    groups, tests = tables
    tests = tests.copy()
    tests.loc[tests["dimension"] == "education", "p_value"] = math.nan
    fig = forest_figure(groups, tests, "quality", "work")
    try:
        assert any(t.get_text().startswith("no test") for t in _gid(fig, "forest-test"))
    finally:
        plt.close(fig)
    with pytest.raises(ValueError):
        forest_figure(groups, tests, "quality", "work", text={"colour": "x"})
    with pytest.raises(ValueError):
        forest_figure(groups, tests, "shock", "work")


def test_adjusted_p_values_as_the_stage_writes_them():
    """``p_adjusted`` with its ``adjustment`` (Holm for the programme): the marks and the
    note follow that column and name that method."""
    groups, tests = group_tables(P_TESTS, adjusted="p_adjusted")
    assert "p_romano_wolf" not in groups
    rows = _rows(groups, "adoption")
    fig = forest_figure(groups, tests, "adoption", "work")
    try:
        starred = {t.get_text().removesuffix(" *") for t in fig.axes[0].get_yticklabels()
                   if t.get_text().endswith(" *")}
        assert starred == set(rows.loc[rows["published"] & (rows["p_adjusted"] < 0.05), "group"])
        note = fig.legends[0].get_title().get_text()
        assert "(Holm p < 0.05)" in note
    finally:
        plt.close(fig)
    fig = forest_figure(groups, tests, "quality", "work")
    try:
        assert "(Romano-Wolf p < 0.05)" in fig.legends[0].get_title().get_text()
    finally:
        plt.close(fig)


def test_svg_bytes_identical_across_saves(tables, tmp_path):
    out = []
    for run in ("a", "b"):
        fig = forest_figure(*tables, "adoption", "work", min_cell=10)
        save_png_svg(fig, tmp_path / run / "for_whom_adoption_work.png")
        out.append(((tmp_path / run / "for_whom_adoption_work.svg").read_bytes(),
                    (tmp_path / run / "for_whom_adoption_work.png").read_bytes()))
    assert out[0] == out[1]
    assert b"not published (fewer than 10 clients or exits)" in out[0][0]
