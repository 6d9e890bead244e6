"""Monte Carlo of the headline intervals with few municipalities: analytic (CRV1 / BJS with
t(G-1)) against the wild score bootstrap that ``estimate.inference: auto`` switches on
below ``estimate.wild_below`` clusters (not a unit test, not in CI; ``make validate``).

The lean DGP (:mod:`impact.simulate.lean`) with ``--munis`` municipalities in two regions,
seeds seed..seed+R-1 (fixed); each data set is estimated twice, once per interval method,
with the same point estimates. Writes ``few_clusters_replications.csv`` and
``few_clusters.md`` (coverage of the planted truth and mean interval width per block and
method) under ``--out``.

Usage (from the repository root)::

    .venv/bin/python benchmarks/few_clusters.py --reps 100 --munis 8 --out reports/validation
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

BLOCKS = {"quality": ("quality_effect_pp", "truth_quality_pp"),
          "adoption": ("adoption_att_pp", "truth_att_pp"),
          "shock": ("shock_effect_pp", "truth_shock_pp")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--seed", type=int, default=20261130)
    ap.add_argument("--munis", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="reports/validation")
    args = ap.parse_args(argv)

    import pandas as pd

    from impact.validation.montecarlo import run_replications

    sim = {"n_muni": args.munis, "n_regions": 2, "n_shocks": 3}
    seeds = range(args.seed, args.seed + args.reps)
    frames = []
    for method in ("cluster", "wild"):
        params = {"seed": 1, "adoption": {"alternatives": []},
                  "estimate": {"inference": method, "wild_draws": 999}}
        reps = run_replications(seeds, workers=args.workers, sim_kwargs=sim, params=params)
        frames.append(reps.assign(method=method))
    reps = pd.concat(frames, ignore_index=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    reps.drop(columns=["traceback"], errors="ignore").to_csv(
        out / "few_clusters_replications.csv", index=False)
    rows = []
    for method, (block, (est, truth)) in ((m, b) for m in ("cluster", "wild")
                                          for b in BLOCKS.items()):
        r = reps[(reps["method"] == method) & reps[est].notna()]
        # where the wild interval is unbounded (too few treated clusters) the pipeline
        # reports the analytic one, flagged; `unbounded` is the share of such draws
        lo, hi = r[f"{block}_ci_low"], r[f"{block}_ci_high"]
        unbounded = float(r[f"{block}_wild_unbounded"].mean())
        cover = ((lo <= r[truth]) & (r[truth] <= hi)).mean()
        rows.append({"block": block, "method": method, "n_reps": len(r),
                     "coverage_95": round(float(cover), 3),
                     "mcse_coverage": round(float((cover * (1 - cover) / max(len(r), 1)) ** 0.5), 3),
                     "median_width": round(float((hi - lo).median()), 4),
                     "unbounded": round(unbounded, 3),
                     "failed": int(reps[(reps["method"] == method)][est].isna().sum())})
    table = pd.DataFrame(rows).sort_values(["block", "method"])
    md = [f"# Few clusters: {args.munis} municipalities, {args.reps} replications",
          "", f"Lean DGP, 2 regions, seeds {args.seed}..{args.seed + args.reps - 1}; "
          "the same point estimates, two interval methods.", "",
          "| block | method | reps | coverage 95% | MC SE | median width | unbounded | failed |",
          "|---|---|---|---|---|---|---|---|"]
    md += [f"| {t.block} | {t.method} | {t.n_reps} | {t.coverage_95} | {t.mcse_coverage} | "
           f"{t.median_width} | {t.unbounded} | {t.failed} |" for t in table.itertuples()]
    (out / "few_clusters.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
