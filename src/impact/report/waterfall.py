"""Waterfall figure of one municipality's decomposition (period pairs side by side), and
:class:`Waterfalls`, which draws many of them into one figure per layout.

Same conventions and overridable texts as :mod:`impact.report.fair_figures` (its
``DEFAULT_TEXT`` keys ``waterfall_*``, ``component_*`` and ``suppressed_panel``).
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

from impact.report.fair_figures import COMPONENTS, DARK, SMALL, _texts  # noqa: E402
from impact.report.figures import BLUE, GREY, RED  # noqa: E402

__all__ = ["waterfall_figure", "Waterfalls"]


def waterfall_figure(rows: pd.DataFrame, text: Mapping[str, str] | None = None):
    """Waterfalls of one municipality's change in the exit-to-work rate, one per period pair.

    Each panel starts at ``rate_from_pp``, adds the five components (with 95% intervals
    where given) and ends at ``rate_to_pp``; at most 4 panels a row. Suppressed pairs
    (a NaN contribution or rate) show a note instead of bars.

    Parameters
    ----------
    rows
        The ``decomposition.csv`` rows of ONE municipality (any number of period pairs).
    text
        Overrides of :data:`DEFAULT_TEXT`; keys ``waterfall_*``, ``component_*`` and
        ``suppressed_panel``.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per period pair, each with 7 bars (start, five components, end).

    Raises
    ------
    ValueError
        If the rows belong to several municipalities, a component is repeated, or
        ``rate_from_pp`` + components differs from ``rate_to_pp`` by more than 1e-6.
    """
    t = _texts(text)
    name, panels = _panels(rows)
    return _Layout(t, panels, _title(t, name, panels)).paint(panels)


class Waterfalls:
    """The waterfalls of many municipalities, each the figure :func:`waterfall_figure` draws,
    with one figure kept per layout (period pairs, suppressed panels, title lines).

    Building the frame of a figure (axes, ticks and their labels, legend) costs more than
    its bars: nationally most municipalities share one layout, so only the bars, the
    title and the scale change from one to the next. :meth:`figure` returns a figure
    that this object keeps: save it, do not close it, and do not use it after the next
    call (:meth:`close` closes them all).
    """

    def __init__(self, text: Mapping[str, str] | None = None, keep: int = 4):
        self._t = _texts(text)
        self._keep = max(1, keep)
        self._layouts: dict[tuple, _Layout] = {}

    def figure(self, rows: pd.DataFrame):
        """The waterfall figure of ONE municipality's rows (as :func:`waterfall_figure`)."""
        name, panels = _panels(rows)
        title = _title(self._t, name, panels)
        key = (tuple((p0, p1, ok) for p0, p1, *_, ok in panels), len(title))
        layout = self._layouts.pop(key, None)  # re-inserted last: most recently used
        if layout is None:
            layout = _Layout(self._t, panels, title)
            if len(self._layouts) >= self._keep:
                plt.close(self._layouts.pop(next(iter(self._layouts))).fig)
        else:
            layout.suptitle.set_text("\n".join(title))
        self._layouts[key] = layout
        return layout.paint(panels)

    def close(self) -> None:
        for layout in self._layouts.values():
            plt.close(layout.fig)
        self._layouts.clear()


def _panels(rows: pd.DataFrame) -> tuple[str, list[tuple]]:
    """The municipality's name and, per period pair in order, (from, to, start, end,
    components frame, drawable); checks the rows."""
    if rows.empty or rows["municipality"].nunique() != 1:
        raise ValueError("waterfall_figure: give the rows of exactly one municipality")
    name = str(rows["name"].dropna().iloc[0] if rows["name"].notna().any() else rows["municipality"].iloc[0])
    panels = []
    for (p0, p1), g in rows.groupby(["period_from", "period_to"], sort=True):
        if g["component"].duplicated().any():
            raise ValueError(f"waterfall_figure: {name} {p0}-{p1}: a component appears twice")
        comp = g.set_index("component").reindex(list(COMPONENTS))
        start, end = float(g["rate_from_pp"].iloc[0]), float(g["rate_to_pp"].iloc[0])
        v = comp["contribution_pp"].to_numpy(float)
        ok = bool(np.isfinite(v).all() and np.isfinite([start, end]).all())
        if ok and abs(start + v.sum() - end) > 1e-6:
            raise ValueError(f"waterfall_figure: {name} {p0}-{p1}: rate_from_pp {start:.6g} + components"
                             f" {v.sum():.6g} != rate_to_pp {end:.6g} (off by {start + v.sum() - end:.3g})")
        panels.append((str(p0), str(p1), start, end, comp, ok))
    return name, panels


def _width(n_panels: int) -> float:
    return min(7.0, max(4.6, 1.3 + 1.45 * min(4, n_panels)))


def _title(t: Mapping[str, str], name: str, panels: list) -> list[str]:
    """The title's lines, wrapped to the figure's width."""
    width = _width(len(panels))
    return textwrap.wrap(t["waterfall_title"].format(name=name),
                         int(width * 72 / (0.55 * (SMALL + 3))))


_ADJUST = ("left", "bottom", "right", "top", "wspace", "hspace")


def _fixed_empty_labels(fig) -> None:
    """Place each axis label that is empty where it is, instead of next to the tick
    labels. An axis places its label at every draw next to the tick labels of every axes
    sharing it (the panels share their y axis): about a fifth of a waterfall's drawing
    time nationally. An empty label draws nothing and no layout counts it (its box has
    no size: ``Axes.get_tightbbox`` leaves such boxes out), so the figure is the same to
    the byte (``tests/report/test_fair_figures.py``)."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.label.get_text() == "":
                # set_label_coords turns the automatic placement off (matplotlib's
                # Axis._update_label_position returns at once then)
                x, y = axis.label.get_position()
                axis.set_label_coords(x, y, transform=axis.label.get_transform())


class _Layout:
    """One figure's frame: its axes with titles and ticks, the note, the labels and the
    legend. :meth:`paint` draws a municipality's bars into it (replacing any before)."""

    def __init__(self, t: Mapping[str, str], panels: list[tuple], title: list[str]):
        pairs, ok = [p[:2] for p in panels], [p[5] for p in panels]
        ncols = min(4, len(pairs))
        nrows = math.ceil(len(pairs) / ncols)
        width = _width(len(pairs))
        header = 0.3 * len(title) + 0.3 * (1 if width > 6.5 else 2) + 0.15  # title and legend rows
        height = header + 0.3 + 2.5 * nrows
        fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), sharey=True, squeeze=False)
        self._start = {k: getattr(fig.subplotpars, k) for k in _ADJUST}  # a new figure's
        ticks = [t[f"component_{c}"] for c in COMPONENTS]
        for ax, (p0, p1), drawable in zip(axes.flat, pairs, ok):
            ax.set_title(t["waterfall_pair"].format(start=p0, end=p1), fontsize=SMALL + 1.5, y=1.0)
            ax.set_xticks(range(7), [p0, *ticks, p1], rotation=90, fontsize=SMALL + 0.5)
            ax.grid(axis="x", visible=False)
            if not drawable:
                ax.set_xticks([])
                ax.text(0.5, 0.5, t["suppressed_panel"], transform=ax.transAxes, ha="center",
                        va="center", fontsize=SMALL + 1, color=DARK,
                        bbox=dict(boxstyle="round", fc="white", ec=GREY))
        for ax in axes.flat[len(pairs):]:
            fig.delaxes(ax)
        _fixed_empty_labels(fig)
        # below the panels, shown when the scale does not start at 0 (see paint)
        self.note = fig.text(0.1 / width, 0.06 / height, t["waterfall_axis_note"], fontsize=SMALL,
                             color=DARK, visible=False)
        fig.supylabel(t["waterfall_ylabel"], fontsize=SMALL + 1, x=0.05 / width, ha="left",
                      y=(0.25 + height - header) / 2 / height)  # once, centred on the panels
        handles = [Patch(color=BLUE, label=t["waterfall_up"]),
                   Patch(color=RED, label=t["waterfall_down"]),
                   Patch(color=GREY, label=t["waterfall_level"]),
                   Line2D([], [], color="black", ls="none", marker="|", ms=9, mew=0.9,
                          label=t["waterfall_ci"])]
        self.suptitle = fig.suptitle("\n".join(title), x=0.1 / width, ha="left",
                                     y=1 - 0.08 / height, va="top", fontsize=SMALL + 3,
                                     in_layout=False)
        fig.legend(handles=handles, loc="upper left", ncol=4 if width > 6.5 else 2, frameon=False,
                   bbox_to_anchor=(0.1 / width, 1 - (0.1 + 0.3 * len(title)) / height),
                   fontsize=SMALL + 0.5)
        self.fig, self.axes, self._rect = fig, axes, (0, 0.25 / height, 1, 1 - header / height)
        self._drawn: list = []  # the intervals of the last paint
        # per drawn panel: its bars (start, five components, end) and steps, made by the
        # first paint and moved by the next ones (see paint)
        self._bars: dict[int, tuple] = {}
        # tight_layout's result by the y-axis labels it measured (see _fit); only when the
        # first panel of every row (the one with y labels) is drawn, with its x labels
        self._fitted: dict[tuple, dict] | None = (
            {} if all(ok[i] for i in range(0, len(ok), ncols)) else None)
        self.fits = 0   # how many times tight_layout ran (the rest came from _fitted)

    def paint(self, panels: list[tuple]):
        """Draw ``panels`` (of :func:`_panels`, this layout's pairs) and lay the figure out."""
        for artist in self._drawn:
            artist.remove()
        self._drawn = []
        span = []
        for i, (ax, (p0, p1, start, end, comp, ok)) in enumerate(zip(self.axes.flat, panels)):
            if not ok:
                continue
            v = comp["contribution_pp"].to_numpy(float)
            cum = start + np.cumsum(v)
            bottom = cum - v
            color = np.where(v >= 0, BLUE, RED)
            steps = (np.r_[start, cum], np.arange(6) + 0.35, np.arange(1, 7) - 0.35)
            if i not in self._bars:
                self._bars[i] = (ax.bar(0, start, color=GREY, width=0.7).patches[0],
                                 ax.bar(range(1, 6), v, bottom=bottom, color=color,
                                        width=0.7).patches,
                                 ax.bar(6, end, color=GREY, width=0.7).patches[0],
                                 ax.hlines(*steps, color=DARK, lw=0.7))
            else:
                _move(self._bars[i], start, v, bottom, color, end, steps)
            lo = bottom + comp["ci_low"].to_numpy(float)
            hi = bottom + comp["ci_high"].to_numpy(float)
            has = np.isfinite(lo) & np.isfinite(hi)
            if has.any():
                err = np.clip([cum[has] - lo[has], hi[has] - cum[has]], 0, None)
                self._drawn.append(ax.errorbar(np.arange(1, 6)[has], cum[has], yerr=err, fmt="none",
                                               ecolor="black", elinewidth=0.9, capsize=2.5))
            span += [start, end, *cum, *lo[has], *hi[has]]
        first = self.axes[0, 0]
        if span:  # zoom on the walk: the level bars are cut, and a note says so
            lo, hi = min(span), max(span)
            pad = max(hi - lo, 0.05 * max(abs(hi), 1e-9))
            first.set_ylim(max(0.0, lo - 0.3 * pad), hi + 0.2 * pad)
        self.note.set_visible(first.get_ylim()[0] > 0)
        # from a new figure's positions, as the ticks that tight_layout measures depend on
        # the panels' size: then the layout is a new figure's to the last bit
        self.fig.subplots_adjust(**self._start)
        self._fit()
        return self.fig

    def _fit(self) -> None:
        """``tight_layout``, or the positions it gave an earlier municipality with the same
        y-axis labels. What it measures that changes from one municipality to the next is
        the y-axis's tick labels (the bars and intervals are clipped to their axes; titles,
        x labels and legend belong to the layout; only the first column shows y labels):
        their width sets the margins across, and their height nothing when the panels
        that show them are drawn: a drawn panel's x labels reach far further below it
        (about 68 pt) than half a y label (about 5 pt), and its title further above it.
        So the same label texts give the same positions, applied as tight_layout applies
        its own (the same bytes: ``tests/report/test_fair_figures.py``). The 343 national
        waterfalls spent about a quarter of their time in tight_layout."""
        key = self._tick_key() if self._fitted is not None else None
        known = self._fitted.get(key) if key is not None else None
        if known is not None:
            self.fig.subplots_adjust(**known)
            return
        self.fig.tight_layout(rect=self._rect, h_pad=1.0, w_pad=0.6)
        self.fits += 1
        if key is not None:
            self._fitted[key] = {k: getattr(self.fig.subplotpars, k) for k in _ADJUST}

    def _tick_key(self) -> tuple | None:
        """The texts of the y-axis tick labels tight_layout would measure at the panels'
        present size, and the axis's offset text; None when matplotlib does not say."""
        axis = self.axes[0, 0].yaxis
        update = getattr(axis, "_update_ticks", None)   # what get_tightbbox calls
        if update is None:
            return None
        texts = tuple(t.label1.get_text() for t in update())
        return texts, axis.major.formatter.get_offset()


def _move(bars: tuple, start: float, v: np.ndarray, bottom: np.ndarray, color: np.ndarray,
          end: float, steps: tuple) -> None:
    """Set a panel's bars and steps (of its first paint) to a new municipality's values,
    as ``Axes.bar`` and ``Axes.hlines`` would make them: the same rectangles, colours and
    segments, so the same bytes (``tests/report/test_fair_figures.py``), without making
    seven rectangles, a line collection and their containers per panel again (150
    national waterfalls: 0.138 -> 0.087 CPU s a figure to paint, of about 0.45 with both
    files). The axis limits do not move: the bars stand at the same places, and the y
    range is set by ``paint``."""
    first, parts, last, lines = bars
    first.set_height(start)
    for r, h, b, c in zip(parts, v, bottom, color):
        r.set_y(b)
        r.set_height(h)
        r.set_facecolor(c)
    last.set_height(end)
    y, x0, x1 = steps
    seg = np.empty((len(y), 2, 2))
    seg[:, 0, 0], seg[:, 0, 1], seg[:, 1, 0], seg[:, 1, 1] = x0, y, x1, y
    lines.set_segments(seg)
