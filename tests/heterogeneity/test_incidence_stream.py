"""``incidence_stream.incidence_counts_stream`` (one pass over the file, integer keys)
against ``incidence_counts`` (DuckDB on the frame with each dimension's labels), on
panels built to catch what a per-spell shortcut or a run-based client lookup gets wrong:
clients with several spells at the same durations in the same group, rows not in client
order, runs cut by batch boundaries, missing ids, durations, group values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from impact import io
from impact.heterogeneity.incidence_counts import IncidenceInputError, incidence_counts
from impact.heterogeneity.incidence_stream import incidence_counts_stream
from impact.heterogeneity.params import _dimension

DIMS = [_dimension("education", {"column": "education_level",
                                 "levels": {"low": ["low"], "mid+": ["medium", "high"]}}),
        _dimension("prior", {"column": "prior_benefit_months",
                             "bands": {"none": [0, 0], "some": [1, 24], "long": [25, None]}}),
        _dimension("step", {"column": "ladder_step", "levels": {"1-2": [1, 2], "3+": [3, 4]}})]


def person_months(seed: int, education: bool) -> pd.DataFrame:
    """Clients with one to three spells; spells of one client often share durations (a
    second spell that starts at duration 0 again) and a group."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(150):
        edu = rng.choice(["low", "medium", "high", None])
        for s in range(int(rng.integers(1, 4))):
            start = int(rng.choice([0, 0, rng.integers(0, 30)]))
            n = int(rng.integers(1, 40))
            d = np.arange(start, start + n)
            last = np.zeros(n, dtype="int8")
            ex = rng.random() < 0.7
            last[-1] = ex
            work = last * (rng.random() < 0.6)
            edu_exit = (last - work) * (rng.random() < 0.5) if education else 0 * last
            rows.append(pd.DataFrame({
                "client_id": f"C{c:04d}", "spell_id": f"S{c:04d}{s}", "duration": d,
                "education_level": edu, "prior_benefit_months": int(rng.integers(0, 40)),
                "ladder_step": int(rng.integers(1, 5)),
                "exit_work": work.astype("int8"), "exit_any": last,
                "exit_education": np.asarray(edu_exit, dtype="int8")}))
    pm = pd.concat(rows, ignore_index=True)
    # rows out of client order in part of the file, and a few missing values
    head = pm.iloc[: len(pm) // 2].sample(frac=1.0, random_state=seed)
    pm = pd.concat([head, pm.iloc[len(pm) // 2:]], ignore_index=True)
    pm["client_id"] = pm["client_id"].astype("string")
    pm.loc[pm.sample(5, random_state=seed + 1).index, "client_id"] = pd.NA
    pm["duration"] = pm["duration"].astype("Int64")
    pm.loc[pm.sample(5, random_state=seed + 2).index, "duration"] = pd.NA
    pm["ladder_step"] = pm["ladder_step"].astype("Int64")
    pm.loc[pm.sample(7, random_state=seed + 3).index, "ladder_step"] = pd.NA
    if not education:
        pm = pm.drop(columns="exit_education")
    return pm


def reference(pm: pd.DataFrame, dim, education: bool, max_duration: int) -> pd.DataFrame:
    codes = dim.codes(pm[dim.column])
    labels = np.asarray(dim.labels + ("",), dtype=object)[codes]
    frame = pm.assign(group=pd.array(np.where(codes >= 0, labels, None), dtype="string"))
    return incidence_counts(frame, "group", max_duration, missing_group="drop",
                            education_col="exit_education" if education else None)


@pytest.mark.parametrize("education", [True, False])
@pytest.mark.parametrize("batch_rows", [37, 1 << 16])
def test_counts_equal_duckdb_on_the_frame(tmp_path, education, batch_rows):
    pm = person_months(3, education)
    # the case the integer keys must get right: one client, two spells, same group and
    # duration (counted once among the clients, twice among the person-months)
    two = pm.dropna(subset=["client_id", "duration"]).groupby("client_id")["spell_id"].nunique()
    assert (two > 1).sum() > 20
    path = tmp_path / "pm.parquet"
    io.write_parquet(pm, path)
    for max_duration in (25, 120):
        got = incidence_counts_stream(path, DIMS, education, max_duration, batch_rows=batch_rows)
        assert len(got) == len(DIMS)
        for dim, g in zip(DIMS, got):
            want = reference(pm, dim, education, max_duration)
            pd.testing.assert_frame_equal(g, want)
            assert (want["clients"] < want["at_risk"]).any()  # repeat spells were counted


def test_bad_flags_and_negative_durations_are_refused(tmp_path):
    pm = person_months(5, True)
    path = tmp_path / "pm.parquet"
    bad = pm.copy()
    i = bad.index[(bad["exit_work"] == 1) & (bad["duration"] <= 30)][0]
    bad.loc[i, "exit_any"] = 0
    io.write_parquet(bad, path)
    with pytest.raises(IncidenceInputError, match="1 person-month"):
        incidence_counts_stream(path, DIMS, True, 120)
    # a flag above max_duration is not looked at, as in incidence_counts
    late = pm.copy()
    late.loc[late.index[late["duration"] > 30][0], "exit_any"] = 7
    io.write_parquet(late, path)
    incidence_counts_stream(path, DIMS, True, 30)
    neg = pm.copy()
    neg.loc[neg.index[0], "duration"] = -1
    io.write_parquet(neg, path)
    with pytest.raises(IncidenceInputError, match="negative"):
        incidence_counts_stream(path, DIMS, True, 120)


def test_no_dimension_and_no_rows(tmp_path):
    pm = person_months(7, False)
    path = tmp_path / "pm.parquet"
    io.write_parquet(pm, path)
    assert incidence_counts_stream(path, [], False) == []
    # every person-month above the horizon: empty tables with the columns
    got = incidence_counts_stream(path, DIMS[:1], False, 0)[0]
    want = reference(pm, DIMS[0], False, 0)
    pd.testing.assert_frame_equal(got, want)
    assert list(got.columns) == list(want.columns)

