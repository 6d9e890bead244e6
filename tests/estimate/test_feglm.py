"""The absorbed-fixed-effects binomial GLM (``feglm``) against the dense statsmodels GLM
with dummy columns (``hazard.fit_binomial_cells``), on the lean simulator's panel.

Tolerances: both solve the same likelihood to a deviance tolerance of 1e-12; coefficients
and the AME agree to 1e-6 relative, far below any reported digit and far above the solvers'
convergence noise. Standard errors: 1e-4. The absorbed fit forms X~'WX~ from cell sums
(X'WX - S'F, no n x k temporary), which loses digits on a regressor that is almost
constant within cells: on this small sample a municipal indicator under municipality x
month effects moves the quality SE by 1.7e-5 relative. (On the built-in data the sparse
and the earlier dense-projection implementations agree to 2e-11.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from impact.estimate import EstimateParams
from impact.estimate.hazard import quality_hazard

REL = 1e-6
REL_SE = 1e-4


@pytest.fixture(scope="module")
def small(sim):
    """8 municipalities x 15 months of the lean panel: small enough for dense dummies."""
    pm = sim.person_months
    munis = sorted(pm["municipality"].unique())[:8]
    t0 = pm["t"].min()
    return pm[pm["municipality"].isin(munis) & (pm["t"] < t0 + 15)].reset_index(drop=True)


@pytest.mark.parametrize("link, fe", [("cloglog", "region_month"), ("logit", "region_month"),
                                      ("cloglog", "municipality_month")])
def test_absorbed_equals_dense_dummies(small, link, fe):
    p = EstimateParams.from_dict(estimate={"quality_fe": fe}, seed=1)
    dense = quality_hazard(small, p, link, absorb=False, max_cells_x_cols=1e9)
    absorbed = quality_hazard(small, p, link, absorb=True)
    assert absorbed.n_obs == dense.n_obs and absorbed.n_clusters == dense.n_clusters
    assert absorbed.coef == pytest.approx(dense.coef, rel=REL)
    assert absorbed.std_error == pytest.approx(dense.std_error, rel=REL_SE)
    assert absorbed.ame_pp == pytest.approx(dense.ame_pp, rel=REL)
    assert absorbed.ame_se == pytest.approx(dense.ame_se, rel=REL_SE)
    # every regressor, not just quality
    common = [n for n in absorbed.names if n in dense.names]
    assert len(common) == len(absorbed.names)
    ia = [absorbed.names.index(n) for n in common]
    idn = [dense.names.index(n) for n in common]
    np.testing.assert_allclose(absorbed.params[ia], dense.params[idn], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(np.sqrt(np.diag(absorbed.vcov)[ia]),
                               np.sqrt(np.diag(dense.vcov)[idn]), rtol=REL_SE, atol=1e-12)


def test_auto_absorbs_above_the_size_guard(small):
    p = EstimateParams.from_dict(seed=1)
    small_guard = quality_hazard(small, p, "cloglog", max_cells_x_cols=1.0)
    absorbed = quality_hazard(small, p, "cloglog", absorb=True)
    assert small_guard.coef == absorbed.coef and small_guard.names == absorbed.names


def test_result_says_how_the_fixed_effects_entered(small):
    p = EstimateParams.from_dict(seed=1)
    assert quality_hazard(small, p, "logit", absorb=True).fixed_effects == "absorbed"
    assert quality_hazard(small, p, "logit", absorb=False,
                          max_cells_x_cols=1e9).fixed_effects == "dummies"


def test_blocks_gram_and_cell_sums_equal_the_sparse_products():
    """The dense/sparse split of the regressors gives the same X'WX and cell sums."""
    import scipy.sparse as sp

    from impact.estimate.feglm import _gram, _Projector
    from impact.estimate.rowsource import Blocks

    rng = np.random.default_rng(3)
    n = 2000
    cols = [rng.normal(size=n),                                   # dense numeric
            (rng.random(n) < 0.5).astype(float),                  # common level
            (rng.random(n) < 0.02).astype(float),                 # rare level
            np.where(rng.random(n) < 0.05, rng.normal(size=n), 0.0)]  # sparse numeric
    X = sp.csr_matrix(np.column_stack(cols))
    w = rng.random(n) + 0.1
    B = Blocks(X, chunk=300)  # several chunks
    assert set(B.dense) == {0, 1} and set(B.sparse) == {2, 3}
    np.testing.assert_allclose(_gram(B, w), _gram(X, w), rtol=1e-12, atol=1e-12)
    cells = pd.DataFrame({"municipality": ["a", "b", "c", "d"], "t": [1, 1, 2, 2]})
    proj = _Projector(cells, ["municipality"], rng.integers(0, 4, n)).fit(w)
    np.testing.assert_allclose(proj.sums(B), proj.sums(X), rtol=1e-12, atol=1e-12)


def test_acc_sums_equal_the_dense_products():
    """``rowsource.Acc`` makes S'WS and the cell sums of the sparse block from its entries
    (``_within_rows``, ``bincount``): equal to the dense X'WX, Ind'WX and cell weights, for
    rows with no, one or several sparse entries, a repeated (row, column) entry, cell
    codes in a small integer type and a chunk with no sparse entry at all."""
    import scipy.sparse as sp

    from impact.estimate.rowsource import Acc, Blocks

    rng = np.random.default_rng(11)
    n, C = 3000, 37
    dense = np.column_stack([rng.normal(size=n), (rng.random(n) < 0.6).astype(float)])
    rare = np.zeros((n, 5))
    for j in range(5):
        hit = rng.random(n) < 0.04
        rare[hit, j] = np.where(j == 4, rng.normal(size=int(hit.sum())), 1.0)
    rare[2000:2400] = 0.0  # a chunk of 300 rows without sparse entries (rows 2100-2399)
    X = np.column_stack([dense, rare])
    # a repeated entry: row 5, column 3 as 0.25 + 0.75 (sums to 1.0)
    rows, cols = np.nonzero(X)
    vals = X[rows, cols]
    rows, cols = np.r_[rows, 5, 5], np.r_[cols, 3, 3]
    vals = np.r_[vals, 0.25, 0.75]
    X[5, 3] += 1.0
    S = sp.csr_matrix((vals, (rows, cols)), shape=X.shape)
    w = rng.random(n) + 0.1
    code = rng.integers(0, C, n).astype(np.int8)
    B = Blocks(S, chunk=300)
    assert set(B.dense) == {0, 1} and set(B.sparse) == {2, 3, 4, 5, 6}
    acc = Acc(B, C)
    for lo, hi, D, Sp in B.chunks():
        acc.add(D, Sp, w[lo:hi], code[lo:hi])
    ind = np.zeros((C, n))
    ind[code.astype(int), np.arange(n)] = 1.0
    np.testing.assert_allclose(acc.gram(), X.T @ (w[:, None] * X), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(acc.sums(), ind @ (w[:, None] * X), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(acc.Wc, ind @ w, rtol=1e-12)
