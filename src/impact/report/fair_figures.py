"""Figures of the fair comparison of municipalities: funnel, ranks, overview (the
waterfalls of the decomposition: :mod:`impact.report.waterfall`, same conventions and texts).

Same conventions as :mod:`impact.report.figures`: Agg backend, the project theme
(:func:`~impact.report.figures.set_theme`, called by the stage), the colours BLUE/GREY/RED,
and every function returns a :class:`~matplotlib.figure.Figure` and never saves. The figures
are at most 7 in wide with fonts of at least 8 pt (the overview up to 36 municipalities).
Direction is never shown by colour alone (marker shape, bar direction, line style).

Every string can be overridden through ``text``: a mapping whose keys are a subset of
:data:`DEFAULT_TEXT` (one mapping may serve all four functions; unknown keys raise
``ValueError``). Placeholders: ``{n}`` (a count), ``{start}``/``{end}`` (periods),
``{name}`` (municipality name).
"""

from __future__ import annotations

import math
import textwrap
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from impact.report.figures import BLUE, GREY, RED  # noqa: E402

__all__ = ["DEFAULT_TEXT", "COMPONENTS", "funnel_figure", "rank_figure", "overview_figure"]

COMPONENTS = ("composition", "labour_market", "shocks", "quality", "residual")
SMALL = 8  # pt, the smallest font used at A4 width
DARK = "#3a3a3a"

DEFAULT_TEXT: dict[str, str] = {
    "suppressed_units": "municipalities suppressed: {n}",  # funnel, rank, overview
    "suppressed_panel": "suppressed\n(disclosure control)",  # waterfall
    "funnel_title": "Exits to work: observed versus expected",
    "funnel_xlabel": "expected number of exits to work",
    "funnel_ylabel": "observed / expected exits (O/E)",
    "funnel_within": "within 95% limits",
    "funnel_above_95": "above 95% limit", "funnel_above_998": "above 99.8% limit",
    "funnel_below_95": "below 95% limit", "funnel_below_998": "below 99.8% limit",
    "funnel_limits_95": "95% control limits", "funnel_limits_998": "99.8% control limits",
    "funnel_unlabelled": "outliers not labelled: {n}",
    "highlight": "{name}",  # funnel: the highlighted municipality
    "rank_title": "Rankings are uncertain, and adjusting changes them",
    "rank_xlabel": "rank (1 = best) with 95% interval",
    "rank_naive": "naive rank (observed rate)",
    "rank_quality": "rank by quality contribution",
    "rank_hidden": "{n} municipalities in the middle not shown",
    "waterfall_title": "{name}: change in the exit-to-work rate",
    "waterfall_pair": "{start} \u2192 {end}",
    "waterfall_ylabel": "monthly exit-to-work rate (pp)",
    "waterfall_up": "raises the rate", "waterfall_down": "lowers the rate",
    "waterfall_level": "observed rate", "waterfall_ci": "95% interval",
    "waterfall_axis_note": "The rate axis does not start at zero.",
    "component_composition": "client mix", "component_labour_market": "labour market",
    "component_shocks": "shocks", "component_quality": "quality", "component_residual": "other",
    "overview_title": "Exit-to-work rate by municipality and year",
    "overview_observed": "observed rate",
    "overview_expected": "expected rate (given its clients and labour market)",
    "overview_xlabel": "year", "overview_ylabel": "monthly exit-to-work rate (pp)",
    "overview_suppressed": "suppressed",
}

# funnel signal -> (colour, marker, filled): direction by colour and marker, 99.8% by fill
_SIGNALS = {"within": (GREY, "o", True), "above_95": (BLUE, "^", False), "above_998": (BLUE, "^", True),
            "below_95": (RED, "v", False), "below_998": (RED, "v", True)}
_RINGS = (5, 12, 20, 30, 42)  # label offsets (points) tried, nearest first, own side first
_SAME, _SIDE, _OTHER = ((1, 1), (-1, 1), (0, 1.3)), ((1.3, 0), (-1.3, 0)), ((1, -1), (-1, -1), (0, -1.3))
# (tier, dx, dy): tier 2 keeps 5 pt from other markers, 1 does not cover them, 0 is anything
_TRIES = ([(tier, d * sx, d * sy) for group in (_SAME + _SIDE, _OTHER) for d in _RINGS for tier in (2, 1)
           for sx, sy in group] + [(0, d * sx, d * sy) for d in _RINGS for sx, sy in _SAME + _SIDE + _OTHER])


def _texts(text: Mapping[str, str] | None) -> dict[str, str]:
    unknown = sorted(set(text or {}) - set(DEFAULT_TEXT))
    if unknown:
        raise ValueError(f"unknown text keys {unknown}; known keys are in DEFAULT_TEXT")
    return {**DEFAULT_TEXT, **(text or {})}


def _shown(df: pd.DataFrame, cols) -> tuple[pd.DataFrame, int]:
    """Rows with all ``cols`` finite, and the number of rows left out (suppressed)."""
    ok = np.isfinite(df[list(cols)].apply(pd.to_numeric, errors="coerce")).all(axis=1)
    return df[ok], int((~ok).sum())


def _with_notes(handles: list, *notes: str) -> list:
    """Legend handles plus notes (entries without a symbol); empty notes are skipped."""
    return handles + [Line2D([], [], ls="none", marker="none", label=n) for n in notes if n]


def _close(a: np.ndarray, b: np.ndarray, dist: float) -> bool:
    """Whether any point of ``a`` lies within ``dist`` of any point of ``b`` (n x 2 arrays)."""
    return bool(len(a) and len(b) and np.hypot(*(a[:, None] - b[None]).transpose(2, 0, 1)).min() < dist)


def _n_in(bb, pts: np.ndarray) -> int:
    """How many of the points (n x 2, pixels) lie in the box."""
    x, y = pts[:, 0], pts[:, 1]
    return int(((x >= bb.x0) & (x <= bb.x1) & (y >= bb.y0) & (y <= bb.y1)).sum())


def _label_points(ax, points, names, ups, avoid, must: int = 0) -> int:
    """Label points greedily, most important first, at the first offset (own side first, then
    further out) whose text stays in the axes and clashes with no earlier label or leader
    line, and covers no other marker (preferably keeps clear of them). A point without such
    a place stays unlabelled; returns the number labelled. The first ``must`` points (a
    highlighted unit) take any free place, over markers if need be, and are drawn above
    them: a label under markers cannot be read (nationally the funnel's 342 points left
    no clear place for some outliers, whose names then lay half hidden in the cloud)."""
    r = ax.figure.canvas.get_renderer()
    frame, pt = ax.get_window_extent(r), ax.figure.dpi / 72
    marks = ax.transData.transform(np.asarray(avoid, float).reshape(-1, 2))
    placed, leaders = [], np.empty((0, 2))

    def attempt(xy, name, dx, dy):
        a = ax.annotate(name, xy, xytext=(dx, dy), textcoords="offset points", fontsize=SMALL, color=DARK,
                        ha="left" if dx > 0 else "right" if dx < 0 else "center",
                        va="bottom" if dy > 0 else "top" if dy < 0 else "center", zorder=2.9,
                        bbox=dict(boxstyle="square,pad=0.05", fc="white", ec="none", alpha=0.75),
                        arrowprops=dict(arrowstyle="-", color=DARK, lw=0.6, shrinkA=1, shrinkB=3.5)
                        if abs(dx) + abs(dy) > 11 else None)  # a leader line when away
        a.update_positions(r)
        bb = Text.get_window_extent(a, r).padded(0.75 * pt)
        line = np.linspace(ax.transData.transform(xy), ((bb.x0 + bb.x1) / 2, (bb.y0 + bb.y1) / 2), 24)
        return a, bb, line if a.arrow_patch else line[:0]

    for i, (xy, name, up) in enumerate(zip(points, names, ups)):
        others = marks[np.hypot(*(marks - ax.transData.transform(xy)).T) > 0.5]
        tries = _TRIES if i < must else [tr for tr in _TRIES if tr[0] > 0]
        for tier, dx, dy in ((tier, dx, dy if up else -dy) for tier, dx, dy in tries):
            a, bb, line = attempt(xy, name, dx, dy)
            if i < must:
                a.set_zorder(4.5)   # above the markers (3) and the highlight ring (4)
            inside = frame.x0 <= bb.x0 and bb.x1 <= frame.x1 and frame.y0 <= bb.y0 and bb.y1 <= frame.y1
            clash = (any(bb.overlaps(p) or _n_in(p, line) for p in placed) or _n_in(bb, leaders) > 0
                     or _close(line, leaders, 2 * pt))
            crowded = (tier == 1 and _n_in(bb.padded(2.5 * pt), others) > 0) or (tier == 2 and (
                _n_in(bb.padded(5 * pt), others) > 0 or _close(line, others, 5 * pt)))
            if inside and not clash and not crowded:
                break
            a.remove()
        else:
            continue
        placed.append(bb)
        leaders = np.r_[leaders, line]
    return len(placed)


def funnel_figure(bench: pd.DataFrame, curve: pd.DataFrame, text: Mapping[str, str] | None = None,
                  ax=None, max_labels: int = 14, highlight: str | None = None):
    """Funnel plot of the O/E ratio against the expected number of exits to work.

    Parameters
    ----------
    bench
        ``benchmark.csv``: ``name``, ``expected_exits``, ``oe_ratio``, ``funnel_signal``.
        Rows with NaN (suppressed) are left out and counted in a note.
    curve
        Control limits (as O/E) on a fine grid: ``expected_exits``, ``low95``, ``high95``,
        ``low998``, ``high998``.
    text
        Overrides of :data:`DEFAULT_TEXT`; keys ``funnel_*`` and ``suppressed_units``.
    ax
        Axes to draw on; a new 7 x 5.2 in figure if None.
    max_labels
        At most this many outliers (outside the 95% limits, most extreme first) are named;
        outliers without a free place for their name stay unnamed; a note gives the count.
    highlight
        A municipality code (column ``municipality``) to ring and name, as in a brief.

    Returns
    -------
    matplotlib.figure.Figure
    """
    t = _texts(text)
    fig, ax = plt.subplots(figsize=(7.0, 5.2)) if ax is None else (ax.figure, ax)
    b, n_supp = _shown(bench, ["expected_exits", "oe_ratio"])
    x = b["expected_exits"].astype(float)
    xmin, xmax = (x[x > 0].min(), x.max()) if (x > 0).any() else (1.0, 10.0)
    log = xmax / xmin > 10 ** 1.5  # more than ~1.5 decades
    step = 0.05 * (xmax - xmin) or 0.05 * xmax + 1
    lo, hi = (xmin / 1.25, xmax * 1.25) if log else (max(0.0, xmin - step), xmax + step)
    c = curve.sort_values("expected_exits")
    c = c[c["expected_exits"].between(lo, hi)]
    ax.axhline(1, color=GREY, lw=1)
    for level, ls in (("95", "--"), ("998", ":")):
        ax.plot(c["expected_exits"], c[f"low{level}"], color=DARK, ls=ls, lw=1.1,
                label=t[f"funnel_limits_{level}"])
        ax.plot(c["expected_exits"], c[f"high{level}"], color=DARK, ls=ls, lw=1.1)
    for sig, (colour, marker, filled) in _SIGNALS.items():
        s = b[b["funnel_signal"] == sig]
        if len(s):
            ax.scatter(s["expected_exits"], s["oe_ratio"], marker=marker, s=34, linewidths=1.1, zorder=3,
                       c=colour if filled else "white", edgecolors=colour, label=t[f"funnel_{sig}"])
    own = b[b["municipality"] == highlight] if highlight and "municipality" in b else b.iloc[:0]
    if len(own):
        ax.scatter(own["expected_exits"], own["oe_ratio"], s=190, facecolors="none", zorder=4,
                   edgecolors="black", linewidths=1.8, label=t["highlight"].format(name=own["name"].iloc[0]))
    if log:  # ticks 1-2-5 as plain numbers; no minor labels, which collide on short ranges
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0f}" if v >= 1 else f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(xlim=(lo, hi), xlabel=t["funnel_xlabel"], ylabel=t["funnel_ylabel"])
    ax.set_title(t["funnel_title"], loc="left")
    out = b[b["funnel_signal"].isin(["above_95", "above_998", "below_95", "below_998"])
            | (b["municipality"] == highlight if len(own) else False)].copy()
    out["_far"] = (out["funnel_signal"].str.endswith("998") * 10
                   + np.abs(np.log(out["oe_ratio"].clip(lower=1e-9))))
    if len(own):  # the highlighted unit is named first
        out.loc[out["municipality"] == highlight, "_far"] = np.inf
    n_out, out = len(out), out.sort_values("_far", ascending=False).head(max_labels)

    def legend(unlabelled):
        handles = _with_notes(ax.get_legend_handles_labels()[0],
                              unlabelled and t["funnel_unlabelled"].format(n=unlabelled),
                              n_supp and t["suppressed_units"].format(n=n_supp))
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3,
                  frameon=False, fontsize=SMALL + 0.5, handlelength=2.2)

    legend(n_out)  # reserves room for the note, then gives the true count
    fig.tight_layout()
    xy = ["expected_exits", "oe_ratio"]
    legend(n_out - _label_points(ax, out[xy].to_numpy(float), out["name"],
                                 out["funnel_signal"].str.startswith("above"), b[xy],
                                 must=int(len(own) > 0)))
    return fig


def rank_figure(bench: pd.DataFrame, text: Mapping[str, str] | None = None, max_units: int = 60,
                keep: int = 20, highlight: str | None = None):
    """Naive rank beside the rank by quality contribution, each with its 95% interval.

    One row per municipality, sorted by ``rank_quality``, both ranks on one axis, so that
    the shift between them and the width of the intervals read directly.

    Parameters
    ----------
    bench
        ``benchmark.csv``: ``name``, ``rank_naive``, ``rank_naive_low``, ``rank_naive_high``,
        ``rank_quality``, ``rank_quality_low``, ``rank_quality_high`` (1 = best).
        Rows without ranks (suppressed) are left out and counted in a note.
    text
        Overrides of :data:`DEFAULT_TEXT`; keys ``rank_*`` and ``suppressed_units``.
    max_units, keep
        With more than ``max_units`` rows only the top and bottom ``keep`` are shown (and
        the highlighted unit, between them, when it is not among those).
    highlight
        A municipality code whose row is shaded and its name set in bold.

    Returns
    -------
    matplotlib.figure.Figure
        7 in wide, 0.215 in per row, at most 10.5 in high.
    """
    t = _texts(text)
    # without a quality effect (no quality table) only the naive ranks exist
    kinds = [k for k in ("naive", "quality") if bench[f"rank_{k}"].notna().any()] or ["naive"]
    b, n_supp = _shown(bench, [f"rank_{k}{s}" for k in kinds for s in ("", "_low", "_high")])
    b = b.sort_values([f"rank_{kinds[-1]}", "name"]).reset_index(drop=True)
    n_all, hidden, pos = len(b), 0, np.arange(len(b), dtype=float)
    if n_all > max_units:
        mid = b.iloc[keep:n_all - keep]
        mid = mid[mid["municipality"] == highlight] if highlight and "municipality" in b else mid.iloc[:0]
        hidden, b = n_all - 2 * keep - len(mid), pd.concat([b.head(keep), mid, b.tail(keep)])
        gap = 1 + 2 * len(mid)  # a gap row between, or the highlighted unit between two gaps
        pos = np.r_[np.arange(keep), [keep + 1.0] * len(mid), np.arange(keep) + keep + gap].astype(float)
    fig, ax = plt.subplots(figsize=(7.0, min(10.5, 1.6 + 0.215 * (len(pos) + bool(hidden)))))
    styles = {"naive": (-0.18, GREY, "D", "white"), "quality": (0.18, BLUE, "o", BLUE)}
    for kind in kinds:
        off, colour, marker, face = styles[kind] if len(kinds) > 1 else (0.0, *styles[kind][1:])
        r = b[f"rank_{kind}"]
        err = np.clip([r - b[f"rank_{kind}_low"], b[f"rank_{kind}_high"] - r], 0, None)
        ax.errorbar(r, pos + off, xerr=err, fmt=marker, color=colour, mfc=face, ms=4.2,
                    elinewidth=1.3, capsize=0, label=t[f"rank_{kind}"])
    ax.set_yticks(pos, b["name"])
    ax.tick_params(axis="y", labelsize=SMALL + 1)
    if highlight and "municipality" in b:
        for y, code, label in zip(pos, b["municipality"], ax.get_yticklabels()):
            if code == highlight:
                ax.axhspan(y - 0.5, y + 0.5, color="#f2e3a6", zorder=0)
                label.set_fontweight("bold")
    ax.tick_params(axis="x", labeltop=True, top=True)
    ax.grid(axis="y", visible=False)
    highs = b[[f"rank_{k}_high" for k in kinds]].to_numpy(dtype=float)
    top = max(n_all, float(np.nanmax(highs)) if np.isfinite(highs).any() else 0.0)
    ax.set(ylim=(pos.max() + 0.8, -0.8), xlim=(0, top + 1), xlabel=t["rank_xlabel"])
    ax.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))
    if hidden:
        for y in sorted(set(pos[1:][np.diff(pos) > 1] - 1)):
            ax.axhline(y, color=GREY, lw=0.8, ls=":")
    ax.set_title(t["rank_title"], loc="left", pad=8)
    handles = _with_notes(ax.get_legend_handles_labels()[0],
                          hidden and t["rank_hidden"].format(n=hidden),
                          n_supp and t["suppressed_units"].format(n=n_supp))
    # two columns where they fit the figure's width, else one (nationally the note on the
    # hidden middle, centred under an axis pushed right by long names, ran off the edge)
    for ncol in (2, 1):
        legend = ax.legend(handles=handles, loc="upper center", frameon=False,
                           bbox_to_anchor=(0.5, -0.9 / fig.get_figheight()), ncol=ncol,
                           fontsize=SMALL + 0.5)
        fig.tight_layout()
        if _within_width(fig, legend):
            break
    return fig


def _within_width(fig, artist) -> bool:
    """Whether ``artist`` lies within the width of ``fig`` as laid out now."""
    fig.draw_without_rendering()
    box = artist.get_window_extent(fig.canvas.get_renderer())
    return box.x0 >= 0 and box.x1 <= fig.bbox.width


def overview_figure(years: pd.DataFrame, bench: pd.DataFrame | None = None,
                    text: Mapping[str, str] | None = None):
    """Small multiples of the observed and expected rate by year, one panel per municipality.

    Up to 36 municipalities fit an A4 page (6 columns, 7 in wide); more get 7-15 columns
    of 1 in each (a poster, readable zoomed in; 342 units render in a few seconds).

    Parameters
    ----------
    years
        ``benchmark_years.csv``: ``municipality``, ``name``, ``year``, ``observed_rate_pp``,
        ``expected_rate_pp``.
    bench
        ``benchmark.csv``; if it has ``region``, panels are sorted by region, then name.
    text
        Overrides of :data:`DEFAULT_TEXT`; keys ``overview_*`` and ``suppressed_units``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    t = _texts(text)
    units, keys = years.drop_duplicates("municipality")[["municipality", "name"]], ["name"]
    if bench is not None and "region" in bench:
        units = units.merge(bench[["municipality", "region"]].drop_duplicates("municipality"),
                            on="municipality", how="left")
        keys = ["region", "name"]
    units = units.sort_values(keys, na_position="last").reset_index(drop=True)
    n, small = len(units), len(units) <= 36
    ncols = 6 if small else int(min(15, max(7, math.ceil(math.sqrt(n * 0.9)))))
    nrows = max(1, math.ceil(n / ncols))
    header, bottom, left, right, wspace = 0.65, 0.5, 0.5, 0.08, 0.12  # inches, wspace relative
    pw = (7.0 - left - right) / (ncols + wspace * (ncols - 1)) if small else 1.0
    ph = 0.9 if small else 0.8
    wrap = max(8, int((pw + 0.1) * 72 / (0.6 * SMALL)))  # may reach 0.05 in into the gaps
    titles = [textwrap.fill(str(s), wrap, max_lines=2, placeholder="\u2026") for s in units["name"]]
    gap = 0.14 + 0.13 * (2 if any("\n" in s for s in titles) else 1)
    width = left + right + pw * (ncols + wspace * (ncols - 1))
    height = header + gap + nrows * ph + (nrows - 1) * gap + bottom
    # no sharex/sharey: with hundreds of shared axes matplotlib's sibling bookkeeping is O(n^2)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - (header + gap) / height, wspace=wspace, hspace=gap / ph)
    rates = years[["observed_rate_pp", "expected_rate_pp"]].to_numpy(float)
    lo, hi = (np.nanmin(rates), np.nanmax(rates)) if np.isfinite(rates).any() else (0.0, 1.0)
    pad = 0.08 * max(hi - lo, 0.1)
    ylim, xlim = (max(0.0, lo - pad), hi + pad), (years["year"].min() - 0.5, years["year"].max() + 0.5)
    by_unit, n_supp = dict(tuple(years.sort_values("year").groupby("municipality"))), 0
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_axis_off()
            continue
        g = by_unit[units["municipality"].iloc[i]]
        ax.plot(g["year"], g["expected_rate_pp"], ls="--", color=GREY, lw=1.1)
        ax.plot(g["year"], g["observed_rate_pp"], "-o", color=BLUE, ms=2.4, lw=1.0)
        ax.set_title(titles[i], fontsize=SMALL, pad=2)
        if g["observed_rate_pp"].isna().all():
            n_supp += 1
            ax.text(0.5, 0.5, t["overview_suppressed"], transform=ax.transAxes, ha="center", va="center",
                    color=DARK, fontsize=SMALL, bbox=dict(boxstyle="square,pad=0.2", fc="white", ec="none"))
        ax.set(xlim=xlim, ylim=ylim)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=3 if small else 2, integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=3))
        ax.tick_params(labelsize=SMALL, pad=1.5, length=2, labelleft=i % ncols == 0,
                       labelbottom=i >= n - ncols)  # the lowest panel of each column
    lines = [Line2D([], [], color=BLUE, marker="o", ms=3, lw=1.0, label=t["overview_observed"]),
             Line2D([], [], color=GREY, ls="--", lw=1.1, label=t["overview_expected"])]
    handles = _with_notes(lines, n_supp and t["suppressed_units"].format(n=n_supp))
    fig.suptitle(t["overview_title"], x=0.1 / width, y=1 - 0.06 / height, ha="left", va="top",
                 fontsize=SMALL + 3)
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.1 / width, 1 - 0.28 / height),
               ncol=3, frameon=False, fontsize=SMALL + 0.5)
    fig.supxlabel(t["overview_xlabel"], y=0.03 / height, va="bottom", fontsize=SMALL + 1)
    fig.supylabel(t["overview_ylabel"], x=0.05 / width, ha="left", fontsize=SMALL + 1)
    return fig
