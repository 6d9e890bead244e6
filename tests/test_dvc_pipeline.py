"""`dvc repro` in a temporary git repository: full run, no-op rerun, partial reruns."""

import json
import re

import pytest
import yaml

from impact.report import check_metrics
from impact.repro import plan
from brief_checks import check_briefs
from pipeline_utils import SMALL, SMALL_ONE_CELL, make_repo, run, set_params

pytestmark = pytest.mark.slow


def _ran_stages(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def _ran(output: str) -> set[str]:
    """Stage names without the foreach key (estimate@quality_iv -> estimate)."""
    return {name.split("@")[0] for name in _ran_stages(output)}


def test_repro_noop_and_partial_rerun(tmp_path, monkeypatch):
    repo = make_repo(tmp_path, SMALL_ONE_CELL)  # the grid's own reruns: the test below
    first = run(["dvc", "repro"], repo)
    assert _ran(first.stdout) == {"simulate", "validate", "panel", "quality_sums", "estimate",
                                  "sweep_frames", "sweep", "decompose", "benchmark",
                                  "robustness", "heterogeneity", "report", "publish"}
    check_briefs(repo)

    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert check_metrics(metrics) == []
    for block in ("quality", "adoption", "shock"):
        assert metrics[block] is not None, f"{block} block is null on the built-in data"
    assert (repo / "dvc.lock").exists()

    status = run(["dvc", "status"], repo)
    assert "up to date" in status.stdout
    # bytecode written next to the sources (Python without PYTHONDONTWRITEBYTECODE) is not
    # part of any stage's dependencies (.dvcignore)
    cache = repo / "src/impact/estimate/__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "linalg.cpython-311.pyc").write_bytes(b"not source")
    assert "up to date" in run(["dvc", "status"], repo).stdout
    second = run(["dvc", "repro"], repo)
    assert _ran(second.stdout) == set(), second.stdout

    # privacy is read by the stages that publish: decompose, benchmark, heterogeneity, report
    set_params(repo, {"privacy.min_cell": 11})
    monkeypatch.chdir(repo)  # DVC's Repo looks in the working directory too
    planned = plan(repo)  # what `impact repro` would run: the same stages as `dvc repro`
    ran = _ran_stages(run(["dvc", "repro"], repo).stdout)
    assert {s.split("@")[0] for s in ran} == {"decompose", "benchmark", "heterogeneity",
                                              "report", "publish"}
    # the plan holds what DVC ran and what lies downstream of it (DVC then finds some of
    # those unchanged and skips them, e.g. robustness: decompose rewrote the same bytes)
    assert ran <= set(planned.stages)
    assert all(planned.upstream[s] for s in set(planned.stages) - ran)
    assert planned.upstream["report"] >= {"decompose", "benchmark", "heterogeneity"}
    assert planned.upstream["decompose"] == set()
    # the waterfall list by `report` (and the index of figures by `publish`)
    set_params(repo, {"decompose.waterfalls": "none"})
    assert _ran(run(["dvc", "repro"], repo).stdout) == {"report", "publish"}
    # the brief list by `publish` only
    set_params(repo, {"briefs.municipalities": "none"})
    assert _ran(run(["dvc", "repro"], repo).stdout) == {"publish"}
    assert sorted(p.name for p in (repo / "reports/briefs").glob("*.html")) == ["NL01.en.html"]

    # the quality window is read by `panel`; everything downstream follows, but the grid
    # cells: their frames (re-aggregated) hold no quality column, so keep their bytes
    set_params(repo, {"panel.quality_window_months": 5})
    assert _ran(run(["dvc", "repro"], repo).stdout) == {"panel", "quality_sums", "estimate",
                                                          "sweep_frames",
                                                          "decompose", "benchmark",
                                                          "robustness", "heterogeneity",
                                                          "report", "publish"}

    # one specification changed: only its own stage and the report (the decomposition
    # tracks only its own specification, decompose.specification = quality_iv); the shared
    # quality pass runs again, but rewrites only that specification's folder
    set_params(repo, {"specifications.quality_ols.cluster": "region"})
    assert _ran_stages(run(["dvc", "repro"], repo).stdout) == {"quality_sums",
                                                                "estimate@quality_ols", "report",
                                                                "publish"}
    table = (repo / "reports/tables/specifications.csv").read_text()
    assert "quality_ols" in table

    # a removed specification leaves its folder behind; the report reads only named ones

    params = yaml.safe_load((repo / "params.yaml").read_text())
    del params["specifications"]["quality_ols"]
    params["headline"]["quality"] = "quality_iv_munimonth"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # the robustness summary and the group effects follow the headline
    assert _ran_stages(run(["dvc", "repro"], repo).stdout) == {"quality_sums", "robustness",
                                                                "heterogeneity", "report",
                                                                "publish"}
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
    # `impact repro` (make repro) names the failed stage, keeps its message, starts nothing
    # after it and exits with its code
    proc = run(["impact", "repro", "--jobs", "2"], repo, check=False)
    assert proc.returncode != 0, proc.stdout  # DVC's exit code for a failed stage (255)
    failed = re.findall(r"stage (\S+) failed \(exit \d+\)", proc.stdout)
    assert len(failed) == 1 and failed[0] in {"validate", "panel"}, proc.stdout
    assert f"[{failed[0]}] impact {failed[0]}: error:" in proc.stdout
    assert "panel.no_such_key" in proc.stdout
    assert "Running stage 'estimate@" not in proc.stdout


def test_raw_dir_points_at_user_files(tmp_path):
    """`data.raw_dir` at a folder of the user's own (Parquet) files runs the same analysis,
    and the folder is not written to."""
    import hashlib

    import pandas as pd

    repo = make_repo(tmp_path, SMALL_ONE_CELL)
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


def test_grid_sweep_curve_and_byte_reproducibility(tmp_path):
    """The grid runs one DVC stage per cell; its headline-equivalent cell reproduces the
    adoption headline; removing a grid sample reruns only the sample frames (the kept
    sample's bytes unchanged) and the report, which then reads exactly the remaining
    cells (the removed cells' folders stay behind). A forced rerun of every stage writes
    byte-identical outputs."""
    import hashlib

    import pandas as pd

    repo = make_repo(tmp_path, SMALL)
    first = run(["dvc", "repro"], repo)
    cells = {s for s in _ran_stages(first.stdout) if s.startswith("sweep@")}
    grid = yaml.safe_load((repo / "params.yaml").read_text())["grid"]
    n_cells = 1
    for axis in ("estimator", "outcome", "fixed_effects", "sample", "controls", "inference"):
        n_cells *= len(grid[axis])
    assert len(cells) == n_cells >= 24
    curve = pd.read_csv(repo / "reports/tables/specification_curve.csv")
    assert len(curve) == n_cells and curve["estimate"].notna().all()
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    cell = json.loads((repo / "data/sweep/imputation-month-region_month-all-full-cluster/result.json")
                      .read_text())
    assert abs(cell["estimate"] - metrics["adoption"]["att_pp"]) < 1e-9

    def digests():
        out = {}
        for folder in ("reports", "data/sweep", "data/sweep_frames", "data/decompose",
                       "data/benchmark",
                       "data/robustness", "data/estimates", "data/panel",
                       "data/heterogeneity"):
            for p in sorted((repo / folder).rglob("*")):
                if p.is_file():
                    out[str(p.relative_to(repo))] = hashlib.sha256(p.read_bytes()).hexdigest()
        return out

    before = digests()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    # the forced rerun goes through `impact repro` (`make repro`): two stages at a time,
    # each through DVC; the same bytes, the same dvc.lock, and nothing left to run
    forced = run(["impact", "repro", "--force", "--jobs", "2"], repo)
    assert "pipeline up to date" in forced.stdout and "finishing with dvc repro" not in forced.stdout
    after = digests()
    changed = sorted(k for k in before if before[k] != after.get(k))
    assert not changed and set(before) == set(after), changed
    assert yaml.safe_load((repo / "dvc.lock").read_text()) == lock
    assert "up to date" in run(["dvc", "status"], repo).stdout

    # the robustness checks read grid cells too; the frames follow the samples (the kept
    # one's file is rewritten with the same bytes, so no cell reruns)
    set_params(repo, {"grid.sample": ["all"]})
    assert _ran(run(["dvc", "repro"], repo).stdout) == {"sweep_frames", "robustness", "report",
                                                        "publish"}
    curve = pd.read_csv(repo / "reports/tables/specification_curve.csv")
    assert len(curve) == n_cells // len(grid["sample"])
    assert set(curve["sample"]) == {"all"}
    assert (repo / "data/sweep/imputation-month-region_month-no_crisis-full-cluster").exists()
