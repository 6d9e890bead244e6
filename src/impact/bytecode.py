"""Write, once, the bytecode of what the pipeline's stages import (``make install`` runs it).

Every DVC stage is a fresh interpreter. Where ``PYTHONDONTWRITEBYTECODE`` is set (some
containers and CI images set it for everything), an interpreter that finds no bytecode
compiles each module it imports from source and throws the result away: about 600 of
DVC's modules and the scientific stack's, again for every stage. Measured at national
size: the 37 small stages of a run took 248 CPU s with the variable set and no
bytecode, 162 s with bytecode (docs/performance.md, twenty-fifth round). The variable
stops Python from writing bytecode, not from reading it, so writing it once serves every
later ``dvc repro``, ``dvc exp run`` and ``impact repro`` too. The Makefile unsets the
variable for its own targets; this covers the commands a user runs without it.

What is written: every module of ``impact`` (imported, so the libraries they import at
module level come along), and what DVC imports to reproduce a stage, found by running
one: a throwaway one-stage pipeline in a temporary folder (``impact.dvclane``, the way
``impact repro`` calls DVC). Compiling the whole environment instead (``uv sync
--compile-bytecode``) took 26-32 s for 13,000 files, most never imported.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["import_all", "main"]

_ENV_OFF = "PYTHONDONTWRITEBYTECODE"
_STAGE = """stages:
  touch:
    cmd: python -c "open('out.txt', 'w').write('ok')"
    outs:
      - out.txt
"""


def import_all(package: str) -> list[str]:
    """Import ``package`` and every module under it; the names imported."""
    pkg = importlib.import_module(package)
    names = [package]
    for mod in pkgutil.walk_packages(pkg.__path__, f"{package}."):
        if mod.name.rsplit(".", 1)[-1] == "__main__":  # running, not a library
            continue
        importlib.import_module(mod.name)
        names.append(mod.name)
    return names


def _dvc_once(env: dict[str, str]) -> None:
    """A one-stage ``dvc repro`` in a temporary folder (git if there is one)."""
    with tempfile.TemporaryDirectory(prefix="impact-bytecode-") as tmp:
        run = dict(cwd=tmp, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
        git = shutil.which("git")
        if git:
            subprocess.run([git, "init", "-q"], **run)
        dvc = [sys.executable, "-m", "impact.dvclane"]
        subprocess.run([*dvc, "init", "-q", *([] if git else ["--no-scm"])], **run)
        Path(tmp, "dvc.yaml").write_text(_STAGE)
        subprocess.run([*dvc, "repro", "--single-item", "touch"], **run)


def main() -> int:
    env = {k: v for k, v in os.environ.items() if k != _ENV_OFF}
    env.update(DVC_NO_ANALYTICS="1", DVC_NO_UPDATE_CHECK="1")
    if sys.flags.dont_write_bytecode:  # -B or the variable: write from a child without it
        return subprocess.run([sys.executable, "-m", "impact.bytecode"], env=env).returncode
    names = import_all("impact")
    try:
        _dvc_once(env)
    except subprocess.CalledProcessError as exc:  # only a speed-up: say so, go on
        err = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:]
        print(f"impact.bytecode: DVC's part skipped ({' '.join(err) or exc})", file=sys.stderr)
    print(f"impact.bytecode: bytecode written for {len(names)} modules of impact and "
          "the libraries a stage imports", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
