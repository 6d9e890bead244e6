"""benchmarks/scale.py: a stage's peak memory counts every process of its tree (the
heterogeneity stage's second process, the report's waterfall workers), not only the
largest one."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import scale  # noqa: E402

# two worker processes, each holding 200 MB for two seconds
TWO = (f"{sys.executable} -c \"import numpy as np, multiprocessing as mp, time\n"
       "def f(_):\n a = np.ones(25_000_000); time.sleep(2); return 0\n"
       "if __name__ == '__main__':\n with mp.Pool(2) as p: p.map(f, [0, 1])\"")
ONE = (f"{sys.executable} -c \"import numpy as np, time\n"
       "a = np.ones(25_000_000); time.sleep(2)\"")


def test_peak_memory_is_the_tree_sum(tmp_path):
    with open(tmp_path / "log", "w") as log:
        wall, one, code = scale.run_stage(ONE, tmp_path, log)
        assert code == 0 and wall >= 2
        _, two, code = scale.run_stage(TWO, tmp_path, log)
    assert code == 0
    assert 200 < one < 350          # one array of 200 MB and an interpreter
    assert two > one + 150          # both workers' arrays at once


def test_a_large_parent_is_not_charged_to_the_stage(tmp_path):
    """A child spawned from a process holding 1 GB is charged that gigabyte in its
    ru_maxrss; the launcher keeps it out (as under pytest, whose workers are large)."""
    import numpy as np

    big = np.ones(130_000_000)  # 1 GB resident here
    with open(tmp_path / "log", "w") as log:
        _, one, code = scale.run_stage(ONE, tmp_path, log)
    assert code == 0 and big[-1] == 1.0
    assert 200 < one < 350


def test_exit_codes_and_signals_pass_through(tmp_path):
    with open(tmp_path / "log", "w") as log:
        assert scale.run_stage("exit 3", tmp_path, log)[2] == 3
        assert scale.run_stage("kill -9 $$", tmp_path, log)[2] == -9
