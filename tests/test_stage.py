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
