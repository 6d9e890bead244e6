"""Stage `estimate`: quality, programme adoption and shock effects with their naive
counterparts, clustered standard errors and the reliability of the quality instrument."""

import argparse
import logging
import time
from pathlib import Path

from impact import io
from impact.config import load_params
from impact.estimate import estimate_all
from impact.stage import run_stage


def _optional(path: Path):
    return io.read_parquet(path) if path.exists() else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--panel", type=Path, required=True)
    ap.add_argument("--validated", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    params = load_params(args.params)
    t0 = time.perf_counter()
    result = estimate_all(
        io.read_parquet(args.panel / "person_months.parquet"),
        io.read_parquet(args.panel / "cells.parquet"),
        quality=_optional(args.validated / "quality.parquet"),
        adoption=_optional(args.validated / "adoption.parquet"),
        shocks=_optional(args.validated / "shocks.parquet"),
        params=params.estimate,
    )
    out = io.clean_dir(args.out)
    io.write_parquet(result.tidy, out / "estimates.parquet")
    io.write_json(result.headline, out / "headline.json")
    logging.info("estimated %d rows in %.1fs", len(result.tidy), time.perf_counter() - t0)


if __name__ == "__main__":
    run_stage("estimate", main)
