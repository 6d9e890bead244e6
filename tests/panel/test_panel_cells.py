"""Cells aggregate person-months exactly; summary; determinism; input errors."""

from __future__ import annotations

import hashlib
import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from impact.panel import PanelInputError, PanelParams, build_panel
from panel_factory import (assignments, base_tables, make_params, municipalities,
                           random_tables, run, trajectories)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cells_aggregate_exactly_to_person_months(seed):
    frames, params = random_tables(seed)
    res = run(frames, **params)
    df, cells = res.person_months.df(), res.cells.df()
    p = make_params(params)
    # a complete grid: every municipality with person-months x every month of the window
    assert len(cells) == df.municipality.nunique() * p.n_months
    assert not cells.duplicated(["municipality", "t"]).any()
    for col in ("person_months", "exits_work", "exits_any", "measured_person_months"):
        assert cells[col].dtype.kind == "i"
    assert cells.person_months.sum() == len(df)
    assert cells.exits_work.sum() == df.exit_work.sum()
    assert cells.exits_any.sum() == df.exit_any.sum()

    g = df.assign(
        female=df.sex.eq("F"), dur_12_23=df.duration.between(12, 23),
        dur_60p=df.duration.ge(60), edu_high=df.education_level.eq("high"),
    ).groupby(["municipality", "t"])
    want = pd.DataFrame({
        "person_months": g.size(), "exits_work": g.exit_work.sum(), "clients": g.client_id.nunique(),
        "mean_age": g.age.mean(), "share_female": g.female.mean(),
        "share_edu_high": g.edu_high.mean(), "share_dur_12_23": g.dur_12_23.mean(),
        "share_dur_60p": g.dur_60p.mean(), "share_left_truncated": g.left_truncated.mean(),
        "mean_prior_benefit_months": g.prior_benefit_months.mean(),
        "mean_quality_score": g.quality_score.mean(),
        "measured_person_months": g.quality_score.count(),
        "adopted_share": g.adopted.mean(),
    }).reset_index()
    got = cells[cells.person_months > 0].reset_index(drop=True)[want.columns]
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-12, atol=1e-12)
    empty = cells[cells.person_months == 0]
    assert empty.mean_age.isna().all() and (empty.exits_work == 0).all()
    # shares of each duration band add up to one
    bands = [c for c in cells.columns if c.startswith("share_dur_")]
    assert np.allclose(got_bands := cells.loc[cells.person_months > 0, bands].sum(axis=1), 1.0), got_bands
    # municipality-level context equals the person-months' in every cell
    lm = [c for c in df.columns if c.startswith("lm_")] + ["region", "shock_id", "shock_event_time"]
    merged = df[["municipality", "t", *lm]].drop_duplicates().merge(
        cells[["municipality", "t", *lm]], on=["municipality", "t"], suffixes=("", "_c"))
    assert len(merged) == len(df[["municipality", "t"]].drop_duplicates())
    for c in lm:
        assert merged[c].equals(merged[c + "_c"]), c


def _clients(res) -> pd.DataFrame:
    """(cells' clients, the person-months' distinct clients, their rows) per cell."""
    df, cells = res.person_months.df(), res.cells.df()
    g = df.groupby(["municipality", "t"])["client_id"]
    want = pd.DataFrame({"want": g.nunique(), "rows": g.size()}).reset_index()
    both = cells[["municipality", "t", "clients"]].merge(
        want, on=["municipality", "t"], how="left")
    return both.fillna({"want": 0, "rows": 0})


def test_clients_of_a_client_twice_in_a_month():
    """A client twice in one municipality-month counts once (cells' ``clients`` come from
    the pieces, ``cells._clients_sql``): two spells the panel does not join that meet in a
    month; also two overlapping spells and spells cut into pieces by caseworker
    assignments. A client who moves within a month counts once in each municipality."""
    def spell(sid, start, end=None, reason=None, **more):
        """A spell of client ``sid[0].upper()`` (open without ``end``)."""
        return {"spell_id": sid, "client_id": sid[0].upper(), "start_date": start,
                "end_date": end, "exit_reason": reason, **more}

    traj = trajectories(
        spell("a1", "2016-01-04", "2016-03-10", "other"),
        spell("a2", "2016-03-20", "2016-06-01", "work"),
        spell("b1", "2016-01-01", "2016-12-20", "other"),
        spell("b2", "2016-05-01", "2016-08-31", "other"),
        spell("c1", "2016-01-01", "2016-04-05", "moved"),
        spell("c2", "2016-04-20", "2016-09-01", "work", municipality="GM0002"),
        spell("d1", "2015-06-01"),
        # an open spell holding two later spells apart from each other (a run must
        # reach past every earlier piece, not only the one before)
        spell("e1", "2016-01-04"),
        spell("e2", "2016-03-02", "2016-04-10", "other"),
        spell("e3", "2016-06-02", "2016-07-10", "work"),
        # two pieces with the same months (March), after a gap
        spell("f1", "2016-01-04", "2016-02-10", "other"),
        spell("f2", "2016-03-01", "2016-03-05", "other"),
        spell("f3", "2016-03-20", "2016-03-25", "work"),
    )
    frames = base_tables(
        traj, municipalities=municipalities(("GM0001", "AM01"), ("GM0002", "AM01")),
        caseworker_assignments=assignments(
            ("d1", "k1", "t1", "2016-03-01", "2016-05-31"),
            ("b1", "k2", "t1", "2016-07-01", None)))
    res = run(frames, merge_gap_days=0)
    both = _clients(res)
    assert (both["clients"] == both["want"]).all(), both[both["clients"] != both["want"]]
    # the cases are there: more rows than clients in a cell (A in March; the panel cuts
    # B's overlapping spells apart), and C in two municipalities
    assert (both["rows"] > both["want"]).any()
    april = both[both["t"] == 2016 * 12 + 3].set_index("municipality")["clients"]
    assert april.to_dict() == {"GM0001": 5, "GM0002": 1}   # A to E, E once


@pytest.mark.parametrize("seed", range(6))
def test_clients_are_distinct_clients_random(seed):
    frames, params = random_tables(seed)
    for gap in (0, params.get("merge_gap_days", 31)):
        both = _clients(run(frames, **{**params, "merge_gap_days": gap}))
        assert (both["clients"] == both["want"]).all()


def test_summary_matches_person_months_and_is_json():
    frames, params = random_tables(3)
    res = run(frames, **params)
    df, s = res.person_months.df(), res.summary
    json.dumps(s)
    assert s["person_months"] == len(df)
    assert s["spells"] == df.spell_id.nunique()
    assert s["clients"] == df.client_id.nunique()
    assert s["municipalities"] == df.municipality.nunique()
    assert s["left_truncated_spells"] == df[df.left_truncated == 1].spell_id.nunique()
    assert s["measured_share"] == pytest.approx(df.quality_score.notna().mean())
    assert s["adopted_share"] == pytest.approx(df.adopted.mean())
    assert s["shock_person_months"] == df.shock_id.notna().sum()
    assert s["spells_after_merge"] + s["merged_spells"] == s["input_spells"] == len(frames["trajectories"])
    assert s["lm_missing_share"]["lm_jobs_muni"] == pytest.approx(df.lm_jobs_muni.isna().mean())
    assert s["months"] == make_params(params).n_months


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_output_is_byte_identical_across_runs_and_threads(tmp_path):
    frames, params = random_tables(5)
    digests = set()
    for threads in (1, 4):
        con = duckdb.connect()
        con.execute(f"SET threads = {threads}")
        res = run(frames, con=con, **params)
        pm_path, cells_path = tmp_path / f"pm{threads}.parquet", tmp_path / f"c{threads}.parquet"
        res.person_months.write_parquet(str(pm_path))
        res.cells.write_parquet(str(cells_path))
        digests.add((_digest(pm_path), _digest(cells_path), json.dumps(res.summary, sort_keys=True)))
    assert len(digests) == 1


def test_two_builds_on_one_connection_do_not_interfere():
    con = duckdb.connect()
    a = run(base_tables(trajectories({"spell_id": "a", "start_date": "2016-01-01"})), con=con)
    b = run(base_tables(trajectories({"spell_id": "b", "start_date": "2016-06-01"})), con=con)
    assert a.person_months.df().spell_id.unique().tolist() == ["a"]
    assert len(a.person_months.df()) == 12 and len(b.person_months.df()) == 7


def test_missing_required_table_and_column():
    con = duckdb.connect()
    frames = base_tables(trajectories({"spell_id": "a", "start_date": "2016-01-01"}))
    rels = {k: con.from_df(v) for k, v in frames.items() if k != "labour_market"}
    with pytest.raises(PanelInputError, match="labour_market"):
        build_panel(con, rels, PanelParams.from_dict({}))
    frames["trajectories"] = frames["trajectories"].drop(columns=["exit_reason"])
    rels = {k: con.from_df(v) for k, v in frames.items()}
    with pytest.raises(PanelInputError, match="exit_reason"):
        build_panel(con, rels, PanelParams.from_dict({}))


def test_relations_of_another_connection_and_dataframes_are_accepted():
    frames = base_tables(trajectories({"spell_id": "a", "start_date": "2016-01-01"}))
    other = duckdb.connect()
    con = duckdb.connect()
    tables = {"trajectories": other.from_df(frames["trajectories"]),
              "municipalities": frames["municipalities"],
              "labour_market": con.from_df(frames["labour_market"])}
    res = build_panel(con, tables, PanelParams.from_dict({"start": "2016-01", "end": "2016-03"}))
    assert len(res.person_months.df()) == 3


@pytest.mark.parametrize("optional", [True, False])
def test_column_schema(optional):
    from impact.panel import cell_columns, person_month_columns

    frames, params = random_tables(4)
    if not optional:
        frames = {k: frames[k] for k in ("trajectories", "municipalities", "labour_market")}
    res = run(frames, **params)
    p = make_params(params)
    assert res.person_months.columns == person_month_columns(p)
    assert res.cells.columns == cell_columns(p)
    types = dict(zip(res.person_months.columns, map(str, res.person_months.types)))
    assert types["month"] == "DATE" and types["adoption_month"] == "DATE"
    assert types["t"] == types["duration"] == types["age"] == "INTEGER"
    for c in ("left_truncated", "exit_work", "exit_any", "adopted"):
        assert types[c] == "TINYINT", c
    assert types["quality_n"] == "INTEGER" and types["quality_score"] == "DOUBLE"
    assert types["lm_jobs_region"] == "DOUBLE" and types["shock_event_time"] == "INTEGER"
