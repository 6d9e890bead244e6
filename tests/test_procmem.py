"""The process-tree readings ``impact repro`` records per stage (``impact.procmem``)."""

import subprocess
import sys
import time

import pytest

from impact.procmem import tree_rss_kb, tree_usage
from pipeline_utils import burn_cpu

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_tree_usage_counts_a_child_that_ended_and_one_still_running(tmp_path):
    """CPU of the whole tree: a grandchild that ended (waited for: its time moved to its
    parent's), the child's own; memory is that of the processes alive."""
    done = tmp_path / "done"
    script = (
        "import subprocess, sys, time\n"
        f"subprocess.run([sys.executable, '-c', {burn_cpu(0.6)!r}], check=True)\n"
        + burn_cpu(0.4)
        + f"open({str(done)!r}, 'w').close()\ntime.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 60
        while not done.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert done.exists()
        kb, cpu = tree_usage(proc.pid)
        # 1.0 s burnt in the two processes, plus their start-up; far below the wall time
        assert 1.0 <= cpu < 1.0 + 5.0
        assert abs(kb - tree_rss_kb(proc.pid)) < 50_000   # the same reading, moments apart
        assert kb > 1000
    finally:
        proc.kill()
        proc.wait()


def test_tree_usage_of_no_process_is_zero():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert tree_usage(gone.pid) == (0, 0.0)
