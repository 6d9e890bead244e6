"""Run the project's stage scripts or `dvc` in a temporary copy of the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COPY = ["pipeline", "src", "dvc.yaml", "params.yaml", "pyproject.toml", "data/reference",
        ".dvc/config", ".dvc/.gitignore", ".dvcignore"]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    e.update(DVC_NO_ANALYTICS="1", DVC_NO_UPDATE_CHECK="1", MPLBACKEND="Agg",
             GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org",
             GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org")
    return e


def toy_repo(path: Path) -> Path:
    """An empty git + DVC repository in ``path`` (for a toy ``dvc.yaml`` of a test)."""
    sh: dict[str, Any] = {"cwd": path, "env": env(), "check": True, "capture_output": True}
    subprocess.run(["git", "init", "-q", "-b", "main"], **sh)
    subprocess.run(["dvc", "init", "-q"], **sh)
    return path


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\nSTDOUT:\n{proc.stdout[-4000:]}\n"
            f"STDERR:\n{proc.stderr[-6000:]}"
        )
    return proc


def set_params(repo: Path, updates: dict[str, Any]) -> None:
    """Set dotted keys in repo/params.yaml (comments are not kept; fine for tests)."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text()) or {}
    for dotted, value in updates.items():
        node = params
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {}) or {}
        node[leaf] = value
        # re-attach in case a section was None
        cur = params
        for key in parents[:-1]:
            cur = cur[key]
        if parents:
            cur[parents[-1]] = node
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def make_repo(tmp: Path, updates: dict[str, Any] | None = None, git: bool = True) -> Path:
    """A fresh copy of the project (code, dvc.yaml, params, reference data) in ``tmp``."""
    repo = tmp / "repo"
    repo.mkdir()
    for item in COPY:
        src = ROOT / item
        dst = repo / item
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    if updates:
        set_params(repo, updates)
    if git:
        run(["git", "init", "-q", "-b", "main"], repo)
        run(["git", "add", "-A"], repo)
        run(["git", "commit", "-q", "-m", "init"], repo)
    return repo


def build_once(tmp_path_factory, name: str, build: Callable[[Path], Any]) -> Path:
    """A folder built once per test run, shared by every xdist worker.

    A session fixture is per process: with ``-n 2`` each worker that runs one of its
    tests builds it again (the built-in pipeline run twice, 5 minutes each). The first
    worker to take the lock calls ``build(folder)``; the others wait for it and reuse the
    folder (read it, never write into it). A build that raised is redone by the next.
    (pytest-xdist's ``--dist loadgroup`` would keep a module on one worker, but with
    pytest 9 it no longer groups: xdist renames ``item._nodeid``, pytest 9 reads
    ``item._id``. ``make test`` uses ``--dist worksteal``: an idle worker takes queued
    tests from the busy one, which suits a suite of a few long pipeline tests.)
    """
    import fcntl

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above every worker's own
    folder = root / f"shared-{name}"
    with open(root / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".built").exists():
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


#: Parameters of a fast run on the `small` preset.
#: the small preset; one brief language and one municipal brief keep the many reruns of
#: the DVC tests short (both languages and the default list are checked on the built-in data)
SMALL = {"simulate.preset": "small", "panel.start": "2018-01", "panel.end": "2021-12",
         "briefs.languages": ["en"], "briefs.auto_count": 1,
         # the for-whom stage on two dimensions and exit to work, without the data-driven
         # check (all of it: tests/heterogeneity and the built-in run)
         "heterogeneity.draws": 199, "heterogeneity.cddf_splits": 0,
         "heterogeneity.outcomes": ["work"],
         "heterogeneity.groups": {
             "ladder_step": {"column": "ladder_step",
                             "levels": {"1-2": [1, 2], "3-4": [3, 4], "5-6": [5, 6]}},
             "education": {"column": "education_level",
                           "levels": {"low": ["low"], "medium or high": ["medium", "high"]}}}}

#: SMALL with a one-cell specification grid and fewer bootstrap draws, for tests of DVC's
#: own mechanics (experiments, queues), where the grid's 24 stages only add time; the
#: grid itself is tested in test_dvc_pipeline.py and tests/sweep
SMALL_ONE_CELL = {**SMALL, "grid.estimator": ["imputation"], "grid.outcome": ["month"],
                  "grid.fixed_effects": ["month"], "grid.sample": ["all"],
                  "decompose.n_boot": 99,
                  "heterogeneity.groups": {"ladder_step": {
                      "column": "ladder_step", "levels": {"1-2": [1, 2], "3-6": [3, 4, 5, 6]}}},
                  "heterogeneity.cddf_splits": 0}


def burn_cpu(seconds: float) -> str:
    """Python source that burns ``seconds`` of its own CPU time, whatever the machine's
    load (for tests of CPU accounting)."""
    return ("import time\nt = time.process_time()\n"
            f"while time.process_time() - t < {seconds}:\n    pass\n")


class TimedStages:
    """A toy DVC pipeline in ``root`` whose stages sleep and record when they ran, for
    tests of ``impact repro``'s order: ``stage.py NAME SECONDS [OTHER]`` marks its start,
    waits for OTHER's start (if given, at most 60 s: a test that needs two stages to
    overlap does not depend on the machine's speed), sleeps, and writes its start and end
    times to ``NAME.txt``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "stage.py").write_text(
            "import os, sys, time\ns = time.time()\nopen(sys.argv[1] + '.started', 'w')\n"
            "while len(sys.argv) > 3 and not os.path.exists(sys.argv[3] + '.started') "
            "and time.time() < s + 60:\n    time.sleep(0.05)\ntime.sleep(float(sys.argv[2]))\n"
            "open(sys.argv[1] + '.txt', 'w').write(f'{s} {time.time()}')\n")

    def pipeline(self, *stages: tuple[str, str], meta: dict[str, str] | None = None) -> None:
        """dvc.yaml of the stages ``(name, arguments)``; ``meta``: a stage's meta line."""
        for f in self.root.glob("*.started"):
            f.unlink()
        meta = meta or {}
        (self.root / "dvc.yaml").write_text("stages:\n" + "".join(
            f"  {n}:\n" + (f"    meta: {meta[n]}\n" if n in meta else "")
            + f"    cmd: python stage.py {n} {args}\n    outs: [{n}.txt]\n"
            for n, args in stages))

    def spans(self, *names: str) -> dict[str, list[float]]:
        """(start, end) of each stage's last run."""
        return {n: [float(v) for v in (self.root / f"{n}.txt").read_text().split()]
                for n in names}

    def held_run(self, peaks: dict[str, float] | None = None) -> str:
        """``impact repro`` of big (1 s, beside small), other (1 s) and small (0.2 s),
        times of an earlier run written first (and ``peaks``), with a 1,000 MB budget that
        big and other do not fit in together: other waits for big's end and small goes
        beside big (backfill). Returns the run's output."""
        import io
        import json

        from impact.repro import PEAKS, TIMES, run

        (self.root / ".dvc/tmp").mkdir(parents=True, exist_ok=True)
        (self.root / TIMES).write_text(json.dumps({"big": 9.0, "other": 8.0, "small": 1.0}))
        if peaks is not None:
            (self.root / PEAKS).write_text(json.dumps(peaks))
        out = io.StringIO()
        assert run(self.root, jobs=2, force=True, out=out, memory_mb=1000.0) == 0, \
            out.getvalue()
        span = self.spans("big", "other", "small")
        assert span["other"][0] >= span["big"][1]  # no overlap: other waited for big
        assert span["big"][1] < span["big"][0] + 60  # small went beside big (backfill)
        return out.getvalue()
