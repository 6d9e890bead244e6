"""`impact repro`: `dvc repro` with independent stages run side by side.

`dvc repro` runs one stage at a time, and most stages here use one core (their BLAS is
single-threaded on purpose, see ``pipeline/estimate.py``), so on a two-core machine half
of it idles. DVC documents the remedy ("launch dvc repro multiple times manually",
https://dvc.org/doc/command-reference/repro#parallel-stage-execution): it releases its
repository lock while a stage's command runs, and ``--wait-for-lock`` makes a second
process wait for the lock instead of failing. This module is that, automated:

1. read the stage graph and ``dvc status`` through DVC's own API;
2. the stages to run are the changed ones and everything downstream of them (``force``:
   all);
3. run each as ``dvc --wait-for-lock repro --single-item <stage>`` (through
   ``impact.dvclane``: DVC itself, reading ``dvc.lock`` with the C parser) as soon as every
   stage it depends on has finished, at most ``jobs`` at a time (the ready members of a
   ``foreach``/``matrix`` family go in batches, one ``dvc`` process for several, since
   each costs about 2 s before its stage starts); when a stage can wait, the one with the
   longest chain of work behind it goes first (stage times of the last run, kept in
   ``.dvc/tmp/impact-repro-times.json``; before any, ``meta: {expected_seconds: ...}``);
4. confirm with ``dvc status`` that the pipeline is up to date, and hand anything left
   to a plain ``dvc repro`` (so the result is by construction what ``dvc repro`` makes).

Each stage writes its own entry of ``dvc.lock`` under DVC's lock, so ``dvc status``,
``dvc exp`` and a later ``dvc repro`` see the same state as after a serial run. Every
stage is deterministic, so outputs are byte-identical to a serial run (tested).

Memory: stages side by side need the sum of their peaks. Each lane's process tree is
sampled every second (``procmem.tree_usage``) and a stage's peak is kept beside its time
(``.dvc/tmp/impact-repro-peaks.json``; each stage's lane, start, end, peak and CPU
seconds of the last run in ``impact-repro-timeline.json``: CPU beside wall time says which
stages use both cores and where one idles). With a memory budget (``memory_mb``; the CLI's
default is half the machine's memory) a stage starts beside running ones only when its
last peak plus theirs (the larger of their last peak and their memory now) fits; a stage
that does not fit waits, and a later one that fits may go first. A stage alone always
runs. Peaks are kept with the panel's rows at their run (``ROWS``): a stage never run, or
last run on a smaller panel, is expected to need its ``meta: {expected_mb_per_million_rows:
...}`` (dvc.yaml, measured nationally) times the rows (``schedule.expected_peaks``), so a
first national run is planned too (``make bench`` writes its stage-by-stage run's peaks).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from impact.schedule import choose, expected_peaks, priority

__all__ = ["Plan", "panel_rows", "plan", "prune_lock", "run"]

TIMES = Path(".dvc/tmp/impact-repro-times.json")
PEAKS = Path(".dvc/tmp/impact-repro-peaks.json")  # MB per stage, of its last run
#: the last run's stages: lane, start and end (seconds from its start), peak MB
TIMELINE = Path(".dvc/tmp/impact-repro-timeline.json")
ROWS = Path(".dvc/tmp/impact-repro-rows.json")  # the panel's rows at each stage's last run
#: the file whose rows give the data's size (its Parquet footer only is read)
ROWS_OF = Path("data/panel/person_months.parquet")


@dataclass
class Plan:
    """Stages to run (upstream first, else in dvc.yaml order), and for each the planned
    stages it waits for."""

    stages: list[str]
    upstream: dict[str, set[str]] = field(default_factory=dict)
    #: a stage's ``meta: {expected_seconds: ...}`` in dvc.yaml, to order a first run
    expected: dict[str, float] = field(default_factory=dict)
    #: ``meta: {expected_mb_per_million_rows: ...}``: MB per million panel rows
    rates: dict[str, float] = field(default_factory=dict)


def plan(root: Path, force: bool = False) -> Plan:
    """The stages ``dvc repro`` (``-f``) would run in ``root``, with their dependencies."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        import networkx as nx  # a DVC dependency

        graph = repo.index.graph  # an edge runs from a stage to a stage it depends on
        pos = {s: i for i, s in enumerate(repo.index.stages)}
        # upstream before downstream, ties in dvc.yaml order (which need not be topological)
        order = list(nx.lexicographical_topological_sort(graph.reverse(copy=False),
                                                         key=pos.__getitem__))
        name = {s: s.addressing for s in order}
        if force:
            todo = set(order)
        else:
            changed = set(repo.status())  # addressing of every changed stage
            todo = {s for s in order if name[s] in changed}
            stack = list(todo)
            while stack:  # everything downstream of a changed stage may change too
                for down in graph.predecessors(stack.pop()):
                    if down not in todo:
                        todo.add(down)
                        stack.append(down)

        def upstream(s) -> set[str]:
            seen, stack, out = set(), list(graph.successors(s)), set()
            while stack:  # nearest planned ancestors, through unplanned ones
                u = stack.pop()
                if u in seen:
                    continue
                seen.add(u)
                if u in todo:
                    out.add(name[u])
                else:
                    stack.extend(graph.successors(u))
            return out

        stages = [name[s] for s in order if s in todo]
        expected = {name[s]: float((s.meta or {}).get("expected_seconds", 1.0))
                    for s in order if s in todo}
        rates = {name[s]: float(s.meta["expected_mb_per_million_rows"])
                 for s in order if s in todo and "expected_mb_per_million_rows" in (s.meta or {})}
        return Plan(stages, {name[s]: upstream(s) for s in order if s in todo}, expected,
                    rates)


def prune_lock(root: Path) -> list[str]:
    """Drop the ``dvc.lock`` entries of stages ``dvc.yaml`` no longer defines (returned).

    DVC keeps them (a value removed from a ``foreach``/``matrix``, a renamed stage) and
    never reads them again, but it parses and rewrites the whole file after every stage
    it runs: this project's ``dvc.lock`` had 25 such entries, 40% of its YAML nodes, about
    0.8 s on each of 45 stages. A stage added back later is restored from DVC's run
    cache as before. Done under DVC's repository lock with DVC's own YAML round trip.
    """
    from dvc.repo import Repo
    from dvc.utils.serialize import modify_yaml, parse_yaml

    lock_path = Path(root) / "dvc.lock"
    if not lock_path.exists():
        return []
    with Repo(str(root)) as repo:
        yaml_path = os.path.abspath(Path(root) / "dvc.yaml")
        names = {s.name for s in repo.index.stages
                 if os.path.abspath(s.dvcfile.path) == yaml_path}
        if not names:  # no stage from the root dvc.yaml loaded: leave the file alone
            return []
        with repo.lock:
            entries = (parse_yaml(lock_path.read_text(), str(lock_path)) or {}).get("stages")
            stale = sorted(k for k in (entries or {}) if k not in names)
            if stale:
                with modify_yaml(str(lock_path)) as data:
                    for k in stale:
                        del data["stages"][k]
    return stale


def _load(path: Path) -> dict[str, float]:
    """A ``{stage: number}`` file of an earlier run ({} when missing or unreadable)."""
    try:
        return {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def panel_rows(root: Path, memo: dict | None = None) -> float | None:
    """Rows of ``root / ROWS_OF`` (None without a readable file); with ``memo``, read again
    only when the file changed."""
    memo = {} if memo is None else memo
    try:
        st = (root / ROWS_OF).stat()
        if memo.get("key") != (st.st_mtime_ns, st.st_size):
            import pyarrow.parquet as pq

            rows = pq.ParquetFile(root / ROWS_OF).metadata.num_rows
            memo.update(key=(st.st_mtime_ns, st.st_size), rows=float(rows))
        return memo["rows"]
    except (OSError, ValueError, ImportError):
        return None


def _tagged(line: str, stage: str) -> str:
    """``line`` of ``stage``'s output with the stage's name in front. A stage's own log
    lines already begin with ``[name]`` (``stage.run_stage``, the name without a foreach
    key's ``@...``): that tag is replaced, not doubled."""
    if not line.strip():
        return line
    own = f"[{stage.split('@')[0]}] "
    return f"[{stage}] {line[len(own):] if line.startswith(own) else line}"


class _Lane:
    """One ``dvc repro --single-item`` process running a batch of stages in turn.

    Its output is copied line by line with the running stage's name in front; DVC's
    "Running stage 'x'" (or "Stage 'x' didn't change") lines say which stage that is and
    close the previous one's clock.
    """

    _START = re.compile(r"^(?:Running stage|Stage) '([^']+)'")

    def __init__(self, cmd: list[str], batch: list[str], root: Path, env: dict[str, str],
                 out: TextIO, lock: threading.Lock, slot: int = 0):
        self.batch, self.out, self.lock, self.slot = batch, out, lock, slot
        self.current = batch[0]
        self.started: dict[str, float] = {}
        self.secs: dict[str, float] = {}
        self.peak_mb: dict[str, float] = {}  # sampled peak of the lane's tree per stage
        self.now_mb = 0.0
        # the lane's tree's CPU seconds as last sampled, at each stage's start, and per
        # stage (the sample before its end less that before its start: at most a second of
        # CPU is missed at each end; DVC's own start counts to a batch's first stage)
        self.cpu_now = 0.0
        self.cpu_from: dict[str, float] = {}
        self.cpu_s: dict[str, float] = {}
        self.ran: set[str] = set()  # stages DVC ran (not found unchanged and skipped)
        self.proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _clock(self, stage: str | None) -> None:
        now = time.perf_counter()
        if self.current in self.started and self.current not in self.secs:
            self.secs[self.current] = now - self.started[self.current]
            self.cpu_s[self.current] = self.cpu_now - self.cpu_from[self.current]
        if stage is not None:
            self.current = stage
            self.started.setdefault(stage, now)
            self.cpu_from.setdefault(stage, self.cpu_now)

    def _pump(self) -> None:
        self._clock(self.batch[0])
        for line in self.proc.stdout:  # type: ignore[union-attr]
            m = self._START.match(line)
            if m and m.group(1) in self.batch and m.group(1) != self.current:
                self._clock(m.group(1))
            if m and line.startswith("Running stage"):
                self.ran.add(m.group(1))
            with self.lock:
                self.out.write(_tagged(line, self.current))
                self.out.flush()
        self._clock(None)

    def remaining(self, times: dict[str, float], expected: dict[str, float]) -> float:
        """Seconds the lane's stages still need by the last run's times (0 when over)."""
        left = self.batch[self.batch.index(self.current):]
        total = sum(times.get(s, expected.get(s, 1.0)) for s in left)
        return max(0.0, total - (time.perf_counter() - self.started.get(self.current,
                                                                         time.perf_counter())))

    def sample(self) -> None:
        """The lane's process tree's resident memory now, kept as the running stage's, and
        the CPU time it has used."""
        from impact.procmem import tree_usage

        kb, cpu = tree_usage(self.proc.pid)
        self.now_mb = kb / 1024
        self.cpu_now = max(self.cpu_now, cpu)   # 0 once the process is gone
        self.peak_mb[self.current] = max(self.peak_mb.get(self.current, 0.0), self.now_mb)

    def finished(self) -> tuple[list[str], int] | None:
        """None while running; else (stages finished without error, exit code)."""
        rc = self.proc.poll()
        if rc is None:
            return None
        self.thread.join()
        ok = self.batch if rc == 0 else self.batch[:self.batch.index(self.current)]
        return ok, rc


def _gb(mb: float) -> str:
    return f"{mb / 1024:.1f} GB"


def run(root: Path, jobs: int = 2, force: bool = False, out: TextIO = sys.stdout,
        dvc: list[str] | None = None, memory_mb: float | None = None) -> int:
    """Reproduce the pipeline in ``root`` with up to ``jobs`` stages at once, and, given
    ``memory_mb``, only as many as fit in that many MB by their (expected) peaks (module notes).

    Returns the exit code: 0, or the first failing stage's code (running stages are
    finished, nothing new is started, and the failure is named last).
    """
    root = Path(root)
    if dvc is None:  # this environment's DVC, reading dvc.lock faster (impact.dvclane)
        dvc = [sys.executable, "-m", "impact.dvclane"]
    t_all = time.perf_counter()
    stale = prune_lock(root)
    if stale:
        out.write(f"impact repro: dropped {len(stale)} dvc.lock entr"
                  f"{'y' if len(stale) == 1 else 'ies'} of stages dvc.yaml no longer "
                  f"defines ({', '.join(stale[:3])}{', ...' if len(stale) > 3 else ''})\n")
    p = plan(root, force)
    if not p.stages:
        out.write("Data and pipelines are up to date.\n")
        return 0
    times_path, peaks_path, rows_path = root / TIMES, root / PEAKS, root / ROWS
    times, peaks, rows_at = _load(times_path), _load(peaks_path), _load(rows_path)
    memo: dict = {}
    prio = priority(p, times)
    budget = f", within {_gb(memory_mb)} by their (expected) peaks" if memory_mb else ""
    out.write(f"impact repro: {len(p.stages)} stage(s), up to {jobs} at a time{budget}\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DVC_NO_ANALYTICS": "1",
           "DVC_NO_UPDATE_CHECK": "1"}
    lock = threading.Lock()
    waiting = list(p.stages)
    done: set[str] = set()
    lanes: list[_Lane] = []
    failed: tuple[str, int] | None = None
    held_back: set[str] = set()  # stages said to wait for memory
    timeline: list[dict] = []
    next_sample = 0.0
    while waiting or lanes:
        ready = sorted((s for s in waiting if p.upstream[s] <= done), key=lambda s: -prio[s])
        while failed is None and ready and len(lanes) < max(jobs, 1):
            need = expected_peaks(peaks, rows_at, p.rates, panel_rows(root, memo))
            batch, held = choose(
                ready, prio, jobs, [(lane.batch, lane.now_mb) for lane in lanes], need,
                lambda b: sum(times.get(s, p.expected.get(s, 1.0)) for s in b),
                lambda: max(lane.remaining(times, p.expected) for lane in lanes), memory_mb,
                known=peaks)
            if held is not None and held not in held_back:
                held_back.add(held)
                with lock:
                    how = ("at its last run" if held in peaks and need[held] == peaks[held]
                           else "expected for this panel" if held in need else "not known")
                    out.write(f"impact repro: {held} waits for memory "
                              f"({_gb(need.get(held, 0.0))} {how}, "
                              f"{_gb(memory_mb or 0)} budget)\n")
            if batch is None:
                break
            for s in batch:
                ready.remove(s)
                waiting.remove(s)
            cmd = [*dvc, "--wait-for-lock", "repro", "--single-item",
                   *(["-f"] if force else []), *batch]
            slot = min(set(range(len(lanes) + 1)) - {lane.slot for lane in lanes})
            lanes.append(_Lane(cmd, batch, root, env, out, lock, slot))
        if failed is not None and not lanes:
            break
        time.sleep(0.05)
        if time.perf_counter() >= next_sample:
            next_sample = time.perf_counter() + 1.0
            for lane in lanes:
                lane.sample()
        for lane in list(lanes):
            res = lane.finished()
            if res is None:
                continue
            lanes.remove(lane)
            ok, rc = res
            for s in ok:
                done.add(s)
                secs = round(lane.secs.get(s, 0.0), 1)
                cpu = round(lane.cpu_s.get(s, 0.0), 1)
                peak = lane.peak_mb.get(s)
                if s in lane.ran:  # a skipped stage says nothing of how long it runs
                    times[s] = secs
                    if peak:
                        peaks[s] = round(peak, 1)
                        if s in p.rates:   # (None: not known, not kept)
                            rows_at[s] = panel_rows(root, memo)
                    # start and end each rounded from the clock (the end from a rounded
                    # start plus rounded seconds could pass the next stage's start)
                    start = lane.started.get(s, t_all) - t_all
                    timeline.append({"stage": s, "lane": lane.slot, "start": round(start, 1),
                                     "end": round(start + lane.secs.get(s, 0.0), 1),
                                     "peak_mb": round(peak or 0.0, 1), "cpu_s": cpu})
                with lock:
                    out.write(f"impact repro: {s} done in {secs:.1f} s"
                              f"{f' (CPU {cpu:.0f} s)' if cpu else ''}"
                              f"{f', peak {_gb(peak)}' if peak else ''} "
                              f"[{len(done)}/{len(p.stages)}]\n")
            if rc != 0 and failed is None:
                failed = (lane.current, rc)
            # stages of a failed batch after the failing one were not run
            waiting += [s for s in lane.batch if s not in ok and s != lane.current]
    line = {"jobs": jobs, "budget_mb": memory_mb, "stages": timeline}
    for path, values in ((times_path, dict(sorted(times.items()))),
                         (peaks_path, dict(sorted(peaks.items()))),
                         (rows_path, {k: v for k, v in sorted(rows_at.items()) if v}),
                         (root / TIMELINE, line)):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values, indent=1))
        except OSError:
            pass
    if failed is not None:
        out.write(f"impact repro: stage {failed[0]} failed (exit {failed[1]}); its output "
                  "is above. Stages after it were not run.\n")
        return failed[1]
    # the result must be what `dvc repro` would leave: anything still changed goes to it
    if plan(root).stages:
        out.write("impact repro: some stages are still changed; finishing with dvc repro\n")
        rc = subprocess.call([*dvc, "repro"], cwd=root, env=env)
        if rc != 0:
            return rc
    out.write(f"impact repro: pipeline up to date after {time.perf_counter() - t_all:.0f} s\n")
    return 0
