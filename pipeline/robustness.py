"""Stage `robustness`: placebo adoption dates and shocks, leave-one-municipality-out,
pre-trends, alternative outcomes and crisis months dropped, as one tidy table and a
one-page summary of which headline conclusions survive."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as in pipeline/estimate.py

import argparse  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from impact import io  # noqa: E402
from impact.config import load_params  # noqa: E402
from impact.estimate.run import cell_model_columns, load_person_months  # noqa: E402
from impact.robustness import run_robustness, summary_markdown  # noqa: E402
from impact.stage import run_stage  # noqa: E402
from impact.sweep.curve import collect_cells, curve_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    for name in ("panel", "validated", "estimates", "decompose", "sweep", "out"):
        ap.add_argument(f"--{name}", type=Path, required=True)
    args = ap.parse_args()

    params = load_params(args.params)
    est, chosen = params.estimate, params.headline
    t0 = time.perf_counter()
    headline = {}
    for block, spec in chosen.items():
        path = args.estimates / str(spec) / "headline.json"
        headline[block] = io.read_json(path).get(block) if spec and path.exists() else None

    def optional(name):
        p = args.validated / f"{name}.parquet"
        return io.read_parquet(p) if p.exists() else None

    infl = args.decompose / "influence.parquet"
    adoption, panel = optional("adoption"), args.panel / "person_months.parquet"
    # the checks refit cell-level models: only the person-month columns those read
    columns = cell_model_columns(adoption, est.adoption.programme)
    checks, loo = run_robustness(
        io.read_parquet(args.panel / "cells.parquet"),
        load_person_months(panel, columns),  # weighted distinct rows, or the columns
        adoption, optional("shocks"), est, params.robustness, headline,
        io.read_parquet(infl) if infl.exists() else None,
        curve_table(collect_cells(args.sweep, params.grid), est.estimate.alpha),
        params.compute)
    out = io.clean_dir(args.out)
    io.write_csv(checks, out / "robustness.csv")
    io.write_csv(loo, out / "robustness_loo.csv")
    io.write_text(summary_markdown(checks, headline), out / "robustness.md")
    logging.info("%d checks, %d leave-one-out fits in %.1fs", len(checks), len(loo),
                 time.perf_counter() - t0)


if __name__ == "__main__":
    run_stage("robustness", main)
