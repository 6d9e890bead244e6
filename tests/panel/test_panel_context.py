"""Labour market, adoption and shocks joined to person-months.

Window throughout: 2016-01 .. 2016-12.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from panel_factory import (adoption, assignments, base_tables, frame, labour_market,
                           municipalities, pm, run, shocks, trajectories)


def _spells(*specs):
    """Open spells from 2016-01 for (spell_id, municipality, team_key)."""
    return trajectories(*[{"spell_id": s, "municipality": m, "team_key": t,
                           "start_date": "2016-01-01"} for s, m, t in specs])


def test_labour_market_muni_and_region_monthly():
    lm = labour_market(("GM0001", "2016-02-01", "unemployment_rate", 5.5),
                       ("AM01", "2016-02-01", "unemployment_rate", 6.5),
                       ("AM01", "2016-03-01", "vacancy_rate", 1.25),
                       ("AM01", "2016-03-01", "jobs", 99.0))
    frames = base_tables(_spells(("s", "GM0001", None)), labour_market=lm)
    df = pm(frames)
    feb, mar = df.iloc[1], df.iloc[2]
    assert (feb.lm_unemployment_rate_muni, feb.lm_unemployment_rate_region) == (5.5, 6.5)
    assert pd.isna(mar.lm_unemployment_rate_muni) and mar.lm_vacancy_rate_region == 1.25
    assert "lm_jobs_muni" not in df.columns
    assert df.region.unique().tolist() == ["AM01"]
    df2 = pm(frames, indicators=["jobs", "not_there"])
    assert df2.lm_jobs_region.iloc[2] == 99.0 and df2.lm_not_there_muni.isna().all()
    assert not any(c.startswith("lm_unemployment") for c in df2.columns)


def test_quarterly_and_yearly_periods():
    """A raw ``period`` column is expanded: Qn to its 3 months, a year to 12."""
    cols = ["area", "period", "indicator", "value"]
    raw = frame([
        {"area": "GM0001", "period": "2016-Q2", "indicator": "unemployment_rate", "value": 4.0},
        {"area": "GM0001", "period": "2016-05", "indicator": "unemployment_rate", "value": 4.5},
        {"area": "AM01", "period": "2016", "indicator": "unemployment_rate", "value": 7.0},
        {"area": "AM01", "period": "2015-Q4", "indicator": "unemployment_rate", "value": 1.0},
    ], cols)
    frames = base_tables(_spells(("s", "GM0001", None)), labour_market=raw)
    df = pm(frames)
    muni = df.lm_unemployment_rate_muni.tolist()
    assert [x for x in muni if pd.notna(x)] == [4.0, 4.5, 4.0]  # the month value wins in May
    assert df.lm_unemployment_rate_muni.notna().tolist() == [False] * 3 + [True] * 3 + [False] * 6
    assert df.lm_unemployment_rate_region.tolist() == [7.0] * 12
    # the same values expanded to months (the validated form) give the same columns
    expanded = labour_market(
        *[("GM0001", f"2016-{m:02d}-01", "unemployment_rate", 4.5 if m == 5 else 4.0)
          for m in (4, 5, 6)],
        *[("AM01", f"2016-{m:02d}-01", "unemployment_rate", 7.0) for m in range(1, 13)])
    df_month = pm(base_tables(_spells(("s", "GM0001", None)), labour_market=expanded))
    pd.testing.assert_frame_equal(df, df_month)


def test_team_adoption_wins_over_municipality():
    traj = _spells(("in_team", "GM0001", "GM0001:t1"), ("other_team", "GM0001", "GM0001:t2"),
                   ("no_team", "GM0001", None), ("elsewhere", "GM0002", "GM0002:t1"),
                   ("switcher", "GM0001", "GM0001:t2"))
    adopt = adoption(("GM0001", None, "gewogen_maatwerk", "2016-06-15"),
                     ("GM0001", "GM0001:t1", "gewogen_maatwerk", "2016-03-01"),
                     ("GM0002", None, "gilde", "2016-01-01"))
    asg = assignments(("switcher", "GM0001:k1", "GM0001:t1", "2016-10-01", None))
    frames = base_tables(traj, adoption=adopt, caseworker_assignments=asg,
                         municipalities=municipalities(("GM0001", "AM01"), ("GM0002", "AM01")))
    res = run(frames)
    df = res.person_months.df()

    def col(spell, name):
        return df[df.spell_id == spell][name].tolist()

    assert set(col("in_team", "adoption_month")) == {pd.Timestamp("2016-03-01")}
    assert col("in_team", "adopted") == [0, 0] + [1] * 10
    assert set(col("other_team", "adoption_month")) == {pd.Timestamp("2016-06-01")}
    assert col("no_team", "adopted") == [0] * 5 + [1] * 7
    assert col("elsewhere", "adoption_month") == [pd.NaT] * 12 and set(col("elsewhere", "adopted")) == {0}
    # the team of the month decides: t2 until September, t1 (adopted in March) after
    assert col("switcher", "adopted") == [0] * 5 + [1] * 7
    assert col("switcher", "adoption_month")[-1] == pd.Timestamp("2016-03-01")
    cells = res.cells.df()
    g1 = cells[cells.municipality == "GM0001"]
    assert set(g1.adoption_month) == {pd.Timestamp("2016-06-01")}  # municipality-wide only
    assert g1.adopted.tolist() == [0] * 5 + [1] * 7
    assert g1.adopted_share.tolist()[2] == 1 / 4  # March: only in_team has adopted
    g2 = cells[cells.municipality == "GM0002"]
    assert g2.adoption_month.isna().all() and set(g2.adopted) == {0}


def test_shocks_nearest_event_and_ties():
    sh = shocks(("A", "GM0001", "2016-03-10", "business_park_opening", 100, ""),
                ("B", "GM0001", "2016-09-20", "business_park_opening", 100, ""),
                ("C", "GM0001", "2016-06-01", "plant_closure", 100, ""),
                ("D", "GM0002", "2016-06-01", "business_park_opening", 100, ""))
    frames = base_tables(_spells(("s", "GM0001", None)), shocks=sh)
    df = pm(frames, shock_event_window=(-12, 24))
    # Jan, Feb: A is coming; Mar..Aug: A is the most recent past opening (its post-period
    # is not relabelled as B's pre-period); Sep..Dec: B
    assert df.shock_id.tolist() == ["A"] * 8 + ["B"] * 4
    assert df.shock_event_time.tolist() == [-2, -1, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3]
    narrow = pm(frames, shock_event_window=(0, 2))
    assert narrow.shock_id.fillna("-").tolist() == ["-", "-", "A", "A", "A", "-", "-", "-", "B", "B", "B", "-"]
    closures = pm(frames, shock_type="plant_closure", shock_event_window=(0, 0))
    assert closures.shock_id.fillna("-").tolist() == ["-"] * 5 + ["C"] + ["-"] * 6


def test_shocks_same_month_later_date_then_id():
    sh = shocks(("early", "GM0001", "2016-04-01", "business_park_opening", None, ""),
                ("late", "GM0001", "2016-04-28", "business_park_opening", None, ""),
                ("z", "GM0001", "2016-08-05", "business_park_opening", None, ""),
                ("y", "GM0001", "2016-08-05", "business_park_opening", None, ""))
    df = pm(base_tables(_spells(("s", "GM0001", None)), shocks=sh), shock_event_window=(-1, 1))
    assert df.shock_id.fillna("-").tolist() == ["-", "-", "late", "late", "late", "-", "y", "y", "y",
                                                "-", "-", "-"]


def test_optional_tables_absent_columns_present_and_null():
    res = run(base_tables(_spells(("s", "GM0001", "GM0001:t1"))))
    df, cells = res.person_months.df(), res.cells.df()
    for c in ("adoption_month", "adopted", "shock_id", "shock_event_time", "quality_score",
              "quality_a", "quality_b", "quality_n"):
        assert c in df.columns and df[c].isna().all(), c
    for c in ("adoption_month", "adopted", "adopted_share", "mean_quality_score", "shock_id"):
        assert c in cells.columns and cells[c].isna().all(), c
    assert res.summary["tables_present"] == []
    assert df.month.iloc[0].date() == date(2016, 1, 1)
