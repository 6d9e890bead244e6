"""Stage `estimate@<name>`: one named specification of params.yaml (quality, adoption or
shock model), its tidy estimates, its headline block and a JSON sidecar."""

import os

# Small dense factorisations on 2 cores run far faster single-threaded (measured: 19 s ->
# 12 s on 2.85M person-months); a user's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from impact import io  # noqa: E402
from impact.config import ConfigError, load_params  # noqa: E402
from impact.estimate import run_specification  # noqa: E402
from impact.estimate.run import load_person_months, panel_columns  # noqa: E402
from impact.stage import run_stage  # noqa: E402


def _optional(path: Path):
    return io.read_parquet(path) if path.exists() else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--spec", required=True, help="a name under 'specifications'")
    ap.add_argument("--panel", type=Path, required=True)
    ap.add_argument("--validated", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sums", type=Path, default=None,
                    help="this specification's folder of the quality_sums stage")
    args = ap.parse_args()

    params = load_params(args.params)
    specs = params.specifications
    if args.spec not in specs:
        raise ConfigError(f"--spec {args.spec!r} is not in params.yaml specifications "
                          f"(defined: {', '.join(specs)})")
    spec = specs[args.spec]
    panel = args.panel / "person_months.parquet"
    adoption = _optional(args.validated / "adoption.parquet")
    # only the columns the specification reads (the quality 2SLS and OLS read the file
    # in batches): a stage's memory is not the whole panel's
    t0 = time.perf_counter()
    result = run_specification(
        spec,
        # the quality specifications read the file in batches, none of it held; the
        # adoption and shock cell models get one row per municipality, month and
        # adoption month (run.load_person_months)
        load_person_months(panel, panel_columns(spec, params.estimate, adoption)),
        io.read_parquet(args.panel / "cells.parquet"),
        quality=_optional(args.validated / "quality.parquet"),
        adoption=adoption,
        shocks=_optional(args.validated / "shocks.parquet"),
        base=params.estimate,
        panel=panel,
        # value-added's two levels in two local processes (compute.workers: 1 = serial)
        workers=params.compute.workers or os.cpu_count() or 1,
        sums=args.sums,
    )
    out = io.clean_dir(args.out)
    io.write_parquet(result.tidy, out / "estimates.parquet")
    io.write_json(result.headline, out / "headline.json")
    io.write_json(result.meta, out / "meta.json")  # spec, library versions, warnings
    for name, table in result.tables.items():  # e.g. value-added per unit (internal)
        io.write_parquet(table, out / f"{name}.parquet")
    logging.info("%s: %d rows in %.1fs", args.spec, len(result.tidy), time.perf_counter() - t0)


if __name__ == "__main__":
    run_stage("estimate", main)
