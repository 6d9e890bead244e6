"""DVC experiments as the README documents them, in a temporary git repository: `dvc exp
run -S` on a parameter, `dvc exp show` listing it with its changed metrics, `dvc metrics
diff`, and a queue with one failing experiment that is reported as failed."""

import json
import time

import pytest

from pipeline_utils import SMALL_ONE_CELL, make_repo, run

pytestmark = pytest.mark.slow


def _metric(tree, *keys):
    for k in keys:
        tree = tree[k]
    return tree


def test_experiments_run_show_diff_and_queue(tmp_path):
    repo = make_repo(tmp_path, SMALL_ONE_CELL)
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "baseline"], repo)
    base = json.loads((repo / "reports/metrics.json").read_text())

    # one experiment in the workspace: a parameter the adoption estimate reads
    run(["dvc", "exp", "run", "-n", "antic1", "-S", "adoption.anticipation_months=1"], repo)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    exps = [e for commit in shown for e in (commit.get("experiments") or [])]
    names = {r.get("name") for e in exps for r in e.get("revs", [])}
    assert "antic1" in names, shown
    rev = next(r for e in exps for r in e["revs"] if r.get("name") == "antic1")
    metrics = rev["data"]["metrics"]["reports/metrics.json"]["data"]
    assert _metric(metrics, "adoption", "att_pp") != base["adoption"]["att_pp"]
    assert rev["data"]["params"]["params.yaml"]["data"]["adoption"]["anticipation_months"] == 1
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], repo).stdout)
    assert "adoption.att_pp" in diff["reports/metrics.json"]

    # a queue: one good experiment, one that fails (an invalid parameter)
    run(["git", "checkout", "--", "params.yaml"], repo)
    run(["dvc", "exp", "run", "--queue", "-n", "good", "-S", "decompose.waterfalls=none"], repo)
    run(["dvc", "exp", "run", "--queue", "-n", "broken", "-S", "privacy.min_cell=0"], repo)
    run(["dvc", "queue", "start"], repo)
    deadline = time.time() + 900
    while time.time() < deadline:
        status = run(["dvc", "queue", "status"], repo).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    lines = {line.split()[1]: line for line in status.splitlines()[1:] if len(line.split()) > 2}
    assert "Failed" in lines.get("broken", ""), status
    assert "Success" in lines.get("good", ""), status
    # `dvc queue start` exited 0 regardless; `impact queue-status` does not
    proc = run(["impact", "queue-status"], repo, check=False)
    assert proc.returncode == 1 and "broken" in proc.stdout, proc.stdout
