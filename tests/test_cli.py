"""`impact check DIR`: validates a folder without running the pipeline."""

import pandas as pd
from typer.testing import CliRunner

from impact.cli import app

runner = CliRunner()


def _folder(tmp_path, bad_sex=False):
    d = tmp_path / "extract"
    d.mkdir()
    pd.DataFrame({"municipality": ["GM0363"], "name": ["Amsterdam"], "region": ["AM18"]}).to_csv(
        d / "municipalities.csv", index=False)
    pd.DataFrame({
        "spell_id": ["S1", "S2"], "client_id": ["C1", "C2"], "municipality": ["363", "0363"],
        "caseworker_id": ["K1", "K2"], "team_id": ["T1", "T1"],
        "start_date": ["2019-01-15", "2020-03-01"], "end_date": ["2019-09-30", None],
        "exit_reason": ["work", None], "birth_year": [1980, 1975],
        "sex": ["Q" if bad_sex else "F", "M"], "education_level": ["low", "high"],
        "household": ["single", "couple"], "prior_benefit_months": [0, 12], "ladder_step": [3, None],
    }).to_csv(d / "trajectories.csv", index=False)
    pd.DataFrame({"area": ["GM0363", "AM18"], "period": ["2019", "2019-Q1"],
                  "indicator": ["unemployment_rate"] * 2, "value": [4.1, 3.9]}).to_csv(
        d / "labour_market.csv", index=False)
    return d


def test_check_passes_on_valid_folder(tmp_path, root, monkeypatch):
    monkeypatch.chdir(root)
    result = runner.invoke(app, ["check", str(_folder(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "meet the contract" in result.output


def test_check_fails_on_missing_required_table(tmp_path, root, monkeypatch):
    monkeypatch.chdir(root)
    d = _folder(tmp_path)
    (d / "labour_market.csv").unlink()
    result = runner.invoke(app, ["check", str(d)])
    assert result.exit_code == 2
    assert "labour_market" in result.output


def test_check_reports_row_rejects(tmp_path, root, monkeypatch):
    monkeypatch.chdir(root)
    # one bad row of two is a 50% reject share: above data.max_reject_share, so it stops
    result = runner.invoke(app, ["check", str(_folder(tmp_path, bad_sex=True))])
    assert result.exit_code == 2
    assert "sex" in result.output


def test_check_prints_mappings_and_rejects_and_writes_json(tmp_path, root, monkeypatch):
    import json

    monkeypatch.chdir(root)
    d = _folder(tmp_path)
    traj = pd.read_csv(d / "trajectories.csv", dtype=str)
    traj.loc[0, "municipality"] = "457"  # Weesp, part of Amsterdam since 2022
    traj.to_csv(d / "trajectories.csv", index=False)
    params = tmp_path / "params.yaml"
    params.write_text("data:\n  max_reject_share: 0.5\npanel:\n  start: '2016-01'\n  end: '2023-12'\n")
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["check", str(d), "--params", str(params), "--json", str(out)])
    assert result.exit_code == 0, result.output
    for text in ("trajectories.csv", "GM0457", "Weesp", "GM0363", "Amsterdam"):
        assert text in result.output
    got = json.loads(out.read_text())
    assert got["ok"] is True and got["report"]["merger_mappings"][0]["from"] == "GM0457"
    # a row fault under the threshold: exit 0, the rule and the first row's reason shown
    traj.loc[1, "sex"] = "Q"
    traj.to_csv(d / "trajectories.csv", index=False)
    result = runner.invoke(app, ["check", str(d), "--params", str(params), "--json", str(out)])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "invalid_category:sex" in flat and "row 2:" in flat and "'Q'" in flat
    assert json.loads(out.read_text())["report"]["rejected_rows"] == 1


def test_check_writes_the_error_as_json(tmp_path, root, monkeypatch):
    import json

    monkeypatch.chdir(root)
    d = _folder(tmp_path)
    (d / "labour_market.csv").unlink()
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["check", str(d), "--json", str(out)])
    assert result.exit_code == 2
    got = json.loads(out.read_text())
    assert got["ok"] is False and got["table"] == "labour_market" and "labour_market.csv" in got["error"]
