"""Figures drawn only from the tidy estimate table and the metrics.

Each function takes ``ax=None`` and returns the figure; saving is the stage's job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

__all__ = ["set_theme", "save_png_svg", "event_study_figure", "headline_figure", "value_added_figure"]

BLUE, GREY, RED = "#1f4e79", "#8c8c8c", "#b03a2e"


def set_theme() -> None:
    """The one plotting theme of the project."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1, palette="colorblind")
    # svg.fonttype none: SVG text stays text (searchable, scanned for identifiers)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "svg.hashsalt": "impact",
                         "svg.fonttype": "none"})


def save_png_svg(fig, png: Path, close: bool = True) -> None:
    """Save ``fig`` as ``png`` and beside it as SVG, without creation dates (byte-identical
    reruns), and close it (unless ``close`` is false: a figure drawn again, as
    :class:`impact.report.waterfall.Waterfalls` does).

    A one-shot ``fig.tight_layout()`` leaves a placeholder layout engine on the figure,
    and with any engine there ``savefig`` lays the figure out again (a draw without
    output) before each file: for nothing, the layout is done. So it is dropped first
    (the same bytes; the report's 343 waterfalls drew 14% faster)."""
    from matplotlib.layout_engine import PlaceHolderLayoutEngine

    if (isinstance(fig.get_layout_engine(), PlaceHolderLayoutEngine)
            and not plt.rcParams["figure.autolayout"]
            and not plt.rcParams["figure.constrained_layout.use"]):
        fig.set_layout_engine(None)   # with those rcParams off: no engine at all
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, metadata={"Software": None})
    fig.savefig(png.with_suffix(".svg"), metadata={"Date": None, "Creator": None})
    if close:
        plt.close(fig)


def _axes(ax, size=(7.0, 4.0)):
    if ax is None:
        fig, ax = plt.subplots(figsize=size)
    return ax.figure, ax


def event_study_figure(path: pd.DataFrame, title: str, ax=None, xlabel: str = "months since event",
                       ylabel: str = "effect on monthly exit to work (pp)",
                       labels: tuple[str, str] = ("95% interval", "estimate")):
    """Event-time coefficients with 95% intervals.

    Parameters
    ----------
    path
        Rows of the tidy table with ``rel_time``, ``estimate``, ``ci_low``, ``ci_high``
        (percentage points).
    title, xlabel, ylabel, labels
        The texts (``labels``: the band's and the line's legend entries), for briefs in
        another language.
    """
    fig, ax = _axes(ax)
    path = path.dropna(subset=["rel_time"]).sort_values("rel_time")
    x = path["rel_time"].astype(float)
    ax.axhline(0, color=GREY, lw=1)
    ax.axvline(-0.5, color=GREY, lw=1, ls="--")
    ax.fill_between(x, path["ci_low"], path["ci_high"], color=BLUE, alpha=0.18, lw=0,
                    label=labels[0])
    ax.plot(x, path["estimate"], color=BLUE, marker="o", ms=3.5, lw=1.4, label=labels[1])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, loc="left")
    ax.legend(frameon=False, loc="upper left")
    fig.tight_layout()
    return fig


def headline_figure(metrics: Mapping[str, Any], ax=None):
    """Naive raw-outflow numbers beside the adjusted estimates, per block."""
    rows = []
    labels = {"quality": "Quality (+1 point)", "adoption": "Programme adoption",
              "shock": "Business-park opening"}
    for block, key in (("quality", "effect_pp"), ("adoption", "att_pp"), ("shock", "effect_pp")):
        values = metrics.get(block)
        if not values or values.get(key) is None:
            continue
        rows.append((labels[block], values[key], values["ci_low"], values["ci_high"],
                     values.get("naive_pp")))
    fig, ax = _axes(ax, size=(7.0, 0.9 + 0.8 * max(len(rows), 1)))
    for i, (label, est, lo, hi, naive) in enumerate(rows):
        y = len(rows) - 1 - i
        ax.plot([lo, hi], [y, y], color=BLUE, lw=2.5)
        ax.plot(est, y, "o", color=BLUE, ms=7, label="adjusted estimate, 95% CI" if i == 0 else None)
        if naive is not None:
            ax.plot(naive, y, "D", color=RED, ms=6, mfc="white", label="raw numbers (naive)" if i == 0 else None)
    ax.axvline(0, color=GREY, lw=1)
    ax.set_yticks(range(len(rows)), [r[0] for r in reversed(rows)])
    ax.set_xlabel("percentage points of the monthly exit-to-work probability")
    ax.set_title("What raw outflow says versus what the adjusted estimates say", loc="left")
    ax.legend(frameon=False, loc="best")
    fig.tight_layout()
    return fig


def value_added_figure(teams: pd.DataFrame, ax=None):
    """Caterpillar plot of team value-added (empirical Bayes) with 95% intervals.

    Parameters
    ----------
    teams
        Publishable team rows (``value_added.publishable_teams``): ``eb_va``, ``ci_low``,
        ``ci_high`` in pp of the monthly exit-to-work probability, relative to the
        region-month.
    """
    t = teams.sort_values("eb_va").reset_index(drop=True)
    fig, ax = _axes(ax, size=(7.0, 4.0))
    y = range(len(t))
    ax.axvline(0, color=GREY, lw=1)
    ax.hlines(y, t["ci_low"], t["ci_high"], color=BLUE, alpha=0.45, lw=1.6)
    ax.plot(t["eb_va"], y, "o", color=BLUE, ms=3.5)
    ax.set_yticks([])
    ax.set_ylabel(f"teams ({len(t)}), sorted")
    ax.set_xlabel("team value-added: exit to work vs. region-month (pp, shrunk)")
    ax.set_title("Team value-added with 95% intervals", loc="left")
    fig.tight_layout()
    return fig
