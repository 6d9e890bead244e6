"""Benchmark: build the panel for ~3 million person-months of synthetic spells.

Not a test (pytest does not collect it). Run::

    .venv/bin/python tests/panel/bench_panel.py [--clients 60000] [--threads N]

Writes validated-schema Parquet files to a temporary folder, reads them back as DuckDB
relations like ``pipeline/panel.py`` does, and times ``build_panel`` (which evaluates the
panel once, for the cells) and the writing of ``person_months.parquet``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from impact.panel import PanelParams, build_panel


def synthetic(n_clients: int, seed: int = 1) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n_muni, n_cw = 100, 25  # caseworkers per municipality
    munis = [f"GM{i:04d}" for i in range(n_muni)]
    regions = [f"AM{i % 35:02d}" for i in range(n_muni)]
    # 1-3 spells per client, durations geometric (mean ~2.5 years), gaps 0..120 days
    n_spells = rng.integers(1, 4, n_clients)
    client = np.repeat(np.arange(n_clients), n_spells)
    n = len(client)
    first = pd.Timestamp("2012-01-01") + pd.to_timedelta(rng.integers(0, 11 * 365, n_clients), "D")
    length = rng.geometric(1 / 900, n)
    gap = rng.integers(1, 120, n)
    start = np.empty(n, dtype="datetime64[D]")
    pos = 0
    for k, c in enumerate(n_spells):  # cumulative chain per client (vectorised enough)
        s = first[k].to_datetime64().astype("datetime64[D]")
        for j in range(c):
            start[pos + j] = s
            s = s + np.timedelta64(int(length[pos + j] + gap[pos + j]), "D")
        pos += c
    end = start + length.astype("timedelta64[D]")
    is_open = end > np.datetime64("2024-03-01")
    muni_idx = rng.integers(0, n_muni, n_clients)[client]
    cw_idx = rng.integers(0, n_cw, n)
    traj = pd.DataFrame({
        "spell_id": [f"s{i:08d}" for i in range(n)], "client_id": [f"c{c:07d}" for c in client],
        "municipality": np.array(munis)[muni_idx],
        "caseworker_key": [f"GM{m:04d}:k{k}" for m, k in zip(muni_idx, cw_idx)],
        "team_key": [f"GM{m:04d}:t{k % 5}" for m, k in zip(muni_idx, cw_idx)],
        "start_date": pd.to_datetime(start), "end_date": pd.to_datetime(np.where(is_open, np.datetime64("NaT"), end)),
        "exit_reason": np.where(is_open, None, rng.choice(["work", "other", "moved"], n)),
        "birth_year": rng.integers(1955, 2000, n), "sex": rng.choice(["F", "M"], n),
        "education_level": rng.choice(["low", "medium", "high"], n),
        "household": rng.choice(["single", "single_parent", "couple"], n),
        "prior_benefit_months": rng.integers(0, 60, n),
        "ladder_step": pd.array(rng.integers(1, 7, n), dtype="Int64"),
    })
    pick = rng.random(n) < 0.3
    asg = pd.DataFrame({
        "spell_id": traj.spell_id[pick].to_numpy(),
        "caseworker_key": [f"GM{m:04d}:k{k}" for m, k in zip(muni_idx[pick], rng.integers(0, n_cw, pick.sum()))],
        "team_key": None,
        "start_date": traj.start_date[pick].to_numpy() + pd.to_timedelta(rng.integers(0, 400, pick.sum()), "D"),
        "end_date": pd.NaT,
    })
    nq = 30_000
    qm = rng.integers(0, n_muni, nq)
    quality = pd.DataFrame({
        "unit_type": "caseworker", "unit_key": [f"GM{m:04d}:k{k}" for m, k in zip(qm, rng.integers(0, n_cw, nq))],
        "municipality": np.array(munis)[qm],
        "date": pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 9 * 365, nq), "D"),
        "instrument": "fidelity_audit", "score": rng.normal(3, 1, nq), "rater_id": "r",
    })
    months = pd.date_range("2015-01-01", "2024-12-01", freq="MS")
    areas = munis + sorted(set(regions))
    lm = pd.DataFrame([(a, m, ind, float(v)) for a in areas for m in months
                       for ind, v in (("unemployment_rate", 5.0), ("vacancy_rate", 2.0))],
                      columns=["area", "month", "indicator", "value"])
    return {
        "trajectories": traj, "caseworker_assignments": asg, "quality": quality,
        "municipalities": pd.DataFrame({"municipality": munis, "name": munis, "region": regions,
                                        "province": "PV", "population": 1000}),
        "labour_market": lm,
        "adoption": pd.DataFrame({"municipality": munis[:40], "team_key": None,
                                  "programme": "gewogen_maatwerk",
                                  "adoption_date": pd.date_range("2017-01-01", periods=40, freq="MS")}),
        "shocks": pd.DataFrame({"shock_id": [f"x{i}" for i in range(30)], "municipality": munis[:30],
                                "date": pd.date_range("2018-01-15", periods=30, freq="MS"),
                                "type": "business_park_opening", "jobs": 500, "description": ""}),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clients", type=int, default=85_000)
    ap.add_argument("--threads", type=int, default=0, help="0 = DuckDB default")
    args = ap.parse_args()
    frames = synthetic(args.clients)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        con = duckdb.connect()
        if args.threads:
            con.execute(f"SET threads = {args.threads}")
        for name, df in frames.items():
            rel = con.from_df(df)
            dates = [c for c in df.columns if str(df[c].dtype).startswith("datetime")]
            rel.project(", ".join(f"CAST({c} AS DATE) AS {c}" if c in dates else c
                                  for c in df.columns)).write_parquet(str(tmp / f"{name}.parquet"))
        tables = {p.stem: con.read_parquet(str(p)) for p in sorted(tmp.glob("*.parquet"))}
        t0, c0 = time.perf_counter(), time.process_time()
        res = build_panel(con, tables, PanelParams.from_dict({}))
        t1, c1 = time.perf_counter(), time.process_time()
        res.person_months.write_parquet(str(tmp / "out_pm.parquet"), compression="zstd")
        t2, c2 = time.perf_counter(), time.process_time()
        res.cells.write_parquet(str(tmp / "out_cells.parquet"), compression="zstd")
        t3, c3 = time.perf_counter(), time.process_time()
        s = res.summary
        print(f"spells (input/merged/in window): {s['input_spells']}/{s['spells_after_merge']}/{s['spells']}")
        print(f"person-months: {s['person_months']:,}  measured share: {s['measured_share']:.3f}")
        print(f"threads: {con.sql('SELECT current_setting(' + repr('threads') + ')').fetchall()[0][0]}")
        print("wall / CPU (all threads) seconds:")
        print(f"build_panel (incl. cells): {t1 - t0:.2f} / {c1 - c0:.2f}")
        print(f"write person_months.parquet: {t2 - t1:.2f} / {c2 - c1:.2f}")
        print(f"write cells.parquet: {t3 - t2:.2f} / {c3 - c2:.2f}")
        print(f"total: {t3 - t0:.2f} / {c3 - c0:.2f}")


if __name__ == "__main__":
    main()
