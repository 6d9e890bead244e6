"""Unit x month frames of one grid cell: its outcome on its sample.

``month``: the monthly exit-to-work rate of the cell's person-months (as the panel's
municipality-month cells). ``within_6`` / ``within_12``: intake cohorts, the spells
starting in a month (``left_truncated == 0``), and the share of them exiting to work
within 6 or 12 months of intake; cohorts whose follow-up passes the window's end are
dropped (they are censored). The frame has the columns ``estimate_adoption`` reads:
``person_months`` (person-months, or spells for cohorts), ``exits_work``, client-mix
means, the municipal labour-market indicators, ``t`` (month, or intake month) and ``g``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from impact.estimate.frames import COMPOSITION, duration_band, month_index

__all__ = ["cell_frame"]

#: client-mix means of a cell (impact.estimate.frames.COMPOSITION; constant ones, such as
#: the duration shares of intake cohorts, are dropped by the estimator)
_MIX = COMPOSITION


def _sample(pm: pd.DataFrame, sample: str, crisis: tuple[str, str]) -> np.ndarray:
    keep = np.ones(len(pm), bool)
    if sample == "inflow":
        keep &= pm["left_truncated"].to_numpy() == 0
    elif sample == "age_25_54":
        age = pm["age"].to_numpy()
        keep &= (age >= 25) & (age <= 54)
    elif sample != "all" and sample != "no_crisis":
        raise ValueError(f"sample={sample!r} is not a grid sample")
    return keep


def _aggregate(rows: pd.DataFrame, key: list[str], exits: np.ndarray) -> pd.DataFrame:
    d = pd.DataFrame({k: rows[k].to_numpy() for k in key})
    d["person_months"] = 1.0
    d["exits_work"] = exits.astype("float64")
    d["mean_age"] = rows["age"].to_numpy(dtype="float64")
    d["share_female"] = (rows["sex"].astype(str).to_numpy() == "F").astype(float)
    edu = rows["education_level"].astype(str).to_numpy()
    d["share_edu_low"] = (edu == "low").astype(float)
    d["share_edu_high"] = (edu == "high").astype(float)
    d["mean_prior_benefit_months"] = rows["prior_benefit_months"].to_numpy(dtype="float64")
    hh = rows["household"].astype(str).to_numpy()
    d["share_single_parent"] = (hh == "single_parent").astype(float)
    d["share_couple_children"] = (hh == "couple_children").astype(float)
    d["share_left_truncated"] = rows["left_truncated"].to_numpy(dtype="float64")
    band = duration_band(rows["duration"].to_numpy())
    for b in ("6_11", "12_23", "24_59", "60p"):
        d[f"share_dur_{b}"] = (band == b).astype(float)
    lm = [c for c in rows.columns if c.startswith("lm_") and c.endswith("_muni")]
    for c in lm:
        d[c] = rows[c].to_numpy(dtype="float64")
    agg = {"person_months": "sum", "exits_work": "sum", **{c: "mean" for c in _MIX},
           **{c: "mean" for c in lm}}
    return d.groupby(key, sort=True, observed=True).agg(agg).reset_index()


def cell_frame(pm: pd.DataFrame, outcome: str, sample: str, crisis: tuple[str, str],
               adoption_month: dict[str, int]) -> pd.DataFrame:
    """The grid cell's unit x month frame (module notes); ``adoption_month`` maps a
    municipality to its adoption month index (absent = never)."""
    crisis_t = (int(month_index([f"{crisis[0]}-01"])[0]), int(month_index([f"{crisis[1]}-01"])[0]))
    rows = pm[_sample(pm, sample, crisis)]
    if outcome == "month":
        f = _aggregate(rows, ["municipality", "region", "t"],
                       pd.to_numeric(rows["exit_work"]).to_numpy())
    elif outcome in ("within_6", "within_12"):
        k = int(outcome.split("_")[1])
        t = rows["t"].to_numpy(dtype="int64")
        dur = rows["duration"].to_numpy(dtype="int64")
        start = rows["left_truncated"].to_numpy() == 0
        first = start & (dur == 0)  # the intake month of a spell starting in the window
        spell = rows["spell_id"].astype(str).to_numpy()
        hit = start & (pd.to_numeric(rows["exit_work"]).to_numpy() == 1) & (dur < k)
        exited = pd.Series(hit).groupby(spell).any()
        intake = rows[first]
        f = _aggregate(intake, ["municipality", "region", "t"],
                       exited.reindex(spell[first]).to_numpy())
        f = f[f["t"] <= int(pm["t"].max()) - k + 1]  # follow-up inside the window
    else:
        raise ValueError(f"outcome={outcome!r} is not a grid outcome")
    if sample == "no_crisis":
        f = f[(f["t"] < crisis_t[0]) | (f["t"] > crisis_t[1])]
    f = f[f["person_months"] > 0].reset_index(drop=True)
    f["unit"] = f["municipality"].astype(str)
    f["g"] = f["unit"].map(adoption_month).astype("float64")
    return f
