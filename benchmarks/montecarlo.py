"""Monte Carlo validation of the estimator suite (issue 4; not a unit test, not in CI).

R simulated data sets of the lean DGP (:mod:`impact.simulate.lean`, seeds seed..seed+R-1,
fixed), each run through :func:`impact.estimate.estimate_all`; writes
``montecarlo_replications.csv``, ``montecarlo_summary.csv`` and ``montecarlo_summary.md``
under ``--out``. Independent of the DVC pipeline.

Usage (from the repository root)::

    .venv/bin/python benchmarks/montecarlo.py --reps 200 --seed 20261124 \
        --out reports/validation --workers 2
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"  # before numpy loads BLAS; inherited by the worker processes

import argparse  # noqa: E402
import sys  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200, help="replications R (default 200)")
    ap.add_argument("--seed", type=int, default=20261124, help="first seed (replication r uses seed + r)")
    ap.add_argument("--out", default="reports/validation", help="output folder")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--alternatives", action="store_true",
                    help="also run the adoption alternatives (CS, Sun-Abraham, Bacon; ~5x slower); "
                         "not recorded, only their run time and failures")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    args = ap.parse_args(argv)

    from impact.validation.montecarlo import run_montecarlo

    params = {"seed": 1} if args.alternatives else None
    reps, summary = run_montecarlo(reps=args.reps, seed=args.seed, out=args.out,
                                   workers=args.workers, params=params,
                                   progress=not args.no_progress)
    failed = reps["error"].fillna("") != ""
    print(f"{len(reps)} replications, {int(failed.sum())} failed; "
          f"{reps['seconds'].mean():.2f} s per replication; written to {args.out}/")
    if failed.any():
        print(reps.loc[failed, ["r", "seed", "error"]].head(10).to_string(index=False))
    cols = ["estimator", "role", "n_reps", "truth_mean", "mean_estimate", "bias_pct_truth",
            "mcse_bias", "rmse", "mean_se", "sd_error", "coverage_95", "meets_criteria"]
    import pandas as pd
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary[cols].round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
