"""What a streamed quality specification needs of the person-months besides its regression.

The quality 2SLS, OLS, hazard and value-added read the panel file in batches
(``quality_stream``, ``hazard_stream``, ``value_added_stream``). Around them the quality
block needs three things of the sample's person-months: how many there are (``meta``),
the first and last month (the reliability is over measurements dated in the study window,
``run.in_window``) and each caseworker's exits to work and person-months (the naive slope,
``naive.caseworker_exits``). All three add up over batches, so ``summary_file`` reads two
to four columns a batch at a time instead of loading them whole (at full national scale,
63 million person-months, those columns took about 2 GB of the stage's memory).
``summary_of`` gives the same from a frame; tests/estimate/test_panel_summary.py checks
the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from impact import io
from impact.estimate.frames import inflow_rows
from impact.estimate.naive import caseworker_exits

__all__ = ["PanelSummary", "summary_of", "summary_file"]

BATCH_ROWS = 1 << 20


@dataclass(frozen=True)
class PanelSummary:
    """``n_person_months``; ``first_month``/``last_month`` (NaT when there are none);
    ``exits``: ``naive.caseworker_exits`` of the person-months."""

    n_person_months: int
    first_month: pd.Timestamp
    last_month: pd.Timestamp
    exits: pd.DataFrame


def _sample(pm: pd.DataFrame, sample: str) -> pd.DataFrame:
    # as run_specification selects the inflow sample from the frame
    return pm.loc[inflow_rows(pm)] if sample == "inflow" else pm


def summary_of(person_months: pd.DataFrame, sample: str = "all") -> PanelSummary:
    """The summary of a frame's ``sample`` (``all`` or ``inflow``)."""
    pm = _sample(person_months, sample)
    months = pd.to_datetime(pm["month"])
    return PanelSummary(len(pm), months.min(), months.max(), caseworker_exits(pm))


def summary_file(path: str | Path, sample: str = "all",
                 batch_rows: int = BATCH_ROWS) -> PanelSummary:
    """The summary of the panel file's ``sample``, read a batch at a time (the same
    values as ``summary_of`` on the whole frame)."""
    columns = ["month", "caseworker_key", "exit_work"] + (
        ["left_truncated"] if sample == "inflow" else [])
    n, first, last, parts = 0, pd.NaT, pd.NaT, []
    for batch in io.iter_batches(path, columns, batch_rows):
        s = summary_of(batch, sample)
        n += s.n_person_months
        first = s.first_month if pd.isna(first) else min(first, s.first_month)
        last = s.last_month if pd.isna(last) else max(last, s.last_month)
        parts.append(s.exits)
    exits = (pd.concat(parts).groupby(level=0).sum() if parts
             else caseworker_exits(pd.DataFrame({"caseworker_key": [], "exit_work": []})))
    return PanelSummary(n, first, last, exits)
