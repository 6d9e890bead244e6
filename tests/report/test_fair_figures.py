"""Fair-comparison figures: right structure, readable at A4 width, honest about suppression."""


import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text
from scipy import stats

from impact.report.fair_figures import (
    COMPONENTS, DEFAULT_TEXT, funnel_figure, overview_figure, rank_figure,
)
from impact.report.waterfall import Waterfalls, waterfall_figure
from impact.report.figures import save_png_svg, set_theme

NAMES = ["Amsterdam", "Rotterdam", "'s-Gravenhage", "Utrecht", "Eindhoven", "Groningen", "Tilburg",
         "Almere", "Breda", "Nijmegen", "Apeldoorn", "Haarlem", "Arnhem", "Enschede",
         "Amersfoort", "Zaanstad", "'s-Hertogenbosch", "Haarlemmermeer", "Zwolle", "Zoetermeer",
         "Leiden", "Maastricht", "Dordrecht", "Ede", "Alphen aan den Rijn", "Westland",
         "Capelle aan den IJssel", "Súdwest-Fryslân", "Oude IJsselstreek", "Midden-Groningen",
         "Heerlen"]
REGIONS = ["Noord", "Oost", "West", "Zuid"]
YEARS = list(range(2018, 2026))  # 8 years -> 7 consecutive pairs


def limits(expected, q):
    """Smooth O/E control limit (normal approximation to the Poisson)."""
    return np.clip(1 + stats.norm.ppf(q) / np.sqrt(expected), 0, None)


def make_tables(n=31, seed=1, n_suppressed=2):
    """Synthetic ``benchmark.csv``, ``benchmark_years.csv``, ``decomposition.csv`` and a curve."""
    rng = np.random.default_rng(seed)
    names = [NAMES[i] if i < len(NAMES) else f"Gemeente {i:03d}" for i in range(n)]
    codes = [f"GM{i + 1:04d}" for i in range(n)]
    pm = np.exp(rng.uniform(np.log(800), np.log(150_000), n)).round()
    expected_rate = rng.uniform(1.5, 4.0, n)
    oe = np.exp(rng.normal(0, 0.12, n))
    expected = pm * expected_rate / 100
    exits = rng.poisson(expected * oe).astype(float)
    oe = exits / expected
    l95, h95, l998, h998 = (limits(expected, q) for q in (0.025, 0.975, 0.001, 0.999))
    signal = np.select([oe > h998, oe > h95, oe < l998, oe < l95],
                       ["above_998", "above_95", "below_998", "below_95"], "within")
    quality = rng.normal(0, 0.3, n)
    se = 1 / np.sqrt(pm / 2000)

    def rank(v):
        return pd.Series(v).rank(ascending=False).to_numpy()
    rq, rn = rank(quality), rank(oe * expected_rate)
    width = np.clip(se * 12, 1, n / 2)
    bench = pd.DataFrame({
        "municipality": codes, "name": names, "region": [REGIONS[i % 4] for i in range(n)],
        "person_months": pm, "exits_work": exits, "expected_exits": expected,
        "observed_rate_pp": 100 * exits / pm, "expected_rate_pp": expected_rate, "oe_ratio": oe,
        "funnel_low95": l95, "funnel_high95": h95, "funnel_low998": l998, "funnel_high998": h998,
        "funnel_signal": signal, "quality_mean": quality, "quality_shrunk": quality * 0.8,
        "quality_reliability": 0.8, "quality_contribution_pp": quality,
        "quality_ci_low": quality - 2 * se, "quality_ci_high": quality + 2 * se,
        "rank_naive": rn, "rank_naive_low": np.clip(rn - width, 1, n),
        "rank_naive_high": np.clip(rn + width, 1, n), "rank_quality": rq,
        "rank_quality_low": np.clip(rq - width, 1, n), "rank_quality_high": np.clip(rq + width, 1, n),
    })
    num = bench.columns[bench.dtypes == float]
    bench.loc[bench.index[len(bench) - n_suppressed:], num] = np.nan  # last units suppressed
    grid = np.exp(np.linspace(np.log(5), np.log(8000), 300))
    curve = pd.DataFrame({"expected_exits": grid, "low95": limits(grid, 0.025),
                          "high95": limits(grid, 0.975), "low998": limits(grid, 0.001),
                          "high998": limits(grid, 0.999)})
    yrs = pd.DataFrame([
        {"municipality": c, "name": nm, "year": y, "person_months": p / 8,
         "expected_rate_pp": e + 0.1 * (y - 2018) * np.sin(i), "oe_ratio": o}
        for i, (c, nm, p, e, o) in enumerate(zip(codes, names, pm, expected_rate, oe))
        for y in YEARS])
    noise = rng.normal(0, 0.1, len(yrs))
    yrs["observed_rate_pp"] = yrs["expected_rate_pp"] * yrs["oe_ratio"].fillna(1) + noise
    yrs.loc[yrs["municipality"] == codes[-1], ["observed_rate_pp", "oe_ratio"]] = np.nan
    return bench, yrs, curve


def make_decomposition(code="GM0363", name="Amsterdam", seed=2, suppress=(("2021", "2022"),)):
    rng = np.random.default_rng(seed)
    rows, rate = [], 3.0
    for y in YEARS[:-1]:
        comp = rng.normal(0, 0.25, len(COMPONENTS))
        start, end = rate, rate + comp.sum()
        pair = (str(y), str(y + 1))
        for c, v in [("observed_change", end - start), *zip(COMPONENTS, comp)]:
            ci = (np.nan, np.nan) if c == "observed_change" else (v - 0.15, v + 0.15)
            if pair in suppress:
                v, ci = np.nan, (np.nan, np.nan)
            rows.append({"municipality": code, "name": name, "period_from": pair[0],
                         "period_to": pair[1], "component": c, "contribution_pp": v,
                         "ci_low": ci[0], "ci_high": ci[1], "rate_from_pp": start, "rate_to_pp": end})
        rate = end
    return pd.DataFrame(rows)


@pytest.fixture(autouse=True)
def _theme():
    set_theme()
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def tables():
    return make_tables()


def _texts(fig):
    out = [t for t in fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_fontsize"))
           if t.get_text().strip() and t.get_visible()]
    return out


def _assert_a4_readable(fig):
    """At most 7 in wide, no visible text under 8 pt."""
    assert fig.get_figwidth() <= 7.0 + 1e-9
    fig.canvas.draw()
    small = [(t.get_text(), t.get_fontsize()) for t in _texts(fig) if t.get_fontsize() < 8]
    assert not small


def _all_text(fig):
    return "\n".join(t.get_text() for t in _texts(fig))


def test_funnel(tables):
    bench, _, curve = tables
    fig = funnel_figure(bench, curve)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"  # synthetic expected exits span > 1.5 decades
    shown = bench.dropna(subset=["oe_ratio"])
    n_points = sum(len(c.get_offsets()) for c in ax.collections)
    assert n_points == len(shown)
    outliers = set(shown.loc[shown["funnel_signal"] != "within", "name"])
    labelled = {a.get_text() for a in ax.texts}
    assert labelled == outliers  # here all outliers find a free place, and nothing else is named
    assert "municipalities suppressed: 2" in _all_text(fig)
    _assert_a4_readable(fig)
    r = fig.canvas.get_renderer()
    boxes = [Text.get_window_extent(a, r) for a in ax.texts]  # the text, not its leader line
    assert not any(b.overlaps(c) for i, b in enumerate(boxes) for c in boxes[:i])


def test_funnel_crowded_outliers_are_counted_not_overdrawn():
    bench, _, curve = make_tables(n=60, seed=5, n_suppressed=0)
    bench["oe_ratio"] = np.where(np.arange(60) % 2, 1.5, 0.6)  # 60 outliers on two lines
    bench["funnel_signal"] = np.where(bench["oe_ratio"] > 1, "above_998", "below_998")
    fig = funnel_figure(bench, curve, max_labels=40)
    ax = fig.axes[0]
    assert 0 < len(ax.texts) <= 40
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"outliers not labelled: {60 - len(ax.texts)}" in legend
    r = fig.canvas.get_renderer()
    boxes = [Text.get_window_extent(a, r) for a in ax.texts]
    assert not any(b.overlaps(c) for i, b in enumerate(boxes) for c in boxes[:i])


def test_funnel_names_never_lie_under_other_markers_the_highlight_always_shown():
    """Nationally the outliers sit in a cloud of 340 points: a name placed over markers is
    drawn under them, half hidden, so an outlier without a clear place stays unnamed (and
    counted); the highlighted unit is named anyway, drawn above the markers."""
    bench, _, curve = make_tables(n=340, seed=3, n_suppressed=0)
    rng = np.random.default_rng(4)
    bench["oe_ratio"] = np.exp(rng.normal(0, 0.05, len(bench)))        # one dense cloud
    bench["funnel_signal"] = np.where(np.arange(len(bench)) % 9 == 0, "below_95", "within")
    bench.loc[bench.index % 9 == 0, "oe_ratio"] *= 0.97                  # outliers inside it
    own = bench.loc[bench["funnel_signal"] == "below_95", "municipality"].iloc[3]
    fig = funnel_figure(bench, curve, highlight=own)
    ax = fig.axes[0]
    r = fig.canvas.get_renderer()
    marks = ax.transData.transform(bench[["expected_exits", "oe_ratio"]].to_numpy(float))
    own_name = bench.loc[bench["municipality"] == own, "name"].iloc[0]
    names = {a.get_text(): a for a in ax.texts}
    assert own_name in names and names[own_name].get_zorder() > 4
    for name, a in names.items():
        if name == own_name:
            continue
        bb = Text.get_window_extent(a, r)
        inside = ((marks[:, 0] >= bb.x0) & (marks[:, 0] <= bb.x1)
                  & (marks[:, 1] >= bb.y0) & (marks[:, 1] <= bb.y1))
        assert not inside.any(), name
    n_out = int((bench["funnel_signal"] != "within").sum())
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"outliers not labelled: {n_out - len(ax.texts)}" in legend


def test_funnel_linear_scale_and_given_axes(tables):
    bench, _, curve = tables
    narrow = bench.assign(expected_exits=np.linspace(50, 400, len(bench)))
    fig, ax = plt.subplots()
    assert funnel_figure(narrow, curve, ax=ax) is fig
    assert ax.get_xscale() == "linear"


def test_rank(tables):
    bench, _, _ = tables
    fig = rank_figure(bench)
    ax = fig.axes[0]
    shown = bench.dropna(subset=["rank_quality"]).sort_values("rank_quality")
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == list(shown["name"])
    assert fig.get_figheight() <= 10.5
    _assert_a4_readable(fig)
    r = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(r) for t in ax.get_yticklabels()]
    assert not any(b.overlaps(c) for b, c in zip(boxes, boxes[1:]))
    assert "municipalities suppressed: 2" in _all_text(fig)


def test_rank_many_units_shows_top_and_bottom():
    bench, _, _ = make_tables(n=120, n_suppressed=0)
    fig = rank_figure(bench)
    assert len(fig.axes[0].get_yticklabels()) == 40
    assert "80 municipalities in the middle not shown" in _all_text(fig)
    assert fig.get_figheight() <= 10.5


def test_rank_legend_stays_inside_the_figure():
    """At national size the note on the hidden middle, beside the legend's entries and
    centred under an axis pushed right by a long name, ran off the figure's right edge."""
    bench, _, _ = make_tables(n=342)
    bench.loc[bench["rank_quality"].idxmin(), "name"] = "Nuenen, Gerwen en Nederwetten"
    fig = rank_figure(bench)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    legend = fig.axes[0].get_legend()
    assert any("in the middle not shown" in t.get_text() for t in legend.get_texts())
    for t in [legend, *legend.get_texts(), *fig.axes[0].get_yticklabels()]:
        box = t.get_window_extent(r)
        assert 0 <= box.x0 and box.x1 <= fig.bbox.width, t
    plt.close(fig)


def test_waterfall():
    rows = make_decomposition()
    fig = waterfall_figure(rows)
    assert len(fig.axes) == 7  # one axes per pair, unused grid cells removed
    pairs = rows.drop_duplicates(["period_from", "period_to"]).reset_index(drop=True)
    for ax, (_, p) in zip(fig.axes, pairs.iterrows()):
        assert ax.get_title() == f"{p.period_from} \u2192 {p.period_to}"
        if p.period_from == "2021":
            assert not ax.patches
            assert any("suppressed" in t.get_text() for t in ax.texts)
        else:
            assert len(ax.patches) == 7
            assert ax.patches[0].get_height() == pytest.approx(p.rate_from_pp)
            assert ax.patches[-1].get_height() == pytest.approx(p.rate_to_pp)
            assert [t.get_text() for t in ax.get_xticklabels()][1:6] == [
                "client mix", "labour market", "shocks", "quality", "other"]
    assert "Amsterdam" in fig._suptitle.get_text()
    _assert_a4_readable(fig)


def test_waterfall_inconsistent_raises():
    rows = make_decomposition(suppress=())
    rows.loc[rows["component"] == "shocks", "contribution_pp"] += 0.01
    with pytest.raises(ValueError, match="rate_to_pp"):
        waterfall_figure(rows)
    with pytest.raises(ValueError, match="one municipality"):
        waterfall_figure(pd.concat([make_decomposition(), make_decomposition(code="GM0599")]))


def test_waterfall_single_pair_is_narrow():
    rows = make_decomposition(suppress=())
    fig = waterfall_figure(rows[rows["period_from"] == "2018"])
    assert len(fig.axes) == 1 and len(fig.axes[0].patches) == 7
    _assert_a4_readable(fig)


def test_waterfalls_drawn_again_are_the_new_figures_bytes(tmp_path):
    """``Waterfalls`` keeps one figure per layout and draws each municipality into it: the
    files are a new ``waterfall_figure``'s, byte for byte, however the layouts alternate
    (a suppressed pair, all suppressed, a title on two lines, fewer pairs, scales far
    apart: the ticks tight_layout measures differ; bars that change sign and colour, and
    intervals that come and go, in bars and steps moved rather than made again)."""
    base = make_decomposition(suppress=())
    big = make_decomposition(code="GM0001", name="Groot", seed=5, suppress=())
    big[["rate_from_pp", "rate_to_pp"]] *= 40
    big[["contribution_pp", "ci_low", "ci_high"]] *= 40
    none = make_decomposition(code="GM0002", suppress=tuple(
        zip(base["period_from"].unique(), base["period_to"].unique())))
    long = make_decomposition(code="GM0003", name="Gemeente " + "met een heel lange naam " * 4)
    low = make_decomposition(code="GM0007", seed=7, suppress=())   # the scale from 0: no note
    low[["rate_from_pp", "rate_to_pp", "contribution_pp", "ci_low", "ci_high"]] *= 0.01
    low[["rate_from_pp", "rate_to_pp"]] += 0.02
    bare = make_decomposition(code="GM0008", seed=8, suppress=()).assign(ci_low=np.nan,
                                                                           ci_high=np.nan)
    cases = [base, make_decomposition(code="GM0004", seed=3), big, none, long,
             make_decomposition(code="GM0005", seed=4, suppress=()), low, bare, base, low,
             base[base["period_from"] >= "2022"], make_decomposition(code="GM0006", seed=6)]
    draw = Waterfalls(keep=2)  # fewer than the layouts: some are built again
    for i, rows in enumerate(cases):
        save_png_svg(waterfall_figure(rows), tmp_path / f"new{i}.png")
        save_png_svg(draw.figure(rows), tmp_path / f"again{i}.png", close=False)
    draw.close()
    assert not plt.get_fignums()
    notes = [any(t.get_text() == DEFAULT_TEXT["waterfall_axis_note"] and t.get_visible()
                 for t in waterfall_figure(rows).texts) for rows in (low, base)]
    assert notes == [False, True]   # both states of the note are among the cases
    for i in range(len(cases)):
        for ext in ("png", "svg"):
            assert ((tmp_path / f"again{i}.{ext}").read_bytes()
                    == (tmp_path / f"new{i}.{ext}").read_bytes()), (i, ext)


def test_waterfalls_reuse_a_layout_only_for_the_same_y_labels(tmp_path):
    """A municipality whose y-axis labels an earlier one of the layout had gets that one's
    positions instead of a new ``tight_layout`` (``_Layout._fit``): the files stay a new
    figure's byte for byte, new labels are measured again, and a layout whose first
    column (where the y labels are) has a suppressed panel is always measured: without
    x labels below it, its y labels could set the margin under its row."""
    base = make_decomposition(suppress=())
    shifted = []   # the same labels, the bars a little higher
    for i in range(1, 4):
        r = base.assign(municipality=f"GM010{i}")
        r[["rate_from_pp", "rate_to_pp"]] += 0.003 * i
        shifted.append(r)
    big = base.copy()
    big[["rate_from_pp", "rate_to_pp", "contribution_pp", "ci_low", "ci_high"]] *= 40
    pairs = list(zip(base["period_from"].unique(), base["period_to"].unique()))
    last_row = make_decomposition(code="GM0200", suppress=tuple(pairs[4:]))  # 4 + 3 panels
    first = make_decomposition(code="GM0201", suppress=(pairs[4],))   # row 2 starts suppressed
    cases = [base, *shifted, big, base, last_row, last_row, first, first]
    draw = Waterfalls(keep=4)
    for i, rows in enumerate(cases):
        save_png_svg(waterfall_figure(rows), tmp_path / f"new{i}.png")
        save_png_svg(draw.figure(rows), tmp_path / f"again{i}.png", close=False)
    full = [lay for lay in draw._layouts.values() if lay._fitted is not None]
    cut = [lay for lay in draw._layouts.values() if lay._fitted is None]
    assert [lay.fits for lay in full] == [2]  # base (its shifted copies, base again), big
    assert [lay.fits for lay in cut] == [2, 2]
    draw.close()
    for i in range(len(cases)):
        for ext in ("png", "svg"):
            assert ((tmp_path / f"again{i}.{ext}").read_bytes()
                    == (tmp_path / f"new{i}.{ext}").read_bytes()), (i, ext)


def test_empty_axis_labels_fixed_in_place_change_no_byte(tmp_path):
    """``_fixed_empty_labels`` turns off the per-draw placement of empty axis labels (the
    waterfalls' shared y axes measured every sibling's tick labels at each draw): the
    files are those of the figure without it, and a label with text keeps its placement."""
    from impact.report.waterfall import _fixed_empty_labels

    def figure(fix: bool):
        fig, axes = plt.subplots(2, 3, figsize=(6, 4), sharey=True)
        for i, ax in enumerate(axes.flat):
            ax.bar(range(4), np.arange(4) * (i + 1) - 1.5)
            ax.set_xticks(range(4), ["one", "two", "three", "four"], rotation=90)
        axes[1, 0].set_ylabel("a label with text")
        if fix:   # before the layout, as the waterfalls do
            _fixed_empty_labels(fig)
        fig.tight_layout()
        return fig, axes

    plain, _ = figure(False)
    save_png_svg(plain, tmp_path / "plain.png")
    fixed, axes = figure(True)
    assert not axes[0, 0].yaxis._autolabelpos and not axes[1, 2].xaxis._autolabelpos
    assert axes[1, 0].yaxis._autolabelpos   # the label with text is placed as before
    save_png_svg(fixed, tmp_path / "fixed.png")
    for ext in ("png", "svg"):
        assert (tmp_path / f"fixed.{ext}").read_bytes() == (tmp_path / f"plain.{ext}").read_bytes()


def test_text_overrides_title_and_rejects_unknown_keys(tables):
    bench, yrs, curve = tables
    fig = funnel_figure(bench, curve, text={"funnel_title": "Trechter"})
    assert fig.axes[0].get_title(loc="left") == "Trechter"
    assert rank_figure(bench, text={"rank_title": "Rangorde"}).axes[0].get_title(loc="left") == "Rangorde"
    fig = waterfall_figure(make_decomposition(), text={"waterfall_title": "{name}: verandering",
                                                       "component_residual": "overig"})
    assert fig._suptitle.get_text() == "Amsterdam: verandering"
    assert fig.axes[0].get_xticklabels()[5].get_text() == "overig"
    assert overview_figure(yrs, text={"overview_title": "Overzicht"})._suptitle.get_text() == "Overzicht"
    with pytest.raises(ValueError, match="unknown text keys"):
        rank_figure(bench, text={"rank_titel": "typo"})
    assert all(isinstance(v, str) and v for v in DEFAULT_TEXT.values())


def test_overview(tables):
    bench, yrs, _ = tables
    fig = overview_figure(yrs, bench)
    panels = [ax for ax in fig.axes if ax.axison]
    assert len(panels) == 31
    by_name = bench.set_index("name")
    regions = [by_name.loc[ax.get_title().replace("\n", " "), "region"] for ax in panels]
    assert regions == sorted(regions)
    assert len(fig.legends) == 1
    assert "municipalities suppressed: 1" in _all_text(fig)
    _assert_a4_readable(fig)
    assert fig.get_figheight() <= 10.5


def test_overview_without_bench_sorts_by_name(tables):
    _, yrs, _ = tables
    titles = [ax.get_title().replace("\n", " ") for ax in overview_figure(yrs).axes if ax.axison]
    assert titles == sorted(titles)


def test_tables_read_back_from_csv(tables, tmp_path):
    """The stage passes frames read from CSV: periods become ints, NaN stays NaN."""
    bench, yrs, curve = tables
    back = {}
    for name, df in {"bench": bench, "years": yrs, "curve": curve, "dec": make_decomposition()}.items():
        df.to_csv(tmp_path / f"{name}.csv", index=False)
        back[name] = pd.read_csv(tmp_path / f"{name}.csv")
    assert back["dec"]["period_from"].dtype.kind == "i"
    assert waterfall_figure(back["dec"]).axes[0].get_title() == "2018 \u2192 2019"
    for fig in (funnel_figure(back["bench"], back["curve"]), rank_figure(back["bench"]),
                overview_figure(back["years"], back["bench"])):
        assert isinstance(fig, Figure)


def test_overview_renders_342_units(tmp_path):
    _, yrs, _ = make_tables(n=342, n_suppressed=3)
    fig = overview_figure(yrs)
    fig.savefig(tmp_path / "overview.png")
    assert sum(ax.axison for ax in fig.axes) == 342


def _decomposition_file(folder, n: int, bad: str | None = None):
    """``decomposition.csv`` of the national rows and ``n`` municipalities (``bad``: one
    whose rates do not add up, which ``waterfall_figure`` refuses)."""
    from impact.report.fair import NATIONAL

    parts = [make_decomposition(code=NATIONAL, name="Nederland", seed=1, suppress=())]
    parts += [make_decomposition(code=f"GM{i:04d}", name=f"Gemeente {i}", seed=10 + i,
                                 suppress=() if i % 3 else (("2021", "2022"),))
              for i in range(n)]
    dec = pd.concat(parts, ignore_index=True)
    if bad is not None:
        dec.loc[dec["municipality"] == bad, "rate_to_pp"] += 1.0
    folder.mkdir(parents=True, exist_ok=True)
    dec.to_csv(folder / "decomposition.csv", index=False)
    return dec


def test_waterfalls_drawn_beside_the_block_are_the_figures_bytes(tmp_path):
    """``waterfalls_drawn`` draws every municipality's waterfall in worker processes
    (chunks fed as they finish, one ``Waterfalls`` kept per worker) while the block runs:
    the files are those of a new figure, one at a time, and a list of codes draws those
    only (and the national one)."""
    from impact.report.fair import waterfalls_drawn

    dec = _decomposition_file(tmp_path / "dec", 40)
    with waterfalls_drawn(tmp_path / "dec", tmp_path / "fig") as n:
        assert n == 41
    drawn = sorted(p.name for p in (tmp_path / "fig" / "decomposition").iterdir())
    codes = list(dec["municipality"].drop_duplicates())
    assert drawn == sorted(f"{c}.{ext}" for c in codes for ext in ("png", "svg"))
    for c in (codes[0], codes[5], codes[-1]):
        rows = pd.read_csv(tmp_path / "dec" / "decomposition.csv",
                           dtype={"period_from": str, "period_to": str})
        save_png_svg(waterfall_figure(rows[rows["municipality"] == c]), tmp_path / "new.png")
        for ext in ("png", "svg"):
            assert ((tmp_path / "fig" / "decomposition" / f"{c}.{ext}").read_bytes()
                    == (tmp_path / f"new.{ext}").read_bytes()), (c, ext)
    with waterfalls_drawn(tmp_path / "dec", tmp_path / "few", ["GM0003", "GM9999"]) as n:
        assert n == 2
    assert sorted(p.stem for p in (tmp_path / "few" / "decomposition").glob("*.png")) == [
        "GM0003", "NL01"]


def test_waterfalls_drawn_raise_a_workers_error_and_stop_with_the_block(tmp_path):
    """A waterfall that cannot be drawn raises its error at the end of the block; an
    error in the block itself cancels the chunks not yet begun (the report does not wait
    for every figure before it fails)."""
    from impact.report.fair import waterfalls_drawn

    _decomposition_file(tmp_path / "dec", 40, bad="GM0007")
    ran = []
    with pytest.raises(ValueError, match="GM0007|Gemeente 7"):
        with waterfalls_drawn(tmp_path / "dec", tmp_path / "fig"):
            ran.append(True)
    assert ran
    _decomposition_file(tmp_path / "big", 300)
    with pytest.raises(KeyError, match="stop"):
        with waterfalls_drawn(tmp_path / "big", tmp_path / "big_fig"):
            raise KeyError("stop")
    drawn = list((tmp_path / "big_fig" / "decomposition").glob("*.png"))
    assert len(drawn) < 100     # at most the chunks under way (ten figures each)
