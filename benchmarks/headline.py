"""The headline quality regression three ways on the same person-month panel.

``impact`` (``estimate.quality_stream.estimate_quality_file``: 2SLS of 100 * exit_work
on quality_a instrumented by quality_b, client / labour-market / programme-bin /
shock-bin controls, municipality and region x month effects, CRV1 by municipality)
against what a researcher would write by hand:

* pyfixest ``feols("y ~ controls | municipality + regmonth | quality_a ~ quality_b",
  vcov={"CRV1": "municipality"})``, the same 2SLS, fixed effects absorbed by alternating
  projections; and the OLS on quality_score the same way;
* linearmodels ``PanelOLS`` with the two fixed effects as ``other_effects``, clustered by
  municipality: OLS on quality_score (PanelOLS has no instrumental variables).

Each method runs in a fresh process on the same Parquet file (``--panel``), so each one's
peak memory (``ru_maxrss``) is its own. ``impact`` runs as the estimate stage does
(``estimate.quality_stream``): it reads the file in batches, so its time and memory
include reading the file and building the design. The libraries' time is of the
estimation call only, after the file is read, and they get the regressors as ready
columns (built by ``quality_frame``, not counted in their time; their memory "above
load" is above the loaded panel): the comparison, if anything, favours them. A library
that fails (out of memory, say) is reported with its error. Results: ``<out>/headline.csv`` and ``headline.md``.

    python benchmarks/headline.py --panel .bench/scale_0.25/data/panel --out reports/benchmarks
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the estimate stage

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("impact_iv", "pyfixest_iv", "impact_ols", "pyfixest_ols", "linearmodels_ols")


def _params(panel: Path):
    """The estimate section of the project the panel belongs to (else this checkout's)."""
    from impact.config import load_params

    own = panel.resolve().parents[1] / "params.yaml"
    return load_params(own if own.exists() else ROOT / "params.yaml").estimate


def _frame(pm, params):
    """The regressors as named columns (dummies included) plus the fixed effects."""
    import numpy as np
    import pandas as pd

    from impact.estimate.quality import quality_frame

    A, names, exog, cells, cell_code, cl = quality_frame(pm, params)
    safe = {n: f"x{j}" for j, n in enumerate(names)}
    df = pd.DataFrame({safe[n]: A[:, j] for j, n in enumerate(names)})
    df["municipality"] = cells["municipality"].to_numpy()[cell_code]
    df["regmonth"] = cells["regmonth"].to_numpy()[cell_code]
    df["t"] = cells["t"].to_numpy()[cell_code]
    df["cluster"] = pd.factorize(np.asarray(cl))[0]
    return df, safe, [safe[e] for e in exog]


def run_one(method: str, panel: Path) -> dict:
    import pandas as pd

    params = _params(panel)
    out = {"method": method, "n_obs": None, "estimate": None, "std_error": None}
    if method.startswith("impact"):
        # the estimate stage's path: the Parquet file read in batches, the design built
        # batch by batch; both counted in the time and the memory (nothing is loaded first)
        from impact.estimate.quality_stream import estimate_quality_file

        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        rows, head = estimate_quality_file(panel / "person_months.parquet", params,
                                           method.removeprefix("impact_"))
        out["seconds"] = time.perf_counter() - t0
        out.update(estimate=head["effect_pp"], std_error=head["std_error"], n_obs=head["n_obs"])
    else:
        pm = pd.read_parquet(panel / "person_months.parquet")
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        df, safe, exog = _frame(pm, params)
        del pm
        y, qa, qb, qs = (safe[n] for n in ("y", "quality_a", "quality_b", "quality_score"))
        rhs = " + ".join(exog) if exog else "1"
        if method.startswith("pyfixest"):
            import pyfixest as pf

            fml = (f"{y} ~ {rhs} | municipality + regmonth | {qa} ~ {qb}" if method.endswith("iv")
                   else f"{y} ~ {qs} + {rhs} | municipality + regmonth")
            t0 = time.perf_counter()
            fit = pf.feols(fml, data=df, vcov={"CRV1": "cluster"}, fixef_rm="none",
                           fixef_tol=1e-10)
            out["seconds"] = time.perf_counter() - t0
            name = qa if method.endswith("iv") else qs
            out.update(estimate=float(fit.coef()[name]), std_error=float(fit.se()[name]),
                       n_obs=int(fit._N))
        else:
            from linearmodels.panel import PanelOLS

            idx = df.set_index([df["cluster"].rename("entity"), df.index.rename("row")])
            t0 = time.perf_counter()
            mod = PanelOLS(idx[y], idx[[qs, *exog]],
                           other_effects=idx[["municipality", "regmonth"]].astype("category")
                           .apply(lambda s: s.cat.codes))
            fit = mod.fit(cov_type="clustered", clusters=idx["cluster"])
            out["seconds"] = time.perf_counter() - t0
            out.update(estimate=float(fit.params[qs]), std_error=float(fit.std_errors[qs]),
                       n_obs=int(fit.nobs))
    out["peak_mb_above_load"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def compare(panel: Path, methods=METHODS, timeout: float = 3600) -> list[dict]:
    results = []
    for m in methods:
        cmd = [sys.executable, __file__, "--one", m, "--panel", str(panel)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            results.append({"method": m, "error": f"did not finish within {timeout:.0f} s"})
            continue
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode == 0 and lines:
            results.append(json.loads(lines[-1]))
        else:
            err = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            if proc.returncode < 0:  # stderr's last line is then whatever ran before
                err = f"killed by signal {-proc.returncode} (out of memory?)"
            results.append({"method": m, "error": err[:300]})
        print(f"[headline] {results[-1]}", flush=True)
    return results


def table(results: list[dict], label: str) -> str:
    base = {r["method"].split("_")[-1]: r for r in results if r["method"].startswith("impact")}
    lines = [f"### Headline regression, {label}", "",
             "| method | seconds | peak RSS (MB) | above load (MB) | estimate (pp) | SE | "
             "time / impact | |estimate - impact| |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['method']} | failed: {r['error']} | | | | | | |")
            continue
        ref = base.get(r["method"].split("_")[-1])
        ratio = r["seconds"] / ref["seconds"] if ref and "seconds" in ref else float("nan")
        diff = abs(r["estimate"] - ref["estimate"]) if ref and "estimate" in ref else float("nan")
        lines.append(f"| {r['method']} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | "
                     f"{r['peak_mb_above_load']:.0f} | {r['estimate']:.6f} | {r['std_error']:.6f} | "
                     f"{ratio:.2f} | {diff:.1e} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--panel", type=Path, required=True, help="a panel stage's output folder")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--label", default="")
    ap.add_argument("--one", choices=METHODS, help=argparse.SUPPRESS)
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    args = ap.parse_args()
    if args.one:
        try:
            print(json.dumps(run_one(args.one, args.panel)))
        except Exception:
            traceback.print_exc()
            sys.exit(1)
        return
    results = compare(args.panel, args.methods)
    md = table(results, args.label or str(args.panel))
    print(md)
    if args.out:
        import pandas as pd

        args.out.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(results).to_csv(args.out / "headline.csv", index=False)
        (args.out / "headline.md").write_text(md)


if __name__ == "__main__":
    main()
