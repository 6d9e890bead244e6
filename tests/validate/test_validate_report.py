"""The validated tables' schema, the report (JSON and Markdown), extras and absences."""

from __future__ import annotations

import json

import pyarrow as pa

import vdata
from impact.validate import SCHEMAS, to_arrow

ARCHITECTURE_COLUMNS = {
    "municipalities": ["municipality", "name", "region", "province", "population"],
    "trajectories": ["spell_id", "client_id", "municipality", "caseworker_key", "team_key",
                     "start_date", "end_date", "exit_reason", "birth_year", "sex",
                     "education_level", "household", "prior_benefit_months", "ladder_step"],
    "caseworker_assignments": ["spell_id", "caseworker_key", "team_key", "start_date", "end_date"],
    "quality": ["unit_type", "unit_key", "municipality", "date", "instrument", "score", "rater_id"],
    "adoption": ["municipality", "team_key", "programme", "adoption_date"],
    "labour_market": ["area", "month", "indicator", "value"],
    "shocks": ["shock_id", "municipality", "date", "type", "jobs", "description"],
    "progress": ["spell_id", "date", "measure", "value"],
}


def test_valid_set_passes_whole_with_the_architecture_columns():
    result = vdata.run(vdata.tables(), max_reject_share=0.0)
    assert result.report["rejected_rows"] == 0
    assert set(result.tables) == set(ARCHITECTURE_COLUMNS)
    for name, cols in ARCHITECTURE_COLUMNS.items():
        assert list(result.tables[name].columns) == cols, name
        assert list(SCHEMAS[name].columns) == cols, name
        assert len(result.rejects[name]) == 0
    q = result.tables["quality"].set_index("unit_type")
    assert q.loc["municipality", "unit_key"] == "GM0599"
    assert q.loc["team", "unit_key"] == "GM0599:T1"
    assert result.manifest()["tables"]["labour_market"] == {"rows": len(result.tables["labour_market"])}


def test_report_is_plain_json_and_renders_as_markdown():
    raw = vdata.tables()
    raw["trajectories"].loc[[0, 4], "municipality"] = ["GM0457", "GM0571"]
    raw["trajectories"].loc[6, "birth_year"] = "1800"
    result = vdata.run(raw)
    text = json.dumps(result.report)  # no numpy scalars, NaN or timestamps
    again = json.loads(text)
    assert again["rejected_rows"] == 1
    assert again["tables"]["trajectories"]["rejected_by_rule"] == {"out_of_range:birth_year": 1}
    md = result.report_markdown()
    for text in ("# Data-quality report", "| trajectories |", "out_of_range:birth_year",
                 "GM0457", "Weesp", "Molenlanden", "## labour_market"):
        assert text in md


def test_extra_columns_are_kept_and_reported_missing_optional_ones_noted():
    raw = vdata.tables()
    raw["trajectories"]["Nationality"] = "NL"
    raw["trajectories"] = raw["trajectories"].drop(columns=["ladder_step", "team_id"])
    result = vdata.run(raw)
    t = result.report["tables"]["trajectories"]
    assert t["extra_columns"] == ["nationality"]
    assert t["missing_optional_columns"] == ["team_id", "ladder_step"]
    out = result.tables["trajectories"]
    assert out["nationality"].eq("NL").all()
    assert out["ladder_step"].isna().all() and str(out["ladder_step"].dtype) == "Int64"
    assert out["team_key"].isna().all()


def test_missing_optional_tables_are_noted_not_errors():
    result = vdata.run(vdata.subset(vdata.tables()))
    assert set(result.tables) == {"municipalities", "trajectories", "labour_market"}
    assert result.report["missing_optional_tables"] == [
        "caseworker_assignments", "quality", "adoption", "progress", "shocks"]
    assert any("quality" in n for n in result.report["notes"])


def test_to_arrow_writes_dates_as_date32():
    result = vdata.run(vdata.tables())
    table = to_arrow("trajectories", result.tables["trajectories"])
    assert table.schema.field("start_date").type == pa.date32()
    assert table.schema.field("birth_year").type == pa.int64()
    assert table.schema.field("municipality").type in (pa.string(), pa.large_string())
    lm = to_arrow("labour_market", result.tables["labour_market"])
    assert lm.schema.field("month").type == pa.date32()
