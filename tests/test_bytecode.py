"""``impact.bytecode``: the bytecode of what a stage imports is written once, even where
``PYTHONDONTWRITEBYTECODE`` is set, and read by later interpreters with it set."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from impact.bytecode import import_all


def test_import_all_walks_the_package_and_skips_main(tmp_path, monkeypatch):
    pkg = tmp_path / "pkgx"
    (pkg / "sub").mkdir(parents=True)
    for rel in ("__init__.py", "a.py", "sub/__init__.py", "sub/b.py"):
        (pkg / rel).write_text("X = 1\n")
    (pkg / "__main__.py").write_text("raise SystemExit('ran as a program')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert sorted(import_all("pkgx")) == ["pkgx", "pkgx.a", "pkgx.sub", "pkgx.sub.b"]


def _cached(prefix: Path, root: Path) -> set[str]:
    """Module files under ``root`` whose bytecode lies in the cache prefix ``prefix``."""
    mirror = prefix / root.resolve().relative_to("/")
    return {str(p.relative_to(mirror).parent / p.name.split(".")[0])
            for p in mirror.rglob("*.pyc")} if mirror.exists() else set()


@pytest.mark.slow
def test_bytecode_is_written_with_the_variable_set_and_then_read(tmp_path):
    import dvc
    import impact

    prefix = tmp_path / "pycache"  # a cache of its own: what the run wrote, nothing else
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(prefix)}
    run = subprocess.run([sys.executable, "-m", "impact.bytecode"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "skipped" not in run.stderr
    ours = _cached(prefix, Path(impact.__file__).parent)
    assert {"__init__", "io", "estimate/quality_sums", "repro", "dvclane"} <= ours
    theirs = _cached(prefix, Path(dvc.__file__).parent)
    # what `dvc repro` needs: the command, the stage's run, the lock file's dump
    assert {"cli/__init__", "commands/repro", "repo/reproduce", "stage/run",
            "dvcfile"} <= theirs
    # a later interpreter with the variable set compiles none of them again
    probe = ("import sys, impact.sweep, dvc.repo.reproduce\n"
             "print(sum(1 for m in list(sys.modules.values())\n"
             "          if (getattr(m, '__spec__', None) and m.__spec__.cached\n"
             "              and ('impact' in m.__name__ or m.__name__.startswith('dvc.'))\n"
             "              and not __import__('os').path.exists(m.__spec__.cached))))")
    missing = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                             text=True, timeout=120)
    assert missing.returncode == 0, missing.stderr
    assert missing.stdout.strip() == "0"
