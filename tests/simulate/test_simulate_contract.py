"""The synthetic country's tables obey the data contract and look like a user's files
(small preset, project seed); the same seed gives identical tables."""

import json
import re
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from impact.simulate import (REFERENCE_FILES, SimulateParams, load_reference, simulate_country,
                             write_country)

REF_DIR = Path(__file__).resolve().parents[2] / "data" / "reference"
SEED = 20261124
COLUMNS = {
    "municipalities": ["municipality", "name", "region", "province", "population"],
    "trajectories": ["spell_id", "client_id", "municipality", "caseworker_id", "team_id", "start_date",
                     "end_date", "exit_reason", "birth_year", "sex", "education_level", "household",
                     "prior_benefit_months", "ladder_step"],
    "caseworker_assignments": ["spell_id", "caseworker_id", "team_id", "start_date", "end_date"],
    "quality": ["unit_type", "unit_id", "municipality", "date", "instrument", "score", "rater_id"],
    "adoption": ["municipality", "team_id", "programme", "adoption_date"],
    "labour_market": ["area", "period", "indicator", "value"],
    "shocks": ["shock_id", "municipality", "date", "type", "jobs", "description"],
    "progress": ["spell_id", "date", "measure", "value"],
}
ISO = r"^\d{4}-\d{2}-\d{2}$"


@pytest.fixture(scope="module")
def reference():
    return load_reference({Path(f).stem: pd.read_csv(REF_DIR / f, dtype=str) for f in REFERENCE_FILES})


@pytest.fixture(scope="module")
def params():
    return SimulateParams.from_dict({"preset": "small"})


@pytest.fixture(scope="module")
def country(reference, params):
    return simulate_country(params, reference, seed=SEED)


@pytest.fixture(scope="module")
def tables(country):
    return country.tables


def _d(s):
    return pd.to_datetime(s, format="%Y-%m-%d")


def test_tables_and_columns(tables):
    assert set(tables) == set(COLUMNS)
    for name, cols in COLUMNS.items():
        assert list(tables[name].columns) == cols, name
        assert len(tables[name]) > 0, name


def test_municipalities_are_real(tables, reference):
    m = tables["municipalities"]
    assert 6 <= len(m) <= 12 and m["municipality"].is_unique
    assert m["municipality"].str.fullmatch(r"GM\d{4}").all() and (m["region"] == "AM19").all()
    real = reference.municipalities.set_index("municipality")
    assert (m.set_index("municipality")["name"] == real.loc[m["municipality"], "name"]).all()
    assert "Leiden" in set(m["name"]) and (m["population"] > 1000).all()


def test_trajectories_values(tables, params):
    t = tables["trajectories"]
    assert t["spell_id"].is_unique and t["spell_id"].str.fullmatch(r"S\d{8}").all()
    assert t["client_id"].str.fullmatch(r"C\d{7}").all()
    assert t["caseworker_id"].str.fullmatch(r"KM\d{3,}").all() and t["team_id"].str.fullmatch(r"T\d{2}").all()
    assert t["municipality"].isin(tables["municipalities"]["municipality"]).all()
    assert t["start_date"].str.match(ISO).all()
    closed = t["end_date"].notna()
    assert t.loc[closed, "end_date"].str.match(ISO).all()
    assert (closed == t["exit_reason"].notna()).all()
    assert set(t["exit_reason"].dropna()) == {"work", "education", "moved", "other"}
    assert (_d(t.loc[closed, "end_date"]) >= _d(t.loc[closed, "start_date"])).all()
    assert t["birth_year"].between(1900, 2010).all()
    assert set(t["sex"]) <= {"F", "M", "X", "unknown"}
    assert set(t["education_level"]) <= {"low", "medium", "high", "unknown"}
    assert set(t["household"]) <= {"single", "single_parent", "couple", "couple_children", "other", "unknown"}
    assert t["prior_benefit_months"].between(0, 60).all()
    ladder = t["ladder_step"].dropna()
    assert ladder.between(1, 6).all() and set(ladder) == {1, 2, 3, 4, 5, 6}
    assert 0 < t["ladder_step"].isna().mean() < 0.1
    # every spell is at risk in the window; some left-truncated, some open, some repeat clients
    start = pd.Timestamp(params.start + "-01")
    assert (t["end_date"].isna() | (_d(t["end_date"]) >= start)).all()
    assert (_d(t["start_date"]) < start).mean() > 0.2
    assert 0.2 < t["end_date"].isna().mean() < 0.8
    assert t["client_id"].duplicated().mean() > 0.03


def test_spells_of_a_client_never_overlap_and_are_more_than_62_days_apart(tables):
    t = tables["trajectories"].sort_values(["client_id", "start_date"])
    same = t["client_id"].eq(t["client_id"].shift())
    prev_end = _d(t["end_date"].shift())
    gap = (_d(t["start_date"]) - prev_end).dt.days[same]
    assert gap.notna().all() and gap.min() > 62


def test_assignments_are_a_full_history_from_the_spell_start(tables):
    a, t = tables["caseworker_assignments"], tables["trajectories"].set_index("spell_id")
    assert a["spell_id"].isin(t.index).all()
    assert a["caseworker_id"].str.fullmatch(r"KM\d{3,}").all()
    g = a.groupby("spell_id", sort=False)
    first, last = g.head(1).set_index("spell_id"), g.tail(1)
    assert (first["start_date"] == t.loc[first.index, "start_date"]).all()
    assert (first["caseworker_id"] == t.loc[first.index, "caseworker_id"]).all()
    assert last["end_date"].isna().all() and a["end_date"].notna().sum() == len(a) - len(last)
    nxt_start = _d(a.groupby("spell_id")["start_date"].shift(-1))
    end = _d(a["end_date"])
    assert ((nxt_start - end).dt.days[end.notna()] == 1).all()  # contiguous, no overlap
    later = ~a.index.isin(first.index) & a.duplicated("spell_id")
    assert (_d(a.loc[later, "start_date"]).dt.day == 1).all()   # changes on the 1st of a month
    spell_end = _d(t.loc[a["spell_id"], "end_date"]).to_numpy()
    ok = pd.isna(spell_end) | (_d(a["start_date"]).to_numpy() <= spell_end)
    assert ok.all()
    # the caseworker changes at every boundary
    prev_cw = a.groupby("spell_id")["caseworker_id"].shift()
    assert (prev_cw.dropna() != a.loc[prev_cw.notna(), "caseworker_id"]).all()


def test_teams_and_caseloads(tables):
    t, a = tables["trajectories"], tables["caseworker_assignments"]
    month = pd.Timestamp("2020-01-01")
    # caseworker of each spell open on that day
    open_ = t[(_d(t["start_date"]) <= month) & (t["end_date"].isna() | (_d(t["end_date"]) >= month))]
    cur = a[(_d(a["start_date"]) <= month) & (a["end_date"].isna() | (_d(a["end_date"]) >= month))]
    cw = open_.set_index("spell_id")[["municipality", "caseworker_id", "team_id"]]
    cw.update(cur.set_index("spell_id")[["caseworker_id", "team_id"]])
    load = cw.groupby(["municipality", "caseworker_id"]).size()  # positions scale with the stock
    assert 60 < load.mean() < 110
    sizes = cw.groupby(["municipality", "team_id"])["caseworker_id"].nunique()
    big = sizes[sizes.index.get_level_values(0).isin(load.groupby(level=0).size()[lambda s: s >= 8].index)]
    assert big.between(3, 10).all() and big.median() >= 5


def test_quality_measurements(tables):
    q, t = tables["quality"], tables["trajectories"]
    assert set(q["unit_type"]) == {"caseworker", "team", "municipality"}
    assert q["date"].str.match(ISO).all()
    fa = q[q["instrument"] == "fidelity_audit"]
    assert (fa["unit_type"] == "caseworker").all() and fa["score"].between(0, 10).all()
    sessions = fa.groupby(["municipality", "unit_id", "date"])["rater_id"]
    assert (sessions.size() == 2).all() and (sessions.nunique() == 2).all()
    per_cw = fa.groupby(["municipality", "unit_id"])["date"].nunique()
    # about every audit_interval_months (3): the median gap between a caseworker's sessions
    # is about 91 days, and a caseworker in post from the first recorded quarter to the
    # last has about 20 sessions (4 years + the year before). (The median over all
    # caseworkers, ~10, mostly counts turnover and varies from 9 to 11 with the seed.)
    dates = fa.drop_duplicates(["municipality", "unit_id", "date"]).assign(d=lambda x: _d(x["date"]))
    g = dates.sort_values("d").groupby(["municipality", "unit_id"])["d"]
    gap = g.diff().dt.days.dropna()
    assert 75 <= gap.median() <= 105
    first, last = g.min(), g.max()
    full = (first < pd.Timestamp("2017-04-01")) & (last >= pd.Timestamp("2021-10-01"))
    assert full.sum() >= 5 and 17 <= g.size()[full].median() <= 23
    known = set(zip(t["municipality"], t["caseworker_id"]))
    assert set(per_cw.index) & known
    mw = q[q["instrument"] == "methodical_working"]
    assert (mw["unit_type"] == "team").all() and mw["score"].between(1, 5).all() and mw["rater_id"].isna().all()
    dr = q[q["instrument"] == "dossier_review"]
    assert (dr["unit_id"] == dr["municipality"]).all()


def test_adoption_shocks_labour_market(tables):
    codes = set(tables["municipalities"]["municipality"])
    ad = tables["adoption"]
    gm = ad[ad["programme"] == "gewogen_maatwerk"]
    assert gm["municipality"].is_unique and set(gm["municipality"]) <= codes
    assert 0.3 <= len(gm) / len(codes) <= 0.7 and ad["team_id"].isna().all()
    assert ad["adoption_date"].str.match(ISO).all()
    sh = tables["shocks"]
    assert sh["shock_id"].is_unique and set(sh["municipality"]) <= codes
    assert set(sh["type"]) <= {"business_park_opening", "plant_closure", "reorganisation"}
    assert (sh["type"] == "business_park_opening").sum() >= 2
    assert str(sh["jobs"].dtype) == "Int64" and sh.loc[sh["type"] != "reorganisation", "jobs"].gt(0).all()
    lm = tables["labour_market"]
    assert not lm.duplicated(["area", "period", "indicator"]).any()
    kinds = lm["period"].map(lambda p: "Y" if re.fullmatch(r"\d{4}", p) else "Q" if re.fullmatch(
        r"\d{4}-Q[1-4]", p) else "M" if re.fullmatch(r"\d{4}-\d{2}", p) else "?")
    assert set(kinds) == {"Y", "Q", "M"}
    assert set(lm.loc[kinds == "Y", "area"]) == codes
    months = lm.loc[(kinds == "M") & (lm["area"] == "AM19"), "period"]
    assert {f"{y}-{m:02d}" for y in range(2018, 2022) for m in range(1, 13)} <= set(months)
    assert lm["value"].between(0.3, 20).all()


def test_rows_are_sorted(tables):
    assert tables["trajectories"]["spell_id"].is_monotonic_increasing
    q = tables["quality"]
    assert q.equals(q.sort_values(["municipality", "unit_type", "unit_id", "date", "instrument", "rater_id"],
                                  ignore_index=True, na_position="first"))


def test_same_seed_same_tables_other_seed_other_tables(reference, params, country):
    again = simulate_country(params, reference, seed=SEED)
    for name in country.tables:
        pd.testing.assert_frame_equal(country.tables[name], again.tables[name], check_exact=True)
    assert json.dumps(country.truth, sort_keys=True) == json.dumps(again.truth, sort_keys=True)
    other = simulate_country(params, reference, seed=SEED + 1)
    assert not other.tables["trajectories"].equals(country.tables["trajectories"])
    assert other.truth["quality_effect_pp"] != country.truth["quality_effect_pp"]
    assert np.isclose(other.truth["quality_effect_pp"], country.truth["quality_effect_pp"], rtol=0.2)


def test_written_one_table_at_a_time(reference, params, country):
    """``write_country`` (the stage's way) hands over the same tables in contract order,
    each made only after the one before was let go of, and returns the same truth."""
    alive, names = [], []

    def write(name, table):
        assert all(ref() is None for ref in alive), f"a table before {name} is still held"
        alive.append(weakref.ref(table))
        names.append(name)
        pd.testing.assert_frame_equal(table, country.tables[name], check_exact=True)

    truth = write_country(params, reference, SEED, write)
    assert names == list(country.tables) == list(COLUMNS)
    assert json.dumps(truth, sort_keys=True) == json.dumps(country.truth, sort_keys=True)
