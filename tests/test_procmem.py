"""The process-tree readings ``impact repro`` records per stage (``impact.procmem``)."""

import subprocess
import sys
import time

import pytest

from impact.procmem import tree_rss_kb, tree_usage

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# burns CPU for SECONDS of its own CPU time (whatever the machine's load)
BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}:\n    pass\n"


def test_tree_usage_counts_a_child_that_ended_and_one_still_running(tmp_path):
    """CPU of the whole tree: a grandchild that ended (waited for: its time moved to its
    parent's), the child's own; memory is that of the processes alive."""
    done = tmp_path / "done"
    script = (
        "import subprocess, sys, time\n"
        f"subprocess.run([sys.executable, '-c', {BURN.format(s=0.6)!r}], check=True)\n"
        + BURN.format(s=0.4)
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
        assert kb == tree_rss_kb(proc.pid) or abs(kb - tree_rss_kb(proc.pid)) < 50_000
        assert kb > 1000
    finally:
        proc.kill()
        proc.wait()


def test_tree_usage_of_no_process_is_zero():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert tree_usage(gone.pid) == (0, 0.0)


def test_allocator_env_sets_the_tunables_unless_the_user_did():
    from impact.procmem import ALLOCATOR_TUNABLES, allocator_env

    base = {"PATH": "/bin"}
    got = allocator_env(base)
    assert got["GLIBC_TUNABLES"] == ALLOCATOR_TUNABLES and base == {"PATH": "/bin"}
    own = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}
    assert allocator_env(own) == own


def test_with_the_tunables_a_freed_large_array_is_reused_not_faulted_in_again():
    """The point of the settings: a loop that allocates and frees a 64 MB array (a
    batch's matrix) faults in new memory every time by default (glibc maps and unmaps
    it), once with them. Counted as the process's minor page faults during the loop."""
    import os

    from impact.procmem import allocator_env

    code = ("import resource, numpy as np\n"
            "a = np.ones(8_000_000); del a\n"          # the first time faults either way
            "f = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
            "for _ in range(20):\n    a = np.ones(8_000_000); del a\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f)\n")
    plain = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}

    def faults(env):
        return int(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                  text=True, check=True).stdout)

    default, tuned = faults(plain), faults(allocator_env(plain))
    assert default >= 20 and tuned * 10 <= default, (default, tuned)
