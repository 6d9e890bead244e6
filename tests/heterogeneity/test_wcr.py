"""WCR bootstrap of the group effects of the interaction 2SLS (``heterogeneity.wcr``).

References and what they check:

* the observed statistics and scores: ``pmreg.fit_pm_multi`` on the same matrix (1e-10);
* the draws: brute-force refits. For a handful of weight vectors w, y* = X b_r + w_g u_r is
  built explicitly (u_r the restricted residuals, computed here by least squares on the
  controls) and ``fit_pm_multi`` is run on it; b*_h and se*_h must equal ``estimate_boot``
  and ``se_boot`` (1e-8), without (the regression on A as given) and with the fixed effects
  re-estimated (y* re-demeaned by ``cell_demean`` first). w = 1 reproduces the data, so b*
  is the unrestricted estimate and t* the observed t;
* the restricted estimator: linearmodels ``IV2SLS`` with the restriction imposed by moving
  null_h x_h to the left-hand side and dropping x_h, all instruments kept (1e-8);
* family-wise error: the Monte Carlo of the lean DGP (20 municipalities, outcome redrawn
  from p_true on a fixed design, null = the true effect in every ladder group); the score
  draws of ``multiplicity.romano_wolf`` are printed beside it for the record;
* joint bootstrap of two dimensions (ladder and education models, different samples, the
  same municipality labels): the weights align by label and the stacked family's adjusted
  p-values are never below each model's own.

Seeds are fixed once, before any result was seen, and never changed to make a test pass.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from linearmodels.iv import IV2SLS

from impact.estimate import EstimateParams
from impact.estimate.linalg import independent_columns
from impact.estimate.multiplicity import max_t_adjust, romano_wolf
from impact.estimate.pmreg import cell_demean, fe_df, fit_pm_multi
from impact.estimate.quality import quality_frame
from impact.estimate.wild import _WEBB
from impact.heterogeneity.params import HeterogeneityParams
from impact.heterogeneity.wcr import (CellFE, WCRModel, romano_wolf_wcr, wcr_draws,
                                      wcr_weights)
from impact.simulate.lean import simulate

SEED = 20261202
FE = ("municipality", "regmonth")


def _dim(name):
    return {d.name: d for d in HeterogeneityParams().groups}[name]


def _frame(pm, dim_name, outcomes=None):
    """The interaction model's demeaned matrix for one dimension (as ``quality_by_group``)."""
    dim = _dim(dim_name)
    codes = dim.codes(pm[dim.column])
    H = len(dim.labels)
    nan = np.where(codes >= 0, 0.0, np.nan)
    extra = {}
    for h in range(H):
        d = (codes == h).astype(float) + nan
        extra[f"qa#{h}"] = pm["quality_a"].to_numpy() * d
        extra[f"qb#{h}"] = pm["quality_b"].to_numpy() * d
        if h:
            extra[f"D#{h}"] = d
    A, names, exog, cells, code, cl = quality_frame(pm, EstimateParams(), outcomes=outcomes,
                                                    extra=extra)
    df_fe = fe_df(cells, list(FE), cells["municipality"].to_numpy())
    cell_demean(A, cells, code, list(FE))
    return dict(A=A, names=names, xs=[f"qa#{h}" for h in range(H)],
                exog=exog + [f"D#{h}" for h in range(1, H)], zs=[f"qb#{h}" for h in range(H)],
                clusters=cl, df_fe=df_fe, fe=CellFE(cells, code, FE))


@pytest.fixture(scope="module")
def tiny_sim():
    """8 municipalities in 2 regions: small enough for refits per draw."""
    return simulate(seed=6, n_muni=8, n_regions=2, n_months=24, caseload=100)


@pytest.fixture(scope="module")
def tiny(tiny_sim):
    pm = tiny_sim.person_months
    pm = pm.assign(exit_any=pm["exit_any"].astype(float))
    return _frame(pm, "ladder_step", {"y": "exit_work", "y2": "exit_any"})


@pytest.fixture(scope="module")
def lean():
    return simulate(seed=11, n_muni=20, n_months=36, caseload=150)


def _args(f, y="y"):
    return (f["A"], f["names"], y, f["xs"], f["exog"], f["zs"], f["clusters"], f["df_fe"])


def test_observed_t_and_scores_equal_fit_pm_multi(tiny):
    null = np.array([1.0, 2.0, -0.5, 1.5])
    W, labels, _ = wcr_weights(tiny["clusters"], B=4, seed=SEED)
    both = wcr_draws(*_args(tiny, ["y", "y2"]), null, W, labels, fe=tiny["fe"])
    for y, d in zip(["y", "y2"], both):
        fit = fit_pm_multi(*_args(tiny, y))
        se = np.sqrt(np.diag(fit.V))
        np.testing.assert_allclose(d.estimate, fit.coef, rtol=1e-10)
        np.testing.assert_allclose(d.std_error, se, rtol=1e-10)
        np.testing.assert_allclose(d.t_stat, (fit.coef - null) / se, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(d.scores, fit.scores, rtol=1e-10, atol=1e-12 * se.max())
        assert d.df_k == fit.df_k and d.n_clusters == fit.n_clusters
        # one outcome at a time gives the same draws as several at once
        one = wcr_draws(*_args(tiny, y), null, W, labels, fe=tiny["fe"])
        np.testing.assert_allclose(one.t_boot, d.t_boot, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="no column in W"):
        wcr_draws(*_args(tiny), null, W[:, 1:], labels[1:])


def _restricted_residual(f, br):
    """u_r = y - X b_r with the controls' coefficients fitted (least squares on A)."""
    A, col = f["A"], {n: i for i, n in enumerate(f["names"])}
    z = A[:, col["y"]] - A[:, [col[x] for x in f["xs"]]] @ br
    Wc = A[:, [col[e] for e in f["exog"]]]
    return z - Wc @ np.linalg.lstsq(Wc, z, rcond=None)[0]


@pytest.mark.parametrize("refit_fe", [False, True])
def test_draws_equal_brute_force_refits(tiny, refit_fe):
    rng = np.random.default_rng(SEED)
    G = len(np.unique(tiny["clusters"]))
    W = np.vstack([np.ones(G), -np.ones(G), rng.choice([-1.0, 1.0], size=(3, G)),
                   rng.choice(_WEBB, size=(1, G))])
    labels = pd.unique(pd.Series(tiny["clusters"]))
    null = np.array([1.0, 2.0, -0.5, 1.5])
    fe = tiny["fe"] if refit_fe else None
    d = wcr_draws(*_args(tiny), null, W, labels, fe=fe)
    # w = 1 is the data: b* = b_r + (Z'X)^{-1} Z'u_r = the unrestricted b, t* = t
    np.testing.assert_allclose(d.estimate_boot[0], d.estimate, rtol=1e-10)
    np.testing.assert_allclose(d.t_boot[0], d.t_stat, rtol=1e-10)
    # w = -1: b* = 2 b_r - b
    np.testing.assert_allclose(d.estimate_boot[1], 2 * np.diag(d.restricted) - d.estimate,
                               rtol=1e-10)
    col = {n: i for i, n in enumerate(tiny["names"])}
    X = tiny["A"][:, [col[x] for x in tiny["xs"]]]
    w_row = pd.Series(np.arange(G), index=labels)[tiny["clusters"]].to_numpy()
    for h in range(len(null)):
        br = d.restricted[h]
        u_r = _restricted_residual(tiny, br)
        for b in range(len(W)):
            ystar = X @ br + W[b, w_row] * u_r
            if refit_fe:
                ystar = cell_demean(ystar[:, None].copy(order="F"), fe.cells, fe.cell_code,
                                    list(fe.fe))[:, 0]
            A = tiny["A"].copy(order="F")
            A[:, col["y"]] = ystar
            ref = fit_pm_multi(A, *_args(tiny)[1:])
            assert d.estimate_boot[b, h] == pytest.approx(ref.coef[h], rel=1e-8)
            assert d.se_boot[b, h] == pytest.approx(np.sqrt(ref.V[h, h]), rel=1e-8)
            assert d.t_boot[b, h] == pytest.approx((ref.coef[h] - null[h])
                                                   / np.sqrt(ref.V[h, h]), rel=1e-8)


def test_restricted_equals_linearmodels(tiny):
    null = np.array([1.0, 2.0, -0.5, 1.5])
    W, labels, _ = wcr_weights(tiny["clusters"], B=2, seed=SEED)
    d = wcr_draws(*_args(tiny), null, W, labels)
    col = {n: i for i, n in enumerate(tiny["names"])}
    A = tiny["A"]
    exo = A[:, [col[e] for e in tiny["exog"]]]
    gram = exo.T @ exo
    s = np.sqrt(np.diag(gram))
    exo = exo[:, independent_columns(gram / np.outer(s, s))]
    Z = A[:, [col[z] for z in tiny["zs"]]]
    X = A[:, [col[x] for x in tiny["xs"]]]
    for h in (0, 2):  # two of the four (each IV2SLS fit is slow on a loaded machine)
        keep = [k for k in range(len(null)) if k != h]
        dep = A[:, col["y"]] - null[h] * X[:, h]
        lm = IV2SLS(dep, exo, X[:, keep], Z).fit(cov_type="unadjusted")
        endog = lm.params.to_numpy()[exo.shape[1]:]
        np.testing.assert_allclose(d.restricted[h, keep], endog, rtol=1e-8)
        assert d.restricted[h, h] == null[h]
        # its residuals are the u_r behind the draws (least squares on the controls)
        u_r = _restricted_residual(tiny, d.restricted[h])
        np.testing.assert_allclose(lm.resids.to_numpy(), u_r, rtol=1e-8,
                                   atol=1e-8 * np.abs(dep).max())


def test_family_wise_error_few_clusters(lean):
    """FWER of romano_wolf_wcr at 5% under the true null, 20 municipality clusters."""
    reps, B = 200, 399
    pm = lean.person_months
    rng = np.random.default_rng(SEED)
    p = pm["p_true"].to_numpy() / 100
    ys = {f"y{r}": f"y{r}" for r in range(reps)}
    pm = pd.concat([pm, pd.DataFrame({f"y{r}": (rng.random(len(pm)) < p).astype("int8")
                                      for r in range(reps)}, index=pm.index)], axis=1)
    f = _frame(pm, "ladder_step", ys)
    truth = lean.truth["quality_pp"]
    W, labels, enumerated = wcr_weights(f["clusters"], B=B, seed=SEED + 1)
    draws = wcr_draws(*_args(f, list(ys)), truth, W, labels, fe=f["fe"])
    wcr = np.mean([(max_t_adjust(d.t_stat, d.t_boot, plus_one=not enumerated) < 0.05).any()
                   for d in draws])
    score = np.mean([(romano_wolf(d.estimate, d.scores, null=truth, B=B, seed=SEED + 2 + r)
                      .p_adjusted < 0.05).any() for r, d in enumerate(draws)])
    bound = 0.05 + 3 * np.sqrt(0.05 * 0.95 / reps)
    print(f"\nFWER at 5%, G=20, H=4, {reps} sets, B={B}: WCR {wcr:.3f}, "
          f"score draws {score:.3f} (bound {bound:.3f})")
    assert wcr <= bound


def test_joint_bootstrap_of_two_dimensions(tiny_sim):
    """Ladder and education models (different samples: education unknown is in no group)
    on the same 8 municipalities, Webb weights (not enumerated)."""
    models = []
    for dim in ("ladder_step", "education"):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="quality: .* dropped for missing")
            f = _frame(tiny_sim.person_months, dim)
        models.append(WCRModel(f["A"], f["names"], "y", f["xs"], f["exog"], f["zs"],
                               f["clusters"], f["df_fe"], null=0.0, fe=f["fe"]))
    assert len(models[1].clusters) < len(models[0].clusters)
    B, seed = 399, SEED + 3
    joint = romano_wolf_wcr(models, B=B, weights="webb", seed=seed)
    own = [romano_wolf_wcr(m, B=B, weights="webb", seed=seed) for m in models]
    # each model alone draws the same weights as the family (same labels, same order)
    W, labels, enumerated = wcr_weights(np.concatenate([m.clusters for m in models]), B=B,
                                        weights="webb", seed=seed)
    assert not enumerated and joint.n_boot == B
    for m in models:
        assert list(wcr_weights(m.clusters, B=B, seed=seed)[1]) == list(labels)
    H1 = len(models[0].xs)
    assert joint.p_adjusted.size == H1 + len(models[1].xs)
    np.testing.assert_array_equal(joint.t_stat, np.concatenate([o.t_stat for o in own]))
    np.testing.assert_array_equal(joint.p_single, np.concatenate([o.p_single for o in own]))
    assert np.all(joint.p_adjusted[:H1] >= own[0].p_adjusted)
    assert np.all(joint.p_adjusted[H1:] >= own[1].p_adjusted)
    assert np.any(joint.p_adjusted > np.concatenate([o.p_adjusted for o in own]))
    # the weights are matched by cluster label, not position: permuted columns and an
    # unused extra cluster give the same draws
    m = models[1]
    base = wcr_draws(m.A, m.names, m.y, m.xs, m.exog, m.zs, m.clusters, m.df_fe, 0.0,
                     W[:50], labels, fe=m.fe)
    perm = np.random.default_rng(SEED + 4).permutation(len(labels))
    extra = np.hstack([W[:50, perm], np.ones((50, 1))])
    moved = wcr_draws(m.A, m.names, m.y, m.xs, m.exog, m.zs, m.clusters, m.df_fe, 0.0,
                      extra, np.append(labels[perm], -999), fe=m.fe)
    np.testing.assert_array_equal(moved.t_boot, base.t_boot)


def test_empty_group_is_nan_and_left_out_of_the_family(tiny_sim):
    """A group no person-month falls in: NaN like fit_pm_multi, the others are tested."""
    pm = tiny_sim.person_months.copy()
    pm.loc[pm["ladder_step"] == 2, "ladder_step"] = 1
    f = _frame(pm, "ladder_step")
    fit = fit_pm_multi(*_args(f))
    m = WCRModel(f["A"], f["names"], "y", f["xs"], f["exog"], f["zs"], f["clusters"],
                 f["df_fe"], null=1.5, fe=f["fe"])
    res = romano_wolf_wcr(m, B=199, seed=SEED + 5)
    assert np.isnan(fit.coef[1]) and np.isnan(res.t_stat[1]) and np.isnan(res.p_adjusted[1])
    ok = [0, 2, 3]
    se = np.sqrt(np.diag(fit.V)[ok])
    np.testing.assert_allclose(res.t_stat[ok], (fit.coef[ok] - 1.5) / se, rtol=1e-10)
    assert np.all((res.p_adjusted[ok] > 0) & (res.p_adjusted[ok] <= 1))


@pytest.mark.parametrize("with_fe", [True, False])
def test_draws_from_cluster_grams_equal_draws_from_rows(tiny, with_fe):
    """The route without rows (``grams``: per-cluster Gram blocks and cell x cluster
    pair sums) gives the draws of the route over A's rows, to rounding."""
    from impact.estimate.cgram import cluster_grams

    null = np.array([1.0, 2.0, -0.5, 1.5])
    W, labels, _ = wcr_weights(tiny["clusters"], B=64, seed=SEED)
    fe = tiny["fe"] if with_fe else None
    rows = wcr_draws(*_args(tiny, ["y", "y2"]), null, W, labels, fe=fe)
    grams, order = cluster_grams(tiny["A"], tiny["clusters"], tiny["fe"].cell_code)
    assert order is not None  # the fixture's rows are not in cluster order
    via = wcr_draws(None, tiny["names"], ["y", "y2"], tiny["xs"], tiny["exog"], tiny["zs"],
                    None, tiny["df_fe"], null, W, labels, fe=fe, grams=grams)
    for r, g in zip(rows, via):
        np.testing.assert_allclose(g.estimate, r.estimate, rtol=1e-9)
        np.testing.assert_allclose(g.scores, r.scores, rtol=1e-8, atol=1e-10 * abs(r.scores).max())
        np.testing.assert_allclose(g.restricted, r.restricted, rtol=1e-8)
        np.testing.assert_allclose(g.t_boot, r.t_boot, rtol=1e-7, atol=1e-9)
        assert (g.cluster_labels == r.cluster_labels).all() and g.df_k == r.df_k
    # the boot draws really depend on the FE term: without it they differ
    if with_fe:
        plain = wcr_draws(None, tiny["names"], "y", tiny["xs"], tiny["exog"], tiny["zs"],
                          None, tiny["df_fe"], null, W, labels, grams=grams)
        assert not np.allclose(plain.t_boot, via[0].t_boot, rtol=1e-6)
