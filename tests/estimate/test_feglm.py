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


def _collinear_problem(seed: int = 5):
    """Binomial rows in municipality x month cells whose third column is a municipal
    indicator: collinear with municipality effects."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    n, M, T = 6000, 6, 8
    m, t = rng.integers(0, M, n), rng.integers(0, T, n)
    cells = pd.DataFrame({"municipality": [f"m{i}" for i in range(M) for _ in range(T)],
                          "regmonth": [f"r{i % 2}:{j}" for i in range(M) for j in range(T)]})
    code = m * T + t
    q = rng.normal(size=n)
    X = np.column_stack([q, (rng.random(n) < 0.5).astype(float), (m == 2).astype(float),
                         (rng.random(n) < 0.03).astype(float)])
    trials = rng.integers(1, 4, n).astype(float)
    p = 1 / (1 + np.exp(-(-2.0 + 0.3 * q + 0.2 * (m % 3))))
    exits = rng.binomial(trials.astype(int), p).astype(float)
    return sp.csr_matrix(X), exits, trials, code, cells, rng.integers(0, 12, n)


def test_select_drops_what_the_fixed_effects_span_and_fits_the_rest_the_same():
    """``fe_binomial(select=True)`` leaves out the municipal indicator under municipality
    effects (judged on the first pass's sums) and then fits what a fit of the remaining
    columns alone gives."""
    from statsmodels.genmod.families import links

    from impact.estimate.feglm import fe_binomial

    X, exits, trials, code, cells, cl = _collinear_problem()
    fe = ["municipality", "regmonth"]
    got = fe_binomial(X, exits, trials, code, cells, fe, cl, links.Logit(), select=True)
    assert got.columns.tolist() == [0, 1, 3]
    ref = fe_binomial(X[:, [0, 1, 3]], exits, trials, code, cells, fe, cl, links.Logit())
    np.testing.assert_allclose(got.params, ref.params, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(got.vcov, ref.vcov, rtol=1e-8, atol=1e-14)
    assert got.ame == pytest.approx(ref.ame, rel=1e-10)
    assert got.ame_se == pytest.approx(ref.ame_se, rel=1e-8)
    # the reported column after the dropped one: its AME is the fit's column 2
    got3 = fe_binomial(X, exits, trials, code, cells, fe, cl, links.Logit(), qcol=3,
                       select=True)
    ref2 = fe_binomial(X[:, [0, 1, 3]], exits, trials, code, cells, fe, cl, links.Logit(),
                       qcol=2)
    assert got3.ame == pytest.approx(ref2.ame, rel=1e-10) and got3.ame != got.ame
    assert got3.ame_se == pytest.approx(ref2.ame_se, rel=1e-8)


def test_select_refuses_a_reported_column_the_fixed_effects_span():
    from statsmodels.genmod.families import links

    from impact.estimate.feglm import ReportedColumnCollinear, fe_binomial

    X, exits, trials, code, cells, cl = _collinear_problem()
    with pytest.raises(ReportedColumnCollinear):
        fe_binomial(X, exits, trials, code, cells, ["municipality", "regmonth"], cl,
                    links.Logit(), qcol=2, select=True)


def test_selected_blocks_and_sums_are_those_of_the_columns_alone():
    """``Blocks.select`` keeps each column's side; ``Acc.select`` gives the sums an
    accumulation over the selected columns alone gives."""
    from impact.estimate.rowsource import Acc, Blocks

    import scipy.sparse as sp

    X, _, trials, code, _, _ = _collinear_problem(7)
    rng = np.random.default_rng(8)
    # two sparse columns more: dense 0, 1 and 2; sparse 3, 4 and 5 (drop one between)
    X = sp.hstack([X, sp.csr_matrix((rng.random((X.shape[0], 2)) < 0.05).astype(float))],
                  format="csr")
    for cols in (np.array([0, 2, 3]), np.array([0, 1, 3, 5]), np.array([1, 4, 5])):
        whole, alone = Blocks(X, chunk=700), Blocks(X[:, cols], chunk=700)
        assert whole.sparse.tolist() == [3, 4, 5]
        sel = whole.select(cols)
        assert sel.dense.tolist() == alone.dense.tolist()
        assert sel.sparse.tolist() == alone.sparse.tolist() and len(sel.sparse)
        a_whole, a_alone = Acc(whole, 48), Acc(alone, 48)
        for acc, blocks in ((a_whole, whole), (a_alone, alone)):
            for lo, hi, D, S in blocks.chunks():
                acc.add(D, S, trials[lo:hi], code[lo:hi])
        picked = a_whole.select(sel, cols)
        np.testing.assert_allclose(picked.gram(), a_alone.gram(), rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(picked.sums(), a_alone.sums(), rtol=1e-13, atol=1e-13)
        for lo, hi, D, S in sel.chunks():  # the selected blocks' rows are the columns' own
            D2, S2 = alone.src.split(lo, hi, alone.dense, alone.sparse)
            np.testing.assert_array_equal(D, D2)
            np.testing.assert_array_equal(S.toarray(), S2.toarray())
    with pytest.raises(ValueError, match="increasing"):
        Blocks(X).select(np.array([2, 0]))


def _small_municipality_problem(seed):
    """Twelve municipalities x 24 months under municipality and region x month effects;
    municipality 0 has about four person-months a month and a monthly exit rate near
    exp(-6.5), the others near exp(-3.2) (a cloglog hazard with two regressors)."""
    rng = np.random.default_rng(seed)
    M, T, per = 12, 24, 40
    m = np.repeat(np.arange(M), T * per)
    t = np.tile(np.repeat(np.arange(T), per), M)
    keep = (m != 0) | (rng.random(len(m)) < 0.1)
    m, t = m[keep], t[keep]
    n = len(m)
    X = rng.normal(size=(n, 2))
    a = np.where(np.arange(M) == 0, -6.5, rng.normal(-3.2, 0.3, M))
    eta = a[m] + rng.normal(0, 0.2, (2, T))[m % 2, t] + X @ np.array([0.3, 0.2])
    exits = (rng.random(n) < 1 - np.exp(-np.exp(eta))).astype(float)
    exits[np.flatnonzero(m == 0)[5]] = 1.0  # one exit: not separated
    cells = pd.DataFrame({"municipality": [f"m{i}" for i in range(M) for _ in range(T)],
                          "regmonth": [f"r{i % 2}:{j}" for i in range(M) for j in range(T)]})
    return X, exits, np.ones(n), m * T + t, cells, m


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_start_from_the_levels_rates_saves_a_step_and_ends_at_the_same_optimum(
        seed, monkeypatch):
    """IRLS starts from each cell's fixed-effect levels' rates (``feglm._start``): a small
    municipality's cells with no exit no longer start at a rate of 1/12 or so, far above
    their municipality's, which IRLS came down from about 0.9 a step. The same optimum as
    from the cells' own smoothed rates (the start before), one step fewer."""
    from statsmodels.genmod.families import links

    from impact.estimate import feglm

    X, exits, trials, code, cells, cl = _small_municipality_problem(seed)
    fe = ["municipality", "regmonth"]
    new = feglm.fe_binomial(X, exits, trials, code, cells, fe, cl, links.CLogLog())
    monkeypatch.setattr(feglm, "_start", lambda link, cells, fe, e, n: np.clip(
        (e + 0.5) / (n + 1.0), 1e-10, 1 - 1e-10))
    old = feglm.fe_binomial(X, exits, trials, code, cells, fe, cl, links.CLogLog())
    assert new.iterations < old.iterations
    np.testing.assert_allclose(new.params, old.params, rtol=1e-6)
    assert new.ame == pytest.approx(old.ame, rel=1e-6)
    assert new.ame_se == pytest.approx(old.ame_se, rel=1e-6)


def test_start_with_the_cell_as_the_only_effect_is_the_cells_rate():
    from statsmodels.genmod.families import links

    from impact.estimate.feglm import _start

    rng = np.random.default_rng(4)
    n = rng.integers(0, 50, 30).astype(float)
    e = np.floor(n * rng.random(30) * 0.3)
    cells = pd.DataFrame({"munimonth": [f"c{i}" for i in range(30)]})
    for link in (links.CLogLog(), links.Logit()):
        np.testing.assert_allclose(_start(link, cells, ["munimonth"], e, n),
                                   (e + 0.5) / (n + 1.0), rtol=1e-12)


def test_start_takes_a_missing_level_as_a_level_of_its_own():
    from statsmodels.genmod.families import links

    from impact.estimate.feglm import _start

    cells = pd.DataFrame({"municipality": ["a", "a", None, None], "regmonth": ["r"] * 4})
    e, n = np.array([0.0, 1.0, 5.0, 5.0]), np.array([10.0, 10.0, 10.0, 10.0])
    got = _start(links.CLogLog(), cells, ["municipality", "regmonth"], e, n)
    assert np.isfinite(got).all()
    # the missing municipality's cells share their own (higher) rate, not the last level's
    assert got[2] == got[3] and got[2] > got[0] == got[1]
