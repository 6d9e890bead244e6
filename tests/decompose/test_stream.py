"""The decomposition read from the panel file in batches (``decompose.stream``) equals the
in-memory decomposition (``decompose.core.decompose``) of the same rows: the table (every
contribution, interval, rate and status), the model's coefficients, CRV1 covariance,
influence rows, fixed effects and jackknife, to 1e-8.

The panel has the hard cases of a real file: missing values of a control, a labour-market
column with a gap, a level first seen in the last rows, rows without quality, batches
that cut municipality-month cells and clusters (50 to 4,096 rows), and the options that
change the model (estimator, cluster, controls). ``fit_model_sums`` is also compared with
``fit_model`` directly, clusters nested in the cells or not, with and without
municipality effects.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from impact import io
from impact.decompose import decompose
from impact.decompose.core import decompose_reads, fit_decomposition_model
from impact.decompose.model import fit_model, fit_model_sums
from impact.decompose.params import DecomposeParams
from impact.decompose.stream import decompose_file
from impact.estimate.params import EstimateParams
from impact.estimate.quality_stream import GramSums

from estimate.dgp import file_like_panel

TOL = 1e-8
FIT_FIELDS = ("coef", "vcov", "psi", "lam", "alpha", "lam_dw", "alpha_dw", "jack",
              "lam_jack", "alpha_jack")


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    pm = file_like_panel(seed=20261202, mask_seed=5)
    # a municipality never measured (no municipality effect fitted: not estimable) and one
    # measured only in its second year (region-month effects of its first year unfitted
    # in its own rows' cells)
    munis = sorted(pm["municipality"].unique())
    pm.loc[pm["municipality"] == munis[-1], "quality_b"] = np.nan
    pm.loc[(pm["municipality"] == munis[-2]) & (pm["t"] < pm["t"].min() + 12),
           "quality_a"] = np.nan
    path = tmp_path_factory.mktemp("stream") / "person_months.parquet"
    io.write_parquet(pm, path)
    return path


def _quiet(f, *a, **k):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = f(*a, **k)
    return out, sorted({str(x.message) for x in w})


def _close(a, b, what):
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    assert a.shape == b.shape, what
    assert np.array_equal(np.isnan(a), np.isnan(b)), what
    scale = max(1.0, float(np.nanmax(np.abs(b))) if np.isfinite(b).any() else 1.0)
    np.testing.assert_allclose(np.nan_to_num(a), np.nan_to_num(b), rtol=0, atol=TOL * scale,
                               err_msg=what)


def _same(got, want):
    assert got.fit.names == want.fit.names
    assert list(got.fit.clusters) == list(want.fit.clusters)
    assert list(got.fit.regmonths) == list(want.fit.regmonths)
    assert list(got.fit.munis) == list(want.fit.munis)
    assert got.design.columns == want.design.columns
    assert [got.design.factor(c) for c in got.design.columns] == [
        want.design.factor(c) for c in want.design.columns]
    for f in FIT_FIELDS:
        _close(getattr(got.fit, f), getattr(want.fit, f), f)
    assert got.fit.n_obs == want.fit.n_obs
    g, w = got.table, want.table
    assert list(g.columns) == list(w.columns)
    for c in w.columns:
        if pd.api.types.is_numeric_dtype(w[c]):
            _close(g[c], w[c], c)
        else:
            assert g[c].tolist() == w[c].tolist(), c
    floats = ("quality_effect_pp", "quality_se")
    assert {k: v for k, v in got.info.items() if k not in floats} == {
        k: v for k, v in want.info.items() if k not in floats}
    for k in floats:
        assert (got.info[k] is None) == (want.info[k] is None)
        if want.info[k] is not None:
            assert got.info[k] == pytest.approx(want.info[k], rel=TOL)


def _memory(path, params, dp, estimator="iv", min_cell=10, names=None):
    pm = io.read_person_months(path, columns=decompose_reads(io.parquet_columns(path),
                                                                params))
    return _quiet(decompose, pm, params, dp, min_cell, estimator, names)


@pytest.mark.parametrize("batch_rows", [50, 777, 4096])
def test_file_in_batches_equals_the_in_memory_decomposition(panel, batch_rows):
    params = EstimateParams.from_dict(estimate={
        "controls": ["age_band", "sex", "household", "prior_benefit_months"]})
    dp = DecomposeParams(n_boot=99)
    # a disclosure minimum that suppresses about half of the municipality-years
    pm = io.read_person_months(panel, columns=["municipality", "t", "exit_work"])
    min_cell = int(pm.groupby(["municipality", pm["t"] // 12])["exit_work"].sum().median())
    names = {"GM0001": "Een"}
    want, w_warn = _memory(panel, params, dp, min_cell=min_cell, names=names)
    got, g_warn = _quiet(decompose_file, panel, params, dp, min_cell, "iv", names,
                         batch_rows=batch_rows)
    _same(got, want)
    assert g_warn == w_warn  # the gap column's verdict, said once
    assert any("lm_gap_muni" in m for m in w_warn)
    assert "household[late_level]" in want.design.columns
    assert {"ok", "suppressed", "not_estimable"} <= set(want.table["status"])


@pytest.mark.parametrize("options,estimator", [
    ({"cluster": "region"}, "iv"),
    ({}, "ols"),
    ({"controls": ["education_level", "duration_band"], "lm_controls": ["unemployment_rate"]},
     "iv"),
], ids=["region", "ols", "controls"])
def test_options(panel, options, estimator):
    params = EstimateParams.from_dict(estimate=options)
    dp = DecomposeParams(n_boot=49)
    want, w_warn = _memory(panel, params, dp, estimator)
    got, g_warn = _quiet(decompose_file, panel, params, dp, 10, estimator, None,
                         batch_rows=1000)
    _same(got, want)
    assert g_warn == w_warn


def test_without_quality_and_with_one_municipality(tmp_path):
    pm = file_like_panel(seed=7, mask_seed=1)
    params = EstimateParams.from_dict(estimate={})
    dp = DecomposeParams(n_boot=49)
    # no quality measured: the model without the quality effect, with the warning
    p1 = tmp_path / "noq.parquet"
    io.write_parquet(pm.assign(quality_b=np.nan), p1)
    want, w_warn = _memory(p1, params, dp)
    got, g_warn = _quiet(decompose_file, p1, params, dp, 10, "iv", None, batch_rows=500)
    _same(got, want)
    assert g_warn == w_warn and any("no quality" in m for m in g_warn)
    # one municipality's extract: caseworker clusters (not nested in the cells)
    one = pm[pm["municipality"] == pm["municipality"].iloc[0]]
    p2 = tmp_path / "one.parquet"
    io.write_parquet(one, p2)
    want, w_warn = _memory(p2, params, dp)
    got, g_warn = _quiet(decompose_file, p2, params, dp, 10, "iv", None, batch_rows=300)
    _same(got, want)
    assert g_warn == w_warn and any("caseworker" in m for m in g_warn)


def test_a_period_outside_the_panel_is_refused(panel):
    params = EstimateParams.from_dict(estimate={})
    dp = DecomposeParams(periods=[["2001", "2002"]])
    with pytest.raises(ValueError, match="is not inside the panel"):
        decompose_file(panel, params, dp)


@pytest.mark.parametrize("cluster,with_muni", [("municipality", True),
                                               ("caseworker_key", True),
                                               ("municipality", False)])
def test_fit_from_sums_equals_fit_from_rows(panel, cluster, with_muni):
    pm = io.read_person_months(panel)
    params = EstimateParams.from_dict(estimate={})
    design, _, sample = fit_decomposition_model(pm, params)
    lead = {"y": 100.0 * pm["exit_work"].to_numpy(dtype="float64")[sample],
            "quality": pm["quality_a"].to_numpy(dtype="float64")[sample],
            "quality_b": pm["quality_b"].to_numpy(dtype="float64")[sample]}
    A, names = design.matrix(sample, lead)
    s = pm[sample].reset_index(drop=True)
    muni, region = s["municipality"].astype(str), s["region"].astype(str)
    cl = s[cluster].astype(str)
    t = s["t"].to_numpy(dtype="int64")
    want = fit_model(np.asfortranarray(A.copy()), names, "y", "quality", "quality_b",
                     muni.to_numpy(), region.to_numpy(), t, cl.to_numpy(),
                     municipality_effects=with_muni, jackknife=True)
    gs = GramSums()
    for lo in range(0, len(s), 997):  # batches cutting cells and clusters
        r = slice(lo, lo + 997)
        gs.add({n: A[r, j] for j, n in enumerate(names)}, {}, cl.iloc[r], muni.iloc[r],
               region.iloc[r], t[r])
    got = fit_model_sums(gs.raw([gs.col[("num", n)] for n in names]), gs.cell_table(), names,
                         "y", "quality", "quality_b", municipality_effects=with_muni,
                         jackknife=True)
    assert list(got.clusters) == list(want.clusters)
    for f in FIT_FIELDS:
        _close(getattr(got, f), getattr(want, f), f)


def test_jackknife_equals_refits_where_one_cluster_alone_identifies_terms(panel):
    """Without some municipality the shock bins its region alone had are not identified
    (their demeaned columns are zero): the leave-one-out coefficients then are those of a
    refit, which drops them, in memory and from sums alike. (Solved anyway, the rounding
    noise of their cross products gave deviations off by a factor of five.)"""
    pm = io.read_person_months(panel)
    params = EstimateParams.from_dict(estimate={
        "controls": ["age_band", "sex", "household", "prior_benefit_months"]})
    design, fit, sample = _quiet(fit_decomposition_model, pm, params)[0]
    got = _quiet(decompose_file, panel, params, DecomposeParams(n_boot=9),
                 batch_rows=500)[0].fit
    s = pm[sample].reset_index(drop=True)
    lead = {"y": 100.0 * s["exit_work"].to_numpy(dtype="float64"),
            "quality": s["quality_a"].to_numpy(dtype="float64"),
            "quality_b": s["quality_b"].to_numpy(dtype="float64")}
    A, names = design.matrix(sample, lead)
    muni = s["municipality"].astype(str).to_numpy()
    G = len(fit.clusters)
    scale = np.sqrt((G - 1) / G)
    dropped = 0
    for g, label in enumerate(fit.clusters):
        keep = muni != label
        f = fit_model(np.asfortranarray(A[keep]), names, "y", "quality", "quality_b",
                      muni[keep], s["region"].astype(str).to_numpy()[keep],
                      s["t"].to_numpy()[keep], muni[keep])
        dropped += int(((f.coef == 0) & (fit.coef != 0)).sum())
        dev = scale * (f.coef - fit.coef)
        for jack in (fit.jack[g], got.jack[g]):
            _close(jack, dev, label)
    assert dropped > 0  # the case is there


def test_distinct_counts_by_span_equal_each_span_counted_alone(panel, tmp_path):
    """One scan for many month spans (overlapping, one empty, one outside the panel) gives
    each span's distinct clients and caseworkers per municipality and in all, counted here
    by pandas: a missing client id once, a missing caseworker not at all."""
    from impact.decompose.passes import distinct_counts_by_span

    pm = io.read_person_months(panel)
    pm.loc[pm.index % 97 == 0, "client_id"] = None        # missing ids, in every span
    pm.loc[pm.index % 89 == 0, "caseworker_key"] = None
    path = tmp_path / "pm.parquet"
    io.write_parquet(pm, path)
    t0, t1 = int(pm["t"].min()), int(pm["t"].max())
    spans = [(t0, t0 + 11), (t0 + 6, t0 + 17), (t0, t1), (t0 + 5, t0 + 4), (t1 + 1, t1 + 9)]
    got = distinct_counts_by_span(path, "CAST(municipality AS VARCHAR)", spans)
    assert len(got) == len(spans)
    for (a, b), d in zip(spans, got):
        rows = pm[(pm["t"] >= a) & (pm["t"] <= b)]
        want = {}
        for key, g in [*rows.groupby("municipality"), (None, rows)]:
            clients = g["client_id"].nunique() + int(g["client_id"].isna().any())
            want[key] = (clients, g["caseworker_key"].nunique())
        if rows.empty:
            want = {}
        assert d == want, (a, b)
    assert got[3] == {} and got[4] == {} and len(got[2]) == pm["municipality"].nunique() + 1


def test_distinct_counts_by_one_expression_or_several(panel, tmp_path):
    """``distinct_counts`` by one expression (keyed by its value) or a tuple of them (keyed
    by the tuple), with a filter and a total: the counts pandas makes, a missing client
    id counting once, a missing caseworker not at all."""
    from impact.decompose.passes import distinct_counts

    pm = io.read_person_months(panel)
    pm.loc[pm.index % 97 == 0, "client_id"] = None
    pm.loc[pm.index % 89 == 0, "caseworker_key"] = None
    path = tmp_path / "pm.parquet"
    io.write_parquet(pm, path)

    def want(rows, by):
        out = {}
        for key, g in rows.groupby(by):
            key = key[0] if len(by) == 1 else tuple(key)
            out[key] = (g["client_id"].nunique() + int(g["client_id"].isna().any()),
                        g["caseworker_key"].nunique())
        return out

    by_year = distinct_counts(path, ("CAST(municipality AS VARCHAR)", "t // 12"))
    pm["year"] = pm["t"] // 12
    assert by_year == want(pm, ["municipality", "year"])
    assert all(isinstance(k, tuple) and isinstance(k[1], int) for k in by_year)
    t0 = int(pm["t"].min())
    rows = pm[(pm["t"] >= t0) & (pm["t"] <= t0 + 11)]
    got = distinct_counts(path, "CAST(municipality AS VARCHAR)", "t BETWEEN ? AND ?",
                          [t0, t0 + 11], total=True)
    whole = want(rows.assign(all=1), ["all"])[1]
    assert got == {**want(rows, ["municipality"]), None: whole}
