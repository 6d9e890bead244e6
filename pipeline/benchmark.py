"""Stage `benchmark`: every municipality's and team's observed exit-to-work rate against
the rate expected from its clients and labour market (funnel limits), its quality
contribution (empirical-Bayes, reliability-corrected) and naive versus adjusted ranks
with rank intervals."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as in pipeline/estimate.py

import argparse  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


from impact import io  # noqa: E402
from impact.benchmark import (  # noqa: E402
    MUNICIPALITY_COLUMNS, TEAM_COLUMNS, YEAR_COLUMNS,
)
from impact.benchmark.stream import run_benchmark_file  # noqa: E402
from impact.config import load_params  # noqa: E402
from impact.stage import run_stage  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--panel", type=Path, required=True)
    ap.add_argument("--validated", type=Path, required=True)
    ap.add_argument("--decompose", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    params = load_params(args.params)
    bparams, privacy = params.benchmark, params.privacy
    _, _, est = params.decompose_specification()
    t0 = time.perf_counter()
    munis = io.read_parquet(args.validated / "municipalities.parquet",
                            columns=["municipality", "name", "region"])
    coefs = io.read_parquet(args.decompose / "coefficients.parquet")
    psi = io.read_parquet(args.decompose / "influence.parquet")["psi_quality"].to_numpy()
    # the panel file read in batches (``benchmark.stream``: the in-memory benchmark's
    # tables, memory independent of the panel's size)
    res = run_benchmark_file(args.panel / "person_months.parquet", munis, coefs, psi, est,
                             bparams, privacy.min_cell)
    out = io.clean_dir(args.out)
    io.write_csv(res.municipalities[MUNICIPALITY_COLUMNS], out / "benchmark.csv")
    io.write_csv(res.teams[TEAM_COLUMNS], out / "benchmark_teams.csv")
    io.write_csv(res.years[YEAR_COLUMNS], out / "benchmark_years.csv")
    io.write_csv(res.curve, out / "funnel_curve.csv")
    io.write_json(res.facts, out / "meta.json")
    logging.info("%d municipalities (%d published), %d teams published in %.1fs",
                 len(res.municipalities), int(res.municipalities["published"].sum()),
                 len(res.teams), time.perf_counter() - t0)


if __name__ == "__main__":
    run_stage("benchmark", main)
