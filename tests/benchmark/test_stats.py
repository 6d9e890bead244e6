"""Benchmark statistics against direct computation, closed forms and simulation.

Monte Carlo tolerances are 4 standard errors, computed from the simulated data or from
the binomial, never tuned to the draw.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from impact.benchmark.stats import (funnel_limits, overdispersion, rank_intervals, ranks,
                                    shrink_means, split_half_noise)


def _binom_tol(p, n):
    return 4 * np.sqrt(p * (1 - p) / n)


# ---------------------------------------------------------------- funnel limits
def _reference_op(e, p):
    """Spiegelhalter's interpolated quantile by explicit search over r = 0, 1, ..."""
    r = 0
    while stats.poisson.cdf(r, e) < p:
        r += 1
    f_r, f_rm1 = stats.poisson.cdf(r, e), (stats.poisson.cdf(r - 1, e) if r else 0.0)
    return r - (f_r - p) / (f_r - f_rm1)


def test_funnel_matches_direct_computation():
    es = np.array([1.0, 2.0, 3.0, 7.0, 10.0, 25.0, 50.0, 123.0, 2.5, 0.7])
    got = funnel_limits(es)
    assert list(got.columns) == ["low95", "high95", "low998", "high998"]
    for col, p in zip(got.columns, (0.025, 0.975, 0.001, 0.999)):
        want = [max(_reference_op(e, p) / e, 0.0) for e in es]
        np.testing.assert_allclose(got[col], want, rtol=1e-10, atol=1e-12)
    custom = funnel_limits(es, p=[0.1, 0.9])
    assert list(custom.columns) == ["q0.1", "q0.9"]
    np.testing.assert_allclose(custom["q0.9"], [_reference_op(e, 0.9) / e for e in es])


def test_funnel_shape_and_invalid_expected():
    es = np.geomspace(0.5, 1e4, 40)
    f = funnel_limits(es)
    assert (f["low95"] < 1).all() and (f["high95"] > 1).all()
    assert (f["low998"] <= f["low95"]).all() and (f["high998"] >= f["high95"]).all()
    # the funnel narrows (ratio scale, steps of a third) and quantiles grow (count scale)
    assert (np.diff(f["high95"]) < 0).all() and (np.diff(f["high998"]) < 0).all()
    assert (np.diff(f["low95"]) >= 0).all() and (np.diff(f["low95"]) > 0).any()
    fine = np.geomspace(0.5, 1e4, 3000)
    assert (np.diff(funnel_limits(fine).mul(fine, axis=0), axis=0) >= -1e-9).all()
    bad = funnel_limits(pd.Series([np.nan, 0.0, -2.0, 4.0], index=list("wxyz")))
    assert list(bad.index) == list("wxyz")
    assert bad.loc[["w", "x", "y"]].isna().all().all() and bad.loc["z"].notna().all()
    with pytest.raises(ValueError, match="phi"):
        funnel_limits(es, phi=0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        funnel_limits(es, p=[0.5, 1.0])


@pytest.mark.parametrize("e", [5.0, 20.0, 100.0, 500.0])
def test_funnel_coverage_by_simulation(e):
    """O_p is the exact quantile of the jittered count O - U, U ~ U(0, 1); the raw count's
    exceedance lies between 1 - F(r_p) and 1 - F(r_p - 1)."""
    rng = np.random.default_rng(20240501)
    n = 200_000
    o = rng.poisson(e, n)
    jit = o - rng.uniform(size=n)
    f = funnel_limits(np.array([e])).iloc[0]
    for col, p in (("low95", 0.025), ("high95", 0.975), ("low998", 0.001),
                   ("high998", 0.999)):
        o_p = f[col] * e
        if o_p <= 0:  # floored at 0: Poisson(E) puts more than p on zero
            assert stats.poisson.cdf(0, e) > p
            continue
        share_below = np.mean(jit <= o_p)
        assert abs(share_below - p) < _binom_tol(p, n), (col, share_below)
        r = stats.poisson.ppf(p, e)
        above = np.mean(o > o_p)
        lo, hi = stats.poisson.sf(r, e), stats.poisson.sf(r - 1, e)
        assert lo - _binom_tol(lo, n) <= above <= hi + _binom_tol(hi, n)


def test_funnel_phi_scales_distance_from_one():
    es = np.array([10.0, 50.0, 200.0, 1000.0])
    base, wide = funnel_limits(es), funnel_limits(es, phi=4.0)
    np.testing.assert_allclose(wide, np.maximum(1 + 2 * (base - 1), 0), rtol=1e-12)
    assert wide.loc[0, "low95"] == 0 and base.loc[0, "low95"] > 0  # floored at 0


# ---------------------------------------------------------------- overdispersion
def _winsorised_normal_m2(w):
    c = stats.norm.ppf(1 - w)
    return (1 - 2 * w) - 2 * c * stats.norm.pdf(c) + 2 * w * c ** 2


def test_overdispersion_poisson_null():
    rng = np.random.default_rng(7)
    n = 2000
    e = rng.uniform(30, 300, n)
    o = rng.poisson(e)
    phi0, z = overdispersion(o, e, winsor=0)
    np.testing.assert_allclose(z, (o - e) / np.sqrt(e))
    assert abs(phi0 - 1) < 4 * np.std(z ** 2) / np.sqrt(n)
    assert n * phi0 < stats.chi2.ppf(0.999, n)
    # Winsorising at 10%/90% biases phi down to the Winsorised normal moment (~0.68)
    phi_w, _ = overdispersion(o, e)
    m2 = _winsorised_normal_m2(0.1)
    assert abs(m2 - 0.679) < 1e-3
    # SE bound: Var(z_w^2) <= E[z_w^4] <= c^2 E[z_w^2], c the 90% point
    assert abs(phi_w - m2) < 4 * np.sqrt(m2 * stats.norm.ppf(0.9) ** 2 / n)


def test_overdispersion_negative_binomial():
    rng = np.random.default_rng(11)
    n, e, k = 2000, 50.0, 0.04  # Var(O) = E + k E^2, so Var(z) = 1 + k E = 3
    lam = e * rng.gamma(shape=1 / k, scale=k, size=n)
    o = rng.poisson(lam)
    phi0, z = overdispersion(o, np.full(n, e), winsor=0)
    assert abs(phi0 - (1 + k * e)) < 4 * np.std(z ** 2) / np.sqrt(n)
    phi_w, _ = overdispersion(o, np.full(n, e))
    assert phi_w > 1.5 and n * phi_w > stats.chi2.ppf(0.999, n)


def test_overdispersion_invalid_units_and_input():
    phi, z = overdispersion([3.0, np.nan, 5.0, 1.0], [2.0, 2.0, 0.0, 1.0], winsor=0)
    assert np.isnan(z[1]) and np.isnan(z[2])
    assert phi == pytest.approx(((3 - 2) ** 2 / 2 + 0) / 2)
    with pytest.raises(ValueError, match="length"):
        overdispersion([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="winsor"):
        overdispersion([1.0], [1.0], winsor=0.5)


# ---------------------------------------------------------------- shrinkage
def _shrink_sim(seed=3, n=5000, mu=2.0, tau2=1.0):
    rng = np.random.default_rng(seed)
    theta = rng.normal(mu, np.sqrt(tau2), n)
    v = rng.uniform(0.2, 3.0, n)
    return theta, theta + rng.normal(0, np.sqrt(v)), v


def test_shrink_recovers_truth():
    tau2, n = 1.0, 5000
    theta, m, v = _shrink_sim(tau2=tau2, n=n)
    res = shrink_means(m, v)
    se_tau2 = np.sqrt(2 * np.mean((tau2 + v) ** 2) / n)
    assert abs(res.attrs["tau2"] - tau2) < 4 * se_tau2
    # calibration: E[theta | shrunk] = shrunk, slope 1 (raw means are attenuated)
    fit = stats.linregress(res["shrunk"], theta)
    assert abs(fit.slope - 1) < 4 * fit.stderr
    assert stats.linregress(m, theta).slope < 1 - 4 * fit.stderr
    assert np.mean((res["shrunk"] - theta) ** 2) < np.mean((m - theta) ** 2)
    half = stats.norm.ppf(0.975) * np.sqrt(res["posterior_var"])
    cover = np.mean(np.abs(theta - res["shrunk"]) <= half)
    assert abs(cover - 0.95) < _binom_tol(0.95, n)


def test_shrink_closed_form_weights_and_missing():
    theta, m, v = _shrink_sim(seed=5, n=200)
    w = np.random.default_rng(1).uniform(0.5, 2.0, 200)
    m[3], v[7] = np.nan, np.inf
    res = shrink_means(pd.Series(m, index=range(100, 300)), v, weights=w)
    ok = np.isfinite(m) & np.isfinite(v)
    tau2 = max(0.0, np.sum((m[ok] - m[ok].mean()) ** 2) / (ok.sum() - 1) - v[ok].mean())
    mu = np.sum(w[ok] * m[ok]) / np.sum(w[ok])
    assert res.attrs["tau2"] == pytest.approx(tau2) and res.attrs["mu"] == pytest.approx(mu)
    assert res.attrs["n_units"] == 198 and res.index[0] == 100
    # posterior mean and variance in precision form
    prec = 1 / tau2 + 1 / v[ok]
    np.testing.assert_allclose(res["shrunk"][ok], (mu / tau2 + m[ok] / v[ok]) / prec)
    np.testing.assert_allclose(res["posterior_var"][ok], 1 / prec)
    assert res.iloc[[3, 7]].isna().all().all()
    # no between-unit variance: everything shrinks to mu
    flat = shrink_means(np.array([1.0, 1.1, 0.9, 1.0]), np.full(4, 5.0))
    assert flat.attrs["tau2"] == 0 and (flat["shrunk"] == flat.attrs["mu"]).all()
    with pytest.raises(ValueError, match="at least 2"):
        shrink_means([1.0, np.nan], [1.0, 1.0])
    with pytest.raises(ValueError, match="non-negative"):
        shrink_means([1.0, 2.0], [1.0, -1.0])


# ---------------------------------------------------------------- split-half noise
def _split_half_sim(seed=17, n_units=1500, sigma2=0.8):
    """Caseworkers' half errors (variance sigma2 each) are shared by all their rows; true
    quality varies by caseworker; the b half is systematically 0.3 lower."""
    rng = np.random.default_rng(seed)
    cols = {"unit": [], "cw": [], "a": [], "b": [], "w": []}
    truth = []
    for u in range(n_units):
        g = rng.integers(1, 7)
        n_rows = rng.integers(1, 13, g)
        q = rng.normal(0, 1, g)
        ea, eb = rng.normal(0, np.sqrt(sigma2), (2, g))
        cw = np.repeat(np.arange(g), n_rows)
        w = rng.uniform(0.5, 2.0, cw.size)
        share = np.bincount(cw, weights=w) / w.sum()
        truth.append((u, share @ ((ea + eb) / 2), np.sum(share ** 2), np.sum(share ** 3)))
        cols["unit"].append(np.full(cw.size, u))
        cols["cw"].append(u * 10 + cw)
        cols["a"].append((q + ea)[cw])
        cols["b"].append((q + eb - 0.3)[cw])
        cols["w"].append(w)
    truth = pd.DataFrame(truth, columns=["unit", "err", "h", "s3"]).set_index("unit")
    return pd.DataFrame({k: np.concatenate(v) for k, v in cols.items()}), truth, sigma2 / 2


def test_split_half_recovers_noise():
    df, truth, c_true = _split_half_sim()
    res = split_half_noise(df["unit"], df["cw"], df["a"], df["b"], df["w"])
    np.testing.assert_allclose(res["h"], truth["h"])
    assert (res["n_clusters"] == df.groupby("unit")["cw"].nunique()).all()
    np.testing.assert_allclose(res["weight"], df.groupby("unit")["w"].sum())
    # c_hat = sum V/4 / sum k: ratio estimator, linearised standard error over units
    multi = res["n_clusters"] > 1
    k = (truth["h"] * (1 + truth["h"]) - 2 * truth["s3"])[multi]
    v4 = res.loc[multi, "noise_var_unpooled"] * k / res.loc[multi, "h"]
    c_hat = res.attrs["c_hat"]
    assert c_hat == pytest.approx(v4.sum() / k.sum())
    np.testing.assert_allclose(res["noise_var"], c_hat * res["h"])
    se = np.sqrt(np.sum((v4 - c_hat * k) ** 2)) / np.sum(k)
    assert abs(c_hat - c_true) < 4 * se
    # the uncorrected CR0 pooling (sum V/4 / sum h) is biased down
    assert v4.sum() / truth["h"].sum() < c_true - 4 * se
    # per-unit noise_var vs the realised squared error of the unit mean
    sq = truth["err"] ** 2
    se_u = np.std(sq - res["noise_var"]) / np.sqrt(len(sq))
    assert abs(np.mean(sq - res["noise_var"])) < 4 * se_u
    # unpooled per-unit estimate is unbiased for c * h (units with >= 2 caseworkers)
    gap = res.loc[multi, "noise_var_unpooled"] - c_true * truth.loc[multi, "h"]
    assert abs(gap.mean()) < 4 * gap.std() / np.sqrt(multi.sum())
    assert res.loc[~multi, "noise_var_unpooled"].isna().all()


def test_split_half_hand_example():
    """Two caseworkers, one row each: unpooled = (D1 - D2)^2 / 16, unbiased for Var(d)/4."""
    res = split_half_noise(["u", "u", "v", "v", "v"], [1, 2, 3, 3, 4],
                           [1.0, 4.0, 2.0, 2.0, 0.0], [0.0, 1.0, 1.0, 1.0, 0.0],
                           [1.0, 1.0, 1.0, 1.0, 2.0])
    assert res.loc["u", "noise_var_unpooled"] == pytest.approx((1 - 3) ** 2 / 16)
    # unit v: D = 1, 1 (cw 3), 0 (cw 4, weight 2): shares 1/2, 1/2, d = 1/2
    v_cr0 = ((2 * 0.5) ** 2 + (2 * -0.5) ** 2) / 16
    assert res.loc["v", "noise_var_unpooled"] == pytest.approx(v_cr0 / 4 * 2)
    assert res.attrs["c_hat"] == pytest.approx((0.125 + v_cr0 / 4) / (0.25 + 0.25))
    with pytest.raises(ValueError, match="two or more clusters"):
        split_half_noise([1, 2], [1, 2], [1.0, 2.0], [0.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="same length"):
        split_half_noise([1, 2], [1, 2], [1.0], [0.0, 0.0], [1.0, 1.0])


# ---------------------------------------------------------------- ranks
def test_ranks_ties_and_missing():
    got = ranks([3.0, np.nan, 5.0, 3.0, 1.0])
    np.testing.assert_array_equal(got, [2.0, np.nan, 1.0, 2.0, 4.0])
    np.testing.assert_array_equal(ranks([3.0, 1.0, 2.0], higher_is_better=False),
                                  [3.0, 1.0, 2.0])


def test_rank_intervals_separated_and_identical():
    rng = np.random.default_rng(2)
    theta = np.array([0.0, 40.0, 10.0, 30.0, 20.0])
    tight = rank_intervals(theta + rng.normal(0, 1, (2000, 5)))
    true_rank = ranks(theta)
    np.testing.assert_array_equal(tight["rank_low"], true_rank)
    np.testing.assert_array_equal(tight["rank_high"], true_rank)
    low_better = rank_intervals(theta + rng.normal(0, 1, (500, 5)), higher_is_better=False)
    np.testing.assert_array_equal(low_better["rank_low"], ranks(theta, False))
    wide = rank_intervals(pd.DataFrame(rng.normal(0, 1, (4000, 10)), columns=list("abcdefghij")))
    assert list(wide.index) == list("abcdefghij")
    assert (wide["rank_low"] == 1).all() and (wide["rank_high"] == 10).all()
    assert np.allclose(wide["rank_mean"], 5.5, atol=0.2)


def test_rank_intervals_bayesian_coverage():
    """With theta drawn from the prior and exact posterior draws, credible rank intervals
    cover the true rank for at least `level` of units on average (conservative via
    floor/ceil). Not a frequentist guarantee for fixed theta."""
    rng = np.random.default_rng(99)
    n_sets, n_units, n_draws, tau2 = 200, 20, 1000, 1.0
    cover = np.empty(n_sets)
    widths = np.empty(n_sets)
    for s in range(n_sets):
        theta = rng.normal(0, np.sqrt(tau2), n_units)
        v = rng.uniform(0.01, 0.2, n_units)
        y = theta + rng.normal(0, np.sqrt(v))
        post_var = 1 / (1 / tau2 + 1 / v)
        draws = rng.normal(post_var * y / v, np.sqrt(post_var), (n_draws, n_units))
        ri = rank_intervals(draws)
        r = ranks(theta)
        cover[s] = np.mean((ri["rank_low"] <= r) & (r <= ri["rank_high"]))
        widths[s] = np.mean(ri["rank_high"] - ri["rank_low"] + 1)
    se = cover.std(ddof=1) / np.sqrt(n_sets)
    assert cover.mean() >= 0.95 - 4 * se
    # reliable data (R >= 0.83): intervals span well under half the table
    assert widths.mean() < n_units / 2


def test_rank_intervals_input_checks():
    with pytest.raises(ValueError, match="n_draws, n_units"):
        rank_intervals(np.zeros(5))
    with pytest.raises(ValueError, match="level"):
        rank_intervals(np.zeros((3, 2)), level=1.0)
    out = rank_intervals(np.array([[1.0, np.nan], [2.0, np.nan]]))
    assert out.loc[1].isna().all() and out.loc[0, "rank_low"] == 1
