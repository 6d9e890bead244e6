"""Stage `sweep_frames@<outcome>`: the unit x month frames of one grid outcome on each grid
sample (params.yaml `grid.sample`), aggregated by DuckDB from the person-month file once
per base sample and shared by that outcome's grid cells (stages `sweep@<cell>`)."""

import argparse
import logging
import time
from pathlib import Path

from impact import io
from impact.config import load_params
from impact.stage import run_stage
from impact.sweep import AXES
from impact.sweep.cells_sql import sample_frames_sql


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--outcome", required=True, choices=AXES["outcome"])
    ap.add_argument("--panel", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    grid = load_params(args.params).grid
    t0 = time.perf_counter()
    frames = sample_frames_sql(args.panel / "person_months.parquet", args.outcome,
                               list(grid.sample), grid.crisis)
    out = io.clean_dir(args.out)
    for sample, frame in frames.items():
        io.write_parquet(frame, out / f"{sample}.parquet")
    logging.info("%s: %s in %.1fs", args.outcome,
                 ", ".join(f"{s} {len(f)} cells" for s, f in frames.items()),
                 time.perf_counter() - t0)


if __name__ == "__main__":
    run_stage("sweep_frames", main)
