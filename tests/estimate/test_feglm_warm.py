"""The binomial fit's warm start from a sample of its rows (``feglm_irls.warm_start``):
fewer IRLS steps over all rows, the same optimum; the usual start whenever the sample
cannot give one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.genmod.families import links

from impact.estimate import feglm_irls
from impact.estimate.feglm import fe_binomial

FE = ["municipality", "regmonth"]


def _problem(seed: int, M: int = 20, T: int = 30, per: int = 300, beta=(0.6, -0.4, 0.9)):
    """A cloglog hazard under municipality and region x month effects with three
    regressors (one a rare dummy), M x T x per rows; the planted coefficients ``beta``
    are far from 0, where IRLS starts without a warm start."""
    rng = np.random.default_rng(seed)
    m = np.repeat(np.arange(M), T * per)
    t = np.tile(np.repeat(np.arange(T), per), M)
    n = len(m)
    X = np.column_stack([rng.normal(size=n), rng.normal(size=n),
                         (rng.random(n) < 0.08).astype(float)])
    a = rng.normal(-3.0, 0.4, M)
    eta = a[m] + rng.normal(0, 0.3, (4, T))[m % 4, t] + X @ np.asarray(beta)
    exits = (rng.random(n) < 1 - np.exp(-np.exp(eta))).astype(float)
    cells = pd.DataFrame({"municipality": [f"m{i}" for i in range(M) for _ in range(T)],
                          "regmonth": [f"r{i % 4}:{j}" for i in range(M) for j in range(T)]})
    return X, exits, np.ones(n), m * T + t, cells, m


@pytest.mark.parametrize("beta", [(0.6, -0.4, 0.9), (1.2, -0.8, 1.5)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_warm_start_takes_fewer_steps_to_the_same_optimum(seed, beta, monkeypatch):
    """180,000 rows (a sample of 11,250): the warm start saves steps, with strong
    regressors too (where a cell's rate on the link scale is not its mean index), and
    ends where the usual start does."""
    X, exits, trials, code, cells, cl = _problem(seed, beta=beta)
    fit = lambda **kw: fe_binomial(X, exits, trials, code, cells, FE, cl, links.CLogLog(),
                                   select=True, **kw)
    cold, exact = fit(warm=False), fit(warm=False, tol=1e-14)
    monkeypatch.setattr(feglm_irls, "WARM_ROWS", 1000)
    warm = fit()
    # passes over all rows (the start's and any step halving's included); the sample's
    # are a sixteenth of one each
    assert warm.passes < cold.passes and warm.iterations < cold.iterations
    assert warm.columns.tolist() == cold.columns.tolist() == [0, 1, 2]
    np.testing.assert_allclose(warm.params, beta, atol=0.05)
    # the same convergence test, so about the same distance from the optimum (``exact``,
    # a fit to 1e-14) as from the usual start: the test stops when the next step would
    # move the reported coefficient by < 1e-8 (1 + |b|), which leaves it up to 1.2e-8
    # away here from either start; the others and the AME's SE move with every
    # coefficient and effect (up to 2.3e-7 and 2.3e-6 relative from the usual start)
    for f in (warm, cold):
        assert abs(f.params[0] - exact.params[0]) <= 3e-8 * (1 + abs(exact.params[0]))
        np.testing.assert_allclose(f.params, exact.params, rtol=1e-6)
        assert f.ame == pytest.approx(exact.ame, rel=1e-6)
        assert f.ame_se == pytest.approx(exact.ame_se, rel=1e-5)
        np.testing.assert_allclose(f.vcov, exact.vcov, rtol=1e-5,
                                   atol=1e-5 * np.diag(exact.vcov).max())
        assert f.deviance == pytest.approx(exact.deviance, rel=1e-9)


def test_the_start_is_the_samples_fit():
    """The sample's coefficients and fixed-effect index are its own fit's (``fe_binomial``
    of every 4th row, to a tight tolerance here), its weights the trials of its cells."""
    X, exits, trials, code, cells, cl = _problem(3)
    ws = feglm_irls.warm_start(feglm_irls.Blocks(X).src, exits, trials, code, cells, FE,
                               links.CLogLog(), 0, 1 << 18, every=4, tol=1e-10)
    assert ws is not None
    keep = np.arange(len(exits)) % 4 == 0
    ref = fe_binomial(X[keep], exits[keep], trials[keep], code[keep], cells, FE,
                      cl[keep], links.CLogLog(), warm=False)
    np.testing.assert_allclose(ws.b, ref.params, rtol=1e-7)
    np.testing.assert_array_equal(ws.weight, np.bincount(code[keep], minlength=len(cells)))
    # the index: each sampled row's eta less its X b is its cell's shift
    eta = X[keep] @ ws.b + ws.shift[code[keep]]
    mu = 1 - np.exp(-np.exp(eta))
    # the score of every cell's effect is 0 at the sample's optimum: exits = expected
    # exits summed over each municipality (and each region x month) of the sample
    m = cells["municipality"].to_numpy()[code[keep]]
    for lv in np.unique(m):
        sel = m == lv
        f = np.exp(eta[sel] - np.exp(eta[sel]))
        score = np.sum(f * (exits[keep][sel] - mu[sel]) / (mu[sel] * (1 - mu[sel])))
        assert abs(score) < 1e-4 * sel.sum()


def test_no_warm_start_when_the_sample_cannot_fit_the_reported_column(monkeypatch):
    """The reported column is zero on every sampled row: collinear there, so no warm
    start, and the fit over all rows is the usual one, bit for bit."""
    X, exits, trials, code, cells, cl = _problem(5)
    X[::16, 2] = 0.0
    ws = feglm_irls.warm_start(feglm_irls.Blocks(X).src, exits, trials, code, cells, FE,
                               links.CLogLog(), 2, 1 << 18)
    assert ws is None
    cold = fe_binomial(X, exits, trials, code, cells, FE, cl, links.CLogLog(), qcol=2,
                       select=True, warm=False)
    monkeypatch.setattr(feglm_irls, "WARM_ROWS", 1000)
    warm = fe_binomial(X, exits, trials, code, cells, FE, cl, links.CLogLog(), qcol=2,
                       select=True)
    np.testing.assert_array_equal(warm.params, cold.params)
    assert warm.iterations == cold.iterations and warm.ame == cold.ame


def test_a_column_the_sample_lacks_starts_at_zero_and_is_fitted(monkeypatch):
    """A column that is zero on every sampled row but not the reported one: the sample
    leaves it out (coefficient 0 in the start), the fit over all rows fits it."""
    X, exits, trials, code, cells, cl = _problem(6)
    X[::16, 2] = 0.0
    ws = feglm_irls.warm_start(feglm_irls.Blocks(X).src, exits, trials, code, cells, FE,
                               links.CLogLog(), 0, 1 << 18)
    assert ws is not None and ws.b[2] == 0.0 and ws.b[0] != 0.0
    cold = fe_binomial(X, exits, trials, code, cells, FE, cl, links.CLogLog(), select=True,
                       warm=False)
    monkeypatch.setattr(feglm_irls, "WARM_ROWS", 1000)
    warm = fe_binomial(X, exits, trials, code, cells, FE, cl, links.CLogLog(), select=True)
    assert warm.columns.tolist() == [0, 1, 2]
    np.testing.assert_allclose(warm.params, cold.params, rtol=1e-6)


def _with_rare_level(X, exits, rows: int = 240, seed: int = 9):
    """X with a rare level (``rows`` rows) beside it, its rows' exits 30% (against about
    5% elsewhere), none of them among every 16th row (the warm start's sample)."""
    rng = np.random.default_rng(seed)
    rare = np.zeros(len(exits))
    at = np.sort(rng.choice(len(exits), rows, replace=False))
    rare[at] = 1.0
    exits = exits.copy()
    exits[at] = np.where(at % 16 == 0, 0.0, (rng.random(rows) < 0.3).astype(float))
    return np.column_stack([X, rare]), exits


def test_a_step_that_raises_the_deviance_is_halved():
    """The rare level's first IRLS step from the levels' rates overshoots: without step
    halving the fit ended at weights of 0 and a singular matrix. Halved, it ends at the
    maximum: every score (each column's and each fixed-effect level's), in units of its
    information's square root, is 0 to 1e-4. (statsmodels' dense GLM, with no step
    halving either, does not converge here in 200 steps, and ends at a higher deviance.)"""
    from impact.estimate.feglm import _Projector

    X, exits, trials, code, cells, cl = _problem(8, M=8, T=10, per=300)
    X, exits = _with_rare_level(X, exits)
    link = links.CLogLog()
    fit = feglm_irls.irls(feglm_irls.Blocks(X), exits, trials, _Projector(cells, FE, code),
                          link, 0, 1e-8, 100, False)
    assert fit.converged and np.isfinite(fit.b).all()
    mu, f = link.inverse(fit.eta), link.inverse_deriv(fit.eta)
    score = f * (exits - trials * mu) / (mu * (1 - mu))
    w = trials * f ** 2 / (mu * (1 - mu))
    assert np.abs(X.T @ score / np.sqrt((X ** 2).T @ w)).max() < 1e-4
    for name in FE:
        lv = pd.factorize(cells[name].to_numpy()[code])[0]
        assert np.abs(np.bincount(lv, score) / np.sqrt(np.bincount(lv, w))).max() < 1e-4
    assert fit.passes > fit.it + 1   # steps were halved
    # the stage's path gives that fit (it raised LinAlgError before)
    got = fe_binomial(X, exits, trials, code, cells, FE, cl, link, warm=False)
    np.testing.assert_array_equal(got.params, fit.b)
    assert abs(got.params[3] - 1.63) < 0.3   # the rare level's hazard, about 6 times


def test_no_tolerance_converges_as_before():
    """``tol=0`` (the deviance must repeat exactly): no step halving from the usual start
    (0 x inf made the first step look like a rise), the fit converges."""
    X, exits, trials, code, cells, cl = _problem(0, per=100)
    zero = fe_binomial(X, exits, trials, code, cells, FE, cl, links.Logit(), tol=0.0,
                       warm=False)
    tight = fe_binomial(X, exits, trials, code, cells, FE, cl, links.Logit(), tol=1e-14,
                        warm=False)
    np.testing.assert_allclose(zero.params, tight.params, rtol=1e-10)
    assert zero.passes == zero.iterations + 1   # nothing halved


def test_an_unconverged_fit_returns_the_iterate_its_sums_belong_to():
    """``strict=False`` at ``maxiter``: the coefficients returned are those the last pass
    was made at (its eta, deviance and sums), not the next step's."""
    from impact.estimate.feglm import _deviance, _Projector

    X, exits, trials, code, cells, _ = _problem(1, per=100)
    link = links.CLogLog()
    proj = _Projector(cells, FE, code)
    fit = feglm_irls.irls(feglm_irls.Blocks(X), exits, trials, proj, link, 0, 1e-8, 2,
                          False, strict=False)
    assert not fit.converged and fit.it == 2
    np.testing.assert_allclose(fit.eta, X @ fit.b + fit.shift[code], rtol=1e-12, atol=1e-12)
    mu = link.inverse(fit.eta)
    assert fit.dev == pytest.approx(_deviance(exits, trials, mu), rel=1e-10)
    with pytest.raises(feglm_irls.IRLSFailed, match="no convergence in 2"):
        feglm_irls.irls(feglm_irls.Blocks(X), exits, trials, proj, link, 0, 1e-8, 2, False)


def test_a_coefficient_the_sample_hardly_determines_starts_at_zero(monkeypatch):
    """A rare level (240 rows) whose exits all fall outside the sample: its coefficient
    heads for -inf in the sample's fit (standard error far above ``WARM_MAX_SE``), so it
    starts at 0, and the fit over all rows ends where the usual start does."""
    X, exits, trials, code, cells, cl = _problem(8)
    X, exits = _with_rare_level(X, exits)
    ws = feglm_irls.warm_start(feglm_irls.Blocks(X).src, exits, trials, code, cells, FE,
                               links.CLogLog(), 0, 1 << 18)
    assert ws is not None and ws.b[3] == 0.0 and (ws.b[:3] != 0.0).all()
    cold = fe_binomial(X, exits, trials, code, cells, FE, cl, links.CLogLog(), select=True,
                       warm=False)
    monkeypatch.setattr(feglm_irls, "WARM_ROWS", 1000)
    warm = fe_binomial(X, exits, trials, code, cells, FE, cl, links.CLogLog(), select=True)
    # the convergence test bounds the reported coefficient; the rare level's, weakly
    # determined, differs by 1.2e-6 relative between the two fits' last iterates
    np.testing.assert_allclose(warm.params[:3], cold.params[:3], rtol=1e-6)
    assert warm.params[3] == pytest.approx(cold.params[3], rel=1e-5)
    assert warm.ame == pytest.approx(cold.ame, rel=1e-6)


def test_a_warm_start_that_goes_wrong_gives_the_usual_fit(monkeypatch):
    """A start far off (every coefficient 8): IRLS from it fails, and ``fe_binomial`` fits
    again from the usual start, bit for bit the fit without a warm start."""
    X, exits, trials, code, cells, cl = _problem(9)
    cold = fe_binomial(X, exits, trials, code, cells, FE, cl, links.CLogLog(), select=True,
                       warm=False)
    monkeypatch.setattr(feglm_irls, "WARM_ROWS", 1000)
    bad = feglm_irls.WarmStart(np.full(3, 8.0), np.zeros(len(cells)), np.ones(len(cells)))
    monkeypatch.setattr(feglm_irls, "warm_start", lambda *a, **k: bad)
    with pytest.raises((ArithmeticError, ValueError, np.linalg.LinAlgError)):
        with np.errstate(all="ignore"):
            feglm_irls.irls(feglm_irls.Blocks(X), exits, trials,
                            feglm_irls._Projector(cells, FE, code), links.CLogLog(), 0,
                            1e-8, 100, True, bad)
    warm = fe_binomial(X, exits, trials, code, cells, FE, cl, links.CLogLog(), select=True)
    np.testing.assert_array_equal(warm.params, cold.params)
    assert warm.iterations == cold.iterations and warm.ame_se == cold.ame_se


def test_small_fits_keep_the_usual_start():
    """Below ``WARM_ROWS`` rows nothing changes: the fit is bit for bit the one without."""
    X, exits, trials, code, cells, cl = _problem(7, M=8, T=10, per=30)
    a = fe_binomial(X, exits, trials, code, cells, FE, cl, links.CLogLog())
    b = fe_binomial(X, exits, trials, code, cells, FE, cl, links.CLogLog(), warm=False)
    np.testing.assert_array_equal(a.params, b.params)
    assert a.iterations == b.iterations and a.ame_se == b.ame_se
