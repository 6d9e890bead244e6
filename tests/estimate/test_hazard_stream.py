"""The quality hazard's cells read from the panel file in batches (``hazard_stream``) are the
cells ``quality_hazard`` makes from the whole frame in memory, so the fit is the same to
1e-8: whatever the batches cut (clusters, cells, the first appearance of a level), with rows
dropped for missing values, a labour-market column with a gap (left out, cells merged),
every fixed-effect and cluster option, both links, and the one-municipality fallback to
caseworker clusters. The in-memory path is itself checked against the person-month GLM and a
planted hazard (tests/estimate/test_hazard.py)."""

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
import pytest

from impact import io
from impact.estimate import EstimateParams
from impact.estimate.frames import EstimationWarning
from impact.estimate.hazard import quality_hazard
from impact.estimate.hazard_stream import hazard_cells_file, quality_hazard_file

from .dgp import file_like_panel

TOL = 1e-8


@pytest.fixture(scope="module")
def pm():
    """A small simulated panel with the hard cases of a real file (as in
    test_quality_stream): missing controls, a labour-market column with a gap, a household
    level first seen at the end, rows outside the sample."""
    return file_like_panel(11, 5)


def _file(tmp_path, frame):
    path = tmp_path / "person_months.parquet"
    io.write_parquet(frame, path)
    return path


def _both(path, params, link="cloglog", sample="all", batch_rows=997):
    whole = io.read_person_months(path)
    if sample == "inflow":
        whole = whole[whole["left_truncated"] == 0]
    with warnings.catch_warnings(record=True) as w_mem:
        warnings.simplefilter("always", EstimationWarning)
        mem = quality_hazard(whole, params, link=link)
    with warnings.catch_warnings(record=True) as w_file:
        warnings.simplefilter("always", EstimationWarning)
        got = quality_hazard_file(path, params, link, sample, batch_rows=batch_rows)
    return mem, got, [str(w.message) for w in w_mem], [str(w.message) for w in w_file]


def _assert_same(mem, got):
    for f in ("coef", "std_error", "ame_pp", "ame_se", "ame_ci_low", "ame_ci_high"):
        np.testing.assert_allclose(getattr(got, f), getattr(mem, f), rtol=TOL, atol=1e-12,
                                   err_msg=f)
    assert got.names == mem.names
    np.testing.assert_allclose(got.params, mem.params, rtol=1e-7, atol=1e-10)
    # the covariance on the scale of its diagonal: two converged IRLS fits (the file's
    # and the in-memory one stop at different steps) differ by ~1e-7 standard deviations,
    # and an entry near cancellation (few clusters) only as exactly as sqrt(V_ii V_jj):
    # with 4 caseworker clusters on AMD EPYC 9.8e-8 on that scale, 1.0e-7 relative to the
    # entry itself (a 1e-7 relative bound passed on one machine, failed on another)
    d = np.diag(mem.vcov)
    np.testing.assert_allclose(np.diag(got.vcov), d, rtol=1e-6, atol=1e-12)
    scale = np.sqrt(np.outer(d, d))
    np.testing.assert_allclose(got.vcov / scale, mem.vcov / scale, rtol=0, atol=1e-6)
    assert (got.n_obs, got.n_cells, got.n_clusters, got.fixed_effects) == (
        mem.n_obs, mem.n_cells, mem.n_clusters, mem.fixed_effects)


@pytest.mark.parametrize("link", ["cloglog", "logit"])
@pytest.mark.parametrize("options", [
    {},
    {"quality_fe": "municipality_month"},
    {"cluster": "region"},
    {"controls": ["sex", "household", "age_band", "prior_benefit_months"]},
], ids=["default", "munimonth", "region", "controls"])
def test_stream_equals_in_memory(pm, tmp_path, options, link):
    path = _file(tmp_path, pm)
    params = EstimateParams.from_dict(estimate=options)
    mem, got, w_mem, w_file = _both(path, params, link)
    _assert_same(mem, got)
    assert w_file == w_mem  # the same drops and separation warnings
    assert any("dropped for missing ['prior_benefit_months']" in w for w in w_file) == (
        "prior_benefit_months" in params.estimate.controls)


def test_labour_market_column_with_a_gap_is_left_out_and_its_cells_merge(pm, tmp_path):
    """The gap makes ``lm_gap_muni`` no control on the whole sample; the batches before the
    gap carried it as a key, so the cells are grouped again without it."""
    path = _file(tmp_path, pm)
    params = EstimateParams.from_dict(estimate={"controls": ["sex"]})  # cells compress
    c = hazard_cells_file(path, params, batch_rows=300)
    assert "lm_unemployment_rate_muni" in c.xnames and "lm_gap_muni" not in c.xnames
    assert c.trials.sum() == c.n_obs and len(c.trials) < c.n_obs / 2
    mem, got, _, _ = _both(path, params, batch_rows=300)
    _assert_same(mem, got)  # the same number of cells


def test_inflow_sample(pm, tmp_path):
    path = _file(tmp_path, pm)
    mem, got, _, _ = _both(path, EstimateParams(), sample="inflow")
    _assert_same(mem, got)
    assert 0 < got.n_obs < quality_hazard_file(path, EstimateParams()).n_obs


def test_batch_size_does_not_matter(pm, tmp_path):
    path = _file(tmp_path, pm)
    one = quality_hazard_file(path, EstimateParams(), batch_rows=len(pm) + 1)
    for b in (50, 173, 4096):  # 50: most batches cut cells and hold a few clusters only
        _assert_same(one, quality_hazard_file(path, EstimateParams(), batch_rows=b))


def _rows(c):
    return c.X.rows(0, c.X.shape[0])


def test_merging_on_the_way_does_not_matter(pm, tmp_path, monkeypatch):
    """Cells merged every few batches (as at scale) are the cells merged once at the end,
    when the merges pay (categorical controls only)."""
    import impact.estimate.hazard_stream as hs

    path = _file(tmp_path, pm)
    params = EstimateParams.from_dict(estimate={"controls": ["sex"]})
    once = hs.hazard_cells_file(path, params, batch_rows=400)
    monkeypatch.setattr(hs, "_MERGE_ROWS", 500)
    often = hs.hazard_cells_file(path, params, batch_rows=400)
    assert often.xnames == once.xnames
    assert len(once.trials) < 0.5 * once.n_obs  # the merges pay
    np.testing.assert_array_equal(often.trials, once.trials)
    np.testing.assert_array_equal(often.exits, once.exits)
    assert (_rows(often) != _rows(once)).nnz == 0


def test_merging_stops_when_it_does_not_pay(pm, tmp_path, monkeypatch):
    """With a continuous control nearly every row is a cell: after a merge that keeps
    more than 90% of its rows the batches' cells are only put together. Some rows with
    equal keys then stay apart, which changes the number of cells but not the fit."""
    import impact.estimate.hazard_stream as hs

    # rows whose keys recur in a later batch, a few: merging them gains under 10%
    again = pm.loc[pm["quality_b"].notna()].sample(frac=0.05, random_state=1)
    path = _file(tmp_path, pd.concat([pm, again], ignore_index=True))
    once = hs.hazard_cells_file(path, EstimateParams(), batch_rows=400)
    whole = quality_hazard_file(path, EstimateParams(), batch_rows=400)
    monkeypatch.setattr(hs, "_MERGE_ROWS", 500)
    often = hs.hazard_cells_file(path, EstimateParams(), batch_rows=400)
    assert 0.9 * once.n_obs < len(once.trials) < once.n_obs  # little to gain
    assert len(often.trials) > len(once.trials)  # rows of equal keys left apart
    assert often.trials.sum() == once.trials.sum() == once.n_obs
    assert often.exits.sum() == once.exits.sum()
    split = quality_hazard_file(path, EstimateParams(), batch_rows=400)
    assert split.n_cells == len(often.trials) > whole.n_cells
    for f in ("coef", "std_error", "ame_pp", "ame_se"):
        np.testing.assert_allclose(getattr(split, f), getattr(whole, f), rtol=TOL, err_msg=f)
    # the same covariance on the correlation scale: the two IRLS runs add up different
    # rows and stop at iterates a deviance tolerance (1e-12) apart, so a covariance near
    # zero moves by a few 1e-7 of the standard errors behind it
    se_s, se_w = np.sqrt(np.diag(split.vcov)), np.sqrt(np.diag(whole.vcov))
    np.testing.assert_allclose(se_s, se_w, rtol=1e-6)
    np.testing.assert_allclose(split.vcov / np.outer(se_s, se_s),
                               whole.vcov / np.outer(se_w, se_w), rtol=0, atol=1e-6)


def test_one_municipality_falls_back_to_caseworker_clusters(pm, tmp_path):
    one = pm[pm["municipality"] == pm["municipality"].iloc[0]]
    path = _file(tmp_path, one)
    mem, got, w_mem, w_file = _both(path, EstimateParams(), batch_rows=211)
    _assert_same(mem, got)
    assert got.n_clusters == one.loc[one["quality_b"].notna(), "caseworker_key"].nunique()
    assert any("clustered by caseworker" in w for w in w_file)


def test_no_quality_columns(pm, tmp_path):
    path = _file(tmp_path, pm.drop(columns=["quality_a", "quality_b"]))
    assert hazard_cells_file(path, EstimateParams()) is None
    with pytest.raises(ValueError, match="no person-month"):
        quality_hazard_file(path, EstimateParams())


def test_coded_rows_are_the_sparse_design(pm, tmp_path):
    """The coded design's chunks, column subsets, row subsets and non-zero counts are
    those of the CSR matrix it stands for (negative bin codes included)."""
    path = _file(tmp_path, pm)
    X = hazard_cells_file(path, EstimateParams()).X
    n, k = X.shape
    full = X.rows(0, n)
    assert any(off < 0 for _, off, _ in X.cats)  # the shock bins' "no shock" code
    chunks = [X.rows(lo, min(lo + 777, n)) for lo in range(0, n, 777)]
    assert (sp.vstack(chunks).tocsr() != full).nnz == 0
    np.testing.assert_array_equal(X.column_nnz(), np.bincount(full.indices, minlength=k))
    cols = np.flatnonzero(np.arange(k) % 3 != 1)
    assert (X.select(cols).rows(0, n) != full[:, cols]).nnz == 0
    keep = np.arange(n) % 4 != 0
    assert (X.take(keep).rows(0, int(keep.sum())) != full[keep]).nnz == 0
    # every row: quality (when not 0) and one dummy per control at a level kept
    assert full[:, 0].toarray().ravel().tolist() == X.num[0][1][:].tolist()
    # the dense/sparse split of a chunk, as the fit reads it
    from impact.estimate.rowsource import Blocks, CSRRows

    # shares: the default; numeric columns sparse too; every column dense; every sparse
    for src, share in ((X, 0.125), (X.select(cols), 0.125), (X, 0.9), (X, 0.0), (X, 1.0)):
        coded = Blocks(src, share=share, chunk=500)
        ref = Blocks(CSRRows(src.rows(0, n)), share=share, chunk=500)
        assert len(coded.dense) or share == 1.0
        assert len(coded.sparse) or share == 0.0
        if share == 0.9:  # a numeric column among the sparse ones
            assert {c for c, _ in src.num} & set(coded.sparse.tolist())
        np.testing.assert_array_equal(coded.dense, ref.dense)
        for (_, _, D1, S1), (_, _, D2, S2) in zip(coded.chunks(), ref.chunks()):
            np.testing.assert_array_equal(D1, D2)
            assert (S1 != S2).nnz == 0 and S1.shape == S2.shape


@pytest.mark.parametrize("capacity", [0, 10, 10_000])
def test_poured_cells_are_the_joined_parts(capacity):
    """Parts poured into one array per key (merging stopped) give the values and the type
    of joining them, parts of wider types later included; a capacity too small grows."""
    from impact.estimate.hazard_stream import _Poured, _small

    rng = np.random.default_rng(3)
    parts = []
    for i in range(12):
        m = int(rng.integers(0, 400))
        key = {"cluster": _small(rng.integers(0, 50 if i < 5 else 40_000, m)),
               "quality": _small(np.round(rng.normal(5, 1, m), 1 if i % 3 else 0)),
               "level": _small(rng.integers(-3, 3, m))}
        parts.append((key, rng.random(m), np.ones(m)))
    poured = _Poured(capacity)
    for key, e, t in parts:
        poured.add({k: v.copy() for k, v in key.items()}, e, t)
    cols, exits, trials = poured.take()
    for k in parts[0][0]:
        want = np.concatenate([p[0][k] for p in parts])
        assert cols[k].dtype == want.dtype and np.array_equal(cols[k], want), k
    # the awkward cases were there: keys widened after the first parts
    assert parts[0][0]["cluster"].dtype == np.int8 and cols["cluster"].dtype == np.int32
    # whole numbers as the narrowest integer, joined with a 0.1 grid's floats: float64
    assert parts[0][0]["quality"].dtype == np.int8 and cols["quality"].dtype == np.float64
    assert parts[2][0]["quality"].dtype == np.float64
    np.testing.assert_array_equal(exits, np.concatenate([p[1] for p in parts]))
    np.testing.assert_array_equal(trials, np.concatenate([p[2] for p in parts]))
    assert poured.n == 0


def test_small_keeps_every_value():
    """Whole floats as the narrowest integer, other floats as float32 only when exact,
    NaN kept; the values never change (a whole -0.0 becomes 0, the same number)."""
    from impact.estimate.hazard_stream import _small

    cases = [([0.0, 1.0, 0.0], np.int8), ([-0.0, 300.0], np.int16), ([2.0 ** 31], np.float32),
             ([0.5, 2.0], np.float32), ([0.1, 1.0], np.float64), ([np.nan, 1.0], np.float32),
             ([np.inf, 1.0], np.float32), ([7, -200], np.int16)]
    for values, dtype in cases:
        v = np.asarray(values)
        got = _small(v)
        assert got.dtype == dtype, (values, got.dtype)
        np.testing.assert_array_equal(got.astype(v.dtype), v)


def test_scaled_codes_are_the_rounded_numbers():
    """``Scaled`` codes read as ``np.round(x / step) * step`` to the bit, whatever the
    codes' type, and stay codes through ``take``, ``compact`` and the non-zero count."""
    from impact.estimate.coded_rows import CodedRows, Scaled

    rng = np.random.default_rng(11)
    x = rng.normal(3, 2, 1000)
    want = np.round(x / 0.1) * 0.1
    k = np.round(x / 0.1)
    for codes in (k.astype(np.int16), k.astype(np.float32), k):
        s = Scaled(codes, 0.1)
        assert s[:].dtype == np.float64 and np.array_equal(s[:], want)
        assert np.array_equal(s[10:20], want[10:20])
    keep = rng.random(1000) < 0.6
    X = CodedRows(1000, 1, [(0, Scaled(k.astype(np.int16), 0.1))], [])
    assert X.column_nnz()[0] == np.count_nonzero(want)
    for Y in (X.take(keep), CodedRows(1000, 1, [(0, Scaled(k.astype(np.int16), 0.1))],
                                      []).compact(keep)):
        assert isinstance(Y.num[0][1], Scaled)
        np.testing.assert_array_equal(Y.rows(0, int(keep.sum())).toarray()[:, 0], want[keep])
