"""The sparse path of ``linalg.wls_fit`` against the dense one and against pyfixest.

The sparse path exists for national cell tables (342 municipalities x 35 regions x 120
months: ~4,600 fixed-effect columns, where the dense inverse is O(p^3)). It must make the
same collinearity decisions and give the same fit: coefficients, residuals, solves and
CRV1 variances to 1e-8 (relative), on designs that exercise every decision: two fixed
effects with two disconnected components, fixed-effect levels with no fitted rows, a
regressor collinear with the fixed effects, a regressor collinear with another regressor,
one fixed effect, and none.
"""

import numpy as np
import pandas as pd
import pyfixest as pf
import pytest

from impact.estimate import factors, linalg
from impact.estimate.linalg import build_design, crv1_vcov, wls_fit
from impact.estimate.wild import wild_cluster_bootstrap

TOL = 1e-8


def _cells(seed: int, units: int = 40, regions: int = 8, months: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(u, u % regions, t) for u in range(units) for t in range(months)
            if rng.random() > 0.15]
    f = pd.DataFrame(rows, columns=["unit", "region", "t"])
    f["regmonth"] = f["region"] * 1000 + f["t"]
    n = len(f)
    f["x1"] = rng.normal(size=n) + 0.05 * f["t"]
    f["x2"] = rng.normal(size=n) + (f["unit"] % 5)
    f["x_unit"] = (f["unit"] % 7).astype(float)           # constant within unit: collinear
    f["x_dup"] = 2.0 * f["x1"] - f["x2"]                   # collinear with x1, x2
    f["w"] = rng.integers(20, 400, n).astype(float)
    f["y"] = 0.4 * f["x1"] - 0.2 * f["x2"] + 0.1 * f["unit"] + rng.normal(size=n)
    return f


def _compare(design, f, rows=None, clusters="unit"):
    y, w = f["y"].to_numpy(), f["w"].to_numpy()
    dense = wls_fit(design, y, w, rows, method="dense")
    sparse = wls_fit(design, y, w, rows, method="sparse")
    np.testing.assert_array_equal(dense.keep, sparse.keep)
    np.testing.assert_array_equal(np.isnan(dense.coef), np.isnan(sparse.coef))
    ok = ~np.isnan(dense.coef)
    scale = np.abs(dense.coef[ok]).max()
    np.testing.assert_allclose(sparse.coef[ok], dense.coef[ok], rtol=TOL, atol=TOL * scale)
    np.testing.assert_allclose(sparse.resid, dense.resid, rtol=TOL,
                               atol=TOL * np.abs(dense.resid).max())
    rhs = np.random.default_rng(0).normal(size=(len(dense.keep), 3))
    a, b = dense.solve(rhs), sparse.solve(rhs)
    np.testing.assert_allclose(b, a, rtol=TOL, atol=TOL * np.abs(a).max())
    cols = [c for c in (design.x_index(x) for x in design.x_names) if c in set(dense.keep)]
    if cols:
        vd, gd, kd = crv1_vcov(design, dense, w, f[clusters].to_numpy(), cols)
        vs, gs, ks = crv1_vcov(design, sparse, w, f[clusters].to_numpy(), cols)
        assert (gd, kd) == (gs, ks)
        np.testing.assert_allclose(vs, vd, rtol=TOL, atol=TOL * np.abs(vd).max())
    return dense, sparse


def test_two_fixed_effects_disconnected_and_collinear_regressors():
    f = _cells(1)
    d = build_design(f, ["unit", "regmonth"], ["x1", "x_unit", "x2", "x_dup"])
    dense, sparse = _compare(d, f)
    # x_unit (within unit) and x_dup (= 2 x1 - x2, after both) are dropped by both paths
    dropped = {d.x_names[c - d.n_fe_cols] for c in np.flatnonzero(np.isnan(dense.coef))
               if c >= d.n_fe_cols}
    assert dropped == {"x_unit", "x_dup"}
    # units are nested in regions, so each region is a connected component of the
    # unit - region x month graph: one unit level per region is dropped
    assert np.isnan(dense.coef[: d.fe_levels[0]]).sum() == f["region"].nunique()


def test_rows_subset_with_empty_levels():
    f = _cells(2)
    d = build_design(f, ["unit", "regmonth"], ["x1", "x2"])
    rows = (f["unit"] % 9 != 0).to_numpy() & (f["t"] % 11 != 3).to_numpy()
    _compare(d, f, rows)


@pytest.mark.parametrize("fe", [["regmonth"], []])
def test_one_and_no_fixed_effect(fe):
    f = _cells(3)
    d = build_design(f, fe, ["x1", "x2", "x_dup"] + ([] if fe else ["x_unit"]))
    _compare(d, f)


def test_only_fixed_effects():
    f = _cells(4)
    d = build_design(f, ["unit", "regmonth"], [])
    _compare(d, f)


def test_three_fixed_effects_the_third_with_the_regressors():
    """A third fixed effect (the client group of ``heterogeneity.adoption``): the sparse
    path keeps the first two as its block and decides the third's levels with the
    regressors; both paths drop the same columns (one group level, collinear with the
    units) and give the same fit, also on a row subset."""
    f = _cells(7)
    f["grp"] = np.random.default_rng(7).integers(0, 4, len(f))
    d = build_design(f, ["unit", "regmonth", "grp"], ["x1", "x_unit", "x2"])
    dense, sparse = _compare(d, f)
    n2 = d.fe_levels[0] + d.fe_levels[1]
    assert np.isnan(dense.coef[n2:d.n_fe_cols]).sum() == 1   # one group level
    _compare(d, f, (f["t"] % 7 != 2).to_numpy())


def test_auto_is_sparse_with_three_fixed_effects(monkeypatch):
    f = _cells(8)
    f["grp"] = np.random.default_rng(8).integers(0, 3, len(f))
    d = build_design(f, ["unit", "regmonth", "grp"], ["x1", "x2"])
    monkeypatch.setattr(linalg, "SPARSE_FROM", d.n_fe_cols)
    fit = wls_fit(d, f["y"].to_numpy(), f["w"].to_numpy())
    assert not isinstance(fit.factor, factors.DenseFactor)


def test_sparse_path_factorises_the_fixed_effects_only(monkeypatch):
    """With regressors beside the fixed effects the kept system is solved by block
    elimination on the fixed effects' sparse LU (one LU, not a second of the whole system:
    the regressors' dense columns made that one 30 times slower at national size), and
    its solves are the whole system's LU's to rounding."""
    f = _cells(3)
    d = build_design(f, ["unit", "regmonth"], ["x1", "x_unit", "x2", "x_dup"])
    lus = []
    real = factors.splu
    monkeypatch.setattr(factors, "splu", lambda A, **kw: (lus.append(A.shape), real(A, **kw))[1])
    fit = wls_fit(d, f["y"].to_numpy(), f["w"].to_numpy(), method="sparse")
    n_fe = int(np.sum(fit.keep < d.n_fe_cols))
    assert isinstance(fit.factor, factors.BlockFactor)
    assert lus == [(n_fe, n_fe)]
    assert d.x_index("x_unit") not in fit.keep and d.x_index("x_dup") not in fit.keep
    A = d.Z[:, fit.keep].T @ d.Z[:, fit.keep].multiply(f["w"].to_numpy()[:, None])
    rhs = np.random.default_rng(1).normal(size=(len(fit.keep), 2))
    whole = real(A.tocsc()).solve(rhs)
    np.testing.assert_allclose(fit.solve(rhs), whole, rtol=1e-9, atol=1e-9 * np.abs(whole).max())
    np.testing.assert_allclose(fit.solve(rhs[:, 0]), whole[:, 0], rtol=1e-9,
                               atol=1e-9 * np.abs(whole).max())


def test_auto_switches_to_sparse_and_matches_pyfixest():
    """Above ``SPARSE_FROM`` fixed-effect columns ``auto`` is sparse; pyfixest's
    alternating projections are the independent reference (rtol 1e-6 as in
    test_estimate_reference: its demeaning stops at a tolerance)."""
    f = _cells(5, units=60, regions=30, months=60)
    f = f.assign(regmonth=f["regmonth"].astype(str))
    d = build_design(f, ["unit", "regmonth"], ["x1", "x2"])
    assert d.n_fe_cols >= linalg.SPARSE_FROM
    fit = wls_fit(d, f["y"].to_numpy(), f["w"].to_numpy())
    assert isinstance(fit.factor, factors.BlockFactor)
    cols = [d.x_index("x1"), d.x_index("x2")]
    V, _, _ = crv1_vcov(d, fit, f["w"].to_numpy(), f["unit"].to_numpy(), cols)
    ref = pf.feols("y ~ x1 + x2 | unit + regmonth", data=f, weights="w",
                   vcov={"CRV1": "unit"}, fixef_rm="none", fixef_tol=1e-12)
    np.testing.assert_allclose(fit.coef[cols], ref.coef()[["x1", "x2"]], rtol=1e-6)
    np.testing.assert_allclose(np.sqrt(np.diag(V)), ref.se()[["x1", "x2"]], rtol=1e-6)


def test_wild_bootstrap_same_on_both_paths(monkeypatch):
    f = _cells(6)
    d = build_design(f, ["unit", "regmonth"], ["x1", "x2"])
    args = (d, f["y"].to_numpy(), f["w"].to_numpy(), f["region"].to_numpy(), "x1")
    monkeypatch.setattr(linalg, "SPARSE_FROM", 10 ** 9)
    dense = wild_cluster_bootstrap(*args, B=199, seed=3)
    monkeypatch.setattr(linalg, "SPARSE_FROM", 1)
    sparse = wild_cluster_bootstrap(*args, B=199, seed=3)
    np.testing.assert_allclose(sparse.t_boot, dense.t_boot, rtol=1e-7, atol=1e-9)
    assert (sparse.ci_low, sparse.p_value) == pytest.approx((dense.ci_low, dense.p_value), rel=1e-8)


def test_crv1_parts_with_more_columns_than_clusters():
    """Both branches of ``crv1_parts`` (bread columns when m <= G, one solve with the G
    cluster scores when m > G) against the sandwich written out with a dense inverse."""
    f = _cells(7)
    f["x3"] = f["x1"] ** 2
    d = build_design(f, ["regmonth"], ["x1", "x2", "x3"])
    y, w = f["y"].to_numpy(), f["w"].to_numpy()
    fit = wls_fit(d, y, w, method="sparse")
    Zk = d.Z[:, fit.keep].toarray()
    B = np.linalg.inv(Zk.T @ (Zk * w[:, None]))
    score = Zk * (w * fit.resid)[:, None]
    for clusters in (f["unit"].to_numpy(), f["region"].to_numpy()):  # G = 40 and 8
        cl = pd.factorize(clusters)[0]
        S = np.zeros((cl.max() + 1, Zk.shape[1]))
        np.add.at(S, cl, score)
        pos = {c: i for i, c in enumerate(fit.keep)}
        cols = [c for c in fit.keep if c >= d.n_fe_cols] + list(fit.keep[:20])  # m = 23
        SB, factor, G, _ = linalg.crv1_parts(d, fit, w, clusters, cols)
        assert (len(cols) > G) == (G == 8)
        Bc = B[:, [pos[c] for c in cols]]
        ref = Bc.T @ S.T @ S @ Bc
        np.testing.assert_allclose(SB.T @ SB, ref, rtol=1e-8, atol=1e-10 * np.abs(ref).max())
        V, _, _ = crv1_vcov(d, fit, w, clusters, cols)
        np.testing.assert_allclose(V, factor * ref, rtol=1e-8, atol=1e-10 * factor * np.abs(ref).max())


def test_compressed_regression_equals_the_uncompressed_one():
    """Sufficient statistics: person-months with regressors constant within a
    municipality-month cell, regressed on them with municipality and region x month
    effects, and the same regression on the cell means weighted by the cell counts give
    the same coefficients (1e-8) and, with N counted as person-months (frequency
    weights), the same CRV1 standard errors. The uncompressed fit is pyfixest's."""
    rng = np.random.default_rng(8)
    cells = _cells(8, units=30, regions=6, months=24)
    cells["n"] = rng.integers(1, 40, len(cells))
    pm = cells.loc[cells.index.repeat(cells["n"])].reset_index(drop=True)
    pm["y"] = (rng.random(len(pm)) < 0.05 + 0.01 * pm["x1"].clip(-2, 2)).astype(float)
    ref = pf.feols("y ~ x1 + x2 | unit + regmonth", data=pm.assign(regmonth=pm["regmonth"].astype(str)),
                   vcov={"CRV1": "unit"}, fixef_tol=1e-12)
    agg = pm.groupby(["unit", "regmonth"], sort=True).agg(
        y=("y", "mean"), n=("y", "size"), x1=("x1", "first"), x2=("x2", "first")).reset_index()
    d = build_design(agg, ["unit", "regmonth"], ["x1", "x2"])
    w = agg["n"].to_numpy(dtype=float)
    fit = wls_fit(d, agg["y"].to_numpy(), w)
    cols = [d.x_index("x1"), d.x_index("x2")]
    np.testing.assert_allclose(fit.coef[cols], ref.coef()[["x1", "x2"]], rtol=1e-8)
    V, _, _ = crv1_vcov(d, fit, w, agg["unit"].to_numpy(), cols, n_obs=w.sum())
    np.testing.assert_allclose(np.sqrt(np.diag(V)), ref.se()[["x1", "x2"]], rtol=1e-8)
    # without n_obs the small-sample factor counts cells: larger errors
    V_cells, _, _ = crv1_vcov(d, fit, w, agg["unit"].to_numpy(), cols)
    assert (np.diag(V_cells) > np.diag(V)).all()


def test_scatter_dummies_matches_comparisons():
    codes = np.array([3, -1, 0, 3, 2, -1])
    A = np.zeros((6, 3), order="F")
    linalg.scatter_dummies(A, codes, {3: 0, -1: 2})  # level 0 and 2 left out
    np.testing.assert_array_equal(A, np.column_stack([codes == 3, np.zeros(6), codes == -1]))
    with pytest.raises(ValueError, match="column-major"):
        linalg.scatter_dummies(np.zeros((6, 3)), codes, {3: 0})


@pytest.mark.parametrize("n_levels,weighted,shared", [
    (3, False, False), (9, False, False), (10, False, False), (3, True, False),
    (14, True, False), (4, False, True)])
def test_writes_whole_means_no_zeroing_needed(n_levels, weighted, shared):
    """Where ``writes_whole`` says so (up to eight unweighted levels, a column each), the
    columns come out right on a matrix full of stale values (``GramSums`` then does not
    zero them); where it does not, they need the zeros (some stale value stays)."""
    rng = np.random.default_rng(n_levels)
    codes = rng.integers(0, n_levels, 300)
    w = rng.normal(size=300) if weighted else None
    columns = {lv: j for j, lv in enumerate(range(1, n_levels))}
    if shared:   # two levels in one column
        columns[n_levels - 1] = 0
    A = np.full((300, n_levels), np.nan, order="F")
    linalg.scatter_dummies(A, codes, columns, w)
    clean = np.zeros((300, n_levels), order="F")
    linalg.scatter_dummies(clean, codes, columns, w)
    whole = linalg.writes_whole(columns, w)
    assert whole == (not weighted and not shared and n_levels - 1 <= 8)
    cols = sorted(set(columns.values()))
    if whole:
        np.testing.assert_array_equal(A[:, cols], clean[:, cols])
    else:
        assert np.isnan(A[:, cols]).any()


@pytest.mark.parametrize("n_levels", [3, 8, 9, 14])
def test_scatter_dummies_both_ways(n_levels):
    """Few levels (a comparison per column) and many (one scatter), some left out, and two
    levels sharing a column (then the scatter: both rows are 1)."""
    rng = np.random.default_rng(n_levels)
    codes = rng.integers(-1, n_levels, 500)
    columns = {lv: j for j, lv in enumerate(range(1, n_levels))}      # level 0, -1 left out
    A = np.zeros((500, n_levels), order="F")
    linalg.scatter_dummies(A, codes, columns)
    want = np.zeros_like(A)
    for lv, j in columns.items():
        want[:, j] = codes == lv
    np.testing.assert_array_equal(A, want)
    B = np.zeros((500, 2), order="F")
    linalg.scatter_dummies(B, codes, {0: 1, 1: 1})
    np.testing.assert_array_equal(B[:, 1], np.isin(codes, [0, 1]))
    assert not B[:, 0].any()
