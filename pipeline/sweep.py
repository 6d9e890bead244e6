"""Stage `sweep@<cell>`: one cell of the specification grid (params.yaml `grid`), the
programme effect under one outcome, sample, fixed-effect set and estimator, from the
cell's sample frame (stage `sweep_frames@<outcome>`)."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as in pipeline/estimate.py

import argparse  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from impact import io  # noqa: E402
from impact.config import load_params  # noqa: E402
from impact.stage import run_stage  # noqa: E402
from impact.sweep import AXES, run_cell  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    for axis in AXES:
        ap.add_argument(f"--{axis.replace('_', '-')}", required=True, choices=AXES[axis])
    ap.add_argument("--frame", type=Path, required=True,
                    help="the cell's sample frame (data/sweep_frames/<outcome>/<sample>.parquet)")
    ap.add_argument("--validated", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    params = load_params(args.params)
    grid, est = params.grid, params.estimate
    cell = {a: getattr(args, a) for a in AXES}
    t0 = time.perf_counter()
    # the frame shared by the outcome's cells (impact.sweep.cells_sql.sample_frames_sql)
    frame = io.read_parquet(args.frame)

    def optional(name):
        p = args.validated / f"{name}.parquet"
        return io.read_parquet(p) if p.exists() else None

    result = run_cell(cell, None, optional("adoption"), optional("shocks"), est, grid,
                      frame=frame)
    out = io.clean_dir(args.out)
    io.write_json(result, out / "result.json")
    logging.info("%s: %s %s in %.1fs", result["cell"], result["status"],
                 result["estimate"], time.perf_counter() - t0)


if __name__ == "__main__":
    run_stage("sweep", main)
