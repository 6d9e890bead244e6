"""The fair benchmark read from the panel file in batches (``benchmark.stream``) equals the
in-memory benchmark (``benchmark.core.run_benchmark``) of the same rows: the
municipality, team and municipality-year tables, the funnel curve and the facts, to 1e-8.

Two panels: the synthetic one of the benchmark tests (a small municipality, a team with
one caseworker: disclosure and secondary suppression), and a simulated one with the hard
cases of a real file (missing values of a control, a labour-market column with a gap, a
level first seen in the last rows, rows without quality). Batches of 50 to 4,096 rows
cut cells, clusters, teams and years; the compared period, the cluster and the controls
vary, and a decomposition without a quality effect (theta missing) is covered.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from decompose.synthetic import make_panel
from estimate.dgp import file_like_panel
from impact import io
from impact.benchmark import BenchmarkParams, run_benchmark
from impact.benchmark.stream import run_benchmark_file
from impact.decompose.core import decompose_reads, fit_decomposition_model
from impact.estimate.params import EstimateParams

TOL = 1e-8


def _coefs(pm, params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        design, fit, _ = fit_decomposition_model(pm, params, "iv")
    return (pd.DataFrame({"term": fit.names,
                          "factor": ["quality"] + [design.factor(c) for c in design.columns],
                          "estimate": fit.coef}), fit.psi[:, 0])


def _quiet(f, *a, **k):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = f(*a, **k)
    return out, sorted({str(x.message) for x in w})


def _frames_close(got: pd.DataFrame, want: pd.DataFrame, what: str):
    assert list(got.columns) == list(want.columns), what
    assert len(got) == len(want), what
    for c in want.columns:
        g, w = got[c], want[c]
        if pd.api.types.is_numeric_dtype(w) and not pd.api.types.is_bool_dtype(w):
            g, w = g.to_numpy(dtype="float64"), w.to_numpy(dtype="float64")
            assert np.array_equal(np.isnan(g), np.isnan(w)), (what, c)
            scale = max(1.0, float(np.nanmax(np.abs(w)))) if np.isfinite(w).any() else 1.0
            np.testing.assert_allclose(np.nan_to_num(g), np.nan_to_num(w), rtol=0,
                                       atol=TOL * scale, err_msg=f"{what}: {c}")
        else:
            assert g.astype(str).tolist() == w.astype(str).tolist(), (what, c)


def _facts_close(got, want):
    assert got.keys() == want.keys()
    for k, w in want.items():
        if isinstance(w, dict):
            _facts_close(got[k], w)
        elif isinstance(w, float):
            assert got[k] == pytest.approx(w, rel=TOL, abs=TOL), k
        else:
            assert got[k] == w, k


def _compare(path, munis, coefs, psi, params, bparams, min_cell, batch_rows):
    pm = io.read_person_months(path, columns=decompose_reads(io.parquet_columns(path),
                                                                params))
    want, w_warn = _quiet(run_benchmark, pm, munis, coefs, psi, params, bparams, min_cell)
    got, g_warn = _quiet(run_benchmark_file, path, munis, coefs, psi, params, bparams,
                         min_cell, batch_rows=batch_rows)
    for name in ("municipalities", "teams", "years", "curve"):
        _frames_close(getattr(got, name), getattr(want, name), name)
    _facts_close(got.facts, want.facts)
    assert g_warn == w_warn
    return want


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    pm, truth = make_panel(31, small=(11,), small_size=0.01, single_cw_team=(4,))
    path = tmp_path_factory.mktemp("bench") / "person_months.parquet"
    io.write_parquet(pm, path)
    return path, truth["munis"][["municipality", "name", "region"]]


@pytest.mark.parametrize("batch_rows", [50, 1000, 4096])
def test_synthetic_panel_in_batches(synthetic, batch_rows):
    path, munis = synthetic
    params = EstimateParams.from_dict(estimate={"controls": ["education_level",
                                                             "prior_benefit_months"]})
    coefs, psi = _coefs(io.read_person_months(path), params)
    want = _compare(path, munis, coefs, psi, params, BenchmarkParams(n_draws=200), 10,
                    batch_rows)
    m = want.municipalities
    assert m["published"].any() and not m["published"].all()   # disclosure is exercised
    assert len(want.teams) and want.years["person_months"].isna().any()


@pytest.mark.parametrize("options,period,theta", [
    ({"controls": ["age_band", "sex", "household", "prior_benefit_months"]}, "window", True),
    ({"cluster": "region"}, "2019", True),
    ({}, "2018-Q3", False),
], ids=["controls", "region-year", "no-quality"])
def test_file_like_panel(tmp_path, options, period, theta):
    pm = file_like_panel(seed=11, mask_seed=3)
    path = tmp_path / "person_months.parquet"
    io.write_parquet(pm, path)
    params = EstimateParams.from_dict(estimate=options)
    coefs, psi = _coefs(pm, params)
    if not theta:  # a decomposition without the quality effect
        coefs, psi = coefs[coefs["term"] != "quality"], np.full(len(psi), np.nan)
    munis = pd.DataFrame({"municipality": sorted(pm["municipality"].unique())})
    munis["name"], munis["region"] = "x", "r"
    _compare(path, munis, coefs, psi, params, BenchmarkParams(n_draws=100, period=period),
             10, 777)


def test_a_period_without_person_months_is_refused(synthetic):
    path, munis = synthetic
    params = EstimateParams.from_dict(estimate={})
    coefs, psi = _coefs(io.read_person_months(path), params)
    with pytest.raises(ValueError, match="no person-month of the panel"):
        run_benchmark_file(path, munis, coefs, psi, params, BenchmarkParams(period="2001"), 10)
