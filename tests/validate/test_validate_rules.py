"""Each row rule sends exactly the faulty row to rejects, with the right rule and reason,
and rows read = rows kept + rows rejected in every table."""

from __future__ import annotations

import pandas as pd
import pytest

import vdata
from impact.validate import ContractError

# (table, row, {column: new value}, expected rule, text the reason must contain)
CASES = [
    ("trajectories", 4, {"municipality": "GM9999"}, "unknown_municipality:municipality", "GM9999"),
    ("trajectories", 4, {"municipality": "Amsterdam"}, "invalid_municipality:municipality", "Amsterdam"),
    ("trajectories", 0, {"end_date": "20140101"}, "end_before_start", "before start_date"),
    ("trajectories", 3, {"exit_reason": "work"}, "exit_reason_on_open_spell", "end_date is missing"),
    ("trajectories", 0, {"exit_reason": None}, "end_date_without_exit_reason", "exit_reason is missing"),
    ("trajectories", 5, {"sex": "female"}, "invalid_category:sex", "female"),
    ("trajectories", 5, {"education_level": "phd"}, "invalid_category:education_level", "phd"),
    ("trajectories", 5, {"household": "flat"}, "invalid_category:household", "flat"),
    ("trajectories", 5, {"exit_reason": "job"}, "invalid_category:exit_reason", "job"),
    ("trajectories", 6, {"birth_year": "1899"}, "out_of_range:birth_year", "1899"),
    ("trajectories", 6, {"birth_year": "2011"}, "out_of_range:birth_year", "2011"),
    ("trajectories", 6, {"birth_year": "19x0"}, "invalid_int:birth_year", "19x0"),
    ("trajectories", 7, {"prior_benefit_months": "-1"}, "out_of_range:prior_benefit_months", "-1"),
    ("trajectories", 7, {"ladder_step": "7"}, "out_of_range:ladder_step", "7"),
    ("trajectories", 7, {"ladder_step": "0"}, "out_of_range:ladder_step", "0"),
    ("trajectories", 8, {"client_id": None}, "missing_value:client_id", "client_id is missing"),
    ("trajectories", 8, {"start_date": "2016-02-30"}, "invalid_date:start_date", "2016-02-30"),
    ("trajectories", 8, {"end_date": "31-12-2016"}, "invalid_date:end_date", "31-12-2016"),
    # client C000: spell S001 now starts inside S000 (2015-03-01 .. 2016-01-01)
    ("trajectories", 1, {"start_date": "2015-12-01"}, "overlapping_spell", "C000"),
    # client C001: S003 is open; S002 moved after it starts later, overlapping the open one
    ("trajectories", 2, {"start_date": "2017-01-01", "end_date": "2017-05-01"},
     "overlapping_spell", "open"),
    ("quality", 2, {"score": "high"}, "invalid_number:score", "high"),
    ("quality", 2, {"unit_type": "boss"}, "invalid_category:unit_type", "boss"),
    ("quality", 2, {"municipality": "GM0001"}, "unknown_municipality:municipality", "GM0001"),
    ("quality", 9, {"unit_id": "9999"}, "unknown_municipality:unit_id", "9999"),
    ("quality", 3, {"date": "yesterday"}, "invalid_date:date", "yesterday"),
    ("quality", 0, {"unit_id": "K404"}, "unknown_caseworker:unit_id", "'K404'"),
    ("quality", 8, {"unit_id": "T9"}, "unknown_team:unit_id", "GM0599:T9"),
    ("quality", 1, {"score": "11"}, "out_of_range:score", "0..10"),
    ("quality", 8, {"score": "0.5"}, "out_of_range:score", "1..5"),
    ("adoption", 1, {"team_id": "T9"}, "unknown_team:team_id", "'T9'"),
    ("adoption", 1, {"municipality": "GM0001"}, "unknown_municipality:municipality", "GM0001"),
    ("adoption", 1, {"adoption_date": "2019-13-01"}, "invalid_date:adoption_date", "2019-13-01"),
    ("shocks", 0, {"municipality": "1"}, "unknown_municipality:municipality", "GM0001"),
    ("shocks", 1, {"jobs": "-5"}, "out_of_range:jobs", "-5"),
    ("shocks", 1, {"jobs": "many"}, "invalid_int:jobs", "many"),
    ("progress", 0, {"spell_id": "S999"}, "unknown_spell:spell_id", "S999"),
    ("progress", 0, {"value": "9"}, "out_of_range:value", "9"),
    ("caseworker_assignments", 1, {"spell_id": "S999"}, "unknown_spell:spell_id", "S999"),
    ("caseworker_assignments", 1, {"start_date": "2015-06-01"}, "overlapping_assignment", "S000"),
    ("caseworker_assignments", 0, {"end_date": "2015-01-01"}, "end_before_start", "2015-01-01"),
    ("labour_market", 5, {"period": "2020-13"}, "invalid_period:period", "2020-13"),
    ("labour_market", 5, {"value": "n.a."}, "invalid_number:value", "n.a."),
    ("labour_market", 5, {"area": None}, "missing_value:area", "area is missing"),
    ("municipalities", 3, {"region": None}, "missing_value:region", "region is missing"),
]


def _assert_reconciles(result, raw):
    report = result.report
    total = 0
    for name, t in report["tables"].items():
        assert t["rows_read"] == len(raw[name])
        assert t["rows_kept"] + t["rows_rejected"] == t["rows_read"], name
        assert len(result.rejects[name]) == t["rows_rejected"], name
        assert sum(t["rejected_by_rule"].values()) == t["rows_rejected"], name
        if name not in ("labour_market", "municipalities", "adoption"):
            assert len(result.tables[name]) == t["rows_kept"], name
        total += t["rows_rejected"]
    assert report["rejected_rows"] == total


@pytest.mark.parametrize("table,row,change,rule,text", CASES, ids=[c[3] + f"-{i}" for i, c in enumerate(CASES)])
def test_row_rule_rejects_that_row(table, row, change, rule, text):
    raw = vdata.subset(vdata.tables(), table)
    for col, value in change.items():
        raw[table].loc[row, col] = value
    result = vdata.run(raw)
    rej = result.rejects[table]
    assert rej["row"].tolist()[:1] == [row + 1], rej
    assert rej["rule"].iloc[0] == rule
    assert text in rej["reason"].iloc[0]
    # the raw values travel with the reject
    for col, value in change.items():
        assert (pd.isna(value) and pd.isna(rej[col].iloc[0])) or rej[col].iloc[0] == value
    _assert_reconciles(result, raw)


def test_only_the_faulty_row_and_its_dependants_are_rejected():
    raw = vdata.tables()
    raw["trajectories"].loc[0, "end_date"] = "20140101"  # S000 rejected ...
    result = vdata.run(raw)
    assert result.report["tables"]["trajectories"]["rows_rejected"] == 1
    # ... and with it both assignments of S000, which now point to no kept spell
    rej = result.rejects["caseworker_assignments"]
    assert rej["rule"].tolist() == ["unknown_spell:spell_id"] * 2
    _assert_reconciles(result, raw)


def test_later_starting_spell_is_rejected_whatever_the_file_order():
    raw = vdata.tables()
    traj = raw["trajectories"]
    traj.loc[1, "start_date"] = "2015-12-01"
    raw["trajectories"] = traj.iloc[::-1].reset_index(drop=True)  # S001 now comes first
    result = vdata.run(raw)
    rej = result.rejects["trajectories"]
    assert rej["spell_id"].tolist() == ["S001"]
    assert "S000" in set(result.tables["trajectories"]["spell_id"])


def test_all_failing_rules_are_in_the_reason_first_one_in_rule():
    raw = vdata.tables()
    raw["trajectories"].loc[6, ["birth_year", "sex"]] = ["1800", "female"]
    rej = vdata.run(raw).rejects["trajectories"]
    assert rej["rule"].tolist() == ["out_of_range:birth_year"]  # column order
    assert "1800" in rej["reason"].iloc[0] and "female" in rej["reason"].iloc[0]


def test_missing_categories_mean_unknown_and_are_counted():
    raw = vdata.tables()
    raw["trajectories"].loc[[0, 1], "sex"] = None
    result = vdata.run(raw)
    assert result.report["tables"]["trajectories"]["rows_rejected"] == 0
    assert result.tables["trajectories"]["sex"].iloc[:2].tolist() == ["unknown", "unknown"]
    assert result.report["tables"]["trajectories"]["filled_missing"] == {"sex": 2}


def test_categories_match_case_insensitively():
    raw = vdata.tables()
    raw["trajectories"].loc[0, ["sex", "exit_reason", "household"]] = ["f", "WORK", "Single"]
    out = vdata.run(raw).tables["trajectories"].iloc[0]
    assert (out["sex"], out["exit_reason"], out["household"]) == ("F", "work", "single")


def test_caseworker_without_clients_is_rejected_with_its_key():
    raw = vdata.tables()
    extra = raw["quality"].iloc[[0]].assign(unit_id="ghost")
    raw["quality"] = pd.concat([raw["quality"], extra], ignore_index=True)
    result = vdata.run(raw)
    assert "GM0363:ghost" not in set(result.tables["quality"]["unit_key"])
    rej = result.rejects["quality"]
    assert rej["rule"].tolist() == ["unknown_caseworker:unit_id"]
    assert "'ghost'" in rej["reason"].iloc[0] and "GM0363:ghost" in rej["reason"].iloc[0]
    _assert_reconciles(result, raw)


def test_spells_outside_window_are_kept_and_counted():
    raw = vdata.tables()
    raw["trajectories"].loc[0, ["start_date", "end_date"]] = ["2010-01-01", "2010-06-30"]
    raw["trajectories"].loc[4, ["start_date", "end_date"]] = ["2025-01-01", "2025-06-30"]
    result = vdata.run(raw)
    spells = result.report["tables"]["trajectories"]["spells"]
    assert (spells["ended_before_window"], spells["started_after_window"]) == (1, 1)
    assert len(result.tables["trajectories"]) == 24


def test_reject_share_above_threshold_stops_with_report():
    raw = vdata.tables()
    raw["trajectories"].loc[[4, 6], "birth_year"] = "1800"
    with pytest.raises(ContractError) as exc:
        vdata.run(raw, max_reject_share=0.05)
    msg = str(exc.value)
    assert "trajectories" in msg and "2 of 24" in msg and "out_of_range:birth_year" in msg
    assert "1800" in msg
    assert exc.value.report["rejected_rows"] == 2
    # at the threshold exactly it passes (more than the share stops)
    assert vdata.run(raw, max_reject_share=2 / 24).report["rejected_rows"] == 2


def test_rejects_are_text_and_writable():
    raw = vdata.tables()
    raw["trajectories"].loc[0, "birth_year"] = "1800"
    rej = vdata.run(raw).rejects["trajectories"]
    assert list(rej.columns[:1]) == ["row"] and list(rej.columns[-2:]) == ["rule", "reason"]
    import pyarrow as pa

    pa.Table.from_pandas(rej)  # no object columns of mixed type


def test_open_assignment_is_closed_by_a_later_one_not_rejected():
    """Found in review: an earlier assignment left open must not make every later
    caseworker change a reject (the panel gives each month to the later-starting one)."""
    raw = vdata.tables()
    asg = raw["caseworker_assignments"]
    first = asg.index[asg["spell_id"] == asg["spell_id"].iloc[0]][0]
    raw["caseworker_assignments"].loc[first, "end_date"] = None
    result = vdata.run(raw)
    assert result.report["tables"]["caseworker_assignments"]["rows_rejected"] == 0
    _assert_reconciles(result, raw)
