"""`impact repro`'s ordering of ready stages (the DVC side is tests/test_dvc_pipeline.py)."""

from impact.repro import Plan, _tagged
from impact.schedule import priority as _priority


def _plan():
    # panel -> (a, b, slow) ; a, b -> report ; slow -> report
    return Plan(["panel", "a", "b", "slow", "report"],
                {"panel": set(), "a": {"panel"}, "b": {"panel"}, "slow": {"panel"},
                 "report": {"a", "b", "slow"}},
                {"slow": 50.0})


def test_longest_chain_first_from_dvc_yaml_expectation():
    pr = _priority(_plan(), {})
    # unknown stages count 1 s; `slow` has expected_seconds 50 in dvc.yaml
    assert pr["report"] == 1.0 and pr["a"] == 2.0 and pr["slow"] == 51.0
    assert pr["panel"] == 52.0
    assert sorted(["a", "b", "slow"], key=lambda s: -pr[s])[0] == "slow"


def test_times_of_the_last_run_win():
    pr = _priority(_plan(), {"a": 90.0, "slow": 10.0})
    assert pr["a"] == 91.0 and pr["slow"] == 11.0
    assert sorted(["a", "b", "slow"], key=lambda s: -pr[s]) == ["a", "slow", "b"]


def test_runs_a_toy_pipeline_listed_downstream_first(tmp_path, monkeypatch):
    """A dvc.yaml need not list stages upstream first; `impact repro` runs them in
    dependency order, two independent ones side by side, and leaves `dvc status` clean."""
    import io

    import json

    from impact.repro import TIMES, plan, run
    from pipeline_utils import toy_repo

    monkeypatch.chdir(tmp_path)  # DVC's Repo looks in the working directory too
    toy_repo(tmp_path)
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  c:\n    cmd: cat a.txt b.txt > c.txt\n    deps: [a.txt, b.txt]\n    outs: [c.txt]\n"
        "  b:\n    cmd: echo b > b.txt\n    outs: [b.txt]\n"
        "  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n")
    p = plan(tmp_path, force=True)
    assert p.stages == ["b", "a", "c"] and p.upstream == {"a": set(), "b": set(),
                                                          "c": {"a", "b"}}
    out = io.StringIO()
    assert run(tmp_path, jobs=2, out=out) == 0, out.getvalue()
    assert (tmp_path / "c.txt").read_text() == "a\nb\n"
    assert plan(tmp_path).stages == []  # dvc status: up to date
    assert "impact repro: c done" in out.getvalue().splitlines()[-2]
    times = json.loads((tmp_path / TIMES).read_text())
    assert set(times) == {"a", "b", "c"}
    # a's command changes but not its output: c is planned (downstream), DVC skips it, and
    # its recorded time (which orders later runs) is kept
    (tmp_path / TIMES).write_text(json.dumps({**times, "c": 99.0}))
    yaml = (tmp_path / "dvc.yaml").read_text()
    (tmp_path / "dvc.yaml").write_text(yaml.replace("echo a > a.txt", "echo a >a.txt"))
    assert plan(tmp_path).stages == ["a", "c"]
    out = io.StringIO()
    assert run(tmp_path, jobs=2, out=out) == 0, out.getvalue()
    assert "Stage 'c' didn't change, skipping" in out.getvalue()
    after = json.loads((tmp_path / TIMES).read_text())
    assert after["c"] == 99.0


def test_drops_lock_entries_of_stages_no_longer_defined(tmp_path, monkeypatch):
    """A value removed from a foreach leaves its dvc.lock entry behind (DVC keeps it and
    rewrites it after every stage); `impact repro` drops it, and only it."""
    import io

    import yaml

    from impact.repro import plan, prune_lock, run
    from pipeline_utils import toy_repo

    monkeypatch.chdir(tmp_path)
    toy_repo(tmp_path)
    stages = ("stages:\n  cell:\n    foreach: {vals}\n    do:\n"
              "      cmd: echo ${{item}} > out_${{item}}.txt\n      outs:\n      - out_${{item}}.txt\n"
              "  other:\n    cmd: echo o > o.txt\n    outs: [o.txt]\n")
    (tmp_path / "dvc.yaml").write_text(stages.format(vals="[x, y]"))
    assert run(tmp_path, jobs=2, out=io.StringIO()) == 0
    lock = lambda: set(yaml.safe_load((tmp_path / "dvc.lock").read_text())["stages"])  # noqa: E731
    assert lock() == {"cell@x", "cell@y", "other"}
    assert prune_lock(tmp_path) == []  # nothing stale: the file is not rewritten
    (tmp_path / "dvc.yaml").write_text(stages.format(vals="[x]"))
    out = io.StringIO()
    assert run(tmp_path, jobs=2, out=out) == 0, out.getvalue()
    assert "dropped 1 dvc.lock entry of stages dvc.yaml no longer defines (cell@y)" \
        in out.getvalue()
    assert lock() == {"cell@x", "other"}
    assert plan(tmp_path).stages == []  # dvc status: up to date
    # the value comes back: DVC restores or reruns it as for any new stage
    (tmp_path / "dvc.yaml").write_text(stages.format(vals="[x, y]"))
    assert run(tmp_path, jobs=2, out=io.StringIO()) == 0
    assert lock() == {"cell@x", "cell@y", "other"} and plan(tmp_path).stages == []


def test_a_stage_log_line_is_tagged_once():
    """A stage's own ``[name]`` tag is replaced by the lane's, foreach key included."""
    assert _tagged("[heterogeneity] group effects\n", "heterogeneity") == \
        "[heterogeneity] group effects\n"
    assert _tagged("[estimate] 2SLS done\n", "estimate@quality_iv") == \
        "[estimate@quality_iv] 2SLS done\n"
    assert _tagged("Running stage 'panel':\n", "panel") == "[panel] Running stage 'panel':\n"
    assert _tagged("[panel-extra] x\n", "panel") == "[panel] [panel-extra] x\n"
    assert _tagged("\n", "panel") == "\n"


def test_memory_budget_fits_and_backfill():
    from impact.schedule import fits as _fits

    peaks = {"big": 800.0, "other": 800.0, "small": 100.0}
    assert _fits(["big"], [], peaks, 1000.0)  # alone always, even above the budget
    assert _fits(["big"], [(["small"], 50.0)], peaks, None)  # no budget
    assert not _fits(["other"], [(["big"], 10.0)], peaks, 1000.0)
    assert _fits(["small"], [(["big"], 10.0)], peaks, 1000.0)
    # a running lane counts its memory now when above its last peak
    assert not _fits(["small"], [(["big"], 950.0)], peaks, 1000.0)
    # a stage never seen counts 0; a batch its largest member
    assert _fits(["new"], [(["big"], 10.0)], peaks, 1000.0)
    assert not _fits(["new", "other"], [(["small"], 10.0)], peaks, 800.0)


def test_stages_whose_peaks_do_not_fit_do_not_overlap(tmp_path, monkeypatch):
    """With a budget, two stages whose last peaks sum above it run one after the other; a
    short one that fits runs beside (backfill); peaks of the run are recorded. Without a
    budget the two run side by side. (A stage that must overlap another waits for it to
    start, up to a minute: the test does not depend on the machine's speed.)"""
    import io
    import json

    from impact.repro import PEAKS, run
    from pipeline_utils import TimedStages, toy_repo

    monkeypatch.chdir(tmp_path)
    toy_repo(tmp_path)
    toy = TimedStages(tmp_path)
    pipeline, spans = toy.pipeline, toy.spans
    pipeline(("big", "1 small"), ("other", "1"), ("small", "0.2"))
    got = toy.held_run({"big": 800.0, "other": 800.0, "small": 1.0})
    assert "other waits for memory (0.8 GB at its last run, 1.0 GB budget)" in got
    peaks = json.loads((tmp_path / PEAKS).read_text())
    assert all(peaks[n] > 1.0 for n in ("big", "other"))  # this run's (a dvc process each)
    # without a budget big and other run side by side
    pipeline(("big", "0 other"), ("other", "0.2"))
    out = io.StringIO()
    assert run(tmp_path, jobs=2, force=True, out=out) == 0, out.getvalue()
    span = spans("big", "other")
    assert span["other"][0] < span["big"][1] < span["big"][0] + 60


def test_the_next_batch_within_the_budget():
    """The most urgent batch when it fits; else one that fits and ends before the
    running lanes, or is short and leaves the waiting one room beside it (backfill); a
    family's batch leaves out siblings larger than its first stage; nothing when nothing
    fits in time."""
    from impact.schedule import choose

    peaks = {"het": 9000.0, "e@hazard": 8000.0, "e@ols": 500.0, "sweep": 300.0}
    times = {"het": 800.0, "e@hazard": 300.0, "e@ols": 90.0, "sweep": 10.0}
    prio = {s: t for s, t in times.items()}
    secs = lambda b: sum(times[s] for s in b)  # noqa: E731
    kw = dict(prio=prio, jobs=1, peaks=peaks, secs=secs, budget=10000.0)
    # nothing running: the most urgent, whatever its peak
    assert choose(["het", "sweep"], running=[], horizon=lambda: 0.0, **kw) == (["het"], None)
    # het runs (9 GB): e@hazard cannot go beside it; sweep fits and ends in time
    ready = ["e@hazard", "sweep"]
    assert choose(ready, running=[(["het"], 100.0)], horizon=lambda: 50.0, **kw) \
        == (["sweep"], "e@hazard")
    # ...and when it would outlast the running lane, only if e@hazard could start
    # beside it (8 + 0.3 GB): then it does not delay e@hazard; at 9.8 GB it would
    assert choose(ready, running=[(["het"], 100.0)], horizon=lambda: 5.0, **kw) \
        == (["sweep"], "e@hazard")
    tight = {**kw, "peaks": {**peaks, "e@hazard": 9800.0}}
    assert choose(ready, running=[(["het"], 100.0)], horizon=lambda: 5.0, **tight) \
        == (None, "e@hazard")
    assert choose(ready, running=[(["het"], 100.0)], horizon=lambda: 50.0, **tight) \
        == (["sweep"], "e@hazard")
    # a long stage (90 s) is not backfilled past the running lane's end even so: it
    # would hold back the next stage by more than ``SHORT_S``
    assert choose(["e@hazard", "e@ols"], running=[(["het"], 100.0)], horizon=lambda: 5.0,
                  **kw) == (None, "e@hazard")
    # ...nor beside two running lanes (--jobs 3): which one ends first is not known, and
    # short backfills that each leave e@hazard room could together leave it none
    assert choose(ready, running=[(["het"], 100.0), (["e@ols"], 100.0)], horizon=lambda: 5.0,
                  **{**kw, "jobs": 3}) == (None, "e@hazard")
    # ...nor a stage without a recorded peak
    assert choose(["e@hazard", "new"], running=[(["het"], 100.0)], horizon=lambda: 0.0,
                  **{**kw, "secs": lambda b: 1.0}) == (None, "e@hazard")
    # a family's batch (9 siblings, jobs 1: a quarter per lane) without larger siblings
    fam = ["e@ols"] + [f"e@s{i}" for i in range(7)] + ["e@hazard"]
    fam_prio = {s: 100.0 - i for i, s in enumerate(fam)}
    fam_prio["e@hazard"] = 99.5  # second most urgent
    ready = sorted(fam, key=lambda s: -fam_prio[s])
    fam_secs = lambda b: sum(times.get(s, 5.0) for s in b)  # noqa: E731 (s0..s6: 5 s)
    short = {**peaks, "e@ols": 500.0}
    times["e@ols"] = 20.0
    b, held = choose(ready, prio=fam_prio, jobs=1, running=[], peaks=short, secs=fam_secs,
                     horizon=lambda: 0.0, budget=10000.0)
    assert held is None and b[0] == "e@ols" and "e@hazard" not in b and len(b) == 2
    # long stages go alone: a long first stage takes no sibling, and a long sibling
    # (here as small in memory as the first) joins no batch: the national run put the
    # hazard (3 minutes) behind quality_iv (3 minutes) in one lane while the other idled
    peaks_all = {s: 100.0 for s in fam}
    times.update({"e@ols": 180.0, "e@hazard": 200.0})
    b, _ = choose(ready, prio=fam_prio, jobs=1, running=[], peaks=peaks_all, secs=fam_secs,
                  horizon=lambda: 0.0, budget=10000.0)
    assert b == ["e@ols"]
    times.update({"e@ols": 20.0})
    b, _ = choose(ready, prio=fam_prio, jobs=1, running=[], peaks=peaks_all, secs=fam_secs,
                  horizon=lambda: 0.0, budget=10000.0)
    assert b[0] == "e@ols" and "e@hazard" not in b and len(b) == 2


def test_records_each_stages_cpu_time_with_its_children(tmp_path, monkeypatch):
    """The timeline keeps each stage's CPU seconds, those of the processes it started
    included: a stage that burns 1.5 s of CPU in a child process and then sleeps (so a
    sample falls after the burn) records at least that, and never more than its wall time
    on every core. A stage that only sleeps records far less."""
    import io
    import json
    import os

    from impact.repro import TIMELINE, run
    from pipeline_utils import burn_cpu, toy_repo

    monkeypatch.chdir(tmp_path)
    toy_repo(tmp_path)
    (tmp_path / "busy.py").write_text(
        "import subprocess, sys, time\n"
        f"subprocess.run([sys.executable, '-c', {burn_cpu(1.5)!r}], check=True)\n"
        "time.sleep(2.5)\nopen(sys.argv[1], 'w').write('x')\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  busy:\n    cmd: python busy.py busy.txt\n    outs: [busy.txt]\n"
        "  idle:\n    cmd: python -c \"import time; time.sleep(3.5)\" && echo i > idle.txt\n"
        "    outs: [idle.txt]\n")
    out = io.StringIO()
    assert run(tmp_path, jobs=2, force=True, out=out) == 0, out.getvalue()
    stages = {s["stage"]: s for s in json.loads((tmp_path / TIMELINE).read_text())["stages"]}
    busy, idle = stages["busy"], stages["idle"]
    assert 1.5 <= busy["cpu_s"] <= (busy["end"] - busy["start"]) * (os.cpu_count() or 1) + 1
    assert idle["cpu_s"] < busy["cpu_s"] - 1.0
    assert "impact repro: busy done in" in out.getvalue() and "(CPU " in out.getvalue()
