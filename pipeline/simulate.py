"""Stage `simulate`: the built-in synthetic country.

Writes the raw tables of the data contract, exactly as a user's files would look, to
``--out``, and the effects it planted to ``--truth``.
"""

import argparse
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from impact import io
from impact.config import load_params
from impact.simulate import REFERENCE_FILES, write_country
from impact.stage import run_stage


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--reference", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--truth", type=Path, required=True)
    args = ap.parse_args()

    params = load_params(args.params)
    reference = {Path(f).stem: pd.read_csv(args.reference / f, dtype=str) for f in REFERENCE_FILES}
    t0 = time.perf_counter()
    out = io.clean_dir(args.out)
    args.truth.unlink(missing_ok=True)  # never an old truth beside new tables
    written, writing = [], []
    # each table written by a thread while the next one is made (after the last table,
    # the truth); at most one in writing, so two tables are held at the most. A plain
    # table is written by DuckDB, outside the GIL (``io.write_csv``): nationally the
    # stage 41-43 -> 38-40 s, its peak 4.0 -> 4.7 GB (one table held at a time before)
    pool = ThreadPoolExecutor(1)

    def wait() -> None:
        while writing:
            writing.pop().result()

    def write(name: str, table: pd.DataFrame) -> None:
        wait()
        writing.append(pool.submit(io.write_csv, table, out / f"{name}.csv"))
        written.append(name)

    try:
        truth = write_country(params.simulate, reference, seed=params.seed, write=write)
        wait()
    except BaseException:
        pool.shutdown(cancel_futures=True)   # a write under way ends first
        io.clean_dir(args.out)  # no half-written country left behind
        raise
    pool.shutdown()
    io.write_json(truth, args.truth)
    logging.info("wrote %d tables to %s in %.1fs", len(written), out, time.perf_counter() - t0)


if __name__ == "__main__":
    run_stage("simulate", main)
