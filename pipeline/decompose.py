"""Stage `decompose`: each municipality's (and the country's) change in the monthly
exit-to-work rate between two periods, split into client composition, labour market,
shocks, quality and a residual (Shapley values of the fitted quality model's terms),
with wild cluster bootstrap intervals."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as in pipeline/estimate.py

import argparse  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from impact import io  # noqa: E402
from impact.config import load_params  # noqa: E402
from impact.decompose.core import has_quality  # noqa: E402
from impact.decompose.stream import decompose_file  # noqa: E402
from impact.stage import run_stage  # noqa: E402


def municipality_names(validated: Path) -> dict[str, str]:
    path = validated / "municipalities.parquet"
    if not path.exists():
        return {}
    m = io.read_parquet(path, columns=["municipality", "name"])
    return dict(zip(m["municipality"].astype(str), m["name"].astype(str)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--panel", type=Path, required=True)
    ap.add_argument("--validated", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    params = load_params(args.params)
    dparams, privacy = params.decompose, params.privacy
    name, spec, est = params.decompose_specification()
    t0 = time.perf_counter()
    # the panel file read in batches, only the columns the model and the tables read
    # (``decompose.stream``: the in-memory decomposition's numbers, memory independent of
    # the panel's size)
    result = decompose_file(args.panel / "person_months.parquet", est, dparams,
                            privacy.min_cell, spec.estimator, municipality_names(args.validated))
    out = io.clean_dir(args.out)
    io.write_csv(result.table, out / "decomposition.csv")
    fit, design = result.fit, result.design
    with_q = has_quality(fit)
    factors = ["quality"] * with_q + [design.factor(c) for c in design.columns]
    io.write_parquet(pd.DataFrame({"term": fit.names, "factor": factors,
                                   "estimate": fit.coef, "std_error": fit.se}),
                     out / "coefficients.parquet")
    G = len(fit.clusters)
    psi = fit.psi[:, 0] if with_q else np.full(G, np.nan)
    # the quality effect refitted without each cluster (exact; robustness reads it)
    loo = (fit.coef[0] + fit.jack[:, 0] / np.sqrt((G - 1) / G)
           if with_q and fit.jack is not None and G > 1 else np.full(G, np.nan))
    io.write_parquet(pd.DataFrame({"cluster": fit.clusters.astype(str), "psi_quality": psi,
                                   "quality_loo": loo}), out / "influence.parquet")
    io.write_json({"specification": name, **result.info}, out / "meta.json")
    logging.info("%d rows (%d municipality-pairs) in %.1fs", len(result.table),
                 result.table[["municipality", "period_from"]].drop_duplicates().shape[0],
                 time.perf_counter() - t0)


if __name__ == "__main__":
    run_stage("decompose", main)
