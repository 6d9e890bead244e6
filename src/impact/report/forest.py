"""Forest plots of the group effects: for whom do quality and the programme work?

One figure per block (``quality`` | ``adoption``) and outcome (``work`` | ``education`` |
``any``), drawn only from the publication tables ``group_effects.csv`` and
``heterogeneity_tests.csv`` (stage ``heterogeneity``). The dimensions (ladder step, age,
...) are stacked as sections in the table's order; each section's heading carries the test that all its groups
have the same effect. One row per group:

- the estimate with its 95% interval (filled circle and line);
- the empirical-Bayes shrunken estimate (open diamond), pulled towards the overall effect;
- a ``*`` after the group label when the effect differs from zero after adjusting for
  testing all groups of the block and outcome at once (Romano-Wolf, or the method the
  table names: :func:`adjusted_p`);
- unpublished groups (disclosure control) as a row with the text "not published ..." and
  no point.

Behind the rows of each section: the overall effect of that section's model (dashed line,
its 95% band shaded) and zero (solid grey line).

Same conventions as :mod:`impact.report.figures` and :mod:`impact.report.fair_figures`:
Agg backend, the project theme (:func:`~impact.report.figures.set_theme`, called by the
caller; it fixes ``svg.hashsalt``), functions return a Figure and never save (save with
:func:`~impact.report.figures.save_png_svg`: byte-identical reruns). Colours come from the
colour-blind-safe palette and are never the only cue (circle against open diamond, solid
against dashed). Every string can be overridden through ``text`` (keys of
:data:`DEFAULT_TEXT`), for the Dutch brief.
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
from matplotlib.patches import Patch, Rectangle  # noqa: E402
from matplotlib.ticker import ScalarFormatter  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from impact.report.figures import BLUE, GREY  # noqa: E402

__all__ = ["DEFAULT_TEXT", "BLOCKS", "OUTCOMES", "adjusted_p", "dimensions", "forest_figure",
           "forest_figures", "figure_name", "published_mask"]

BLOCKS = ("quality", "adoption")
OUTCOMES = ("work", "education", "any")
ORANGE = "#d55e00"  # vermillion of the Okabe-Ito colour-blind-safe palette
DARK = "#3a3a3a"
SMALL = 8  # pt, the smallest font used at A4 width
ROW = 0.22  # in, height of one row
WIDTH, MARGIN, RIGHT = 7.0, 0.08, 0.2  # in: figure width, outer margins left and right

DEFAULT_TEXT: dict[str, str] = {
    "title": "{what} on {outcome}, by client group",
    "what_quality": "Effect of one quality point",
    "what_adoption": "Effect of the programme",
    "outcome_work": "exit to work",
    "outcome_education": "exit to education",
    "outcome_any": "any exit from benefit",
    "xlabel_quality": "percentage points of the monthly chance of {leaving}, per quality point",
    "xlabel_adoption": "change in the monthly chance of {leaving} with the programme "
                       "(percentage points)",
    "leaving_work": "leaving for work",
    "leaving_education": "leaving for education",
    "leaving_any": "leaving benefit (any reason)",
    "dim_ladder_step": "Participation-ladder step at intake",
    "dim_age": "Age",
    "dim_education": "Education",
    "dim_household": "Household",
    "dim_duration": "Months on benefit",
    "dim_prior_benefit": "Benefit history (months in 5 years before)",
    "test": "do the groups differ? p {p}",  # {p}: '= 0.03' or '< 0.001'
    "test_none": "no test (fewer than two groups published)",
    "unpublished": "not published (fewer than {min_cell} clients or exits)",
    "legend_estimate": "estimate with {conf}% interval",
    "legend_shrunk": "shrunken estimate (pulled towards the overall effect)",
    "legend_overall": "overall effect with {conf}% interval",
    "legend_zero": "no effect",
    "legend_rw": "* differs from zero after adjusting for testing all groups ({method} p < {alpha})",
}
#: names of the multiplicity adjustments (column ``adjustment``)
METHODS = {"romano_wolf": "Romano-Wolf", "holm": "Holm"}


def _texts(text: Mapping[str, str] | None) -> dict[str, str]:
    unknown = sorted(set(text or {}) - set(DEFAULT_TEXT))
    if unknown:
        raise ValueError(f"unknown text keys {unknown}; known keys are in DEFAULT_TEXT")
    return {**DEFAULT_TEXT, **(text or {})}


def figure_name(block: str, outcome: str) -> str:
    """The file stem of a forest figure: ``for_whom_<block>_<outcome>``."""
    return f"for_whom_{block}_{outcome}"


def published_mask(groups: pd.DataFrame) -> pd.Series:
    """Rows that may be shown: ``published`` true (bool or the text of a CSV) and an estimate."""
    pub = groups["published"].astype(str).str.strip().str.lower().isin(("true", "1", "1.0"))
    est = pd.to_numeric(groups["estimate"], errors="coerce")
    return pub & np.isfinite(est)


def adjusted_p(rows: pd.DataFrame) -> tuple[str, np.ndarray, str]:
    """The multiplicity-adjusted p-values of ``rows``: (column, values, method name).

    Either ``p_romano_wolf`` (Romano-Wolf) or ``p_adjusted`` with the method in
    ``adjustment`` (``romano_wolf`` | ``holm``); ``("", NaN, "")`` when the table has
    neither.
    """
    if "p_romano_wolf" in rows:
        return "p_romano_wolf", _num(rows, "p_romano_wolf"), METHODS["romano_wolf"]
    if "p_adjusted" in rows:
        used = rows["adjustment"].dropna().astype(str) if "adjustment" in rows else pd.Series([], dtype=str)
        name = " / ".join(METHODS.get(m, m.replace("_", "-")) for m in sorted(set(used)))
        return "p_adjusted", _num(rows, "p_adjusted"), name or "adjusted"
    return "", np.full(len(rows), np.nan), ""


def _fmt_p(p: float, decimal: str) -> str:
    """A p-value as a heading shows it: 2 decimals, 3 under 0.01, '< 0.001' below that."""
    if p < 0.001:
        s = "< 0.001"
    elif p < 0.01:
        s = f"= {p:.3f}"
    else:
        s = f"= {p:.2f}"
    return s.replace(".", decimal)


def dimensions(rows: pd.DataFrame) -> list[str]:
    """The dimensions in the order of the table (the stage writes them in the order of
    ``heterogeneity.groups``), each once."""
    return list(dict.fromkeys(rows["dimension"].astype(str)))


def _num(df: pd.DataFrame, col: str) -> np.ndarray:
    if col not in df:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)


def forest_figure(groups: pd.DataFrame, tests: pd.DataFrame, block: str, outcome: str, *,
                  min_cell: int = 10, alpha: float = 0.05, text: Mapping[str, str] | None = None,
                  labels: Mapping[str, str] | None = None, decimal: str = "."):
    """Forest plot of the group effects of one block and outcome.

    Parameters
    ----------
    groups
        ``group_effects.csv``: ``block, outcome, dimension, group, estimate, ci_low,
        ci_high, shrunk, overall, overall_std_error, published`` (pp) and the adjusted
        p-values (``p_romano_wolf``, or ``p_adjusted`` and ``adjustment``).
        Unpublished rows (``published`` false, or no estimate) are shown as text only.
    tests
        ``heterogeneity_tests.csv``: ``block, outcome, dimension, p_value`` (the equality
        test of each dimension).
    block, outcome
        Which figure (``quality``/``adoption`` x ``work``/``education``/``any``).
    min_cell
        ``privacy.min_cell``, named in the "not published" rows.
    alpha
        Level of the mark (``*``) on the adjusted p-values and of the overall band
        (``1 - alpha``).
    text
        Overrides of :data:`DEFAULT_TEXT` (unknown keys raise ``ValueError``).
    labels
        Group labels as shown (e.g. translated); labels not in it are shown as they are.
    decimal
        Decimal separator of the p-values in the headings and of the axis (``,`` in Dutch).

    Returns
    -------
    matplotlib.figure.Figure
        7 in wide, 0.22 in per row (groups and headings) plus title, axis and legend.
    """
    t = _texts(text)
    sel = groups[(groups["block"].astype(str) == block) & (groups["outcome"].astype(str) == outcome)]
    if not len(sel):
        raise ValueError(f"no group effects for block {block!r} and outcome {outcome!r}")
    sel = sel.reset_index(drop=True)
    shown = published_mask(sel).to_numpy()
    est, lo, hi = _num(sel, "estimate"), _num(sel, "ci_low"), _num(sel, "ci_high")
    shr = _num(sel, "shrunk")
    adj_col, p_rw, method = adjusted_p(sel)
    ov, ov_se = _num(sel, "overall"), _num(sel, "overall_std_error")
    tsel = tests[(tests["block"].astype(str) == block) & (tests["outcome"].astype(str) == outcome)]
    p_test = dict(zip(tsel["dimension"].astype(str), _num(tsel, "p_value")))
    z = _normal_quantile(1 - alpha / 2)

    dims = dimensions(sel)
    n_rows = len(sel) + len(dims)
    height = 1.7 + ROW * n_rows
    fig, ax = plt.subplots(figsize=(WIDTH, height))
    across = blended_transform_factory(fig.transFigure, ax.transData)
    y = 0.0
    ticks, ticklabels, muted = [], [], []
    xs_raw, ys_raw, xs_shr, ys_shr = [], [], [], []
    extent = [0.0]
    for d in dims:
        idx = np.flatnonzero(sel["dimension"].astype(str).to_numpy() == d)
        p = p_test.get(d, float("nan"))
        test = t["test"].format(p=_fmt_p(p, decimal)) if math.isfinite(p) else t["test_none"]
        title = t.get(f"dim_{d}", d.replace("_", " ").capitalize())
        # a band across the whole width (over the group labels too): the dimension's title
        # on the left, its equality test on the right
        ax.add_patch(Rectangle((MARGIN / WIDTH, y - 0.5), 1 - (MARGIN + RIGHT) / WIDTH, 1.0,
                               transform=across, color="#eef1f5", lw=0, zorder=0.8,  # over the grid
                               clip_on=False))
        ax.text(MARGIN / WIDTH + 0.004, y, title, transform=across, ha="left", va="center",
                fontsize=9, fontweight="bold", color=DARK, gid="forest-heading")
        ax.text(0.994, y, test, transform=ax.get_yaxis_transform(), ha="right", va="center",
                fontsize=SMALL + 0.5, color=DARK, gid="forest-test")
        top = y - 0.5
        for i in idx:
            y -= 1
            label = str(sel.at[i, "group"])
            label = str((labels or {}).get(label, label))
            star = bool(shown[i] and math.isfinite(p_rw[i]) and p_rw[i] < alpha)
            ticks.append(y)
            ticklabels.append(label + (" *" if star else ""))
            muted.append(not shown[i])
            if shown[i]:
                if math.isfinite(lo[i]) and math.isfinite(hi[i]):
                    ax.plot([lo[i], hi[i]], [y, y], color=BLUE, lw=1.8, solid_capstyle="butt",
                            zorder=3)
                    extent += [lo[i], hi[i]]
                xs_raw.append(est[i])
                ys_raw.append(y)
                extent.append(est[i])
                if math.isfinite(shr[i]):
                    xs_shr.append(shr[i])
                    ys_shr.append(y)
                    extent.append(shr[i])
            else:
                ax.text(0.02, y, t["unpublished"].format(min_cell=min_cell), style="italic",
                        fontsize=SMALL, color="#555555", ha="left", va="center", zorder=4,
                        transform=ax.get_yaxis_transform(), gid="forest-unpublished",
                        bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none"))
        bottom = y - 0.5
        # the overall effect of this dimension's model, with its band, behind its rows
        o = ov[idx][np.isfinite(ov[idx])]
        if len(o):
            o_se = ov_se[idx][np.isfinite(ov_se[idx])]
            if len(o_se):
                ax.fill_betweenx([bottom, top], o[0] - z * o_se[0], o[0] + z * o_se[0],
                                 color=GREY, alpha=0.18, lw=0, zorder=1)
                extent += [o[0] - z * o_se[0], o[0] + z * o_se[0]]
            ax.vlines(o[0], bottom, top, color=DARK, lw=1.0, ls=(0, (4, 2.5)), zorder=2)
            extent.append(o[0])
        ax.vlines(0.0, bottom, top, color=GREY, lw=1.0, zorder=1.5)
        y -= 1

    # the open diamond around the dot: both stay visible where shrinking barely moves it
    ax.plot(xs_shr, ys_shr, ls="none", marker="D", ms=7, mfc="none", mec=ORANGE, mew=1.4,
            zorder=5, gid="forest-shrunk")
    ax.plot(xs_raw, ys_raw, ls="none", marker="o", ms=4.5, color=BLUE, zorder=6,
            gid="forest-estimate")
    ext = np.asarray([e for e in extent if math.isfinite(e)], float)
    span = float(ext.max() - ext.min()) or 1.0
    ax.set_xlim(ext.min() - 0.06 * span, ext.max() + 0.06 * span)
    ax.set_ylim(y + 0.5, 0.5)
    ax.set_yticks(ticks, ticklabels)
    for tl, m in zip(ax.get_yticklabels(), muted):
        if m:
            tl.set_color("#777777")
    ax.tick_params(axis="y", length=0, labelsize=9)
    ax.tick_params(axis="x", labelsize=9)
    if decimal != ".":  # the tick labels in the brief's language, without moving the ticks
        ax.xaxis.set_major_formatter(_Decimal(decimal))
    ax.grid(axis="y", visible=False)
    ax.grid(axis="x", color="#e3e3e3", lw=0.6)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    xlabel = textwrap.wrap(t[f"xlabel_{block}"].format(leaving=t[f"leaving_{outcome}"]), 96)
    ax.set_xlabel("\n".join(xlabel), fontsize=9.5)
    title = t["title"].format(what=t[f"what_{block}"], outcome=t[f"outcome_{outcome}"])
    fig.text(MARGIN / WIDTH, 1 - 0.1 / height, title, ha="left", va="top", fontsize=11,
             color="#222222")
    handles = [
        Line2D([], [], color=BLUE, lw=1.8, marker="o", ms=4.5),
        Line2D([], [], ls="none", marker="D", ms=7, mfc="none", mec=ORANGE, mew=1.4),
        (Patch(color=GREY, alpha=0.18, lw=0), Line2D([], [], color=DARK, lw=1.0, ls=(0, (4, 2.5)))),
        Line2D([], [], color=GREY, lw=1.0),
    ]
    conf = f"{100 * (1 - alpha):g}".replace(".", decimal)
    names = [t["legend_estimate"].format(conf=conf), t["legend_shrunk"],
             t["legend_overall"].format(conf=conf), t["legend_zero"]]
    note = (t["legend_rw"].format(alpha=f"{alpha:g}".replace(".", decimal), method=method)
            if adj_col else None)
    # below the axis label; the note on the adjusted p-values as the legend's title
    leg = fig.legend(handles, names, loc="lower left", bbox_to_anchor=(MARGIN / WIDTH, 0.06 / height),
                     ncol=2, frameon=False, fontsize=SMALL, handlelength=2.2, columnspacing=1.5,
                     borderaxespad=0.0, title=note, title_fontsize=SMALL, alignment="left")
    _place_axes(fig, ax, leg, height)
    return fig


class _Decimal(ScalarFormatter):
    """Matplotlib's tick labels with another decimal separator."""

    def __init__(self, decimal: str):
        super().__init__()
        self.decimal = decimal

    def __call__(self, x, pos=None):
        return super().__call__(x, pos).replace(".", self.decimal)


def _place_axes(fig, ax, leg, height: float) -> None:
    """Margins measured from the drawn labels: the group labels on the left, the axis
    label and the legend (across the whole width) below, the title above."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    dpi = fig.dpi
    labels = [t.get_window_extent(r).width for t in ax.get_yticklabels() if t.get_text()]
    left = (max(labels, default=0.0) / dpi + 0.12 + MARGIN) / WIDTH
    _fit_label(ax.xaxis.label, r, (1 - RIGHT / WIDTH - left) * WIDTH * dpi)
    below_axis = (ax.xaxis.get_tightbbox(r).height / dpi) if ax.xaxis.get_tightbbox(r) else 0.5
    legend = leg.get_window_extent(r).height / dpi
    bottom = (0.06 + legend + 0.12 + below_axis + 0.04) / height
    top = 1 - (0.42 / height)
    ax.set_position([left, bottom, 1 - RIGHT / WIDTH - left, top - bottom])


def _fit_label(label, renderer, width: float) -> None:
    """The axis label wrapped into lines no wider than the axis (``width`` pixels): it is
    centred under the axis, so a wider line ran off the figure's right edge (the
    programme's label for any exit, at A4 width)."""
    text = " ".join(label.get_text().split("\n"))
    n = len(text)
    while n > 24 and label.get_window_extent(renderer).width > width:
        n -= 4
        label.set_text("\n".join(textwrap.wrap(text, n)))


def _normal_quantile(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


def forest_figures(groups: pd.DataFrame, tests: pd.DataFrame, *, min_cell: int = 10,
                   alpha: float = 0.05, text: Mapping[str, str] | None = None,
                   labels: Mapping[str, str] | None = None,
                   decimal: str = ".") -> dict[str, "plt.Figure"]:
    """A forest figure for every block x outcome present in ``groups``, named
    ``for_whom_<block>_<outcome>`` (blocks and outcomes in their usual order)."""
    out = {}
    pairs = set(zip(groups["block"].astype(str), groups["outcome"].astype(str)))
    rank = lambda v, order: (order.index(v) if v in order else len(order), v)  # noqa: E731
    for block, outcome in sorted(pairs, key=lambda bo: (rank(bo[0], BLOCKS), rank(bo[1], OUTCOMES))):
        out[figure_name(block, outcome)] = forest_figure(
            groups, tests, block, outcome, min_cell=min_cell, alpha=alpha, text=text,
            labels=labels, decimal=decimal)
    return out
