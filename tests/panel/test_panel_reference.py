"""The SQL panel against the slow obvious loop (panel_reference.py) on random data.

Tolerances: integers, strings and dates must match exactly. Quality means match to
1e-9: the SQL sums scores exactly in DECIMAL(38, 12) (for byte-identical output) and the
scores here have 3 decimals, so the only difference is the final floating-point division
against Python's float summation (~1e-15 relative); 1e-9 leaves room, and any real
difference (a measurement in or out of the window) moves a mean by far more.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, HealthCheck
from hypothesis import strategies as st

from panel_factory import base_tables, make_params, random_tables, run, trajectories
from panel_reference import reference_panel

FLOAT_COLS = {"quality_score", "quality_a", "quality_b", "intake_quality_score"}


def _missing(x) -> bool:
    return x is None or x is pd.NA or x is pd.NaT or (isinstance(x, float) and math.isnan(x))


def _norm(x):
    if _missing(x):
        return None
    if isinstance(x, pd.Timestamp):
        return x.date()
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    return x


def assert_same_panel(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert len(got) == len(want), f"{len(got)} person-months built, reference has {len(want)}"
    if not len(want):
        return
    got = got.sort_values(["spell_id", "t"]).reset_index(drop=True)
    keys = list(zip(want["spell_id"], want["t"]))
    assert list(zip(got["spell_id"], got["t"])) == keys, "different (spell_id, t) rows"
    for col in want.columns:
        tol = col in FLOAT_COLS or col.startswith("lm_")
        for i, (g, w) in enumerate(zip(got[col].tolist(), want[col].tolist())):
            g, w = _norm(g), _norm(w)
            if w is None or g is None:
                same = g is None and w is None
            else:
                same = abs(float(g) - float(w)) <= 1e-9 if tol else g == w
            assert same, f"column {col} at (spell_id, t) = {keys[i]}: built {g!r}, reference {w!r}"


@pytest.mark.parametrize("seed", range(12))
def test_panel_matches_reference_loop(seed):
    frames, params = random_tables(seed)
    got = run(frames, **params).person_months.df()
    assert_same_panel(got, reference_panel(frames, params))


@pytest.mark.parametrize("seed", [100, 101])
def test_reference_without_optional_tables(seed):
    frames, params = random_tables(seed)
    core = {k: frames[k] for k in ("trajectories", "municipalities", "labour_market")}
    got = run(core, **params).person_months.df()
    assert_same_panel(got, reference_panel(core, params))
    for col in ("quality_score", "quality_n", "adoption_month", "adopted", "shock_id"):
        assert got[col].isna().all()


@pytest.mark.parametrize("seed", [7, 8])
def test_reference_via_parquet_relations(seed, tmp_path):
    """The pipeline hands read_parquet relations (date32 columns), not DataFrames."""
    import duckdb

    from impact.panel import PanelParams, build_panel

    frames, params = random_tables(seed)
    con = duckdb.connect()
    rels = {}
    for name, df in frames.items():
        path = tmp_path / f"{name}.parquet"
        con.from_df(df).project(", ".join(
            f"CAST({c} AS DATE) AS {c}" if str(df[c].dtype).startswith("datetime") else c
            for c in df.columns)).write_parquet(str(path))
        rels[name] = con.read_parquet(str(path))
    res = build_panel(con, rels, make_params(params))
    out = tmp_path / "pm.parquet"
    res.person_months.write_parquet(str(out))
    got = pd.read_parquet(out)
    assert_same_panel(got, reference_panel(frames, params))
    # written in municipality, spell_id, month order (batches read from the file hold a
    # few municipalities each); a spell's months stay together
    keys = list(zip(got.municipality, got.spell_id, got.t))
    assert keys == sorted(keys)
    assert got.groupby("spell_id")["municipality"].nunique().max() == 1


_day = st.integers(min_value=0, max_value=4 * 365)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=_day,
    lengths=st.lists(st.integers(0, 500), min_size=1, max_size=4),
    gaps=st.lists(st.integers(0, 70), min_size=3, max_size=3),
    open_last=st.booleans(),
    gap_days=st.sampled_from([0, 1, 31, 45]),
    work=st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_spells_property(first, lengths, gaps, open_last, gap_days, work):
    """Merging, clipping, durations and exits for one client's chain of spells."""
    rows, start = [], date(2014, 6, 1) + timedelta(days=first)
    for i, n in enumerate(lengths):
        end = start + timedelta(days=n)
        is_open = open_last and i == len(lengths) - 1
        rows.append({"spell_id": f"s{i}", "client_id": "c", "start_date": start,
                     "end_date": None if is_open else end,
                     "exit_reason": None if is_open else ("work" if work[i] else "other"),
                     "caseworker_key": f"GM0001:k{i}"})
        start = end + timedelta(days=1 + gaps[i % 3])
    frames = base_tables(trajectories(*rows))
    params = {"start": "2015-01", "end": "2017-06", "merge_gap_days": gap_days}
    got = run(frames, **params).person_months.df()
    assert_same_panel(got, reference_panel(frames, params))
