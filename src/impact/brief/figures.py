"""Saving the briefs' figures, with the checks a reader would make: labels that overlap
(logged, and kept in :data:`OVERLAPS` for the tests) and decimal commas for Dutch."""

from __future__ import annotations

import logging
from pathlib import Path

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


def decimal_comma(fig) -> None:
    """Tick labels with a decimal comma (Dutch), fixed after the layout."""
    fig.draw_without_rendering()
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
