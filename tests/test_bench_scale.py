"""benchmarks/scale.py: a stage's peak memory and CPU count every process of its tree
(the heterogeneity stage's second process, the report's waterfall workers), not only the
largest one; the probe of new memory; the scaling exponents."""

import sys
from pathlib import Path

import numpy as np

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
        wall, one, code, *_ = scale.run_stage(ONE, tmp_path, log)
        assert code == 0 and wall >= 2
        _, two, code, *_ = scale.run_stage(TWO, tmp_path, log)
    assert code == 0
    assert 200 < one < 350          # one array of 200 MB and an interpreter
    assert two > one + 150          # both workers' arrays at once


def test_a_large_parent_is_not_charged_to_the_stage(tmp_path):
    """A child spawned from a process holding 1 GB is charged that gigabyte in its
    ru_maxrss; the launcher keeps it out (as under pytest, whose workers are large)."""
    import numpy as np

    big = np.ones(130_000_000)  # 1 GB resident here
    with open(tmp_path / "log", "w") as log:
        _, one, code, *_ = scale.run_stage(ONE, tmp_path, log)
    assert code == 0 and big[-1] == 1.0
    assert 200 < one < 350


def test_exit_codes_and_signals_pass_through(tmp_path):
    with open(tmp_path / "log", "w") as log:
        assert scale.run_stage("exit 3", tmp_path, log)[2] == 3
        assert scale.run_stage("kill -9 $$", tmp_path, log)[2] == -9


# a grandchild of the shell (a worker process) busy until it has used 1.5 CPU seconds
# (its CPU clock read every 100,000 steps: few system calls)
BUSY = (f"{sys.executable} -c \"import multiprocessing as mp, time\n"
        "def f(_):\n while time.process_time() < 1.5:\n  for _ in range(100_000): pass\n"
        "if __name__ == '__main__':\n with mp.Pool(1) as p: p.map(f, [0])\"")


def test_cpu_seconds_count_every_process_of_the_tree(tmp_path):
    """The stage's user-mode CPU includes its workers' (reaped) CPU, not only the
    launcher's and the shell's; kernel time is reported beside it."""
    with open(tmp_path / "log", "w") as log:
        run = scale.run_stage(BUSY, tmp_path, log)
    assert run.exit_code == 0, (tmp_path / "log").read_text()
    assert 1.5 <= run.user_s + run.system_s < run.wall_s + 1.0
    assert run.user_s >= 1.0 and run.system_s >= 0.0


def test_touch_probe_and_its_lines_in_the_markdown():
    import pandas as pd

    probe = scale.touch_probe(0.05)
    assert probe["gb"] == 0.05 and probe["wall_s"] > 0 and probe["system_s"] >= 0
    failed = scale.touch_probe(-1.0)    # numpy cannot make a negative array: NaN, no raise
    assert np.isnan(failed["wall_s"]) and np.isnan(failed["system_s"])
    rows = pd.DataFrame([{"scale": 0.5, "stage": "a", "wall_s": 3.0, "peak_rss_mb": 70.0,
                          "exit_code": 0, "user_s": 2.5, "system_s": 0.4,
                          "person_months": 10}])
    md = scale.markdown(rows, pd.DataFrame(),
                        [{"scale": 0.5, "before": "stages", "gb": 1.0, "wall_s": 4.18,
                          "system_s": 3.88}])
    assert ("A fresh process touched 1 GB of new memory in 4.18 s (3.88 s in the kernel) "
            "before the stages.") in md
    md = scale.markdown(rows, pd.DataFrame(), [{"scale": 0.5, "before": "stages", **failed}])
    assert "The probe of new memory failed before the stages." in md
    assert "| a | 3.0 | 70 | 0 | 2.5 | 0.4 |" in md
    # rows of an older scale.csv, without the CPU columns: the table without them
    md = scale.markdown(rows.drop(columns=["user_s", "system_s"]), pd.DataFrame())
    assert "| a | 3.0 | 70 | 0 |\n" in md and "kernel" not in md


def test_end_to_end_runs_impact_repro_planned_from_the_stage_run(tmp_path):
    """The bench's end-to-end row: `impact repro --jobs 2 --force` in the scratch copy,
    its times and peaks files written from the stage-by-stage rows first."""
    import json

    from impact.repro import PEAKS, TIMES
    from pipeline_utils import toy_repo

    toy_repo(tmp_path)
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n"
        "  b:\n    cmd: cat a.txt > b.txt\n    deps: [a.txt]\n    outs: [b.txt]\n")
    rows = [{"scale": 0.5, "stage": "a", "wall_s": 3.0, "peak_rss_mb": 70.0},
            {"scale": 0.5, "stage": "b", "wall_s": 4.0, "peak_rss_mb": 80.0},
            {"scale": 1.0, "stage": "a", "wall_s": 9.0, "peak_rss_mb": 90.0}]
    (tmp_path / "out").mkdir()
    with open(tmp_path / "log", "w") as log:
        row = scale.end_to_end(tmp_path, rows, 0.5, log, tmp_path / "out")
    assert row["stage"] == scale.REPRO and row["exit_code"] == 0, (tmp_path / "log").read_text()
    assert row["wall_s"] > 0 and row["peak_rss_mb"] > 10
    assert row["user_s"] > 0.5   # impact repro and DVC's own start, at least
    assert (tmp_path / "b.txt").read_text() == "a\n"
    # its timeline: b after a, and the figure of it
    line = json.loads((tmp_path / "out" / "repro_timeline_0.5.json").read_text())
    span = {s["stage"]: (s["start"], s["end"]) for s in line["stages"]}
    assert set(span) == {"a", "b"} and span["a"][1] <= span["b"][0]
    assert (tmp_path / "out" / "repro_timeline_0.5.png").stat().st_size > 10_000
    # the run kept its own times and peaks over the ones written from the rows of size 0.5
    times = json.loads((tmp_path / TIMES).read_text())
    assert set(times) == {"a", "b"} and times["a"] != 3.0
    assert set(json.loads((tmp_path / PEAKS).read_text())) == {"a", "b"}
    import pandas as pd

    md = scale.markdown(pd.DataFrame([{**r, "exit_code": 0, "person_months": 10}
                                      for r in rows[:2]] + [{**row, "scale": 0.5,
                                                            "person_months": 10}]),
                        pd.DataFrame())
    assert "End to end (`impact repro --jobs 2`, as `make repro`)" in md
    assert f"| {scale.REPRO} |" not in md  # not a stage row, and not in the sums


def test_timeline_memory_is_the_sum_of_the_running_stages_peaks():
    import timeline

    stages = [{"stage": "a", "lane": 0, "start": 0.0, "end": 60.0, "peak_mb": 1024.0},
              {"stage": "b", "lane": 1, "start": 30.0, "end": 120.0, "peak_mb": 2048.0},
              {"stage": "c", "lane": 0, "start": 60.0, "end": 90.0, "peak_mb": 512.0}]
    t, gb = timeline.held_memory(stages)
    at = lambda minute: gb[np.searchsorted(t, minute, side="right") - 1]  # noqa: E731
    assert at(0.25) == 1.0 and at(0.75) == 3.0 and at(1.25) == 2.5 and at(1.75) == 2.0
    assert at(2.5) == 0.0  # a ends exactly when c starts: never counted together
    assert np.isclose(gb.max(), 3.0)


def test_exponents_of_time_memory_and_user_cpu():
    """log(b/a) / log(n_b/n_a) per stage between consecutive sizes; the user-mode CPU's
    too, and time (and user CPU) not judged for a stage under 2 s."""
    import pandas as pd

    rows = pd.DataFrame([
        {"scale": 0.25, "stage": "a", "wall_s": 4.0, "peak_rss_mb": 100.0, "user_s": 2.0,
         "exit_code": 0, "person_months": 10},
        {"scale": 0.25, "stage": "b", "wall_s": 1.0, "peak_rss_mb": 100.0, "user_s": 0.9,
         "exit_code": 0, "person_months": 10},
        {"scale": 1.0, "stage": "a", "wall_s": 16.0, "peak_rss_mb": 200.0, "user_s": 16.0,
         "exit_code": 0, "person_months": 40},
        {"scale": 1.0, "stage": "b", "wall_s": 9.0, "peak_rss_mb": 100.0, "user_s": 8.0,
         "exit_code": 0, "person_months": 40},
        # no user CPU recorded at the larger size: no exponent, and no error
        {"scale": 0.25, "stage": "c", "wall_s": 5.0, "peak_rss_mb": 100.0, "user_s": 3.0,
         "exit_code": 0, "person_months": 10},
        {"scale": 1.0, "stage": "c", "wall_s": 20.0, "peak_rss_mb": 100.0, "user_s": 0.0,
         "exit_code": 0, "person_months": 40}])
    exp = scale.exponents(rows).set_index("stage")
    assert np.isclose(exp.at["a", "time_exponent"], 1.0)
    assert np.isclose(exp.at["a", "memory_exponent"], 0.5)
    assert np.isclose(exp.at["a", "user_exponent"], 1.5)
    assert np.isnan(exp.at["b", "time_exponent"]) and np.isnan(exp.at["b", "user_exponent"])
    assert np.isclose(exp.at["c", "time_exponent"], 1.0) and np.isnan(exp.at["c", "user_exponent"])
    assert "| a | 0.25 | 1 | 1.00 | 0.50 | 1.50 |" in scale.markdown(rows, exp.reset_index())
    # an older scale.csv without the CPU columns
    old = scale.exponents(rows.drop(columns=["user_s"])).set_index("stage")
    assert np.isclose(old.at["a", "time_exponent"], 1.0) and np.isnan(old.at["a", "user_exponent"])
