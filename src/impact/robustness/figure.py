"""One figure of the robustness checks: each check's estimate and interval beside the
headline, per block, and the leave-one-out range."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from impact.report.figures import BLUE, GREY, RED  # noqa: E402

__all__ = ["robustness_figure"]

_TITLES = {"adoption": "Programme effect (pp)", "quality": "Quality effect (pp per point)",
           "shock": "Business-park opening (pp)"}


def robustness_figure(checks: pd.DataFrame, headline: dict):
    """Per block with a headline: the headline and each check with an estimate (or, for
    leave-one-out, the range of the refits); passing checks blue, failing red."""
    keys = {"adoption": "att_pp", "quality": "effect_pp", "shock": "effect_pp"}
    blocks = [b for b in _TITLES if headline.get(b) is not None
              and (checks["block"] == b).any()]
    # other outcomes are on another scale (share of an intake cohort): a panel of their own
    other = checks["check"].astype(str).str.startswith("outcome:")
    rows = {b: checks[(checks["block"] == b) & checks["ci_low"].notna() & ~other]
            for b in blocks}
    alt = checks[other & checks["ci_low"].notna()]
    heights = [len(rows[b]) + 1.6 for b in blocks] + ([len(alt) + 0.6] if len(alt) else [])
    fig, axes = plt.subplots(len(heights), 1, figsize=(7.0, 0.42 * sum(heights) + 0.6),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    if len(alt):
        ax = axes[-1, 0]
        y = np.arange(len(alt))
        ax.axvline(0, color=GREY, lw=0.8)
        for i, (_, c) in enumerate(alt.iterrows()):
            colour = BLUE if c["passes"] is True or c["passes"] == "True" else RED
            ax.errorbar([c["estimate"]], [i], xerr=[[c["estimate"] - c["ci_low"]],
                                                  [c["ci_high"] - c["estimate"]]],
                        fmt="o", color=colour, ms=4, capsize=0)
        ax.set_yticks(y, alt["check"], fontsize=8)
        ax.set_ylim(len(alt) - 0.4, -0.6)
        ax.set_title("Programme effect on other outcomes (pp of the intake cohort)",
                     loc="left", fontsize=10)
        ax.grid(axis="y", visible=False)
    for ax, b in zip(axes[:, 0], blocks):
        h = headline[b]
        r = rows[b]
        labels = ["headline"] + list(r["check"])
        y = np.arange(len(labels))
        ax.axvline(0, color=GREY, lw=0.8)
        ax.axvspan(h["ci_low"], h["ci_high"], color=BLUE, alpha=0.08, lw=0)
        ax.errorbar([h[keys[b]]], [0], xerr=[[h[keys[b]] - h["ci_low"]], [h["ci_high"] - h[keys[b]]]],
                    fmt="D", color="black", ms=5, capsize=0)
        for i, (_, c) in enumerate(r.iterrows(), start=1):
            colour = BLUE if c["passes"] is True or c["passes"] == "True" else RED
            if pd.isna(c["estimate"]):  # a range (leave one out)
                ax.plot([c["ci_low"], c["ci_high"]], [i, i], color=colour, lw=3, alpha=0.7)
            else:
                ax.errorbar([c["estimate"]], [i], xerr=[[c["estimate"] - c["ci_low"]],
                                                      [c["ci_high"] - c["estimate"]]],
                            fmt="o", color=colour, ms=4, capsize=0)
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_ylim(len(labels) - 0.4, -0.6)
        ax.set_title(_TITLES[b], loc="left", fontsize=10)
        ax.grid(axis="y", visible=False)
    fig.suptitle("Robustness of the headline estimates (blue: check passes, red: fails)",
                 x=0.02, ha="left", fontsize=10)
    fig.tight_layout()
    return fig
