"""A small valid set of contract tables (as a CSV reader returns them: all text)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from impact.validate import DataParams, validate_tables

ROOT = Path(__file__).resolve().parents[2]
LINEAGE_PATH = ROOT / "data" / "reference" / "cbs_gemeentelijke_herindelingen_lineage.csv"
LINEAGE = pd.read_csv(LINEAGE_PATH, dtype=str)

#: Real 2026 municipalities with their 2026 labour-market regions.
MUNICIPALITIES = [
    ("GM0363", "Amsterdam", "AM18", "Noord-Holland", "931298"),
    ("GM0599", "Rotterdam", "AM22", "Zuid-Holland", "670610"),
    ("GM1978", "Molenlanden", "AM35", "Zuid-Holland", "45271"),
    ("GM0824", "Oisterwijk", "AM26", "Noord-Brabant", "32952"),
]


def _text(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows).astype("str")


def tables() -> dict[str, pd.DataFrame]:
    """Every contract table, valid, with nothing to reject."""
    munis = _text([dict(zip(("municipality", "name", "region", "province", "population"), m))
                   for m in MUNICIPALITIES])
    spells = []
    codes = [m[0] for m in MUNICIPALITIES]
    for i in range(24):
        code = codes[i % 4]
        # clients 0..11 have two consecutive spells, the second open for odd clients
        client, second = i // 2, i % 2
        start = pd.Timestamp("2015-03-01") + pd.DateOffset(months=18 * second + client)
        end = start + pd.DateOffset(months=10) if (second == 0 or client % 2 == 0) else None
        spells.append(
            {
                "spell_id": f"S{i:03d}",
                "client_id": f"C{client:03d}",
                "municipality": code if second == 0 else code[2:],  # '0363' form too
                "caseworker_id": f"{client % 3}",
                "team_id": "T1",
                "start_date": start.strftime("%Y-%m-%d"),
                "end_date": end.strftime("%Y%m%d") if end is not None else None,
                "exit_reason": ("work", "moved", "education", "other")[i % 4] if end is not None else None,
                "birth_year": str(1960 + i),
                "sex": ("F", "M", "X", "unknown")[i % 4],
                "education_level": ("low", "medium", "high", "unknown")[i % 4],
                "household": ("single", "single_parent", "couple", "couple_children", "other",
                              "unknown")[i % 6],
                "prior_benefit_months": str(i % 7),
                "ladder_step": str(1 + i % 6) if i % 5 else None,
            }
        )
    traj = pd.DataFrame(spells).astype("str")
    assignments = _text([
        {"spell_id": "S000", "caseworker_id": "0", "team_id": "T1",
         "start_date": "2015-03-01", "end_date": "2015-06-30"},
        {"spell_id": "S000", "caseworker_id": "2", "team_id": "T1",
         "start_date": "2015-07-01", "end_date": None},
    ])
    quality = _text([
        {"unit_type": "caseworker", "unit_id": str(k % 3), "municipality": codes[k % 4],
         "date": f"2016-0{1 + k % 9}-15", "instrument": "fidelity_audit",
         "score": str(3.0 + k / 10), "rater_id": f"R{k % 2}"}
        for k in range(8)
    ] + [
        {"unit_type": "team", "unit_id": "T1", "municipality": "GM0599", "date": "2017-01-10",
         "instrument": "methodical_working", "score": "4.5", "rater_id": None},
        {"unit_type": "municipality", "unit_id": "599", "municipality": "GM0599",
         "date": "2017-01-10", "instrument": "methodical_working", "score": "4", "rater_id": None},
    ])
    adoption = _text([
        {"municipality": "GM0363", "team_id": None, "programme": "gewogen_maatwerk",
         "adoption_date": "2018-01-01"},
        {"municipality": "GM0599", "team_id": "T1", "programme": "gewogen_maatwerk",
         "adoption_date": "2019-06-01"},
    ])
    lm = []
    for code, _, region, _, _ in MUNICIPALITIES:
        for y in range(2015, 2025):
            for q in range(1, 5):
                lm.append({"area": code, "period": f"{y}-Q{q}", "indicator": "unemployment_rate",
                           "value": f"{4 + q / 10:.1f}"})
    for region in sorted({m[2] for m in MUNICIPALITIES}):
        for y in range(2015, 2025):
            lm.append({"area": region, "period": str(y), "indicator": "unemployment_rate",
                       "value": "5.5"})
    labour = _text(lm)
    progress = _text([
        {"spell_id": "S001", "date": "2017-01-01", "measure": "ladder_step", "value": "2"},
        {"spell_id": "S001", "date": "2017-06-01", "measure": "self_efficacy", "value": "3.25"},
    ])
    shocks = _text([
        {"shock_id": "B1", "municipality": "GM1978", "date": "2019-05-01",
         "type": "business_park_opening", "jobs": "400", "description": "Business park"},
        {"shock_id": "P1", "municipality": "GM0824", "date": "2020-02-01",
         "type": "plant_closure", "jobs": None, "description": None},
    ])
    return {
        "municipalities": munis, "trajectories": traj, "caseworker_assignments": assignments,
        "quality": quality, "adoption": adoption, "labour_market": labour,
        "progress": progress, "shocks": shocks,
    }


def run(raw: dict[str, pd.DataFrame], **data):
    """validate_tables with the real lineage and ``data`` params."""
    data.setdefault("max_reject_share", 1.0)
    return validate_tables(raw, DataParams.from_dict(data), lineage=LINEAGE)


def subset(raw: dict[str, pd.DataFrame], *names: str) -> dict[str, pd.DataFrame]:
    """The required tables plus ``names`` (fewer tables: faster tests)."""
    keep = {"municipalities", "trajectories", "labour_market", *names}
    return {k: v for k, v in raw.items() if k in keep}


def big_trajectories(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` valid spells (two per client, the second may be open) as text, built
    vectorised; municipality codes in several spellings, Weesp among them."""
    import numpy as np

    rng = np.random.default_rng(seed)
    codes = np.array([m[0] for m in MUNICIPALITIES] + ["GM0457", "0599", "363"])
    client = np.arange(n) // 2
    second = np.arange(n) % 2
    first_day = rng.integers(0, 3000, (n + 1) // 2).repeat(2)[:n]
    start = np.datetime64("2014-01-01") + (first_day + second * 400).astype("timedelta64[D]")
    end = start + rng.integers(1, 380, n).astype("timedelta64[D]")
    is_open = (second == 1) & (rng.random(n) < 0.3)

    def s(values) -> pd.Series:
        return pd.Series(values).astype("str")

    def pick(options, k=n):
        return s(np.array(options)[rng.integers(0, len(options), k)])

    return pd.DataFrame({
        "spell_id": s(np.char.add("S", np.arange(n).astype(str))),
        "client_id": s(np.char.add("C", client.astype(str))),
        "municipality": s(codes[rng.integers(0, len(codes), n)]),
        "caseworker_id": s(rng.integers(0, 2000, n).astype(str)),
        "team_id": s(rng.integers(0, 50, n).astype(str)),
        "start_date": s(pd.Series(start).dt.strftime("%Y-%m-%d")),
        "end_date": s(pd.Series(end).dt.strftime("%Y-%m-%d")).mask(is_open),
        "exit_reason": pick(["work", "education", "moved", "other"]).mask(is_open),
        "birth_year": s(rng.integers(1950, 2005, n).astype(str)),
        "sex": pick(["F", "M"]),
        "education_level": pick(["low", "medium", "high"]),
        "household": pick(["single", "couple"]),
        "prior_benefit_months": s(rng.integers(0, 60, n).astype(str)),
        "ladder_step": s(rng.integers(1, 7, n).astype(str)),
    })
