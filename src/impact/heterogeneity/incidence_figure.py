"""Figure of cumulative incidence curves by client group, one panel per type of exit.

Same conventions as :mod:`impact.report.figures` and :mod:`impact.report.fair_figures`:
Agg backend, the project theme (:func:`~impact.report.figures.set_theme`, called by the
stage; it also fixes ``svg.hashsalt``), a function that returns a
:class:`~matplotlib.figure.Figure` and never saves. Save with
:func:`impact.report.figures.save_png_svg` (re-exported here), which writes PNG and SVG
without creation dates, so reruns are byte-identical.

Groups are told apart by colour (seaborn's colour-blind-safe ``colorblind`` palette, the
project theme's) *and* line style, so the figure also reads in grey print. Suppressed
points (NaN ``cif``, see :func:`impact.heterogeneity.incidence.suppress_incidence`) and
durations absent from the table leave gaps: the line data hold NaN there, nothing is
drawn or interpolated across them.
"""

from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator, MultipleLocator  # noqa: E402

from impact.report.figures import GREY, save_png_svg  # noqa: E402

__all__ = ["DEFAULT_TEXT", "PANEL_OUTCOMES", "incidence_figure", "incidence_note", "save_png_svg"]

PANEL_OUTCOMES = ("work", "education", "other")
SMALL = 8  # pt, the smallest font used at A4 width
DARK = "#3a3a3a"
_STYLES = ("-", "--", "-.", ":")

DEFAULT_TEXT: dict[str, str] = {
    "title": "How benefit spells end, by {group}",
    "panel_work": "exit to work",
    "panel_education": "exit to education",
    "panel_other": "other exit",
    "panel_other_incl_education": "other exit (incl. education)",
    "panel_any": "any exit",
    "xlabel": "months since the start of the spell",
    "ylabel": "share of spells ended (%)",
    "band": "shaded: 95% interval",
    "note": ("Cumulative incidence: the share of spells that have ended by a given month "
             "through this type of exit, with the other exits as competing risks "
             "(Aalen-Johansen estimator) and pointwise 95% intervals. Spells that began "
             "before the study window count from the month they are first observed."),
    "note_suppressed": ("Gaps: not shown because fewer than {min_cell} clients were still on "
                        "benefit, or only 1 to {below} exits lie behind the point."),
    "note_suppressed_generic": "Gaps: not shown (disclosure control).",
    "note_scales": "The vertical scales differ between panels.",
}


def _texts(text: Mapping[str, str] | None) -> dict[str, str]:
    unknown = sorted(set(text or {}) - set(DEFAULT_TEXT))
    if unknown:
        raise ValueError(f"unknown text keys {unknown}; known keys are in DEFAULT_TEXT")
    return {**DEFAULT_TEXT, **(text or {})}


def incidence_note(min_cell: int | None = None, *, sharey: bool = False,
                   text: Mapping[str, str] | None = None) -> str:
    """The caption-ready note printed under :func:`incidence_figure` (for reuse in captions)."""
    t = _texts(text)
    gaps = (t["note_suppressed"].format(min_cell=min_cell, below=min_cell - 1) if min_cell
            else t["note_suppressed_generic"])
    parts = [t["note"], gaps]
    if not sharey:
        parts.append(t["note_scales"])
    return " ".join(parts)


def _panel_title(outcome: str, outcomes_present: set[str], t: Mapping[str, str]) -> str:
    if outcome == "other" and "education" not in outcomes_present:
        return t["panel_other_incl_education"]
    return t[f"panel_{outcome}"]


def incidence_figure(
    incidence: pd.DataFrame,
    *,
    group_label: str = "group",
    outcomes: Sequence[str] = PANEL_OUTCOMES,
    min_cell: int | None = None,
    title: str | None = None,
    sharey: bool = False,
    text: Mapping[str, str] | None = None,
    missing_label: str = "missing",
    groups: Sequence[str] | None = None,
):
    """Cumulative incidence (%) against duration, one panel per outcome, one line per group.

    Parameters
    ----------
    incidence
        :func:`~impact.heterogeneity.incidence.cumulative_incidence` output, usually after
        :func:`~impact.heterogeneity.incidence.suppress_incidence`: ``group``, ``duration``,
        ``outcome``, ``cif``, ``ci_low``, ``ci_high`` (probabilities). NaN ``cif`` (a
        suppressed point) is not drawn; a NaN interval only hides the band there.
    group_label
        What the groups are, for the title and the legend (e.g. ``"ladder step"``).
    outcomes
        Panels, in order; outcomes missing from the table are skipped (no education panel
        without exits to education; the ``other`` panel is then titled to include them).
    min_cell
        ``privacy.min_cell``, for the note on gaps (None: a generic note).
    title
        Figure title; default ``DEFAULT_TEXT["title"]`` with ``{group}`` = ``group_label``.
    sharey
        One vertical scale for all panels (default: each panel its own, from 0, and the
        note says so).
    text
        Overrides of :data:`DEFAULT_TEXT` (e.g. Dutch texts).
    missing_label
        The group of missing values (``incidence_counts(missing_label=...)``), drawn grey
        and dotted.
    groups
        The groups to draw, in legend order (e.g. ``["low", "medium", "high"]``; the table's
        order is the sorted order of the values); default all, in table order.

    Returns
    -------
    matplotlib.figure.Figure
        7 in wide. Each panel's group lines carry the group as label (in table order);
        bands are ``PolyCollection`` objects.
    """
    t = _texts(text)
    present = set(incidence["outcome"].unique())
    panels = [o for o in outcomes if o in present]
    if not panels:
        raise ValueError(f"incidence_figure: none of the outcomes {list(outcomes)} in the table")
    found = list(pd.unique(incidence["group"].astype(str)))
    if groups is None:
        groups = found
    else:
        groups = [str(g) for g in groups]
        unknown = sorted(set(groups) - set(found))
        if unknown:
            raise ValueError(f"incidence_figure: groups {unknown} are not in the table "
                             f"(it has {found})")
    colours = sns.color_palette("colorblind", n_colors=max(len(groups), 1))
    styles = {g: (colours[i % len(colours)], _STYLES[i % len(_STYLES)])
              for i, g in enumerate(groups)}
    if missing_label in styles:  # not a category of its own: grey, dotted
        styles[missing_label] = (GREY, ":")
    d_max = int(incidence["duration"].max())

    n = len(panels)
    width = 7.0
    note = incidence_note(min_cell, sharey=sharey, text=text)
    note_lines = textwrap.wrap(note, int((width - 0.2) * 72 / (0.56 * SMALL)))
    ncol = min(len(groups) + 1, 8)
    legend_rows = int(np.ceil((len(groups) + 1) / ncol))
    header = 0.36 + 0.2 * legend_rows
    footer = 0.36 + 0.14 * len(note_lines) + 0.1
    panel_h = 2.5
    height = header + panel_h + footer
    fig, axes = plt.subplots(1, n, figsize=(width, height), sharex=True, sharey=sharey,
                             squeeze=False)
    axes = axes[0]
    for ax, outcome in zip(axes, panels):
        sub = incidence[incidence["outcome"] == outcome]
        top = 0.0
        for group in groups:
            g = sub[sub["group"].astype(str) == group].sort_values("duration")
            if g.empty:
                continue
            full = np.arange(int(g["duration"].min()), int(g["duration"].max()) + 1)
            g = g.set_index("duration").reindex(full)  # absent durations -> NaN, a gap
            y = g["cif"].to_numpy(dtype="float64") * 100
            lo = g["ci_low"].to_numpy(dtype="float64") * 100
            hi = g["ci_high"].to_numpy(dtype="float64") * 100
            band = np.isfinite(y) & np.isfinite(lo) & np.isfinite(hi)
            colour, style = styles[group]
            ax.fill_between(full, np.where(band, lo, np.nan), np.where(band, hi, np.nan),
                            color=colour, alpha=0.13, lw=0)
            ax.plot(full, y, color=colour, ls=style, lw=1.5, label=group)
            if band.any():
                top = max(top, float(np.nanmax(hi[band])))
            elif np.isfinite(y).any():
                top = max(top, float(np.nanmax(y)))
        ax.set_title(_panel_title(outcome, present, t), fontsize=SMALL + 2, loc="left")
        if not sharey:
            ax.set_ylim(0, max(top * 1.05, 1.0))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
        ax.tick_params(labelsize=SMALL + 0.5)
    if sharey:
        axes[0].set_ylim(bottom=0)
    axes[0].set_xlim(0, d_max)
    step = 12 if d_max > 36 else 6 if d_max > 12 else 1
    axes[0].xaxis.set_major_locator(MultipleLocator(step))
    if d_max / step > 6:  # label every other tick when they would crowd a 2 in panel
        for ax in axes:
            ax.xaxis.set_major_locator(MultipleLocator(2 * step))
            ax.xaxis.set_minor_locator(MultipleLocator(step))
    axes[0].set_ylabel(t["ylabel"], fontsize=SMALL + 1)
    fig.text(0.5, (footer + 0.02) / height, t["xlabel"], fontsize=SMALL + 1, ha="center",
             va="top", in_layout=False)

    handles = [Line2D([], [], color=styles[g][0], ls=styles[g][1], lw=1.8, label=g) for g in groups]
    handles.append(Line2D([], [], ls="none", marker="none", label=t["band"]))
    heading = title if title is not None else t["title"].format(group=group_label)
    fig.suptitle(heading, x=0.1 / width, y=1 - 0.08 / height, ha="left", va="top",
                 fontsize=SMALL + 3.5)
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.1 / width, 1 - 0.4 / height),
               ncol=ncol, frameon=False, fontsize=SMALL + 0.5,
               title=group_label, title_fontsize=SMALL + 0.5, alignment="left",
               handlelength=2.4, columnspacing=1.2)
    fig.text(0.1 / width, 0.08 / height, "\n".join(note_lines), fontsize=SMALL, color=DARK,
             ha="left", va="bottom")
    fig.tight_layout(rect=(0, footer / height, 1, 1 - header / height), w_pad=1.0)
    return fig
