"""The quality regression read from the panel file in batches (``quality_stream``) gives
what ``estimate_quality`` gives on the whole frame in memory: the same rows and headline
to 1e-8, whatever the batches cut (clusters, cells, the first appearance of a level), with
rows dropped for missing values, every fixed-effect, cluster and sample option, the wild
bootstrap's parts, and the one-municipality fallback to caseworker clusters. The
in-memory path is itself checked against pyfixest and linearmodels
(tests/estimate/test_estimate_reference.py), and on simulated data with a known effect
(tests/estimate/test_estimate_recovery.py); one direct pyfixest check is kept here."""

import warnings

import numpy as np
import pandas as pd
import pyfixest as pf
import pytest

from impact import io
from impact.estimate import EstimateParams
from impact.estimate.frames import EstimationWarning
from impact.estimate.quality import estimate_quality
from impact.estimate.quality_stream import estimate_quality_file, quality_grams

from .dgp import file_like_panel

TOL = 1e-8


@pytest.fixture(scope="module")
def pm():
    """A small simulated panel with the hard cases of a real file: missing controls, a
    labour-market column with a gap, a household level that first appears at the end."""
    return file_like_panel(7, 3)


def _file(tmp_path, frame):
    path = tmp_path / "person_months.parquet"
    io.write_parquet(frame, path)
    return path


def _both(path, params, estimator="iv", sample="all", batch_rows=997):
    with warnings.catch_warnings(record=True) as w_mem:
        warnings.simplefilter("always", EstimationWarning)
        whole = io.read_person_months(path)
        if sample == "inflow":
            whole = whole[whole["left_truncated"] == 0]
        mem = estimate_quality(whole, params, estimator)
    with warnings.catch_warnings(record=True) as w_file:
        warnings.simplefilter("always", EstimationWarning)
        got = estimate_quality_file(path, params, estimator, sample, batch_rows=batch_rows)
    return mem, got, [str(w.message) for w in w_mem], [str(w.message) for w in w_file]


def _assert_same(mem, got):
    (rows_m, head_m), (rows_f, head_f) = mem, got
    assert head_m is not None and head_f is not None
    assert set(head_m) == set(head_f)
    for k, v in head_m.items():
        if isinstance(v, float):
            np.testing.assert_allclose(head_f[k], v, rtol=TOL, atol=1e-12, err_msg=k)
        else:
            assert head_f[k] == v, k
    a, b = pd.DataFrame(rows_m), pd.DataFrame(rows_f)
    assert a.columns.tolist() == b.columns.tolist()
    num = a.select_dtypes("number").columns
    np.testing.assert_allclose(b[num].to_numpy(float), a[num].to_numpy(float), rtol=TOL,
                               atol=1e-12)
    other = a.columns.difference(num)
    assert a[other].astype(str).equals(b[other].astype(str))


@pytest.mark.parametrize("options", [
    {},
    {"quality_fe": "municipality_month"},
    {"cluster": "region"},
    {"lm_controls": ["unemployment_rate"]},
    {"controls": ["sex", "household", "age_band", "prior_benefit_months"]},
], ids=["default", "munimonth", "region", "lm_named", "controls"])
def test_stream_equals_in_memory(pm, tmp_path, options):
    path = _file(tmp_path, pm)
    params = EstimateParams.from_dict(estimate=options)
    mem, got, w_mem, w_file = _both(path, params)
    _assert_same(mem, got)
    assert w_file == w_mem  # the same drops, the same labour-market verdicts
    assert any("dropped for missing ['prior_benefit_months']" in w for w in w_file) == (
        "prior_benefit_months" in params.estimate.controls)


@pytest.mark.parametrize("estimator", ["iv", "ols"])
def test_stream_inflow_sample(pm, tmp_path, estimator):
    path = _file(tmp_path, pm)
    mem, got, _, _ = _both(path, EstimateParams(), estimator, sample="inflow")
    _assert_same(mem, got)
    everyone = estimate_quality_file(path, EstimateParams(), estimator)[1]
    assert 0 < got[1]["n_obs"] < everyone["n_obs"]


@pytest.mark.parametrize("estimator", ["iv", "ols"])
def test_stream_wild_bootstrap_parts(pm, tmp_path, estimator):
    """Few clusters (3 regions): the headline interval is the wild score bootstrap's,
    from cluster parts computed from the blocks; the same interval and p-value."""
    path = _file(tmp_path, pm)
    params = EstimateParams.from_dict(estimate={"cluster": "region", "inference": "wild"})
    mem, got, _, _ = _both(path, params, estimator)
    assert "wild" in mem[1]["ci_method"]
    _assert_same(mem, got)


def test_one_municipality_falls_back_to_caseworker_clusters(pm, tmp_path):
    one = pm[pm["municipality"] == pm["municipality"].iloc[0]]
    path = _file(tmp_path, one)
    mem, got, w_mem, w_file = _both(path, EstimateParams(), batch_rows=211)
    _assert_same(mem, got)
    assert got[1]["n_clusters"] == one["caseworker_key"].nunique()
    assert any("clustered by caseworker" in w for w in w_file)


def test_batch_size_does_not_matter(pm, tmp_path):
    path = _file(tmp_path, pm)
    one = estimate_quality_file(path, EstimateParams(), batch_rows=len(pm) + 1)
    for b in (50, 173, 4096):  # 50: most batches cut cells and hold a few clusters only
        _assert_same(one, estimate_quality_file(path, EstimateParams(), batch_rows=b))


def test_equals_pyfixest_on_the_rows(pm, tmp_path):
    """Directly against pyfixest feols with municipality and region x month absorbed."""
    path = _file(tmp_path, pm)
    params = EstimateParams.from_dict(estimate={"controls": ["sex", "household"],
                                                "quality_fe": "municipality_month"})
    q = quality_grams(path, params, batch_rows=500)
    from impact.estimate.cgram import fit_pm_grams

    iv = fit_pm_grams(q.grams, q.names, "y", "quality_a", q.exog, "quality_b", q.df_fe)
    d = pm[pm["quality_a"].notna() & pm["quality_b"].notna()].copy()
    d["y"] = 100.0 * d["exit_work"]
    d["munimonth"] = d["municipality"] + ":" + d["t"].astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pf.feols("y ~ C(sex) + C(household) + lm_unemployment_rate_muni | munimonth | "
                       "quality_a ~ quality_b", data=d,
                       vcov={"CRV1": "municipality"}, fixef_rm="none")
    assert "lm_unemployment_rate_muni" in q.names and "lm_gap_muni" not in q.names
    np.testing.assert_allclose([iv.coef, iv.se], [ref.coef()["quality_a"],
                                                  ref.se()["quality_a"]], rtol=1e-8)


def test_no_quality_columns(pm, tmp_path):
    path = _file(tmp_path, pm.drop(columns=["quality_a", "quality_b"]))
    with pytest.warns(EstimationWarning, match="no quality_a/quality_b"):
        rows, head = estimate_quality_file(path, EstimateParams())
    assert rows == [] and head is None


@pytest.mark.parametrize("lt_type", ["int", "float_with_missing", "bool",
                                     "bool_with_missing", "text"])
@pytest.mark.parametrize("sample", ["all", "inflow"])
def test_sample_rows_chosen_in_arrow_equal_the_frame_filter(tmp_path, sample, lt_type):
    """``_batches`` keeps a file's rows in Arrow (``io.iter_batches(keep=)``): the same
    frames as pandas' filter of each batch (``notna`` of both halves, a missing value as
    null or NaN, ``left_truncated == 0``), over row groups that the batches join."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from impact.estimate.quality_stream import _batches

    rng = np.random.default_rng(3)
    n = 3000
    qa = rng.normal(size=n)
    qb = rng.normal(size=n)
    lt = rng.integers(0, 2, n)
    na_a, nan_a, na_b = rng.random(n) < 0.05, rng.random(n) < 0.05, rng.random(n) < 0.05
    qa[nan_a] = np.nan  # NaN stored as a value, not a null
    lt_arr = {"int": pa.array(lt), "bool": pa.array(lt.astype(bool)),
              "float_with_missing": pa.array(np.where(rng.random(n) < 0.1, None, lt),
                                             pa.float64()),
              "bool_with_missing": pa.array(lt.astype(bool), mask=rng.random(n) < 0.1),
              "text": pa.array(lt.astype(str))}[lt_type]
    table = pa.table({
        "quality_a": pa.array(qa, mask=na_a, from_pandas=False),
        "quality_b": pa.array(qb, mask=na_b),
        "left_truncated": lt_arr,
        "municipality": pa.array(rng.choice(["GM1", "GM2", None], n)),
        "k": pa.array(rng.integers(0, 5, n)),
        # an integer column whose only nulls are in rows left out: float64 all the same
        "j": pa.array(rng.integers(0, 5, n), mask=na_b),
    })
    path = tmp_path / "pm.parquet"
    pq.write_table(table, path, row_group_size=700)
    cols = ["quality_a", "quality_b", "left_truncated", "municipality", "k", "j"]
    got = list(_batches(path, cols, sample, 1000))
    want = []
    for df in io.iter_batches(path, cols, 1000):  # the frame filter, batch by batch
        keep = (df["quality_a"].notna() & df["quality_b"].notna()).to_numpy().copy()
        if sample == "inflow":
            keep &= df["left_truncated"].to_numpy() == 0
        if keep.any():
            want.append(df.loc[keep].reset_index(drop=True))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        pd.testing.assert_frame_equal(g, w, check_exact=True)
    kept = sum(len(g) for g in got)
    assert all(str(g["j"].dtype) == "float64" for g in got)
    if sample == "inflow" and lt_type == "text":  # "0" is not 0, for pandas as here
        assert kept == 0
    else:
        assert len(got) > 1 and 0 < kept < n and (sample == "all" or kept < 0.6 * n)
