"""On the built-in synthetic country (default preset, default seed), every headline
estimate lies within 3 standard errors of the planted truth, and the naive quality number
lies outside the estimate's 95% interval.

The seed is the project default in params.yaml (20261124), fixed before this test was
written. A correct estimator fails a 3-SE check about 0.3% of the time per estimate;
coverage over many draws is the Monte Carlo tests' job (tests/estimate).
"""

import json

import pytest
import yaml

from impact.report import check_metrics
from pipeline_utils import ROOT, make_repo, run

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("builtin")]

#: the project's headline specifications, run alone (the others are the DVC tests' job)
_PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
HEADLINE = list(dict.fromkeys(_PARAMS["headline"].values()))
ONLY_HEADLINE = {"specifications": {k: _PARAMS["specifications"][k] for k in HEADLINE}}

STAGES = [
    ["pipeline/simulate.py", "--reference", "data/reference", "--out", "data/simulated",
     "--truth", "data/truth.json"],
    ["pipeline/validate.py", "--raw", "data/simulated", "--lineage",
     "data/reference/cbs_gemeentelijke_herindelingen_lineage.csv", "--out", "data/validated",
     "--rejects", "data/rejects", "--report", "reports/data_quality.json",
     "--report-md", "reports/data_quality.md"],
    ["pipeline/panel.py", "--validated", "data/validated", "--out", "data/panel"],
    *[["pipeline/estimate.py", "--spec", name, "--panel", "data/panel", "--validated",
       "data/validated", "--out", f"data/estimates/{name}"] for name in HEADLINE],
    ["pipeline/report.py", "--estimates", "data/estimates", "--panel-summary",
     "data/panel/summary.json", "--data-quality", "reports/data_quality.json", "--metrics",
     "reports/metrics.json", "--tables", "reports/tables", "--figures", "reports/figures",
     "--plots", "reports/plots"],
]

TRUTH_KEYS = {"quality": ("effect_pp", "quality_effect_pp"),
              "adoption": ("att_pp", "adoption_att_pp"),
              "shock": ("effect_pp", "shock_effect_pp")}


@pytest.fixture(scope="module")
def builtin(tmp_path_factory):
    repo = make_repo(tmp_path_factory.mktemp("builtin"), ONLY_HEADLINE, git=False)
    for stage in STAGES:
        run(["python", *stage], repo)
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    truth = json.loads((repo / "data/truth.json").read_text())
    return metrics, truth


def test_metrics_follow_the_contract(builtin):
    metrics, _ = builtin
    assert check_metrics(metrics) == []
    assert metrics["data"]["person_months"] > 1_000_000


@pytest.mark.parametrize("block", ["quality", "adoption", "shock"])
def test_estimate_within_three_se_of_truth(builtin, block):
    metrics, truth = builtin
    key, truth_key = TRUTH_KEYS[block]
    est, se = metrics[block][key], metrics[block]["std_error"]
    assert se > 0
    assert abs(est - truth[truth_key]) < 3 * se, (block, est, se, truth[truth_key])


def test_naive_quality_outside_interval(builtin):
    metrics, truth = builtin
    q = metrics["quality"]
    assert not (q["ci_low"] <= q["naive_pp"] <= q["ci_high"]), q


def test_reliability_close_to_truth(builtin):
    metrics, truth = builtin
    # reliability is a variance ratio estimated from thousands of audit scores
    assert abs(metrics["quality"]["reliability"] - truth["reliability"]) < 0.1
