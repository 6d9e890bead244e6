"""Stage `heterogeneity`: what works for whom. Quality and programme effects per
pre-specified client group (with equality tests, Romano-Wolf adjustment and shrinkage),
exits to work, to education and any exit, cumulative incidence by group, effects on the
intermediate results of the optional `progress` table, and the data-driven check."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as in pipeline/estimate.py

import argparse  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from impact import io  # noqa: E402
from impact.config import load_params  # noqa: E402
from impact.heterogeneity import analyse  # noqa: E402
from impact.stage import run_stage  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    for name in ("panel", "validated", "out"):
        ap.add_argument(f"--{name}", type=Path, required=True)
    args = ap.parse_args()

    params = load_params(args.params)
    het, headline = params.heterogeneity, params.headline
    spec = params.specifications.get(headline.get("quality") or "")
    est = spec.apply(params.estimate) if spec is not None else params.estimate
    t0 = time.perf_counter()

    def file(name):   # (given as a path: read where it is used, run._progress_part)
        p = args.validated / f"{name}.parquet"
        return p if p.exists() else None

    def optional(name):
        p = file(name)
        return io.read_parquet(p) if p is not None else None

    result = analyse(
        None,  # every part reads the panel file in batches or by DuckDB: never held whole
        trajectories=file("trajectories"), adoption=optional("adoption"),
        shocks=optional("shocks"), progress_table=file("progress"),
        params=est, het=het,
        min_cell=params.privacy.min_cell, t_start=params.panel.t_start,
        log=lambda msg: logging.info("%s (%.0fs)", msg, time.perf_counter() - t0),
        panel=args.panel / "person_months.parquet",
        # a second local process for the quality check and the cumulative incidence
        # (compute.workers: 1 = serial)
        workers=params.compute.workers or os.cpu_count() or 1)
    out = io.clean_dir(args.out)
    io.write_parquet(result.groups, out / "group_effects_internal.parquet")
    io.write_csv(result.groups_published, out / "group_effects.csv")
    io.write_csv(result.tests, out / "heterogeneity_tests.csv")
    io.write_csv(result.incidence, out / "incidence.csv")
    io.write_csv(result.progress, out / "progress_effects.csv")
    for name, table in result.cddf.items():
        io.write_csv(table, out / f"cddf_{name}.csv")
    io.write_json(result.meta, out / "meta.json")
    logging.info("%d group rows (%d published) in %.1fs", len(result.groups),
                 result.meta["n_published"], time.perf_counter() - t0)


if __name__ == "__main__":
    run_stage("heterogeneity", main)
