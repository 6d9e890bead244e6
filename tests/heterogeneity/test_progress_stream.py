"""Effects on intermediate results from the panel's Parquet file (``progress_stream``,
``review_frame(..., panel=)``, ``progress_effects(..., panel=)``) equal the in-memory ones:
the outcome-review frames (every column and dtype, interval means to 1e-12) and the
published table (every column, numbers to 1e-10).

The data are the lean simulation's panel with a ``progress`` table made up for it:
reviews of three measures (``ladder_step``, the 0/1 ``goal_reached`` and the level
``hours``) every few months from each spell's start, so that some lie before the study
window (baselines), before the panel's first month or after the spell's end (no
person-month); two reviews in one month (the last counts); spells of a client that the
panel joined (their reviews land on one spell, some in the same month as the other's); a
client without person-months; a review of an unknown spell. The file is written sorted by
month, so a spell's rows lie far apart in it; quality halves are missing in some
months (as null and as NaN), ``quality_score`` alone in others; ``ladder_step`` is missing
only in months of spells without reviews (the whole file is float64, the review months
alone would be int64).
"""

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from impact import io
from impact.estimate.params import EstimateParams
from impact.heterogeneity.progress import _quality, progress_effects, review_frame
from impact.heterogeneity.progress_stream import progress_keys, review_months
from impact.simulate.lean import T0, simulate
from impact.spill import spilling

from heterogeneity.progress_data import progress_tables

T_START = T0 + 6
MEASURES = ("goal_reached", "hours", "ladder_step")
Q = ["quality_a", "quality_b", "quality_score"]


def _write(pm: pd.DataFrame, path, nan_rows: np.ndarray) -> None:
    """The panel sorted by month, ``quality_b`` stored as NaN (not null) in ``nan_rows``."""
    pm = pm.sort_values(["t", "spell_id"], kind="stable").reset_index(drop=True)
    table = pa.Table.from_pandas(pm, preserve_index=False).replace_schema_metadata(None)
    qb = pm["quality_b"].to_numpy().copy()
    qb[nan_rows[: len(qb)]] = np.nan
    i = table.schema.get_field_index("quality_b")
    table = table.set_column(i, "quality_b", pa.array(qb, from_pandas=False))
    assert table.column("quality_b").null_count == 0
    pq.write_table(table, path, row_group_size=500)  # row groups: DuckDB's threads share


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    sim = simulate(seed=3, n_muni=8, n_regions=3, n_months=24, caseload=40)
    pm = sim.person_months.drop(columns=["p_true", "tau_true"])
    rng = np.random.default_rng(5)
    n = len(pm)
    traj, pr, quiet = progress_tables(pm, rng)
    pm["quality_a"] = pm["quality_a"].mask(rng.random(n) < 0.05)
    pm["quality_score"] = pm["quality_score"].mask(rng.random(n) < 0.05)
    pm["ladder_step"] = pm["ladder_step"].astype("Int64").mask(
        pm["spell_id"].isin(quiet) & (rng.random(n) < 0.5))
    path = tmp_path_factory.mktemp("progress") / "person_months.parquet"
    _write(pm, path, np.flatnonzero(rng.random(n) < 0.05))
    return sim, io.read_person_months(path), path, pr, traj


def _frames_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=0, atol=1e-12)


def test_the_data_have_the_awkward_cases(data):
    _, pm, path, pr, traj = data
    assert pm["ladder_step"].dtype == "float64" and pm["ladder_step"].isna().any()
    assert pm["quality_b"].isna().any() and pm["quality_a"].isna().any()
    assert (pm[["quality_a", "quality_b"]].notna().all(axis=1)
            & pm["quality_score"].isna()).any()
    clients, months = progress_keys(pr, traj)
    at = pd.MultiIndex.from_arrays([pm["client_id"].astype(str), pm["t"].astype("int64")])
    rk = pd.MultiIndex.from_arrays([clients.fillna("?"), np.nan_to_num(months)])
    hit = rk.isin(at)
    assert hit.sum() > 500 and (~hit).sum() > 500         # reviews with and without a month
    assert (months[~hit] < pm["t"].min()).sum() > 100      # before the panel
    assert pq.ParquetFile(path).metadata.num_rows == len(pm)
    assert pq.ParquetFile(path).metadata.num_row_groups > 4  # scanned by several threads
    for measure in MEASURES:
        r = review_frame(pr, traj, pm, measure, T_START)
        assert r["t"].min() >= T_START and (r["base_t"] < T_START).any()
        assert r[["spell_id", "t"]].duplicated().any()     # joined spells, one month
        assert r["quality_a"].isna().any() and r["quality_a"].notna().sum() > 300


@pytest.mark.parametrize("threads", [1, 2])
def test_review_frame_from_the_file_equals_the_in_memory_frame(data, threads):
    """With one DuckDB thread and with two (the file's row groups are then scanned in
    parallel and rows reach the joins in no fixed order)."""
    _, pm, path, pr, traj = data
    sub = review_months(path, *progress_keys(pr, traj), threads=threads)
    with spilling("impact-test-", threads=threads) as con:
        for measure in MEASURES:
            want = review_frame(pr, traj, pm, measure, T_START)
            alone = review_frame(pr, traj, None, measure, T_START, panel=path, con=con)
            _frames_equal(alone, want)
            _frames_equal(review_frame(pr, traj, sub, measure, T_START, panel=path,
                                       con=con), want)


def test_interval_means_over_many_batches(data, monkeypatch):
    """Batches of 97 person-months: a review's interval is cut by batch boundaries and
    its sums are added up over several batches (the file is one batch at the default)."""
    import impact.heterogeneity.progress_stream as ps

    _, pm, path, pr, traj = data
    whole = ps.interval_means
    monkeypatch.setattr(ps, "interval_means",
                        lambda *a, **k: whole(*a, **{**k, "batch_rows": 97}))
    for measure in MEASURES:
        _frames_equal(review_frame(pr, traj, None, measure, T_START, panel=path),
                      review_frame(pr, traj, pm, measure, T_START))


@pytest.mark.parametrize("threads", [1, 2])
def test_review_months_are_the_rows_of_the_whole_file(data, threads):
    """Same rows (file order), columns and dtypes as the whole file read by pandas: the
    integer columns with a missing value elsewhere in the file are float64."""
    _, pm, path, pr, traj = data
    clients, months = progress_keys(pr, traj)
    got = review_months(path, clients, months, threads=threads)
    keys = pd.DataFrame({"client_id": clients, "t": months}).dropna()
    keys = set(zip(keys["client_id"].astype(str), keys["t"].astype("int64")))
    hit = [k in keys for k in zip(pm["client_id"], pm["t"].astype("int64"))]
    want = pm.loc[hit, list(got.columns)].reset_index(drop=True)
    assert {"ladder_step", "shock_event_time", "lm_unemployment_rate_muni"} <= set(got)
    assert got["ladder_step"].notna().all() and got["ladder_step"].dtype == "float64"
    pd.testing.assert_frame_equal(got, want)


@pytest.mark.parametrize("threads,blocks", [(1, ("quality", "adoption")),
                                            (None, ("quality", "adoption")),
                                            (2, ("adoption",))])
def test_progress_effects_from_the_file_equal_the_in_memory_table(data, threads, blocks):
    sim, pm, path, pr, traj = data
    params = EstimateParams()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = progress_effects(pr, traj, pm, sim.adoption, sim.shocks, params, T_START, 5,
                                blocks)
        got = progress_effects(pr, traj, None, sim.adoption, sim.shocks, params, T_START, 5,
                               blocks, panel=path, threads=threads)
    assert len(want) == len(MEASURES) * len(blocks)
    assert want["published"].all() and want["estimate"].notna().all()
    assert set(want["unit"]) == {"pp", "value"}
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=0, atol=1e-10)


def test_two_rows_of_one_client_month_are_refused(data, tmp_path):
    _, pm, _, pr, traj = data
    clients, months = progress_keys(pr, traj)
    k = pd.MultiIndex.from_arrays([clients.fillna("?"), np.nan_to_num(months)])
    at = pd.MultiIndex.from_arrays([pm["client_id"].astype(str), pm["t"].astype("int64")])
    twice = pd.concat([pm, pm[at.isin(k)].iloc[:1]], ignore_index=True)
    path = tmp_path / "person_months.parquet"
    io.write_parquet(twice, path)
    with pytest.raises(ValueError, match="two rows of one client"):
        progress_effects(pr, traj, None, None, None, EstimateParams(), T_START, 5,
                         ("quality",), panel=path)


@pytest.mark.parametrize("estimate", [{"cluster": "region"},
                                      {"quality_fe": "municipality_month"}])
def test_the_review_regression_from_sums_equals_the_matrix_one(data, estimate):
    """The file path fits the review regression from Gram sums over slices of the reviews,
    the in-memory path from the reviews' matrix: the same table with region clusters
    (the fixed effects nested in them not counted in K) and with municipality x month
    effects."""
    sim, pm, path, pr, traj = data
    params = EstimateParams.from_dict(estimate=estimate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = progress_effects(pr, traj, pm, None, None, params, T_START, 5, ("quality",))
        got = progress_effects(pr, traj, None, None, None, params, T_START, 5, ("quality",),
                               panel=path)
    assert want["estimate"].notna().all() and (want["n_clusters"] > 1).all()
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=0, atol=1e-10)


@pytest.mark.parametrize("measure", ["ladder_step", "hours"])
def test_the_sums_fit_over_many_slices_equals_the_matrix_fit(data, measure):
    """Gram sums over slices of 37 reviews (codes, clusters, cells and the base-step
    dummies carried across slices) give the matrix fit's estimate and standard error."""
    _, _, path, pr, traj = data
    r = review_frame(pr, traj, None, measure, T_START, panel=path)
    params = EstimateParams()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = _quality(r, params, measure)
        got = _quality(r, params, measure, sums=True, batch_rows=37)
    assert len(r) > 20 * 37 and np.isfinite(want["estimate"])
    for k in ("estimate", "std_error", "ci_low", "ci_high", "p_value", "n_clusters"):
        assert got[k] == pytest.approx(want[k], rel=1e-9, abs=1e-12), k
