"""Benchmark: validate a 1-million-spell trajectories file (not a unit test).

Generates a valid contract folder (municipalities, labour_market and an ``--n``-spell
trajectories table with about 1% row faults injected) in each requested format, then
times

- ``read``: :func:`impact.ingest.read_raw_folder` (parsing the files),
- ``validate``: :func:`impact.validate.validate_tables` (every rule, rejects, report),
- ``impact check``: the command line end to end in a fresh process (``uv run`` /
  interpreter start-up, imports, reading, validating, printing the rich report).

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_validate.py                  # 1,000,000 spells, csv + parquet
    .venv/bin/python benchmarks/bench_validate.py --n 200000 --formats csv semicolon parquet
    .venv/bin/python benchmarks/bench_validate.py --keep /tmp/big  # keep the generated folders

Results are printed as a Markdown table (paste into docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
LINEAGE = ROOT / "data" / "reference" / "cbs_gemeentelijke_herindelingen_lineage.csv"

#: Real 2026 municipalities and their labour-market regions; 'GM0457' (Weesp) and
#: unpadded codes exercise normalisation and merger mapping.
MUNIS = [("GM0363", "Amsterdam", "AM18"), ("GM0599", "Rotterdam", "AM22"),
         ("GM1978", "Molenlanden", "AM35"), ("GM0824", "Oisterwijk", "AM26"),
         ("GM0344", "Utrecht", "AM20"), ("GM0518", "'s-Gravenhage", "AM11")]
SPELLINGS = np.array([m[0] for m in MUNIS] + ["GM0457", "599", "0363", "344"])


def trajectories(n: int, seed: int = 0, fault_share: float = 0.01) -> pd.DataFrame:
    """``n`` spells (two per client, second open for ~30%), vectorised, as text; a
    ``fault_share`` of rows gets one row fault (end before start, unknown municipality,
    birth year out of range or overlapping spells)."""
    rng = np.random.default_rng(seed)
    client = np.arange(n) // 2
    second = np.arange(n) % 2
    first_day = rng.integers(0, 3000, (n + 1) // 2).repeat(2)[:n]
    start = np.datetime64("2012-01-01") + (first_day + second * 400).astype("timedelta64[D]")
    end = start + rng.integers(1, 380, n).astype("timedelta64[D]")
    is_open = (second == 1) & (rng.random(n) < 0.3)

    def s(values) -> pd.Series:
        return pd.Series(values).astype("str")

    def pick(options):
        return s(np.array(options)[rng.integers(0, len(options), n)])

    df = pd.DataFrame({
        "spell_id": s(np.char.add("S", np.arange(n).astype(str))),
        "client_id": s(np.char.add("C", client.astype(str))),
        "municipality": s(SPELLINGS[rng.integers(0, len(SPELLINGS), n)]),
        "caseworker_id": s(rng.integers(0, 5000, n).astype(str)),
        "team_id": s(np.char.add("T", rng.integers(0, 200, n).astype(str))),
        "start_date": s(pd.Series(start).dt.strftime("%Y-%m-%d")),
        "end_date": s(pd.Series(end).dt.strftime("%Y-%m-%d")).mask(is_open),
        "exit_reason": pick(["work", "education", "moved", "other"]).mask(is_open),
        "birth_year": s(rng.integers(1950, 2005, n).astype(str)),
        "sex": pick(["F", "M"]),
        "education_level": pick(["low", "medium", "high", "unknown"]),
        "household": pick(["single", "single_parent", "couple", "couple_children"]),
        "prior_benefit_months": s(rng.integers(0, 60, n).astype(str)),
        "ladder_step": s(rng.integers(1, 7, n).astype(str)),
    })
    bad = rng.choice(n, int(n * fault_share), replace=False)
    kind = rng.integers(0, 4, len(bad))
    df.loc[bad[kind == 0], "end_date"] = "2011-01-01"
    df.loc[bad[kind == 0], "exit_reason"] = "work"
    df.loc[bad[kind == 1], "municipality"] = "GM9999"
    df.loc[bad[kind == 2], "birth_year"] = "1850"
    over = bad[(kind == 3) & (second[bad] == 1)]
    df.loc[over, "start_date"] = df.loc[over - 1, "start_date"].to_numpy()  # same start as spell 1
    return df


def other_tables() -> dict[str, pd.DataFrame]:
    munis = pd.DataFrame(MUNIS, columns=["municipality", "name", "region"])
    rows = [(area, f"{y}-{m:02d}", "unemployment_rate", 4.0 + m / 10)
            for area in [m[0] for m in MUNIS] + sorted({m[2] for m in MUNIS})
            for y in range(2012, 2025) for m in range(1, 13)]
    lm = pd.DataFrame(rows, columns=["area", "period", "indicator", "value"])
    return {"municipalities": munis, "labour_market": lm}


def write(folder: Path, tables: dict[str, pd.DataFrame], fmt: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        if fmt == "csv":
            df.to_csv(folder / f"{name}.csv", index=False)
        elif fmt == "semicolon":
            out = df.copy()
            if "value" in out:
                out["value"] = out["value"].map(lambda v: f"{v:.2f}".replace(".", ","))
            out.to_csv(folder / f"{name}.csv", index=False, sep=";")
        elif fmt == "parquet":
            df.to_parquet(folder / f"{name}.parquet", index=False)
        else:
            raise SystemExit(f"unknown format {fmt!r} (csv, semicolon, parquet)")


def bench(folder: Path, repeat: int) -> dict[str, float]:
    from impact.ingest import read_raw_folder
    from impact.validate import DataParams, validate_tables

    lineage = pd.read_csv(LINEAGE, dtype=str)
    params = DataParams.from_dict({"max_reject_share": 0.05})
    times: dict[str, list[float]] = {"read": [], "validate": [], "impact check": []}
    for _ in range(repeat):
        t0 = time.perf_counter()
        raw = read_raw_folder(folder)
        t1 = time.perf_counter()
        result = validate_tables(raw, params, window=("2016-01", "2023-12"), lineage=lineage)
        t2 = time.perf_counter()
        times["read"].append(t1 - t0)
        times["validate"].append(t2 - t1)
        cli = [sys.executable, "-m", "impact.cli", "check", str(folder), "--params",
               str(ROOT / "params.yaml")]
        t3 = time.perf_counter()
        proc = subprocess.run(cli, cwd=ROOT, capture_output=True, text=True)
        times["impact check"].append(time.perf_counter() - t3)
        if proc.returncode != 0:
            raise SystemExit(f"impact check failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
    t = result.report["tables"]["trajectories"]
    print(f"  trajectories: {t['rows_read']:,} read, {t['rows_kept']:,} kept, "
          f"{t['rows_rejected']:,} rejected {t['rejected_by_rule']}", flush=True)
    return {k: min(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="spells (default 1,000,000)")
    ap.add_argument("--formats", nargs="+", default=["csv", "parquet"],
                    help="csv, semicolon (';' + decimal comma), parquet")
    ap.add_argument("--repeat", type=int, default=3, help="runs per format; the best is shown")
    ap.add_argument("--keep", type=Path, help="write the folders here and keep them")
    args = ap.parse_args()

    base = args.keep or Path(tempfile.mkdtemp(prefix="bench_validate_"))
    t0 = time.perf_counter()
    tables = {**other_tables(), "trajectories": trajectories(args.n)}
    print(f"generated {args.n:,} spells in {time.perf_counter() - t0:.1f}s", flush=True)
    rows = []
    try:
        for fmt in args.formats:
            folder = base / fmt
            write(folder, tables, fmt)
            size = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
            print(f"{fmt}: {size:.0f} MB in {folder}", flush=True)
            t = bench(folder, args.repeat)
            rows.append((fmt, size, t))
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    cpu = platform.processor() or platform.machine()
    print(f"\n{args.n:,} spells; Python {platform.python_version()}, {os.cpu_count()} cores ({cpu}); "
          f"best of {args.repeat}\n")
    print("| format | files (MB) | read (s) | validate (s) | `impact check` (s) |")
    print("|---|---|---|---|---|")
    for fmt, size, t in rows:
        print(f"| {fmt} | {size:.0f} | {t['read']:.1f} | {t['validate']:.1f} | {t['impact check']:.1f} |")


if __name__ == "__main__":
    main()
