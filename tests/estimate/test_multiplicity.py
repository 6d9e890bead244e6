"""Joint tests, multiplicity-adjusted p-values and shrinkage of group effects
(``impact.estimate.multiplicity``).

The data: person rows in G municipality clusters, each person in one of H = 4 client
groups, a cluster-level regressor x (quality) with a group-specific effect beta_h, a
person covariate z, group intercepts, and errors with a cluster shock (scale growing with
|x|), a cluster-by-group shock and a person term. The interaction model
``y ~ grp FE + sum_h x 1[grp = h] + z`` is fitted with ``linalg.wls_fit``; the group
effects' cluster score matrix is ``S = sqrt(factor) * SB`` from ``linalg.crv1_parts``
(CRV1: G/(G-1) (N-1)/(N-K)), the recipe the module docstring gives.

References and what they check:

* ``equality_test`` / ``zero_test``: statsmodels OLS with ``cov_type="cluster"`` (its
  default correction is the same CRV1 factor and its F tests use G - 1 denominator df)
  and ``f_test`` on the same restrictions: equal to 1e-8. Rank deficiency: a duplicated
  group gives the test of the distinct groups. Size: the cluster-means model (one i.i.d.
  normal vector per cluster, estimate = mean), where the Wald statistic is exactly
  Hotelling's T^2: the ``hotelling=True`` size must be 5% and the default F(q, G-1) size
  its closed-form value (6.3% and 7.3% for q = 3, 4 with G = 31).
* ``bootstrap_t``: a brute-force loop that refits the regression on y* = X b + w_g u for
  every one of the 2^8 sign vectors (G = 8) and standardises b* - b by its bootstrap
  standard deviation: equal to 1e-10.
* ``romano_wolf`` / ``max_t_adjust``: pyfixest's step-down (``multcomp._get_rwolf_pval``,
  the private helper of ``pf.rwolf``) on the same draws: equal. End to end, ``pf.rwolf``
  (H models on the same data, param x = group h's effect, WCR bootstrap through
  ``wildboottest``) against ``max_t_adjust`` on WCR draws from
  ``wild.wild_cluster_bootstrap`` (the same method, independent code and draws): within
  binomial Monte Carlo error. Family-wise error under the global null: the score draws
  (``romano_wolf``) in the cluster-means model with G = 342 (the national municipality
  count; G = 31 printed); the WCR route in the regression with G = 31, where the score
  draws over-reject (printed, documented in the module).
* ``paule_mandel``: statsmodels' Paule-Mandel (``combine_effects(method_re="pm")``);
  shrinkage by simulation from the normal-normal model itself, against closed-form
  expectations.

Seeds are fixed once, before any result was seen, and never changed to make a test pass.
Monte Carlo bounds are 3 binomial (or sample) standard errors around the exact target.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from impact.estimate.linalg import build_design, crv1_parts, wls_fit
from impact.estimate.multiplicity import (bootstrap_t, equality_test, max_t_adjust,
                                          paule_mandel, romano_wolf, shrink_to_overall,
                                          wald_test, westfall_young, zero_test)
from impact.estimate.wild import draw_weights, wild_cluster_bootstrap

SEED = 20261201
H = 4
N_SIM = 300
ALPHA = 0.05


def _data(rng, G, beta, n_range=(20, 60)):
    sizes = rng.integers(n_range[0], n_range[1], G)
    c = np.repeat(np.arange(G), sizes)
    n = len(c)
    grp = rng.integers(0, H, n)
    xc = rng.normal(size=G)
    x = xc[c]
    z = rng.normal(size=n)
    u = (rng.normal(size=G)[c] * 0.5 * (1 + 0.5 * np.abs(x))
         + 0.5 * rng.normal(size=(G, H))[c, grp] + rng.normal(size=n))
    y = np.asarray(beta)[grp] * x + 0.3 * z + 0.2 * grp + u
    frame = pd.DataFrame({"y": y, "x": x, "z": z, "grp": grp, "c": c})
    for k in range(H):
        frame[f"xd{k}"] = x * (grp == k)
    return frame


def _fit(frame):
    """Group effects, their cluster scores S (G x H, CRV1 factor folded in) and G."""
    names = [f"xd{k}" for k in range(H)]
    design = build_design(frame, ["grp"], names + ["z"])
    w = np.ones(len(frame))
    fit = wls_fit(design, frame["y"].to_numpy(), w)
    cols = [design.x_index(nm) for nm in names]
    SB, factor, G, _ = crv1_parts(design, fit, w, frame["c"].to_numpy(), cols)
    return fit.coef[cols], np.sqrt(factor) * SB, G, design, fit


def _mc_bound(p, n, k=3.0):
    return k * np.sqrt(p * (1 - p) / n)


# ------------------------------------------------------------------------ Wald tests

def test_wald_equals_statsmodels_cluster_f_test():
    import statsmodels.api as sm

    frame = _data(np.random.default_rng([SEED, 10_001]), 40, np.array([0.0, 0.2, 0.4, 0.1]))
    est, S, G, _, _ = _fit(frame)
    V = S.T @ S
    X = pd.concat([pd.get_dummies(frame["grp"], prefix="g", dtype=float),
                   frame[[f"xd{k}" for k in range(H)] + ["z"]]], axis=1)
    res = sm.OLS(frame["y"], X).fit(cov_type="cluster", cov_kwds={"groups": frame["c"]})
    np.testing.assert_allclose(res.params[[f"xd{k}" for k in range(H)]], est, rtol=1e-10)
    np.testing.assert_allclose(res.cov_params().iloc[H:2 * H, H:2 * H], V, rtol=1e-8)
    xd = [X.columns.get_loc(f"xd{k}") for k in range(H)]
    R_eq = np.zeros((H - 1, X.shape[1]))
    for h in range(H - 1):  # all b_h - b_0: another contrast matrix than the module's
        R_eq[h, xd[0]], R_eq[h, xd[h + 1]] = -1.0, 1.0
    R_zero = np.zeros((H, X.shape[1]))
    R_zero[np.arange(H), xd] = 1.0
    for mine, R in ((equality_test(est, V, G - 1), R_eq), (zero_test(est, V, G - 1), R_zero)):
        ref = res.f_test(R)
        assert (mine.df_num, mine.df_den) == (int(ref.df_num), float(ref.df_denom)) \
            == (R.shape[0], G - 1.0)
        assert mine.statistic == pytest.approx(float(np.squeeze(ref.fvalue)), rel=1e-8)
        assert mine.p_value == pytest.approx(float(ref.pvalue), rel=1e-8, abs=1e-14)


def test_wald_rank_deficient_and_degenerate():
    est, S, G, _, _ = _fit(_data(np.random.default_rng([SEED, 10_002]), 25, np.zeros(H)))
    base = equality_test(est, S.T @ S, G - 1)
    # a duplicated group (same estimate and scores): R V R' singular, one restriction void
    est5, S5 = np.append(est, est[1]), np.column_stack([S, S[:, 1]])
    dup = equality_test(est5, S5.T @ S5, G - 1)
    assert (dup.df_num, dup.n_restrictions) == (H - 1, H)
    assert dup.statistic == pytest.approx(base.statistic, rel=1e-8)
    assert dup.p_value == pytest.approx(base.p_value, rel=1e-8)
    # fewer clusters than estimates: rank of the CRV V caps the numerator df
    rng = np.random.default_rng([SEED, 10_003])
    S3 = rng.normal(size=(3, 6))
    S3 -= S3.mean(axis=0)  # OLS scores sum to zero: rank <= G - 1 = 2
    r = equality_test(rng.normal(size=6), S3.T @ S3, 2)
    assert r.df_num == 2 and np.isfinite(r.statistic)
    # H = 1: nothing to test
    one = equality_test(est[:1], (S.T @ S)[:1, :1], G - 1)
    assert one.df_num == 0 and np.isnan(one.p_value)
    # a zero-variance direction is ignored, not given infinite weight
    z = wald_test([1.0, 2.0], np.diag([1.0, 0.0]), np.eye(2), 10)
    assert z.df_num == 1 and z.wald == pytest.approx(1.0)


def _cluster_means(rng, G, mu, n_rep):
    """n_rep data sets of the cluster-means model: G i.i.d. N(mu, Sigma) vectors (H,);
    estimate = their mean, S = (y_g - mean) / sqrt(G (G - 1)) (so V = S'S is the sample
    covariance over G, the CRV1 of a mean)."""
    sd = np.array([1.0, 0.5, 2.0, 1.5])
    C = 0.5 + 0.5 * np.eye(H)
    L = np.linalg.cholesky(C * np.outer(sd, sd))
    for _ in range(n_rep):
        y = mu + rng.normal(size=(G, H)) @ L.T
        m = y.mean(axis=0)
        yield m, (y - m) / np.sqrt(G * (G - 1))


def test_wald_size_cluster_means_model():
    G, n_rep, mu = 31, 2000, 0.7  # all effects equal (0.7): H0 of the equality test
    rng = np.random.default_rng([SEED, 10_004])
    p = {k: [] for k in ("eq", "eq_h", "zero", "zero_h")}
    for est, S in _cluster_means(rng, G, mu, n_rep):
        V = S.T @ S
        p["eq"].append(equality_test(est, V, G - 1).p_value)
        p["eq_h"].append(equality_test(est, V, G - 1, hotelling=True).p_value)
        p["zero"].append(zero_test(est - mu, V, G - 1).p_value)
        p["zero_h"].append(zero_test(est - mu, V, G - 1, hotelling=True).p_value)
    rate = {k: np.mean(np.array(v) <= ALPHA) for k, v in p.items()}
    # default F(q, G-1): exact size from T^2 (G - q) / (q (G - 1)) ~ F(q, G - q)
    exact = {q: stats.f.sf(stats.f.isf(ALPHA, q, G - 1) * (G - q) / (G - 1), q, G - q)
             for q in (H - 1, H)}
    print(f"\ncluster-means model, G={G}, {n_rep} sets: " + ", ".join(
        f"{k} {v:.4f}" for k, v in rate.items()) + f"; exact default sizes {exact}")
    for key, target in (("eq_h", ALPHA), ("zero_h", ALPHA), ("eq", exact[H - 1]),
                        ("zero", exact[H])):
        assert abs(rate[key] - target) <= _mc_bound(target, n_rep), (key, rate[key], target)


# ---------------------------------------------------------------------- Romano-Wolf

def test_bootstrap_t_equals_brute_force_refits():
    frame = _data(np.random.default_rng([SEED, 20_001]), 8, np.array([0.0, 0.3, -0.2, 0.5]),
                  n_range=(8, 15))
    est, S, G, design, fit = _fit(frame)
    T, enumerated = bootstrap_t(S, B=999, seed=1)
    assert enumerated and T.shape == (2 ** 8, H)
    Wt, _ = draw_weights(G, 999, "rademacher", np.random.default_rng(0))
    Z = design.Z.toarray()[:, fit.keep]
    cols = [int(np.flatnonzero(fit.keep == design.x_index(f"xd{k}"))[0]) for k in range(H)]
    yhat = frame["y"].to_numpy() - fit.resid
    c = frame["c"].to_numpy()
    dev = np.array([np.linalg.lstsq(Z, yhat + w[c] * fit.resid, rcond=None)[0][cols] - est
                    for w in Wt])
    brute = dev / np.sqrt(np.mean(dev ** 2, axis=0))  # exact bootstrap sd: all 2^G draws
    np.testing.assert_allclose(T, brute, rtol=0, atol=1e-10)


def test_stepdown_equals_pyfixest_on_same_draws():
    from pyfixest.estimation.post_estimation.multcomp import _get_rwolf_pval

    est, S, G, _, _ = _fit(_data(np.random.default_rng([SEED, 20_002]), 31,
                                 np.array([0.0, 0.15, 0.3, 0.45])))
    res = romano_wolf(est, S, B=1999, seed=7)
    T, enumerated = bootstrap_t(S, B=1999, seed=7)
    assert not enumerated and res.n_boot == 1999
    ref = _get_rwolf_pval(res.t_stat.copy(), T.copy())
    np.testing.assert_allclose(res.p_adjusted, ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(max_t_adjust(res.t_stat, T), ref, rtol=0, atol=1e-12)


def _wcr_draws(design, frame, B, seed):
    """WCR t's and draws of every group effect, the same cluster weights for all."""
    y, w, c = frame["y"].to_numpy(), np.ones(len(frame)), frame["c"].to_numpy()
    res = [wild_cluster_bootstrap(design, y, w, c, f"xd{h}", B=B, seed=seed)
           for h in range(H)]
    return np.array([r.t_stat for r in res]), np.column_stack([r.t_boot for r in res])


def test_wcr_route_matches_pyfixest_rwolf():
    """pf.rwolf (WCR refits through ``wildboottest``) against ``max_t_adjust`` on WCR draws
    of ``wild.wild_cluster_bootstrap``: the same method with independent code and draws.
    Each adjusted p is a binomial share of B = 9999 draws, so the difference of two
    independent estimates has sd <= sqrt(2 p (1 - p) / B); we allow 4 sd (a 6e-5
    two-sided chance per hypothesis from Monte Carlo alone) plus 2 / (B + 1) for the +1
    convention. The t statistics use the same CRV1 convention and must agree to 1e-8.
    The score draws (``romano_wolf``) are printed beside them, not compared."""
    import pyfixest as pf

    B = 9999
    frame = _data(np.random.default_rng([SEED, 20_003]), 31, np.array([0.0, 0.1, 0.2, 0.3]))
    est, S, G, design, _ = _fit(frame)
    t_wcr, T_wcr = _wcr_draws(design, frame, B, seed=11)
    mine = max_t_adjust(t_wcr, T_wcr)
    models = []
    for h in range(H):
        others = " + ".join(f"xd{k}" for k in range(H) if k != h)
        models.append(pf.feols(f"y ~ x + {others} + C(grp) + z", data=frame,
                               vcov={"CRV1": "c"}))
    t_pf = np.array([m.tidy().loc["x", "t value"] for m in models])
    np.testing.assert_allclose(t_wcr, t_pf, rtol=1e-8)
    np.testing.assert_allclose(est / np.sqrt(np.diag(S.T @ S)), t_pf, rtol=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pf.rwolf(models, "x", reps=B, seed=3).loc["RW Pr(>|t|)"].to_numpy(float)
    pbar = (mine + ref) / 2
    tol = 4 * np.sqrt(2 * pbar * (1 - pbar) / B) + 2 / (B + 1)
    score = romano_wolf(est, S, B=B, seed=11).p_adjusted
    print(f"\nRW G=31: t {np.round(t_pf, 2)}; WCR ours {mine}, pyfixest {ref}; "
          f"score draws {score}")
    assert np.all(np.abs(mine - ref) <= tol), (mine, ref, tol)


def test_romano_wolf_fwer_cluster_means_model():
    """Global null in the cluster-means model. The score draws are not re-studentised,
    so romano_wolf is valid as G grows but anti-conservative with few clusters (module
    docstring): asserted at G = 342 (the national municipality count); G = 31 printed."""
    fwer = {}
    for G in (31, 342):
        rng = np.random.default_rng([SEED, 20_004, G])
        fwer[G] = float(np.mean([np.any(romano_wolf(est, S, B=999, seed=i).p_adjusted <= ALPHA)
                                 for i, (est, S) in enumerate(_cluster_means(rng, G, 0.0,
                                                                             N_SIM))]))
    print(f"\nRomano-Wolf FWER, cluster-means model, {N_SIM} sets: {fwer}")
    assert fwer[342] <= ALPHA + _mc_bound(ALPHA, N_SIM)


def test_few_clusters_wcr_route_controls_fwer():
    """G = 31 with a normal municipality-level regressor: the WCR route must hold the
    family-wise error; the score-draw Romano-Wolf, Bonferroni on t(G-1) and the Wald
    tests are printed (they over-reject here: module docstrings)."""
    G, n_sets = 31, 150
    out = {k: [] for k in ("wcr", "score", "bonf", "eq", "eq_h")}
    for i in range(n_sets):
        frame = _data(np.random.default_rng([SEED, 60_000 + i]), G, np.zeros(H))
        est, S, _, design, _ = _fit(frame)
        t_wcr, T_wcr = _wcr_draws(design, frame, 399, seed=i)
        out["wcr"].append(np.any(max_t_adjust(t_wcr, T_wcr) <= ALPHA))
        out["score"].append(np.any(romano_wolf(est, S, B=399, seed=i).p_adjusted <= ALPHA))
        V = S.T @ S
        t = est / np.sqrt(np.diag(V))
        out["bonf"].append(np.any(2 * stats.t.sf(np.abs(t), G - 1) <= ALPHA / H))
        out["eq"].append(equality_test(est, V, G - 1).p_value <= ALPHA)
        out["eq_h"].append(equality_test(est, V, G - 1, hotelling=True).p_value <= ALPHA)
    rate = {k: float(np.mean(v)) for k, v in out.items()}
    print(f"\nG={G} regression, {n_sets} sets, rejection of a true H0 at 5%: {rate}")
    assert rate["wcr"] <= ALPHA + _mc_bound(ALPHA, n_sets)


def test_romano_wolf_properties():
    for i, G in enumerate((6, 31)):  # 6: Webb weights (6^6 > B: sampled); 31: Rademacher
        est, S, G, _, _ = _fit(_data(np.random.default_rng([SEED, 30_000 + i]), G,
                                     np.array([0.0, 0.2, 0.4, 0.6])))
        weights = "webb" if G < 10 else "rademacher"
        rw = romano_wolf(est, S, B=999, weights=weights, seed=i)
        ss = westfall_young(est, S, B=999, weights=weights, seed=i)
        # adjusted >= the single bootstrap p on the same draws; single-step >= step-down
        assert np.all(rw.p_adjusted >= rw.p_single)
        assert np.all(ss.p_adjusted >= rw.p_adjusted)
        top = np.argmax(np.abs(rw.t_stat))
        assert ss.p_adjusted[top] == rw.p_adjusted[top]
        # monotone: a larger |t| never gets a larger adjusted p
        order = np.argsort(-np.abs(rw.t_stat))
        assert np.all(np.diff(rw.p_adjusted[order]) >= 0)
        # invariant to the units of each estimate
        scale = np.array([1.0, 10.0, 0.1, 3.0])
        np.testing.assert_array_equal(
            romano_wolf(est * scale, S * scale, B=999, weights=weights, seed=i).p_adjusted,
            rw.p_adjusted)
        # one hypothesis: the adjusted p is the single bootstrap p, (1 + #) / (B + 1)
        one = romano_wolf(est[2:3], S[:, 2:3], null=0.1, B=999, weights=weights, seed=i)
        T, enumerated = bootstrap_t(S[:, 2:3], B=999, weights=weights, seed=i)
        t = (est[2] - 0.1) / np.sqrt(S[:, 2] @ S[:, 2])
        plus = 0 if enumerated else 1
        assert one.p_adjusted[0] == one.p_single[0] == pytest.approx(
            (np.sum(np.abs(T[:, 0]) >= abs(t) * (1 - 1e-10)) + plus) / (len(T) + plus))
    # Rademacher with G <= 10 enumerates: no +1, deterministic
    e8, S8, _, _, _ = _fit(_data(np.random.default_rng([SEED, 30_009]), 8, np.zeros(H)))
    a, b = romano_wolf(e8, S8, seed=1), romano_wolf(e8, S8, seed=2)
    assert a.enumerated and a.n_boot == 256
    np.testing.assert_array_equal(a.p_adjusted, b.p_adjusted)


def test_romano_wolf_rejects_bad_input():
    S = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError):
        romano_wolf(np.zeros(2), S)
    with pytest.raises(ValueError):
        romano_wolf(np.zeros(3), np.column_stack([S[:, :2], np.zeros(10)]))
    with pytest.raises(ValueError):
        romano_wolf(np.array([0.0, np.nan, 1.0]), S)


# ------------------------------------------------------------------------ shrinkage

def test_paule_mandel_equals_statsmodels():
    """statsmodels iterates until |Q(tau2) - (H - 1)| <= 1e-5 (DerSimonian and Kacker
    2007, App. 8), so its tau2 is within 1e-5 / |Q'(tau2)| of the root; Q' = -sum w^2
    (b - mu)^2 at the weighted mean. We allow twice that."""
    from statsmodels.stats.meta_analysis import combine_effects

    rng = np.random.default_rng([SEED, 40_001])
    for _ in range(20):
        v = rng.uniform(0.2, 3.0, 6)
        b = rng.normal(0.0, np.sqrt(v + rng.uniform(0, 2)))
        ref = float(combine_effects(b, v, method_re="pm").tau2)
        tau2, mu = paule_mandel(b, v)
        w = 1 / (v + tau2)
        assert mu == pytest.approx(float(w @ b / w.sum()), rel=1e-12)
        slope = float(np.sum(w ** 2 * (b - mu) ** 2))
        if tau2 == 0:
            assert ref == 0
        else:
            assert float(np.sum(w * (b - mu) ** 2)) == pytest.approx(len(b) - 1, rel=1e-9)
            assert abs(tau2 - ref) <= 2 * 1e-5 / slope
    # mu fixed and equal variances: the moment estimator max(0, mean((b - mu)^2) - s^2)
    b, mu = rng.normal(size=5), 0.3
    assert paule_mandel(b, np.full(5, 0.4), mu=mu)[0] == pytest.approx(
        max(0.0, np.mean((b - mu) ** 2) - 0.4), rel=1e-10, abs=1e-14)


def _simulate(rng, n_rep, s, tau2, mu):
    theta = mu + np.sqrt(tau2) * rng.normal(size=(n_rep, s.size))
    return theta, theta + s * rng.normal(size=(n_rep, s.size))


@pytest.mark.parametrize("tau2", [0.0, 1.0])
@pytest.mark.parametrize("target", ["known", "pooled"])
def test_shrinkage_lowers_mse(tau2, target):
    """Over 2000 replications of the model itself, the summed squared error of the shrunk
    effects is below the raw one by more than 3 standard errors of the paired difference.
    'pooled': the target is the precision-weighted mean of the group effects with its
    standard error, as the overall effect of the same data."""
    rng = np.random.default_rng([SEED, 40_002, int(tau2), target == "pooled"])
    s, mu = np.array([0.5, 1.0, 1.5, 2.0]), 0.3
    theta, b = _simulate(rng, 2000, s, tau2, mu)
    w = 1 / s ** 2
    loss_raw, loss_shr = [], []
    for th, bi in zip(theta, b):
        if target == "known":
            r = shrink_to_overall(bi, s, mu)
        else:
            r = shrink_to_overall(bi, s, float(w @ bi / w.sum()), float(np.sqrt(1 / w.sum())))
        loss_raw.append(np.sum((bi - th) ** 2))
        loss_shr.append(np.sum((r.shrunk - th) ** 2))
    d = np.array(loss_raw) - np.array(loss_shr)
    print(f"\ntau2={tau2} {target}: MSE raw {np.mean(loss_raw):.3f}, shrunk "
          f"{np.mean(loss_shr):.3f}")
    assert d.mean() > 3 * d.std(ddof=1) / np.sqrt(d.size)


@pytest.mark.parametrize("ratio", [0.0, 100.0])
def test_reliability_against_its_exact_distribution(ratio):
    """Equal s = 1, known target, tau2 = ratio: Paule-Mandel gives R = max(0, 1 - H / X)
    with X = sum (b - mu)^2 ~ (1 + ratio) chi2(H), so E[R] is a one-dimensional integral
    and P(R = 0) = P(chi2(H) <= H / (1 + ratio)). tau2 = 0: E[R] = 0.135 for H = 4 (not 0:
    a variance estimated from four groups), tau2 = 100: E[R] = 0.980 (true R 0.990).
    Unequal s, tau2 = 0: P(tau2_hat = 0) = P(chi2(H) <= H) whatever the s_h (known target),
    P(chi2(H-1) <= H-1) with the precision-weighted mean as target."""
    rng = np.random.default_rng([SEED, 40_003, int(ratio)])
    n_rep = 4000
    s = np.ones(H)
    _, b = _simulate(rng, n_rep, s, ratio, 0.0)
    R = np.array([shrink_to_overall(bi, s, 0.0).reliability[0] for bi in b])
    dens = stats.chi2(H)
    exact, _ = integrate.quad(lambda x: max(0.0, 1 - H / ((1 + ratio) * x)) * dens.pdf(x),
                              0, np.inf, limit=200)
    p0 = dens.cdf(H / (1 + ratio))
    print(f"\ntau2={ratio}: mean R {R.mean():.4f} (exact {exact:.4f}), P(R=0) "
          f"{np.mean(R == 0):.3f} (exact {p0:.3f})")
    assert abs(R.mean() - exact) <= 3 * R.std(ddof=1) / np.sqrt(n_rep)
    # exact binomial bounds with the two-sided 3-sigma tail mass (p0 is tiny for ratio 100)
    lo, hi = stats.binom.ppf(0.00135, n_rep, p0), stats.binom.isf(0.00135, n_rep, p0)
    assert lo <= np.sum(R == 0) <= hi
    if ratio == 0.0:
        s2 = np.array([0.5, 1.0, 1.5, 2.0])
        _, b2 = _simulate(rng, n_rep, s2, 0.0, 0.0)
        w = 1 / s2 ** 2
        zero_known = np.mean([shrink_to_overall(bi, s2, 0.0).tau2 == 0 for bi in b2])
        zero_pooled = np.mean([shrink_to_overall(bi, s2, float(w @ bi / w.sum()),
                                                 float(np.sqrt(1 / w.sum()))).tau2 == 0
                               for bi in b2])
        for got, p in ((zero_known, stats.chi2.cdf(H, H)),
                       (zero_pooled, stats.chi2.cdf(H - 1, H - 1))):
            assert abs(got - p) <= _mc_bound(p, n_rep)


def test_shrink_edge_cases():
    # H = 1, known target: tau2 from one deviation, R = max(0, 1 - s^2 / (b - mu)^2)
    r = shrink_to_overall([1.0], [0.5], 0.0)
    assert r.tau2 == pytest.approx(0.75) and r.reliability[0] == pytest.approx(0.75)
    assert r.shrunk[0] == pytest.approx(0.75)
    assert r.posterior_sd[0] == pytest.approx(np.sqrt(0.75 * 0.25))
    assert shrink_to_overall([0.3], [0.5], 0.0).reliability[0] == 0.0
    # H = 1, target estimated from that group: no shrinkage, tau2 unidentified
    r = shrink_to_overall([1.0], [0.5], 0.9, overall_se=0.5)
    assert (r.shrunk[0], r.reliability[0], r.posterior_sd[0], r.df) == (1.0, 1.0, 0.5, 0)
    assert np.isnan(r.tau2)
    # all NaN
    r = shrink_to_overall([np.nan, np.nan], [0.1, np.nan], 0.0)
    assert r.n_groups == 0 and np.all(np.isnan(r.shrunk)) and np.isnan(r.tau2)
    # a NaN group is left out; a zero-se group is exact (R = 1, posterior sd 0)
    r = shrink_to_overall([1.0, np.nan, 0.2, -0.4], [0.0, 1.0, 1.0, 1.0], 0.0)
    assert r.n_groups == 3 and np.isnan(r.shrunk[1])
    assert (r.reliability[0], r.shrunk[0], r.posterior_sd[0]) == (1.0, 1.0, 0.0)
    assert r.tau2 > 0 and 0 < r.reliability[2] < 1
    # posterior sd adds the target's uncertainty (1 - R)^2 overall_se^2
    b, s = np.array([0.1, 0.9, -0.5, 0.4]), np.array([0.3, 0.4, 0.5, 0.6])
    a, c = shrink_to_overall(b, s, 0.2), shrink_to_overall(b, s, 0.2, overall_se=0.1)
    assert c.df == 3 and a.df == 4 and c.tau2 >= a.tau2
    np.testing.assert_allclose(c.posterior_sd ** 2, c.reliability * s ** 2
                               + (1 - c.reliability) ** 2 * 0.01, rtol=1e-12)
    with pytest.raises(ValueError):
        shrink_to_overall([1.0], [-0.1], 0.0)
