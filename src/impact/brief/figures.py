"""Saving the briefs' figures, with the checks a reader would make: labels that overlap
(logged, and kept in :data:`OVERLAPS` for the tests) and decimal commas for Dutch."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from matplotlib.ticker import Formatter

from impact.report.figures import save_png_svg

__all__ = ["OVERLAPS", "decimal_comma", "save_figure", "text_overlaps"]

#: (figure file, text, text) of overlapping labels found by :func:`save_figure`
OVERLAPS: list[tuple[str, str, str]] = []


def text_overlaps(fig) -> list[tuple[str, str]]:
    """Pairs of visible, non-empty texts of ``fig`` whose drawn boxes overlap.

    Texts of one legend and an annotation's own box are compared like any other; a pair
    where one text sits inside the other's box by design does not occur in these figures.
    An annotation is its text (with its box): ``Annotation.get_window_extent`` adds its
    leader line's bounding rectangle, which a diagonal line makes far larger than the
    line, so neighbours of a long leader were reported as overlapping it (the funnel's
    labels place themselves clear of other labels' leader lines already).
    """
    from matplotlib.text import Text

    # the layout without rasterising (text extents come from the same Agg renderer as a
    # full draw: the same boxes, at about half the cost)
    fig.draw_without_rendering()
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
            bb = Text.get_window_extent(t, r)   # the text only, not a leader line
            if bb.width > 0 and bb.height > 0:
                boxes.append((t.get_text(), bb.shrunk(0.96, 0.9)))
    out = []
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            if boxes[i][1].overlaps(boxes[j][1]):
                out.append((boxes[i][0], boxes[j][0]))
    return out


#: a decimal point: a point between two digits ("Middelburg (Z.)" keeps its point)
_POINT = re.compile(r"(?<=\d)\.(?=\d)")


def _comma(label) -> str:
    """``label`` with its decimal points as commas (in mathtext ``{,}``, which sets no space
    after the comma)."""
    label = str(label)
    return _POINT.sub("{,}" if "$" in label else ",", label)


class _DecimalComma(Formatter):
    """An axis' own tick formatter, its decimal points written as commas; anything else
    asked of it (``set_useOffset``, ``ticklabel_format``'s settings) goes to that one."""

    def __init__(self, inner: Formatter) -> None:
        self.inner = inner

    def __getattr__(self, name):
        if name == "inner":   # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.inner, name)

    def set_axis(self, axis) -> None:
        super().set_axis(axis)
        self.inner.set_axis(axis)

    def set_locs(self, locs) -> None:
        self.inner.set_locs(locs)

    def __call__(self, x, pos=None) -> str:
        return _comma(self.inner(x, pos))

    def format_ticks(self, values) -> list[str]:
        return [_comma(s) for s in self.inner.format_ticks(values)]

    def format_data(self, value) -> str:
        return _comma(self.inner.format_data(value))

    def format_data_short(self, value) -> str:
        return _comma(self.inner.format_data_short(value))

    def get_offset(self) -> str:
        return _comma(self.inner.get_offset())


def decimal_comma(fig) -> None:
    """Tick labels with a decimal comma (Dutch): each axis' formatters wrapped, so that the
    ticks, the view limits and the layout stay the figure's own. (Fixing the labels with
    ``set_ticks`` widened the view to the ticks just outside it, and moved the points
    under labels placed beside them: the Dutch funnel's labels came to overlap.)"""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for get, put in ((axis.get_major_formatter, axis.set_major_formatter),
                             (axis.get_minor_formatter, axis.set_minor_formatter)):
                if not isinstance(get(), _DecimalComma):
                    put(_DecimalComma(get()))


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
