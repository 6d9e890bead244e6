"""`impact.stage.run_stage`: how a stage script reports warnings and errors."""

import subprocess
import sys
import textwrap

import pytest

from pipeline_utils import env

SCRIPT = textwrap.dedent("""
    import warnings
    from impact.stage import run_stage

    class DataWarning(UserWarning):
        pass

    def main():
        for _ in range(3):  # as impact.estimate does: record, count, re-emit
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", DataWarning)
                warnings.warn("column x is constant; not a control", DataWarning)
            for w in caught:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        warnings.warn("another issue", DataWarning)

    run_stage("toy", main)
""")


def test_a_repeated_warning_is_logged_once(tmp_path):
    script = tmp_path / "toy.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script)], env=env(), capture_output=True,
                          text=True, check=True)
    lines = proc.stderr.splitlines()
    assert lines.count("[toy] DataWarning: column x is constant; not a control") == 1, lines
    assert "[toy] DataWarning: another issue" in lines
    assert len(lines) == 2, lines  # no source lines echoed


PAGES = textwrap.dedent("""
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing

    from numpy._core import multiarray
    from impact.stage import run_stage

    def huge_pages_before():  # NumPy's setting, put back as it was
        was = multiarray._set_madvise_hugepage(True)
        multiarray._set_madvise_hugepage(was)
        return was

    def main():
        print("stage", huge_pages_before())
        for method in ("fork", "spawn"):  # a stage's workers, started either way
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(method)) as pool:
                print(method, pool.submit(huge_pages_before).result())

    if __name__ == "__main__":
        print("before", huge_pages_before())
        run_stage("toy", main)
""")


def _pages(tmp_path, **extra) -> list[str]:
    script = tmp_path / "pages.py"
    script.write_text(PAGES)
    e = env()
    e.pop("NUMPY_MADVISE_HUGEPAGE", None)
    e.update(extra)
    proc = subprocess.run([sys.executable, str(script)], env=e, capture_output=True,
                          text=True, check=True)
    return proc.stdout.split()


linux = pytest.mark.skipif(sys.platform != "linux", reason="NumPy asks for huge pages on Linux")


@linux
def test_a_stage_and_its_workers_use_small_pages(tmp_path):
    # NumPy asks for huge pages on Linux (kernel 4.6 on); the stage turns that off, in
    # its forked and spawned workers too
    assert _pages(tmp_path) == ["before", "True", "stage", "False", "fork", "False",
                                "spawn", "False"]


@linux
def test_the_environment_decides_numpys_pages(tmp_path):
    got = _pages(tmp_path, NUMPY_MADVISE_HUGEPAGE="1")
    assert got == ["before", "True", "stage", "True", "fork", "True", "spawn", "True"]
