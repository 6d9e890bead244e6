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
