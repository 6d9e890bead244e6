"""Wild score bootstrap (impact.estimate.scorewild): size with six clusters, coverage,
the interval as test inversion, and a brute-force sign-flip reference.

Tolerances: rejection rates over R = 400 replications have a Monte Carlo SE of
sqrt(.05 * .95 / 400) = 0.011 at the nominal 5%; the bounds [0.02, 0.10] are about 3 and
4.5 SE from 5%. The CRV1 t(G-1) test on the same draws rejects about 19% (measured), far
outside them, which is why the pipeline switches to the bootstrap below a cluster count.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from impact.estimate.scorewild import score_wild


def _draw(rng, beta=0.0, G=6):
    """OLS with cluster-correlated x and errors, one high-leverage cluster, t(3) noise."""
    sizes = rng.integers(20, 400, G)
    cl = np.repeat(np.arange(G), sizes)
    x = rng.normal(size=G)[cl] + 0.5 * rng.normal(size=len(cl))
    x = x * (1 + 2 * (cl == 0))
    y = beta * x + rng.normal(size=G)[cl] + rng.standard_t(3, size=len(cl))
    xd, yd = x - x.mean(), y - y.mean()
    sxx = xd @ xd
    b = xd @ yd / sxx
    a = np.bincount(cl, xd * yd) / sxx
    c = np.bincount(cl, xd * xd) / sxx
    s = np.bincount(cl, xd * (yd - b * xd)) / sxx
    se = np.sqrt((s ** 2).sum() * G / (G - 1) * (len(y) - 1) / (len(y) - 2))
    return b, se, a, c


def test_size_with_six_clusters_beats_crv1():
    rng = np.random.default_rng(20261130)
    R, G = 400, 6
    rej_wild = rej_crv = 0
    for r in range(R):
        b, se, a, c = _draw(rng, G=G)
        rej_crv += abs(b / se) > stats.t(G - 1).ppf(0.975)
        rej_wild += score_wild(a, c, weights="webb", B=999, seed=r).p_value <= 0.05
    assert 0.02 <= rej_wild / R <= 0.10
    assert rej_crv / R > rej_wild / R + 0.05  # the failure the bootstrap is there for


def test_interval_covers_the_truth():
    rng = np.random.default_rng(7)
    R, beta, cover = 200, 0.5, 0
    for r in range(R):
        _, _, a, c = _draw(rng, beta=beta, G=8)
        res = score_wild(a, c, weights="webb", B=999, seed=r)
        cover += res.ci_low <= beta <= res.ci_high
    # MC SE at 95%: 0.015; [0.90, 0.995] is about 3.3 SE below and the ceiling above
    assert 0.90 <= cover / R <= 0.995


def test_interval_is_test_inversion():
    rng = np.random.default_rng(3)
    _, se, a, c = _draw(rng, beta=1.0, G=12)
    res = score_wild(a, c, weights="rademacher", B=1999, seed=1, scale=se)
    assert res.ci_low < a.sum() / c.sum() < res.ci_high
    width = res.ci_high - res.ci_low
    for edge, out in ((res.ci_low, -1), (res.ci_high, +1)):
        inside = score_wild(a - (edge - out * 1e-4 * width) * c, c, weights="rademacher",
                            B=1999, seed=1)
        outside = score_wild(a - (edge + out * 1e-4 * width) * c, c, weights="rademacher",
                             B=1999, seed=1)
        assert inside.p_value > 0.05 >= outside.p_value


def test_rademacher_p_equals_brute_force_sign_flips():
    rng = np.random.default_rng(11)
    a, c = rng.normal(size=7), rng.uniform(0.5, 1.5, size=7)
    res = score_wild(a, c, weights="rademacher", seed=0)
    assert res.enumerated and res.n_boot == 2 ** 7
    s = a / c.sum()  # scores at theta0 = 0
    t_obs = abs(s.sum())
    flips = [abs(np.dot(v, s)) >= t_obs * (1 - 1e-12)
             for v in itertools.product((1.0, -1.0), repeat=7)]
    assert res.p_value == pytest.approx(np.mean(flips), abs=1e-15)


@pytest.mark.parametrize("a, c, msg", [
    ([1.0], [1.0], "length >= 2"),
    ([1.0, 2.0], [0.0, 0.0], "do not depend on theta"),
    ([1.0, 2.0], [1.0], "length >= 2"),
])
def test_bad_input(a, c, msg):
    with pytest.raises(ValueError, match=msg):
        score_wild(a, c)


def test_one_treated_cluster_gives_an_unbounded_interval_and_the_flagged_fallback():
    """All of theta's weight in one cluster: no value can be rejected, the interval is
    unbounded, and the headline keeps the analytic interval, flagged as likely too narrow."""
    from impact.estimate.inference import with_wild
    from impact.estimate.params import EstimateSection

    a, c = np.array([0.8, 0.1, -0.1, 0.05, 0.02]), np.array([1.0, 0, 0, 0, 0])
    res = score_wild(a, c, weights="rademacher")
    assert not (np.isfinite(res.ci_low) and np.isfinite(res.ci_high))
    head = {"effect_pp": 0.87, "std_error": 0.2, "ci_low": 0.4, "ci_high": 1.3,
            "ci_method": "CRV1 t(G-1)"}
    row_in = {"estimate": 0.87, "ci_low": 0.4, "ci_high": 1.3, "vcov": "CRV1"}
    new, row_out = with_wild(head, row_in, a, c, EstimateSection(), seed=1, key="shock")
    assert new["wild_unbounded"] is True
    assert (new["ci_low"], new["ci_high"]) == (0.4, 1.3) == (row_out["ci_low"], row_out["ci_high"])
    assert "likely too narrow" in new["ci_method"] and "unbounded" in row_out["vcov"]


def test_interval_is_the_whole_accepted_set_even_when_p_is_not_monotone():
    """Found in review: far from theta_hat the p-value tends to a limit p_inf; when p_inf
    exceeds alpha the set is unbounded on both sides, else no accepted value lies beyond
    the reported ends (checked on a wide grid), for random score sets."""
    from impact.estimate.scorewild import _pvalues
    from impact.estimate.wild import draw_weights

    rng = np.random.default_rng(5)
    n_unbounded = 0
    for _ in range(120):
        G = int(rng.integers(3, 12))
        a = rng.normal(size=G)
        c = rng.exponential(size=G) * (rng.uniform(size=G) < 0.6)
        if c.sum() == 0:
            continue
        w = "rademacher" if rng.uniform() < 0.5 else "webb"
        res = score_wild(a, c, weights=w, B=499, seed=2)
        cn, an = c / c.sum(), a / c.sum()
        V, enum = draw_weights(G, 499, w, np.random.default_rng(2))
        if not enum:
            V = np.vstack([np.ones((1, G)), V])
        p_inf = _pvalues(np.zeros(G), cn, -1.0, V, V ** 2)
        if p_inf > 0.05:
            n_unbounded += 1
            assert np.isinf(res.ci_low) and np.isinf(res.ci_high)
            continue
        theta = an.sum()
        span = 50 * max(abs(theta), res.ci_high - res.ci_low, 1.0)
        for t0 in np.linspace(theta - span, theta + span, 801):
            if t0 < res.ci_low - 1e-6 * span or t0 > res.ci_high + 1e-6 * span:
                assert _pvalues(an, cn, t0, V, V ** 2) <= 0.05, (G, w, t0, res)
    assert n_unbounded > 0  # the case occurs in this sample
