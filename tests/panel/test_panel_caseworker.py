"""Caseworker of the month (assignments), intake caseworker and quality near the month.

Window throughout: 2016-01 .. 2016-12.
"""

from __future__ import annotations

import pytest

from panel_factory import assignments, base_tables, pm, quality, run, trajectories

K0, K1, K2, K9 = (f"GM0001:k{i}" for i in (0, 1, 2, 9))


def _year_spell(**kw):
    return trajectories({"spell_id": "s", "start_date": "2016-01-01", "caseworker_key": K0,
                         "team_key": "GM0001:t0", **kw})


def test_assignments_override_later_start_wins():
    asg = assignments(
        ("s", K1, "GM0001:t1", "2016-03-15", "2016-05-02"),
        ("s", K2, None, "2016-05-01", None),  # open: until the spell ends
    )
    res = run(base_tables(_year_spell(), caseworker_assignments=asg))
    df = res.person_months.df()
    assert df.caseworker_key.tolist() == [K0, K0, K1, K1] + [K2] * 8  # May: K2 starts later
    # a NULL team in the winning assignment keeps the trajectory's team
    assert df.team_key.tolist() == ["GM0001:t0"] * 2 + ["GM0001:t1"] * 2 + ["GM0001:t0"] * 8
    assert res.summary["assignments_unmatched"] == 0


def test_open_assignment_ends_with_spell_and_unknown_spell_is_ignored():
    traj = _year_spell(end_date="2016-04-30", exit_reason="work")
    asg = assignments(("s", K1, None, "2015-11-01", None), ("nope", K2, None, "2016-01-01", None))
    res = run(base_tables(traj, caseworker_assignments=asg))
    df = res.person_months.df()
    assert df.caseworker_key.tolist() == [K1] * 4
    assert res.summary["assignments_unmatched"] == 1


def test_assignment_of_a_joined_spell_applies_to_the_merged_spell():
    traj = trajectories(
        {"spell_id": "a", "client_id": "c", "start_date": "2016-01-01", "end_date": "2016-03-10",
         "exit_reason": "other", "caseworker_key": K0},
        {"spell_id": "b", "client_id": "c", "start_date": "2016-03-20", "caseworker_key": K1},
    )
    asg = assignments(("b", K2, None, "2016-06-01", "2016-07-31"))
    df = pm(base_tables(traj, caseworker_assignments=asg))
    assert set(df.spell_id) == {"a"}
    assert df.caseworker_key.tolist() == [K0, K0, K1, K1, K1, K2, K2] + [K1] * 5
    assert set(df.intake_caseworker_key) == {K0}


def test_intake_caseworker_before_the_window():
    traj = trajectories({"spell_id": "s", "start_date": "2015-06-01", "caseworker_key": K0})
    asg = assignments(("s", K1, None, "2015-06-20", "2015-12-31"), ("s", K2, None, "2016-01-01", None))
    df = pm(base_tables(traj, caseworker_assignments=asg))
    assert set(df.caseworker_key) == {K2} and set(df.intake_caseworker_key) == {K1}


def test_quality_window_edges():
    q = quality((K0, "2016-03-31", 4.0), (K0, "2016-08-01", 2.0))
    df = pm(base_tables(_year_spell(), quality=q), quality_window_months=2)
    # March counts for Jan..May, August for Jun..Oct
    assert df.quality_score.tolist()[:5] == [4.0] * 5
    assert df.quality_score.tolist()[5:10] == [2.0] * 5
    assert df.quality_score.iloc[10:].isna().all()
    assert df.quality_n.tolist() == [1] * 10 + [0, 0]
    df0 = pm(base_tables(_year_spell(), quality=q), quality_window_months=0)
    assert df0.quality_n.tolist() == [0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0]


def test_quality_mean_and_odd_even_sessions():
    q = quality(
        (K0, "2015-01-10", 9.0),  # session 1 (before the window, still numbered)
        (K0, "2016-01-10", 2.0, "r1"), (K0, "2016-01-10", 4.0, "r2"),  # session 2: two raters
        (K0, "2016-02-10", 5.0),  # session 3
        (K0, "2016-03-10", 1.0),  # session 4
        (K0, "2016-02-10", 100.0, "r1", "team"),  # another unit type
        (K0, "2016-02-10", 100.0, "r1", "caseworker", "methodical_working"),  # instrument
        (K9, "2016-02-10", 100.0),  # another caseworker
    )
    df = pm(base_tables(_year_spell(), quality=q), quality_window_months=1)
    feb = df[df.month.dt.month == 2].iloc[0]
    assert feb.quality_score == pytest.approx((2 + 4 + 5 + 1) / 4)
    assert feb.quality_b == pytest.approx((2 + 4 + 1) / 3)  # sessions 2 and 4
    assert feb.quality_a == pytest.approx(5.0)  # session 3
    assert feb.quality_n == 4
    jan = df[df.month.dt.month == 1].iloc[0]
    assert (jan.quality_n, jan.quality_a, jan.quality_b) == (3, 5.0, 3.0)


def test_quality_follows_the_caseworker_of_the_month():
    asg = assignments(("s", K1, None, "2016-07-01", None))
    q = quality((K0, "2016-06-15", 3.0), (K1, "2016-06-15", 5.0))
    df = pm(base_tables(_year_spell(), caseworker_assignments=asg, quality=q),
            quality_window_months=1)
    assert df.quality_score.tolist()[4:7] == [3.0, 3.0, 5.0]
    assert df.intake_quality_score.tolist()[4:7] == [3.0, 3.0, 3.0]


def test_other_instrument_from_params():
    q = quality((K0, "2016-01-15", 3.0, "r", "caseworker", "methodical_working"))
    df = pm(base_tables(_year_spell(), quality=q), quality_instrument="methodical_working",
            quality_window_months=0)
    assert df.quality_score.tolist()[0] == 3.0 and df.quality_n.sum() == 1


def test_no_quality_table_gives_null_columns():
    res = run(base_tables(_year_spell()))
    df = res.person_months.df()
    for col in ("quality_score", "quality_a", "quality_b", "quality_n", "intake_quality_score"):
        assert df[col].isna().all(), col
    assert res.summary["measured_share"] is None
