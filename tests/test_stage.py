"""`impact.stage.run_stage`: how a stage script reports warnings and errors."""

import subprocess
import sys
import textwrap

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
        fork = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(1, mp_context=fork) as pool:  # a stage's worker
            print("worker", pool.submit(huge_pages_before).result())

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


def test_a_stage_and_its_workers_use_small_pages(tmp_path):
    # NumPy asks for huge pages on Linux by default; the stage turns that off, in its
    # forked workers too
    assert _pages(tmp_path) == ["before", "True", "stage", "False", "worker", "False"]


def test_the_environment_decides_numpys_pages(tmp_path):
    got = _pages(tmp_path, NUMPY_MADVISE_HUGEPAGE="1")
    assert got == ["before", "True", "stage", "True", "worker", "True"]
    got = _pages(tmp_path, NUMPY_MADVISE_HUGEPAGE="0")
    assert got == ["before", "False", "stage", "False", "worker", "False"]
