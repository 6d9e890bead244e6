"""Hand-built validated-schema tables for the panel tests, and random small data sets."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from impact.panel import PanelParams, build_panel

TRAJ_DEFAULTS: dict[str, Any] = {
    "municipality": "GM0001", "caseworker_key": None, "team_key": None, "end_date": None,
    "exit_reason": None, "birth_year": 1980, "sex": "F", "education_level": "low",
    "household": "single", "prior_benefit_months": 0, "ladder_step": None,
}
DATE_COLS = {"start_date", "end_date", "date", "adoption_date", "month"}
INT_COLS = {"birth_year", "prior_benefit_months", "ladder_step", "jobs", "population"}


def frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """A DataFrame with the validated dtypes (dates datetime64, nullable Int64, str)."""
    df = pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns)
    for c in columns:
        if c in DATE_COLS:
            df[c] = pd.to_datetime(df[c])
        elif c in INT_COLS:
            df[c] = pd.array(df[c], dtype="Int64")
        elif c in {"value", "score"}:
            df[c] = df[c].astype("float64")
        else:
            df[c] = df[c].astype("str").where(df[c].notna(), None)
    return df


def trajectories(*rows: dict[str, Any]) -> pd.DataFrame:
    """Trajectories from partial rows (spell_id, client_id, start_date at least)."""
    cols = ["spell_id", "client_id", "municipality", "caseworker_key", "team_key",
            "start_date", "end_date", "exit_reason", "birth_year", "sex", "education_level",
            "household", "prior_benefit_months", "ladder_step"]
    full = [{**TRAJ_DEFAULTS, "client_id": r.get("client_id", r["spell_id"]), **r} for r in rows]
    return frame(full, cols)


def municipalities(*pairs: tuple[str, str]) -> pd.DataFrame:
    rows = [{"municipality": m, "name": m, "region": r, "province": "PV", "population": 1000}
            for m, r in pairs or (("GM0001", "AM01"),)]
    return frame(rows, ["municipality", "name", "region", "province", "population"])


def labour_market(*rows: tuple[str, str, str, float]) -> pd.DataFrame:
    """Rows (area, month 'YYYY-MM-01', indicator, value) in the validated (month) form."""
    return frame([dict(zip(["area", "month", "indicator", "value"], r)) for r in rows],
                 ["area", "month", "indicator", "value"])


def assignments(*rows: tuple) -> pd.DataFrame:
    cols = ["spell_id", "caseworker_key", "team_key", "start_date", "end_date"]
    return frame([dict(zip(cols, r)) for r in rows], cols)


def quality(*rows: tuple, instrument: str = "fidelity_audit") -> pd.DataFrame:
    """Rows (unit_key, date, score[, rater_id[, unit_type[, instrument]]])."""
    out = []
    for r in rows:
        d = {"unit_key": r[0], "date": r[1], "score": r[2], "rater_id": r[3] if len(r) > 3 else "r1",
             "unit_type": r[4] if len(r) > 4 else "caseworker",
             "instrument": r[5] if len(r) > 5 else instrument, "municipality": "GM0001"}
        out.append(d)
    return frame(out, ["unit_type", "unit_key", "municipality", "date", "instrument", "score",
                       "rater_id"])


def adoption(*rows: tuple) -> pd.DataFrame:
    cols = ["municipality", "team_key", "programme", "adoption_date"]
    return frame([dict(zip(cols, r)) for r in rows], cols)


def shocks(*rows: tuple) -> pd.DataFrame:
    cols = ["shock_id", "municipality", "date", "type", "jobs", "description"]
    return frame([dict(zip(cols, r)) for r in rows], cols)


def base_tables(traj: pd.DataFrame, **extra: pd.DataFrame) -> dict[str, pd.DataFrame]:
    tables = {"trajectories": traj, "municipalities": municipalities(),
              "labour_market": labour_market()}
    tables.update(extra)
    return tables


def run(frames: dict[str, pd.DataFrame], con: duckdb.DuckDBPyConnection | None = None,
        **panel: Any):
    """Build the panel from DataFrames (registered as DuckDB relations); returns result."""
    con = con or duckdb.connect()
    rels = {k: con.from_df(v) for k, v in frames.items()}
    return build_panel(con, rels, make_params({"start": "2016-01", "end": "2016-12", **panel}))


def make_params(flat: dict[str, Any]) -> PanelParams:
    """PanelParams from one flat dict of panel keys and the keys of other sections."""
    panel = dict(flat)
    other = {k: panel.pop(k) for k in list(panel)
             if k in ("quality_instrument", "programme", "shock_type", "shock_event_window")}
    return PanelParams.from_dict(panel, **other)


def pm(frames: dict[str, pd.DataFrame], **panel: Any) -> pd.DataFrame:
    """person_months of a small panel as a DataFrame (tests only: data are tiny)."""
    return run(frames, **panel).person_months.df()


# ---------------------------------------------------------------------------- random data
def random_tables(seed: int) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """A small random data set touching every rule, and random panel params."""
    rng = np.random.default_rng(seed)
    munis = [("GM0001", "AM01"), ("GM0002", "AM01"), ("GM0003", "AM02")]
    cws = {m: [f"{m}:k{i}" for i in range(4)] for m, _ in munis}
    teams = {m: [f"{m}:t{i}" for i in range(2)] for m, _ in munis}

    def day(lo: date, span: int) -> date:
        return lo + timedelta(days=int(rng.integers(0, span)))

    traj, n = [], 0
    for c in range(int(rng.integers(30, 60))):
        m = munis[int(rng.integers(0, 3))][0]
        start = day(date(2013, 1, 1), 6 * 365)
        for _ in range(int(rng.integers(1, 5))):
            end = start + timedelta(days=int(rng.choice([0, 3, 20, 40, 120, 200, 400, 900])))
            is_open = rng.random() < 0.2
            traj.append({
                "spell_id": f"s{n:03d}", "client_id": f"c{c:02d}", "municipality": m,
                "caseworker_key": None if rng.random() < 0.1 else str(rng.choice(cws[m])),
                "team_key": None if rng.random() < 0.2 else str(rng.choice(teams[m])),
                "start_date": start, "end_date": None if is_open else end,
                "exit_reason": None if is_open else str(rng.choice(["work", "other", "moved"])),
                "birth_year": int(rng.integers(1960, 2000)),
                "sex": str(rng.choice(["F", "M", "X"])),
                "education_level": str(rng.choice(["low", "medium", "high"])),
                "household": str(rng.choice(["single", "single_parent", "couple_children"])),
                "prior_benefit_months": int(rng.integers(0, 40)),
                "ladder_step": None if rng.random() < 0.3 else int(rng.integers(1, 7)),
            })
            n += 1
            if is_open:
                break
            start = end + timedelta(days=1 + int(rng.choice([0, 5, 14, 15, 16, 30, 31, 32, 90])))
    tr = trajectories(*traj)
    spell_ids = tr["spell_id"].tolist()
    asg = [(str(rng.choice(spell_ids)), str(rng.choice(cws[munis[int(rng.integers(0, 3))][0]])),
            None if rng.random() < 0.3 else str(rng.choice(teams["GM0001"])),
            day(date(2014, 1, 1), 5 * 365), None) for _ in range(int(rng.integers(5, 20)))]
    asg = [(s, c, t, d, None if rng.random() < 0.4 else d + timedelta(days=int(rng.integers(0, 400))))
           for s, c, t, d, _ in asg]
    qual = []
    for _ in range(int(rng.integers(20, 60))):
        m = munis[int(rng.integers(0, 3))][0]
        d = day(date(2014, 6, 1), 4 * 365)
        for r in range(int(rng.integers(1, 3))):  # one or two raters of one session
            qual.append((str(rng.choice(cws[m])), d, float(np.round(rng.normal(3, 1), 3)),
                         f"r{r}", "caseworker" if rng.random() < 0.9 else "team",
                         "fidelity_audit" if rng.random() < 0.9 else "methodical_working"))
    areas = [m for m, _ in munis] + ["AM01", "AM02"]
    lm = [(a, date(y, mo, 1), ind, float(np.round(rng.uniform(1, 9), 2)))
          for a in areas for y in range(2014, 2020) for mo in range(1, 13)
          for ind in ("unemployment_rate", "vacancy_rate", "jobs") if rng.random() < 0.8]
    adopt = [("GM0001", None, "gewogen_maatwerk", day(date(2015, 1, 1), 4 * 365)),
             ("GM0002", "GM0002:t1", "gewogen_maatwerk", day(date(2015, 1, 1), 4 * 365)),
             ("GM0003", "GM0003:t0", "gilde", day(date(2015, 1, 1), 4 * 365))]
    if rng.random() < 0.5:
        adopt.append(("GM0002", None, "gewogen_maatwerk", day(date(2015, 1, 1), 4 * 365)))
    sh = [(f"sh{i}", munis[int(rng.integers(0, 3))][0], day(date(2014, 1, 1), 6 * 365),
           str(rng.choice(["business_park_opening", "plant_closure"])), 100, "x")
          for i in range(int(rng.integers(2, 8)))]
    frames = {
        "trajectories": tr, "municipalities": municipalities(*munis),
        "labour_market": labour_market(*lm), "caseworker_assignments": assignments(*asg),
        "quality": quality(*qual), "adoption": adoption(*adopt), "shocks": shocks(*sh),
    }
    y0 = int(rng.integers(2014, 2018))
    params = {
        "start": f"{y0}-{int(rng.integers(1, 13)):02d}", "end": f"{y0 + 3}-{int(rng.integers(1, 13)):02d}",
        "merge_gap_days": int(rng.choice([0, 15, 31])),
        "quality_window_months": int(rng.choice([0, 1, 3, 6])),
        "indicators": ["unemployment_rate", "jobs"],
        "shock_event_window": [(-12, 24), (-3, 3), (0, 11)][int(rng.integers(0, 3))],
    }
    return frames, params
