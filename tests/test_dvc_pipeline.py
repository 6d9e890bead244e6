"""`dvc repro` in a temporary git repository: full run, no-op rerun, partial reruns."""

import json

import pytest

from impact.report import check_metrics
from pipeline_utils import SMALL, make_repo, run, set_params

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dvc")]


def _ran_stages(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def _ran(output: str) -> set[str]:
    """Stage names without the foreach key (estimate@quality_iv -> estimate)."""
    return {name.split("@")[0] for name in _ran_stages(output)}


def test_repro_noop_and_partial_rerun(tmp_path):
    repo = make_repo(tmp_path, SMALL)
    first = run(["dvc", "repro"], repo)
    assert _ran(first.stdout) == {"simulate", "validate", "panel", "estimate", "decompose",
                                  "benchmark", "report"}

    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert check_metrics(metrics) == []
    for block in ("quality", "adoption", "shock"):
        assert metrics[block] is not None, f"{block} block is null on the built-in data"
    assert (repo / "dvc.lock").exists()

    status = run(["dvc", "status"], repo)
    assert "up to date" in status.stdout
    second = run(["dvc", "repro"], repo)
    assert _ran(second.stdout) == set(), second.stdout

    # privacy is read by the stages that publish: decompose, benchmark, report
    set_params(repo, {"privacy.min_cell": 11})
    assert _ran(run(["dvc", "repro"], repo).stdout) == {"decompose", "benchmark", "report"}
    # the waterfall list by `report` only
    set_params(repo, {"decompose.waterfalls": "none"})
    assert _ran(run(["dvc", "repro"], repo).stdout) == {"report"}

    # the quality window is read by `panel`; everything downstream follows
    set_params(repo, {"panel.quality_window_months": 5})
    assert _ran(run(["dvc", "repro"], repo).stdout) == {"panel", "estimate", "decompose",
                                                          "benchmark", "report"}

    # one specification changed: only its own stage and the report (the decomposition
    # tracks only its own specification, decompose.specification = quality_iv)
    set_params(repo, {"specifications.quality_ols.cluster": "region"})
    assert _ran_stages(run(["dvc", "repro"], repo).stdout) == {"estimate@quality_ols", "report"}
    table = (repo / "reports/tables/specifications.csv").read_text()
    assert "quality_ols" in table

    # a removed specification leaves its folder behind; the report reads only named ones
    import yaml

    params = yaml.safe_load((repo / "params.yaml").read_text())
    del params["specifications"]["quality_ols"]
    params["headline"]["quality"] = "quality_iv_munimonth"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _ran_stages(run(["dvc", "repro"], repo).stdout) == {"report"}
    assert (repo / "data/estimates/quality_ols").exists()
    import pandas as pd

    table = pd.read_csv(repo / "reports/tables/specifications.csv")
    assert "quality_ols" not in set(table["specification"])
    est = pd.read_csv(repo / "reports/tables/estimates.csv")
    assert "quality_ols" not in set(est["specification"])
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert metrics["quality"]["specification"] == "quality_iv_munimonth"
    assert table.loc[table["headline"], "specification"].tolist() == [
        "quality_iv_munimonth", "adoption_imputation", "shock_event_study"]


def test_stage_error_is_one_clear_message(tmp_path):
    repo = make_repo(tmp_path, {**SMALL, "panel.no_such_key": 1}, git=True)
    proc = run(["dvc", "repro", "simulate"], repo, check=True)  # simulate does not read panel
    proc = run(["python", "pipeline/panel.py", "--validated", "data/validated", "--out", "x"],
               repo, check=False)
    assert proc.returncode == 2
    assert "panel.no_such_key" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_raw_dir_points_at_user_files(tmp_path):
    """`data.raw_dir` at a folder of the user's own (Parquet) files runs the same analysis,
    and the folder is not written to."""
    import hashlib

    import pandas as pd

    repo = make_repo(tmp_path, SMALL)
    run(["dvc", "repro", "simulate"], repo)
    user = tmp_path / "user_extract"
    user.mkdir()
    for csv in sorted((repo / "data/simulated").glob("*.csv")):
        pd.read_csv(csv, dtype=str).to_parquet(user / f"{csv.stem}.parquet", index=False)

    def digest():
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in user.iterdir()}

    before = digest()
    set_params(repo, {"data.raw_dir": str(user), "panel.start": "2019-01"})
    run(["dvc", "repro"], repo)
    assert digest() == before
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert check_metrics(metrics) == []
    summary = json.loads((repo / "data/panel/summary.json").read_text())
    assert summary["months"] == 36  # 2019-01 .. 2021-12
