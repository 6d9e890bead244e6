"""Discrete-time hazard on compressed cells: identical to the person-month GLM, and it
recovers a planted logit / cloglog hazard.

Identity (statsmodels GLM Binomial on person-months with the same regressors, explicit
dummies): quality coefficient and AME to 1e-8 (both are the same MLE, solved by IRLS to
tol 1e-12 on two different data layouts); for the logit link the clustered SE equals
statsmodels' ``cov_type="cluster"`` (default correction G/(G-1)(N-1)/(N-K)) to 1e-4
relative (canonical link: expected = observed information; an unexplained 5e-5 gap).

Recovery: the lean DGP of ``dgp.simulate`` is a linear probability model, not a logit
hazard, so a small hazard is simulated here with quality observed without error on a 0.1
grid (rounding is then exact); coefficient and AME (truth: the sample mean of
F(eta + beta) - F(eta) at the true parameters) within 3 SE.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from impact.estimate.hazard import _family, quality_hazard
from impact.estimate.params import EstimateParams

PARAMS = EstimateParams.from_dict(estimate={"controls": ["sex", "duration_band"]})


def _sim(seed, n_muni=8, n_months=24, per_cw=20, beta=0.3, link="logit", base=-3.0):
    rng = np.random.default_rng(seed)
    n_cw = 3
    mu_eff = rng.normal(0, 0.3, n_muni)
    region = np.arange(n_muni) % 2
    rm_eff = rng.normal(0, 0.2, (2, n_months))
    q = np.round(rng.normal(3, 0.7, (n_muni, n_cw, n_months)), 1)
    m, c, t, _ = np.meshgrid(np.arange(n_muni), np.arange(n_cw), np.arange(n_months),
                             np.arange(per_cw), indexing="ij")
    m, c, t = m.ravel(), c.ravel(), t.ravel()
    n = len(m)
    female = rng.random(n) < 0.5
    dur = rng.integers(0, 80, n)
    durb = np.searchsorted(np.array([0, 6, 12, 24, 60]), dur, side="right") - 1
    qi = q[m, c, t]
    eta = (base + beta * (qi - 3) + mu_eff[m] + rm_eff[region[m], t] + 0.2 * female
           - 0.1 * durb)
    F = _family(link).link.inverse
    y = (rng.random(n) < F(eta)).astype("int8")
    true_ame = 100 * np.mean(F(eta + beta) - F(eta))
    pm = pd.DataFrame({
        "municipality": np.array([f"GM{j:04d}" for j in range(n_muni)])[m],
        "region": np.array(["AM01", "AM02"])[region[m]], "t": 24000 + t,
        "caseworker_key": [f"cw{a}_{b}" for a, b in zip(m, c)],
        "sex": np.where(female, "F", "M"), "duration": dur, "exit_work": y,
        "quality_a": qi, "quality_b": qi, "quality_score": qi})
    return pm, true_ame


def _person_glm(pm, link, cov_type="nonrobust"):
    X = pd.concat([
        pm[["quality_a"]],
        (pm["sex"] == "F").astype(float).rename("female"),
        pd.get_dummies(np.searchsorted(np.array([0, 6, 12, 24, 60]), pm["duration"],
                                       side="right") - 1, prefix="d", drop_first=True, dtype=float),
        pd.get_dummies(pm["municipality"], dtype=float),
        # one region x month level per region dropped (each region's municipalities span it)
        pd.get_dummies(pm["region"] + ":" + pm["t"].astype(str), dtype=float)
        .loc[:, lambda d: ~d.columns.str.endswith(":24000")]], axis=1)
    kw = {"cov_type": "cluster", "cov_kwds": {"groups": pd.factorize(pm["municipality"])[0]}} \
        if cov_type == "cluster" else {}
    res = sm.GLM(pm["exit_work"].to_numpy(float), X.to_numpy(), family=_family(link)).fit(
        tol=1e-12, maxiter=200, **kw)
    assert np.linalg.matrix_rank(X.to_numpy()) == X.shape[1]
    return res, X.to_numpy()


@pytest.mark.parametrize("absorb", [True, False])
@pytest.mark.parametrize("link", ["logit", "cloglog"])
def test_compressed_equals_person_month_glm(link, absorb):
    pm, _ = _sim(1, link=link)
    res = quality_hazard(pm, PARAMS, link=link, absorb=absorb)
    assert res.n_obs == len(pm) and res.n_cells < len(pm) / 2
    ref, X = _person_glm(pm, link, cov_type="cluster")
    b = np.asarray(ref.params)
    assert res.coef == pytest.approx(b[0], abs=1e-8)
    F = _family(link).link.inverse
    ame = 100 * np.mean(F(X @ b + b[0]) - F(X @ b))
    assert res.ame_pp == pytest.approx(ame, abs=1e-8)
    # fixed-effect levels without any exit are dropped (separation; their effect is -inf),
    # so K is smaller by those levels; everything else is the same model
    assert len(res.params) <= X.shape[1]
    if link == "logit":
        # statsmodels keeps the separated levels (huge negative effects, a near-singular
        # information it inverts with pinv); the small-sample factor differs by the dropped
        # person-months and levels (~2e-5 here): 1e-4
        assert res.std_error == pytest.approx(np.asarray(ref.bse)[0], rel=1e-4)


@pytest.mark.parametrize("link", ["logit", "cloglog"])
def test_recovers_planted_hazard(link):
    pm, true_ame = _sim(7, n_muni=16, n_months=36, per_cw=40, beta=0.3, link=link)
    res = quality_hazard(pm, PARAMS, link=link)
    print(link, "coef", res.coef, "se", res.std_error, "AME", res.ame_pp, "se", res.ame_se,
          "true AME", true_ame, "cells", res.n_cells, "person-months", res.n_obs)
    assert abs(res.coef - 0.3) <= 3 * res.std_error
    assert abs(res.ame_pp - true_ame) <= 3 * res.ame_se
    assert res.ame_ci_low < res.ame_pp < res.ame_ci_high


def test_errors():
    pm, _ = _sim(2)
    with pytest.raises(ValueError, match="link"):
        quality_hazard(pm, PARAMS, link="probit")
    with pytest.raises(ValueError, match="max_cells_x_cols"):  # dense forced, too large
        quality_hazard(pm, PARAMS, max_cells_x_cols=100, absorb=False)
    with pytest.raises(ValueError, match="no person-month"):
        quality_hazard(pm.assign(quality_b=np.nan), PARAMS)


@pytest.mark.parametrize("absorb", [False, True])
def test_separated_levels_dropped_and_rows_order_free(absorb):
    """A region-month with no exit has effect -inf (separation). Kept in the fit, it made
    the information matrix singular and the clustered SE depend on the row order (found:
    4.5% apart after a change of compression order). Dropped, the result is the same for
    any order of the person-months, and the warning counts them."""
    import warnings

    pm, _ = _sim(1, link="logit")
    first = pm["region"] + ":" + pm["t"].astype(str)
    pm = pm.assign(exit_work=np.where(first == first.iloc[0], 0, pm["exit_work"]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = quality_hazard(pm, PARAMS, link="logit", absorb=absorb)
    assert any("separation" in str(w.message) for w in caught)
    shuffled = pm.sample(frac=1.0, random_state=3).reset_index(drop=True)
    b = quality_hazard(shuffled, PARAMS, link="logit", absorb=absorb)
    assert a.n_obs == b.n_obs == len(pm)
    assert b.coef == pytest.approx(a.coef, rel=1e-9)
    assert b.std_error == pytest.approx(a.std_error, rel=1e-8)
    assert b.ame_se == pytest.approx(a.ame_se, rel=1e-8)


def test_sparse_columns_is_scipys_conversion_of_the_dense_frame():
    """The absorbed fit's regressors, built column by column, are the very matrix
    scipy makes of the dense frame (indices, values and order)."""
    import scipy.sparse as sp

    from impact.estimate.hazard import _sparse_columns

    rng = np.random.default_rng(1)
    M = rng.random((500, 5))
    M[M < 0.6] = 0.0
    M[:, 2] = 0.0  # an empty column
    M[:, 4] = np.where(rng.random(500) < 0.5, -1.5, 0.0)
    ck = pd.DataFrame(M, columns=list("abcde"))
    got, want = _sparse_columns(ck, list("abcde")), sp.csc_matrix(M)
    assert got.shape == want.shape
    for attr in ("indptr", "indices", "data"):
        assert np.array_equal(getattr(got, attr), getattr(want, attr))


def _separated_by_rows(cell_code, exits, trials, cells, fe):
    """The dropping of separated levels done on rows, as written first."""
    keep = np.ones(len(cell_code), bool)
    while True:
        bad = np.zeros(len(cell_code), bool)
        for name in fe:
            lv = pd.factorize(cells[name].to_numpy())[0][cell_code]
            e = np.bincount(lv, weights=np.where(keep, exits, 0.0))
            n = np.bincount(lv, weights=np.where(keep, trials, 0.0))
            bad |= keep & ((n > 0) & ((e <= 0) | (e >= n)))[lv]
        if not bad.any():
            return keep
        keep &= ~bad


def test_separated_levels_dropped_per_cell_as_per_row():
    """Cells whose municipality or region-month has no exit (or only exits) go, again and
    again as dropping empties others; decided per cell, the same rows as per row."""
    from impact.estimate.hazard import _separated

    rng = np.random.default_rng(9)
    cells = pd.DataFrame({"municipality": rng.choice(list("ABCDEFGH"), 300),
                          "regmonth": rng.choice([f"R{i}" for i in range(40)], 300)})
    code = rng.integers(0, 290, 5_000)  # ten cells without rows
    trials = rng.integers(1, 4, 5_000).astype(float)
    exits = np.where(rng.random(5_000) < 0.15, trials, 0.0)
    exits[np.isin(code, np.flatnonzero(cells["municipality"] == "B"))] = 0  # no exit
    exits[np.isin(code, np.flatnonzero(cells["regmonth"] == "R7"))] = 1e9  # clipped below
    exits = np.minimum(exits, trials)
    # region-month Rx: a cell of B (no exits: dropped first) and a cell of A whose every
    # person-month exits, so Rx is separated only once B's cell is gone (a second round)
    cells = pd.concat([cells, pd.DataFrame({"municipality": ["B", "A"],
                                            "regmonth": ["Rx", "Rx"]})], ignore_index=True)
    code = np.r_[code, [300] * 5, [301] * 3]
    trials, exits = np.r_[trials, np.ones(8)], np.r_[exits, np.zeros(5), np.ones(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = _separated(code, exits, trials, cells, ["municipality", "regmonth"])
    want = _separated_by_rows(code, exits, trials, cells, ["municipality", "regmonth"])
    assert (~want).sum() > 300 and want.sum() > 1000 and not want[-3:].any()
    np.testing.assert_array_equal(got, want)
