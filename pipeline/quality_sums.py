"""Stage `quality_sums`: one pass over the person-month file for every quality 2SLS / OLS
specification of params.yaml, each specification's raw cluster blocks written to
`data/quality_sums/<name>/` for its `estimate@<name>` (``impact.estimate.quality_sums``)."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as in pipeline/estimate.py

import argparse  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from impact import io  # noqa: E402
from impact.config import load_params  # noqa: E402
from impact.estimate.quality_sums import iter_shared_sums, pass_key, write  # noqa: E402
from impact.stage import run_stage  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--panel", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    params = load_params(args.params)
    specs, base = params.specifications, params.estimate
    panel = args.panel / "person_months.parquet"
    t0 = time.perf_counter()
    out = io.clean_dir(args.out)
    served = []
    for name, got in iter_shared_sums(panel, specs, base):  # each written once made
        write(out / name, pass_key(specs[name], base, panel), got)
        served.append(name)
    for name in specs.keys() - set(served):  # these make their own pass
        write(out / name, pass_key(specs[name], base, panel), None)
    logging.info("quality sums for %s in %.1fs", ", ".join(served) or "no specification",
                 time.perf_counter() - t0)


if __name__ == "__main__":
    run_stage("quality_sums", main)
