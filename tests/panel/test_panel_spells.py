"""At-risk months, exits, duration and merge-gap joining on hand-built spells.

Window throughout: 2016-01 .. 2016-12.
"""

from __future__ import annotations

from datetime import date

import pytest

from panel_factory import base_tables, pm, run, trajectories


def months(df, spell_id):
    sub = df[df.spell_id == spell_id]
    return [d.strftime("%Y-%m") for d in sub.month]


def test_left_truncated_open_spell_is_at_risk_to_window_end():
    df = pm(base_tables(trajectories({"spell_id": "a", "start_date": "2015-10-15"})))
    assert months(df, "a") == [f"2016-{m:02d}" for m in range(1, 13)]
    assert df.duration.tolist() == list(range(3, 15))  # from the true start, 2015-10
    assert set(df.left_truncated) == {1}
    assert df.exit_work.sum() == 0 and df.exit_any.sum() == 0


def test_open_spell_inside_window_and_age():
    df = pm(base_tables(trajectories(
        {"spell_id": "a", "start_date": "2016-05-31", "birth_year": 1990})))
    assert months(df, "a") == [f"2016-{m:02d}" for m in range(5, 13)]
    assert df.duration.tolist() == list(range(0, 8))
    assert set(df.left_truncated) == {0} and set(df.age) == {26}
    assert df.t.iloc[0] == 2016 * 12 + 4 and df.month.iloc[0].date() == date(2016, 5, 1)


def test_spells_entirely_outside_the_window_give_no_rows():
    frames = base_tables(trajectories(
        {"spell_id": "before", "start_date": "2015-01-01", "end_date": "2015-12-31",
         "exit_reason": "work"},
        {"spell_id": "after", "start_date": "2017-01-01"},
        {"spell_id": "inside", "start_date": "2016-02-01", "end_date": "2016-02-01",
         "exit_reason": "work"},
    ))
    res = run(frames)
    df = res.person_months.df()
    assert df.spell_id.tolist() == ["inside"]
    assert res.summary["spells"] == 1 and res.summary["spells_outside_window"] == 2


def test_exit_in_start_month():
    df = pm(base_tables(trajectories(
        {"spell_id": "w", "start_date": "2016-03-02", "end_date": "2016-03-28", "exit_reason": "work"},
        {"spell_id": "o", "start_date": "2016-03-02", "end_date": "2016-03-02", "exit_reason": "moved"},
    )))
    w, o = df[df.spell_id == "w"].iloc[0], df[df.spell_id == "o"].iloc[0]
    assert len(df) == 2 and w.duration == 0 and o.duration == 0
    assert (w.exit_work, w.exit_any, o.exit_work, o.exit_any) == (1, 1, 0, 1)


def test_exit_only_in_end_month_and_only_inside_window():
    df = pm(base_tables(trajectories(
        {"spell_id": "late", "start_date": "2016-06-10", "end_date": "2017-02-01", "exit_reason": "work"},
        {"spell_id": "last", "start_date": "2016-11-10", "end_date": "2016-12-31", "exit_reason": "work"},
        {"spell_id": "first", "start_date": "2015-06-01", "end_date": "2016-01-10", "exit_reason": "work"},
    )))
    assert months(df, "late")[-1] == "2016-12" and df[df.spell_id == "late"].exit_any.sum() == 0
    last = df[df.spell_id == "last"]
    assert last.exit_work.tolist() == [0, 1]
    first = df[df.spell_id == "first"]
    assert first.exit_work.tolist() == [1] and first.duration.tolist() == [7]


def _two_spells(gap_days: int, **second):
    """Client c: spell a ends 2016-03-10, spell b starts gap_days unpaid days later."""
    start_b = date(2016, 3, 10).toordinal() + 1 + gap_days
    return trajectories(
        {"spell_id": "a", "client_id": "c", "start_date": "2015-12-05", "end_date": "2016-03-10",
         "exit_reason": "other", "birth_year": 1970, "caseworker_key": "GM0001:k1"},
        {"spell_id": "b", "client_id": "c", "start_date": date.fromordinal(start_b),
         "end_date": "2016-09-30", "exit_reason": "work", "birth_year": 1999,
         "caseworker_key": "GM0001:k2", **second},
    )


def test_gap_just_below_merge_gap_days_joins():
    res = run(base_tables(_two_spells(30)), merge_gap_days=31)
    df = res.person_months.df()
    assert set(df.spell_id) == {"a"}  # the first spell's id
    assert months(df, "a") == [f"2016-{m:02d}" for m in range(1, 10)]
    assert df.duration.tolist() == list(range(1, 10))  # from a's start, 2015-12
    assert set(df.age) == {2016 - 1970}  # a's covariates
    assert df.exit_work.tolist() == [0] * 8 + [1]  # b's end and exit reason
    assert df.exit_any.sum() == 1
    # caseworker of the month: b's from the month b starts (2016-04)
    assert df.caseworker_key.tolist() == ["GM0001:k1"] * 3 + ["GM0001:k2"] * 6
    assert res.summary["merged_spells"] == 1 and res.summary["spells"] == 1


def test_gap_equal_to_merge_gap_days_does_not_join():
    res = run(base_tables(_two_spells(31)), merge_gap_days=31)
    df = res.person_months.df()
    assert months(df, "a") == ["2016-01", "2016-02", "2016-03"]
    assert df[df.spell_id == "a"].exit_any.tolist() == [0, 0, 1]
    assert months(df, "b")[0] == "2016-04" and df[df.spell_id == "b"].duration.iloc[0] == 0
    assert res.summary["merged_spells"] == 0 and res.summary["spells"] == 2


@pytest.mark.parametrize("merge_gap_days, joined", [(0, False), (1, True)])
def test_contiguous_spells_and_merge_off(merge_gap_days, joined):
    res = run(base_tables(_two_spells(0)), merge_gap_days=merge_gap_days)
    assert res.summary["merged_spells"] == int(joined)
    df = res.person_months.df()
    # not joined: a and b are both at risk in March? b starts 2016-03-11, so both are
    assert (df.month.dt.month == 3).sum() == (1 if joined else 2)


def test_chain_of_three_spells_counts_two_joins():
    traj = trajectories(
        {"spell_id": "x1", "client_id": "c", "start_date": "2016-01-05", "end_date": "2016-02-01",
         "exit_reason": "other"},
        {"spell_id": "x2", "client_id": "c", "start_date": "2016-02-10", "end_date": "2016-04-01",
         "exit_reason": "other"},
        {"spell_id": "x3", "client_id": "c", "start_date": "2016-04-20", "end_date": None},
        {"spell_id": "y", "client_id": "d", "start_date": "2016-04-20", "end_date": None},
    )
    res = run(base_tables(traj))
    df = res.person_months.df()
    assert sorted(set(df.spell_id)) == ["x1", "y"]
    assert len(df[df.spell_id == "x1"]) == 12 and df.exit_any.sum() == 0
    s = res.summary
    assert (s["input_spells"], s["spells_after_merge"], s["merged_spells"]) == (4, 2, 2)
    assert s["clients"] == 2 and s["censored_spells"] == 2


def test_output_is_ordered_by_spell_and_month():
    traj = trajectories(*[{"spell_id": f"s{i}", "start_date": f"2016-{12 - i:02d}-01"}
                          for i in range(5)])
    df = pm(base_tables(traj))
    assert list(zip(df.spell_id, df.t)) == sorted(zip(df.spell_id, df.t))
