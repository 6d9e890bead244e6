"""The specification curve (Simonsohn, Simmons and Nelson 2020, "Specification curve
analysis", Nature Human Behaviour 4:1208): every grid cell's estimate, sorted, with its
interval, and beneath it the choices that made it.

Outcomes are on different scales (a monthly rate against a share within 6 or 12 months),
so the curve is drawn per outcome; within an outcome the cells are ranked by estimate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from impact import io  # noqa: E402
from impact.report.figures import BLUE, GREY, RED  # noqa: E402
from impact.sweep.grid import AXES, GridParams, cell_name  # noqa: E402

__all__ = ["CURVE_COLUMNS", "collect_cells", "curve_table", "curve_figure"]

CURVE_COLUMNS = ["cell", *AXES, "estimate", "std_error", "ci_low", "ci_high", "p_value",
                 "significant", "rank", "n_clusters", "n_obs", "pretrend_p_value", "status"]
OUTCOME_LABELS = {"month": "monthly exit-to-work rate",
                  "within_6": "exit to work within 6 months of intake",
                  "within_12": "exit to work within 12 months of intake"}


def collect_cells(folder: Path, grid: GridParams) -> pd.DataFrame:
    """The results of exactly the cells ``grid`` names (a missing one is an error)."""
    rows = []
    for cell in grid.cells():
        path = Path(folder) / cell_name(cell) / "result.json"
        if not path.exists():
            raise FileNotFoundError(f"no result for grid cell {cell_name(cell)} ({path}): "
                                    f"run 'dvc repro' (stage sweep@{cell_name(cell)})")
        rows.append(io.read_json(path))
    return pd.DataFrame(rows)


def curve_table(results: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Tidy curve: ``significant`` (p < alpha), ``rank`` (1 = smallest, per outcome)."""
    t = results.copy()
    for c in ("estimate", "std_error", "ci_low", "ci_high", "p_value"):
        t[c] = pd.to_numeric(t[c], errors="coerce")
    t["significant"] = t["p_value"] < alpha
    order = {o: i for i, o in enumerate(AXES["outcome"])}
    t["_o"] = t["outcome"].map(order)
    t = t.sort_values(["_o", "estimate", "cell"], kind="stable", na_position="last")
    t["rank"] = t.groupby("outcome").cumcount() + 1
    return t.drop(columns="_o")[CURVE_COLUMNS].reset_index(drop=True)


def summary(table: pd.DataFrame) -> dict[str, Any]:
    """Cells, estimated cells, share significant and positive, per outcome and overall."""
    def block(t):
        ok = t["estimate"].notna()
        return {"cells": int(len(t)), "estimated": int(ok.sum()),
                "share_significant": float(t.loc[ok, "significant"].mean()) if ok.any() else None,
                "share_positive": float((t.loc[ok, "estimate"] > 0).mean()) if ok.any() else None,
                "median_estimate": float(t.loc[ok, "estimate"].median()) if ok.any() else None}
    return {"all": block(table), **{o: block(t) for o, t in table.groupby("outcome", sort=False)}}


def curve_figure(table: pd.DataFrame):
    """Per outcome: sorted estimates with 95% intervals above, the choices below."""
    outcomes = [o for o in AXES["outcome"] if o in set(table["outcome"])]
    choices = [a for a in AXES if a != "outcome" and table[a].nunique() > 1]
    levels = [(a, v) for a in choices for v in AXES[a] if v in set(table[a])]
    n = max(table.groupby("outcome").size().max(), 1)
    fig = plt.figure(figsize=(7.0, 2.7 * len(outcomes) + 0.2 * len(levels) * len(outcomes)))
    gs = fig.add_gridspec(3 * len(outcomes), 1,
                          height_ratios=[2.0, 0.22 * max(len(levels), 1), 0.55] * len(outcomes),
                          hspace=0.08)
    for i, o in enumerate(outcomes):
        t = table[table["outcome"] == o].sort_values("rank")
        x = t["rank"].to_numpy()
        ax = fig.add_subplot(gs[3 * i])
        sig = t["significant"].fillna(False).to_numpy(bool)
        ax.axhline(0, color=GREY, lw=0.8)
        for mask, colour, label in ((sig, BLUE, "p < 0.05"), (~sig, GREY, "not significant")):
            if mask.any():
                ax.errorbar(x[mask], t["estimate"].to_numpy()[mask],
                            yerr=[t["estimate"].to_numpy()[mask] - t["ci_low"].to_numpy()[mask],
                                  t["ci_high"].to_numpy()[mask] - t["estimate"].to_numpy()[mask]],
                            fmt="o", ms=4, color=colour, elinewidth=1.2, label=label)
        ok = t["estimate"].notna()
        share = t.loc[ok, "significant"].mean() if ok.any() else float("nan")
        ax.text(-0.41, 1.05, f"{OUTCOME_LABELS.get(o, o)}: {int(ok.sum())} specifications, "
                f"{share:.0%} with p < 0.05", transform=ax.transAxes, ha="left",
                va="bottom", fontsize=9, fontweight="bold")
        ax.set_xlim(0.4, n + 0.6)
        ax.tick_params(labelbottom=False)
        ax.set_ylabel("effect (pp)", fontsize=8)
        if i == 0:
            ax.legend(fontsize=8, frameon=False, loc="upper left")
        cx = fig.add_subplot(gs[3 * i + 1], sharex=ax)
        for j, (a, v) in enumerate(levels):
            on = (t[a] == v).to_numpy()
            cx.scatter(x[on], np.full(on.sum(), j), s=14, color=RED if a == "estimator" else BLUE,
                       marker="s")
        cx.set_yticks(range(len(levels)), [f"{a.replace('_', ' ')}: {v.replace('_', ' ')}"
                                           for a, v in levels], fontsize=7)
        cx.set_ylim(len(levels) - 0.5, -0.5)
        cx.set_xticks(range(1, n + 1), [str(k) for k in range(1, n + 1)], fontsize=7)
        cx.grid(axis="x", color="#eeeeee")
    fig.suptitle("Specification curve: the programme effect across the grid", x=0.02,
                 y=1 - 0.15 / fig.get_figheight(), ha="left", va="top", fontsize=11)
    fig.subplots_adjust(left=0.30, right=0.98, top=1 - 0.75 / fig.get_figheight(), bottom=0.0)
    return fig
