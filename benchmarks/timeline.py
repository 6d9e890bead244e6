"""The end-to-end run as a figure: which stage ran when and in which lane, and the memory
the running stages held against ``impact repro``'s budget.

Reads the timeline ``impact repro`` writes (``.dvc/tmp/impact-repro-timeline.json``: each
stage's lane, start and end in seconds from the run's start, and its sampled peak MB).

    python benchmarks/timeline.py .dvc/tmp/impact-repro-timeline.json timeline.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def held_memory(stages: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Minutes and GB: the sum of the running stages' peaks over time, a step function
    (each stage counts its own peak for its whole run: an upper bound of what was held)."""
    events = sorted([(s["start"], s["peak_mb"]) for s in stages]
                    + [(s["end"], -s["peak_mb"]) for s in stages],
                    key=lambda e: (e[0], e[1]))  # at equal times, ends first
    t = np.array([0.0] + [e[0] for e in events]) / 60
    mb = np.cumsum([0.0] + [e[1] for e in events])
    return t, np.maximum(mb, 0.0) / 1024


def figure(line: dict, path: Path, title: str = "impact repro, end to end") -> Path:
    """Lanes (top) and held memory (bottom) of one run's timeline, written to ``path``."""
    stages = sorted(line["stages"], key=lambda s: s["start"])
    end = max((s["end"] for s in stages), default=1.0) / 60
    families = list(dict.fromkeys(s["stage"].split("@")[0] for s in stages))
    colour = {f: plt.get_cmap("tab20")(i % 20) for i, f in enumerate(families)}
    fig, (ax, axm) = plt.subplots(2, 1, figsize=(11, 5.2), sharex=True,
                                  gridspec_kw={"height_ratios": [2, 1.4]})
    for s in stages:
        fam = s["stage"].split("@")[0]
        x0, w = s["start"] / 60, (s["end"] - s["start"]) / 60
        ax.barh(s["lane"], w, left=x0, height=0.72, color=colour[fam], edgecolor="white",
                linewidth=0.6)
        label = s["stage"].split("@")[-1]
        if w > 0.011 * end * (len(label) + 2):  # the label fits in the bar (7 pt text)
            ax.text(x0 + w / 2, s["lane"], label, ha="center", va="center", fontsize=7,
                    clip_on=True)
    lanes = sorted({s["lane"] for s in stages}) or [0]
    ax.set_yticks(lanes, [f"lane {i + 1}" for i in lanes])
    ax.invert_yaxis()
    ax.set_title(title, loc="left", fontsize=11)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[f]) for f in families]
    ax.legend(handles, families, fontsize=7, frameon=False, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))
    t, gb = held_memory(stages)
    axm.step(t, gb, where="post", color="#333333", linewidth=1)
    axm.fill_between(t, gb, step="post", color="#999999", alpha=0.35)
    if line.get("budget_mb"):
        axm.axhline(line["budget_mb"] / 1024, color="#c0392b", linestyle="--", linewidth=1)
        axm.text(end, line["budget_mb"] / 1024, "  memory budget", color="#c0392b",
                 fontsize=8, va="center")
    axm.set_ylabel("GB held\n(running stages' peaks)", fontsize=8)
    axm.set_xlabel("minutes since the start")
    axm.set_xlim(0, end * 1.01)
    axm.set_ylim(bottom=0)
    for a in (ax, axm):
        a.spines[["top", "right"]].set_visible(False)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


if __name__ == "__main__":
    figure(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
