"""`make bench`: the whole pipeline at several sizes of the national preset, stage by stage.

For each size (a fraction of the real national caseload, `simulate.scale`) the script
makes a scratch copy of the project (code, src, dvc.yaml, params.yaml, reference data) in
``--work``, sets ``simulate.preset: national`` and the window of the national preset, and
runs every stage's command in DVC's order, one process each, measuring per stage

- wall time (seconds),
- peak resident memory of the stage's process tree (the larger of ``wait4``'s
  ``ru_maxrss`` and the tree's summed RSS sampled every half second, ``run_stage``), and
- the tree's CPU seconds in user mode and in the kernel (``wait4``'s ``ru_utime`` and
  ``ru_stime``; the kernel's are mostly first touches of new memory),

then the person-months of the panel. Before each size and the end-to-end run it times a
fresh process touching 1 GB of new memory (``touch_probe``): on a virtual machine that
cost changes from hour to hour, and with it every stage that holds gigabytes. At the
largest size (``--repro-sizes``) it runs the whole pipeline end to end as ``make repro``
does (``end_to_end``: ``impact repro --jobs 2 --force``, planned from the stage-by-stage
times and peaks), recording its wall time, the peak of all its processes and their CPU,
and draws its timeline (``repro_timeline_<size>.png``, ``benchmarks/timeline.py``). It
writes ``<out>/scale.csv`` (one row per size and stage, the end-to-end run as the stage
``REPRO``), ``touch_probe.csv``, ``scale.md`` (the tables, the exponents between
consecutive sizes, the machine, the probes) and prints the Markdown. A stage that fails
(out of memory, say) is recorded with its exit code and the larger sizes are skipped.

Scaling exponent between sizes a < b: log(t_b / t_a) / log(n_b / n_a) with n the
person-months; 1 is linear, and "doubling the data at most doubles time and memory within
10%" means an exponent of at most log2(2.2) = 1.14. Stages under 2 s are dominated by
interpreter start-up and are not judged.

    python benchmarks/scale.py --sizes 0.0625 0.25 1 --out reports/benchmarks
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import headline  # noqa: E402  (benchmarks/headline.py)

from impact.procmem import tree_rss_kb  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COPY = ["dvc.yaml", "params.yaml", "pipeline", "src", "data/reference", ".dvc/config"]
NATIONAL = {"simulate.preset": "national", "simulate.start": None, "simulate.end": None,
            "panel.start": "2014-01", "panel.end": "2023-12"}


def _set(params: dict, dotted: str, value) -> None:
    *head, last = dotted.split(".")
    node = params
    for k in head:
        node = node.setdefault(k, {})
    node[last] = value


def make_work(work: Path, scale: float, extra: dict) -> Path:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for rel in COPY:
        src, dst = ROOT / rel, work / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    params = yaml.safe_load((work / "params.yaml").read_text())
    for k, v in {**NATIONAL, "simulate.scale": scale, **extra}.items():
        _set(params, k, v)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)  # DVC wants a repository
    return work


def stage_commands(work: Path) -> list[tuple[str, str]]:
    """(name, command) of every stage, dependencies first (DVC's own graph)."""
    import networkx as nx
    from dvc.repo import Repo

    cwd = os.getcwd()
    os.chdir(work)  # Repo() looks in the working directory (design.md)
    try:
        repo = Repo(str(work))
        order = reversed(list(nx.topological_sort(repo.index.graph)))
        return [(s.addressing, s.cmd) for s in order]
    finally:
        os.chdir(cwd)


#: runs a stage's command in a shell and writes its children's peak ru_maxrss (kB) to the
#: file named second; exits as the command did (a signal re-raised)
_LAUNCH = (
    "import os, resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[1], shell=True)\n"
    "open(sys.argv[2], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN)"
    ".ru_maxrss))\n"
    "if rc < 0:\n"
    "    os.kill(os.getpid(), -rc)\n"
    "sys.exit(rc)\n")


class Run(NamedTuple):
    """What ``run_stage`` measured of one command."""

    wall_s: float
    peak_rss_mb: float
    exit_code: int
    user_s: float      # CPU seconds of the whole tree in user mode
    system_s: float    # ... and in the kernel (page faults, mostly)

    def row(self) -> dict:
        """The fields as ``scale.csv`` keeps them (rounded)."""
        return {"wall_s": round(self.wall_s, 2), "peak_rss_mb": round(self.peak_rss_mb, 1),
                "exit_code": self.exit_code, "user_s": round(self.user_s, 1),
                "system_s": round(self.system_s, 1)}


def run_stage(cmd: str, cwd: Path, log) -> Run:
    """Wall seconds, peak RSS (MB) of the stage's process tree, exit code, and the tree's
    CPU seconds in user mode and in the kernel (``wait4`` on the launcher: its own and
    those of every descendant reaped, as each stage's processes wait for theirs).

    The peak is the larger of the largest single process's ``ru_maxrss`` and the tree's
    summed RSS sampled every half second: stages that run work in parallel processes
    (the heterogeneity stage's data-driven check, the report's waterfalls, robustness's
    refits) hold the sum. ``ru_maxrss`` is taken by a small launcher process
    (``_LAUNCH``): a child spawned straight from this process is charged this process's
    resident memory at the fork, which a stage never uses (1.4 GB under pytest)."""
    import tempfile
    import threading

    t0 = time.perf_counter()
    fd, maxrss_file = tempfile.mkstemp(prefix="impact-bench-")
    os.close(fd)
    proc = subprocess.Popen([sys.executable, "-c", _LAUNCH, cmd, maxrss_file], cwd=cwd,
                            stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "DVC_NO_ANALYTICS": "1", "TQDM_DISABLE": "1",
                                 # the stages' `python` is this interpreter
                                 "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
                                         f"{os.environ.get('PATH', '')}"})
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            peak[0] = max(peak[0], tree_rss_kb(proc.pid))

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    watcher.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    try:
        maxrss = int(Path(maxrss_file).read_text() or 0)
    except (OSError, ValueError):
        maxrss = usage.ru_maxrss  # the launcher was killed: its own, an upper bound
    finally:
        Path(maxrss_file).unlink(missing_ok=True)
    return Run(time.perf_counter() - t0, max(maxrss, peak[0]) / 1024, proc.returncode,
               usage.ru_utime, usage.ru_stime)


#: the stage name of the end-to-end run in scale.csv
REPRO = "[impact repro --jobs 2, end to end]"


def end_to_end(work: Path, rows: list[dict], scale: float, log, out: Path | None = None
               ) -> dict:
    """The whole pipeline in ``work`` by ``impact repro --jobs 2 --force`` (its default
    memory budget), as ``make repro`` runs it: wall time and the peak of all its
    processes together. It is planned from this size's stage-by-stage run (its times and
    peaks, as ``impact repro`` keeps them from a previous run of its own). With ``out``,
    the run's timeline goes there as ``repro_timeline_<scale>.json`` and ``.png``."""
    from impact.repro import PEAKS, ROWS, TIMELINE, TIMES, panel_rows

    mine = [r for r in rows if r["scale"] == scale]
    for path, key in ((TIMES, "wall_s"), (PEAKS, "peak_rss_mb")):
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(json.dumps({r["stage"]: r[key] for r in mine}))
    # ...measured on this panel (``impact.repro``: a peak of a smaller panel gives way to
    # the stage's rate in dvc.yaml)
    n = panel_rows(work)
    (work / ROWS).write_text(json.dumps({r["stage"]: n for r in mine} if n else {}))
    run = run_stage(f"{Path(sys.executable).parent / 'impact'} repro --jobs 2 --force", work,
                    log)
    print(f"[bench] scale {scale:g} end to end: {run.wall_s:.1f} s, {run.peak_rss_mb:.0f} MB, "
          f"exit {run.exit_code}", file=sys.stderr, flush=True)
    if out is not None and (work / TIMELINE).exists():
        import timeline  # benchmarks/timeline.py

        line = json.loads((work / TIMELINE).read_text())
        (out / f"repro_timeline_{scale:g}.json").write_text(json.dumps(line, indent=1))
        timeline.figure(line, out / f"repro_timeline_{scale:g}.png",
                        f"impact repro --jobs 2 at scale {scale:g}: {run.wall_s / 60:.1f} "
                        f"min, peak {run.peak_rss_mb / 1024:.2f} GB of all processes")
    return {"stage": REPRO, **run.row()}


#: a fresh process touching ``gb`` GB of new memory: prints its wall and kernel seconds
_TOUCH = (
    "import resource, sys, time\n"
    "import numpy as np\n"
    "t, s = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_stime\n"
    "a = np.ones(int(float(sys.argv[1]) * 2 ** 27))\n"
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_stime - s)\n")


def touch_probe(gb: float = 1.0) -> dict:
    """Seconds (wall, kernel) a fresh process takes to touch ``gb`` GB of new memory in
    ordinary pages, as the stages use (``impact.stage``): what a stage pays per GB it holds
    now. A probe that fails (no memory to spare, say) gives NaN, never stops the bench."""
    done = subprocess.run([sys.executable, "-c", _TOUCH, str(gb)], capture_output=True,
                          text=True, env={**os.environ, "NUMPY_MADVISE_HUGEPAGE": "0"})
    try:
        wall, kernel = (float(v) for v in done.stdout.strip().splitlines()[-1].split())
    except (IndexError, ValueError):
        wall = kernel = math.nan
    return {"gb": gb, "wall_s": wall, "system_s": kernel}


#: seconds of quiet before and after a probe: memory freed seconds before is still cheap
_SETTLE = 5.0


def _probe(scale: float) -> dict:
    time.sleep(_SETTLE)
    probe = touch_probe()
    time.sleep(_SETTLE)
    print(f"[bench] scale {scale:g}: a fresh process touched 1 GB of new memory in "
          f"{probe['wall_s']:.2f} s ({probe['system_s']:.2f} s in the kernel)", file=sys.stderr)
    return probe


def machine() -> str:
    mem = ""
    try:
        kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines()
                      if l.startswith("MemTotal")).split()[1])
        mem = f", {kb / 1024 ** 2:.0f} GB"
    except (OSError, StopIteration, ValueError):
        pass
    return (f"{platform.machine()}, {os.cpu_count()} cores{mem}, Python "
            f"{platform.python_version()}, {platform.system()} {platform.release()}")


def exponents(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    sizes = sorted(df["scale"].unique())
    for a, b in zip(sizes, sizes[1:]):
        A, B = df[df["scale"] == a].set_index("stage"), df[df["scale"] == b].set_index("stage")
        na, nb = A["person_months"].iloc[0], B["person_months"].iloc[0]
        for stage in A.index.intersection(B.index):
            if A.at[stage, "exit_code"] or B.at[stage, "exit_code"]:
                continue
            ta, tb = A.at[stage, "wall_s"], B.at[stage, "wall_s"]
            ma, mb = A.at[stage, "peak_rss_mb"], B.at[stage, "peak_rss_mb"]
            ua, ub = ((A.at[stage, "user_s"], B.at[stage, "user_s"]) if "user_s" in A
                      else (math.nan, math.nan))
            rows.append({"from": a, "to": b, "stage": stage,
                         "time_exponent": (math.log(tb / ta) / math.log(nb / na)
                                           if ta >= 2 else float("nan")),
                         "memory_exponent": math.log(mb / ma) / math.log(nb / na),
                         # the CPU in user mode: the code's own work, without the kernel's
                         # first touches of memory, whose cost is the machine's hour's
                         # (judged from 2 CPU s, as time is from 2 s)
                         "user_exponent": (math.log(ub / ua) / math.log(nb / na)
                                           if ua >= 2 and ub > 0 else float("nan"))})
    return pd.DataFrame(rows)


def _cpu(r, cpu: bool) -> str:   # the end-to-end row's CPU, when the table has it
    return (f" (CPU: {r.user_s:,.0f} s in user mode, {r.system_s:,.0f} s in the kernel)"
            if cpu and pd.notna(r.user_s) else "")


def markdown(df: pd.DataFrame, exp: pd.DataFrame, probes: list[dict] = ()) -> str:
    out = [f"# Pipeline at scale (national preset)", "", f"Machine: {machine()}", ""]
    probes = pd.DataFrame(list(probes), columns=["scale", "before", "gb", "wall_s", "system_s"])
    for scale, d in df.groupby("scale", sort=True):
        pm = d["person_months"].iloc[0]
        e2e, d = d[d["stage"] == REPRO], d[d["stage"] != REPRO]
        cpu = {"user_s", "system_s"} <= set(d.columns)
        out += [f"## scale {scale:g}: {pm:,.0f} person-months, {d['wall_s'].sum() / 60:.1f} min "
                f"stage by stage, peak {d['peak_rss_mb'].max() / 1024:.2f} GB", ""]
        out += [(f"A fresh process touched {r.gb:g} GB of new memory in {r.wall_s:.2f} s "
                 f"({r.system_s:.2f} s in the kernel)" if pd.notna(r.wall_s) else
                 "The probe of new memory failed") + f" before the {r.before}."
                for r in probes[probes["scale"] == scale].itertuples()]
        out += [f"End to end (`impact repro --jobs 2`, as `make repro`): "
                f"{r.wall_s / 60:.1f} min, peak {r.peak_rss_mb / 1024:.2f} GB of all its "
                f"processes together, exit {r.exit_code}{_cpu(r, cpu)} (timeline: "
                f"`repro_timeline_{scale:g}.png`)." for r in e2e.itertuples()]
        out += [""] if len(e2e) or (probes["scale"] == scale).any() else []
        out += ["| stage | wall (s) | peak RSS (MB) | exit |" + (" user (s) | kernel (s) |"
                                                            if cpu else ""),
                "|---|---:|---:|---:|" + ("---:|---:|" if cpu else "")]
        out += [f"| {r.stage} | {r.wall_s:.1f} | {r.peak_rss_mb:.0f} | {r.exit_code} |"
                + (f" {r.user_s:.1f} | {r.system_s:.1f} |" if cpu else "")
                for r in d.itertuples()]
        out.append("")
    if len(exp):
        out += ["## Scaling exponents (1 = linear in person-months; time not judged under 2 s)",
                "", "'user CPU': the exponent of the CPU seconds in user mode, the stage's own "
                "work without the kernel's (first touches of memory, whose cost varies with "
                "the machine's hour).", "",
                "| stage | from | to | time | memory | user CPU |",
                "|---|---:|---:|---:|---:|---:|"]
        out += [f"| {r.stage} | {r['from']:g} | {r.to:g} | {r.time_exponent:.2f} | "
                f"{r.memory_exponent:.2f} | {r.get('user_exponent', math.nan):.2f} |"
                for _, r in exp.iterrows()]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[0.0625, 0.25, 1.0])
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    ap.add_argument("--work", type=Path, default=ROOT / ".bench")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="extra params, e.g. estimate.n_boot=99 (YAML values)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch copies")
    ap.add_argument("--repro-sizes", type=float, nargs="*", default=None,
                    help="sizes at which the whole pipeline is also run end to end by "
                         "`impact repro --jobs 2 --force` (default: the largest size; "
                         "none: --repro-sizes with no size)")
    ap.add_argument("--headline", nargs="*", default=list(headline.METHODS),
                    choices=headline.METHODS, metavar="METHOD",
                    help="the headline regression by these methods on each size's panel "
                         "(benchmarks/headline.py); none: --headline with no method")
    ap.add_argument("--headline-timeout", type=float, default=1800,
                    help="seconds before a method of the headline comparison is given up")
    args = ap.parse_args()
    extra = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    args.out.mkdir(parents=True, exist_ok=True)
    rows, head_md, head_rows, probes = [], [], [], []
    for scale in sorted(args.sizes):
        work = make_work(args.work / f"scale_{scale:g}", scale, extra)
        failed = False
        with open(args.out / f"scale_{scale:g}.log", "w") as log:
            probes.append({"scale": scale, "before": "stages", **_probe(scale)})
            for name, cmd in stage_commands(work):
                run = run_stage(cmd, work, log)
                print(f"[bench] scale {scale:g} {name}: {run.wall_s:.1f} s, "
                      f"{run.peak_rss_mb:.0f} MB, exit {run.exit_code}", file=sys.stderr,
                      flush=True)
                rows.append({"scale": scale, "stage": name, **run.row()})
                if run.exit_code:
                    failed = True
                    break
            repro_sizes = [max(args.sizes)] if args.repro_sizes is None else args.repro_sizes
            if not failed and scale in repro_sizes:
                probes.append({"scale": scale, "before": "end-to-end run", **_probe(scale)})
                rows.append({"scale": scale, **end_to_end(work, rows, scale, log, args.out)})
        summary = work / "data" / "panel" / "summary.json"
        pm = json.loads(summary.read_text())["person_months"] if summary.exists() else float("nan")
        for r in rows:
            if r["scale"] == scale:
                r["person_months"] = pm
        if args.headline and summary.exists():
            res = headline.compare(work / "data" / "panel", args.headline, args.headline_timeout)
            head_rows += [{"scale": scale, "person_months": pm, **r} for r in res]
            head_md.append(headline.table(res, f"scale {scale:g} ({pm:,} person-months)"))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        if failed:
            print(f"[bench] scale {scale:g} failed; larger sizes skipped", file=sys.stderr)
            break
    df = pd.DataFrame(rows)
    df.to_csv(args.out / "scale.csv", index=False)   # before anything that could fail
    pd.DataFrame(probes).to_csv(args.out / "touch_probe.csv", index=False)
    exp = exponents(df)
    exp.to_csv(args.out / "scale_exponents.csv", index=False)
    md = markdown(df, exp, probes)
    if head_rows:
        pd.DataFrame(head_rows).to_csv(args.out / "headline.csv", index=False)
        md += ("\n## The headline regression against pyfixest and linearmodels\n\n"
               "Each method in its own process on the same panel (benchmarks/headline.py). "
               "impact reads the Parquet file in batches: its seconds and memory include "
               "reading it and building the design. The libraries' seconds are of the "
               "estimation call only, on the panel already read and the regressors built; "
               "their peak RSS includes the panel, 'above load' does not.\n\n"
               + "\n".join(head_md))
    (args.out / "scale.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
