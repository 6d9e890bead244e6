"""The naive numbers of the data contract: what raw outflow says, with no adjustment.

- Quality: slope of a person-month-weighted least-squares line through caseworkers'
  pooled exit-to-work rates (exits / person-months, x100) against their mean measured
  score (all-time mean of the caseworker's measurements on the instrument).
- Adoption and shocks: pooled rate in months 0..11 after the date minus the pooled rate
  in months -12..-1, over the units (events) observed in both windows (at least one
  person-month in each).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["naive_quality", "naive_before_after", "caseworker_exits", "caseworker_scores"]

POST = (0, 11)
PRE = (-12, -1)


def caseworker_scores(quality: pd.DataFrame, instrument: str) -> pd.DataFrame:
    """Caseworker measurements of ``instrument`` with a finite score."""
    q = quality[(quality["unit_type"].astype("string") == "caseworker")
                & (quality["instrument"].astype("string") == instrument)]
    score = pd.to_numeric(q["score"], errors="coerce")
    return q.assign(score=score)[np.isfinite(score.to_numpy(dtype="float64", na_value=np.nan))]


def caseworker_exits(person_months: pd.DataFrame) -> pd.DataFrame:
    """Each caseworker's exits to work (``sum``) and person-months with a known exit
    (``count``), indexed by the caseworker key as text, sorted. It adds up over any
    partition of the rows (``panel_summary`` sums it over a file's batches)."""
    cw = person_months["caseworker_key"].astype("string")
    exits = pd.to_numeric(person_months["exit_work"]).astype("float64")  # int8 sums overflow
    agg = (pd.DataFrame({"cw": cw, "exit": exits})
           .dropna(subset=["cw"]).groupby("cw")["exit"].agg(["sum", "count"]))
    agg.index = agg.index.astype(str)
    return agg


def naive_quality(person_months: pd.DataFrame | None, quality: pd.DataFrame, instrument: str,
                  exits: pd.DataFrame | None = None) -> tuple[float, int]:
    """Naive quality slope (pp per score point) and the number of caseworkers behind it;
    ``exits``: ``caseworker_exits`` of the person-months, when ``person_months`` is not
    held (None)."""
    scores = caseworker_scores(quality, instrument)
    mean_score = scores.groupby(scores["unit_key"].astype(str))["score"].mean()
    agg = caseworker_exits(person_months) if exits is None else exits
    agg = agg.join(mean_score.rename("score"), how="inner")
    if len(agg) < 2:
        return float("nan"), int(len(agg))
    w = agg["count"].to_numpy(dtype="float64")
    x = agg["score"].to_numpy(dtype="float64")
    y = 100.0 * agg["sum"].to_numpy(dtype="float64") / w
    xm, ym = np.average(x, weights=w), np.average(y, weights=w)
    sxx = np.sum(w * (x - xm) ** 2)
    slope = np.sum(w * (x - xm) * (y - ym)) / sxx if sxx > 0 else float("nan")
    return float(slope), int(len(agg))


def naive_before_after(cells: pd.DataFrame, unit_col: str, event_t) -> float:
    """Pooled post (0..11) minus pre (-12..-1) exit rate in pp.

    ``cells`` has ``unit_col``, ``t``, ``exits_work``, ``person_months``; ``event_t`` is
    either an array aligned with the rows of ``cells`` (one event per unit, NaN = none) or
    a frame with columns ``unit`` and ``t_event`` (several events per unit allowed).
    """
    if isinstance(event_t, pd.DataFrame):
        ev = event_t.rename(columns={"unit": unit_col}).reset_index(drop=True)
        ev["event"] = np.arange(len(ev))
        c = cells[[unit_col, "t", "exits_work", "person_months"]].merge(ev, on=unit_col)
        rel = c["t"].to_numpy() - c["t_event"].to_numpy()
    else:
        c = cells[[unit_col, "t", "exits_work", "person_months"]].copy()
        c["event"] = c[unit_col]
        rel = c["t"].to_numpy() - np.asarray(event_t, dtype="float64")
    c = c.assign(rel=rel)
    c = c[np.isfinite(c["rel"])]
    post = c[(c["rel"] >= POST[0]) & (c["rel"] <= POST[1])]
    pre = c[(c["rel"] >= PRE[0]) & (c["rel"] <= PRE[1])]
    both = (set(post.loc[post["person_months"] > 0, "event"])
            & set(pre.loc[pre["person_months"] > 0, "event"]))
    if not both:
        return float("nan")
    post, pre = post[post["event"].isin(both)], pre[pre["event"].isin(both)]
    rate = lambda d: 100.0 * d["exits_work"].sum() / d["person_months"].sum()  # noqa: E731
    return float(rate(post) - rate(pre))
