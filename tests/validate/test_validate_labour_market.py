"""labour_market: periods expanded to months, merged municipalities averaged, finer
periods win, coverage counted."""

from __future__ import annotations

import pandas as pd
import pytest

import vdata


def _lm(rows):
    return pd.DataFrame(rows, columns=["area", "period", "indicator", "value"]).astype("str")


def _run(rows, **kw):
    raw = vdata.subset(vdata.tables())
    raw["labour_market"] = _lm(rows)
    return vdata.run(raw, **kw)


def _months(df, area, indicator="u"):
    sel = df[(df["area"] == area) & (df["indicator"] == indicator)]
    return dict(zip(sel["month"].dt.strftime("%Y-%m"), sel["value"]))


def test_month_quarter_and_year_expand_to_first_days_of_their_months():
    result = _run([
        ("GM0363", "2020-02", "u", "4.0"),
        ("GM0599", "2020-q3", "u", "5.5"),
        ("am18", "2021", "u", "6"),
    ])
    lm = result.tables["labour_market"]
    assert _months(lm, "GM0363") == {"2020-02": 4.0}
    assert _months(lm, "GM0599") == {"2020-07": 5.5, "2020-08": 5.5, "2020-09": 5.5}
    assert list(_months(lm, "AM18")) == [f"2021-{m:02d}" for m in range(1, 13)]
    assert (lm["month"].dt.day == 1).all()
    assert str(lm["month"].dtype) == "datetime64[us]"
    assert result.report["tables"]["labour_market"]["rows_written"] == 1 + 3 + 12


def test_values_of_merged_municipalities_are_averaged_and_reported():
    result = _run([
        ("GM0363", "2020-01", "u", "4.0"),
        ("457", "2020-01", "u", "6.0"),       # Weesp -> Amsterdam
        ("GM0457", "2020-02", "u", "3.0"),    # only Weesp: mapped, not averaged
    ])
    assert _months(result.tables["labour_market"], "GM0363") == {"2020-01": 5.0, "2020-02": 3.0}
    t = result.report["tables"]["labour_market"]
    assert t["merged_averaged"] == {"rows": 2, "values": 1, "areas": ["GM0363"]}
    assert t["rows_kept"] == 3 and t["rows_rejected"] == 0
    assert {(m["from"], m["to"], m["rows"]) for m in t["merger_mappings"]} == {("GM0457", "GM0363", 2)}


def test_finer_period_wins_over_coarser_for_the_same_month():
    result = _run([
        ("GM0363", "2020-Q1", "u", "5.0"),
        ("GM0363", "2020-03", "u", "7.0"),
        ("GM0363", "2020", "u", "1.0"),
    ])
    got = _months(result.tables["labour_market"], "GM0363")
    assert got["2020-01"] == 5.0 and got["2020-03"] == 7.0 and got["2020-12"] == 1.0
    assert len(got) == 12
    assert result.report["tables"]["labour_market"]["months_from_finer_period"] == 3 + 1


def test_coverage_and_unknown_areas_are_reported_not_rejected():
    result = _run([
        ("GM0363", "2016", "u", "4"),          # 12 of the 96 window months
        ("GM0014", "2016", "u", "4"),          # Groningen: not among municipalities
        ("AM99", "2016", "u", "4"),
    ], max_reject_share=0.0)
    t = result.report["tables"]["labour_market"]
    assert t["rows_rejected"] == 0
    assert t["areas_not_in_municipalities"] == {"areas": 2, "first": ["AM99", "GM0014"]}
    cov = t["coverage_in_window"]["u"]
    assert cov["areas"] == 3 and cov["missing_months"] == 3 * (96 - 12)
    assert cov["municipalities_without_series"] == 3


@pytest.mark.parametrize("period", ["2020-13", "2020-Q5", "20-01", "2020/01", "Q1-2020"])
def test_bad_periods_are_rejected(period):
    result = _run([("GM0363", "2020-01", "u", "1"), ("GM0363", period, "u", "1")])
    rej = result.rejects["labour_market"]
    assert rej["rule"].tolist() == ["invalid_period:period"] and rej["period"].tolist() == [period]
