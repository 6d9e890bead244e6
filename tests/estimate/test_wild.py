"""Wild cluster bootstrap: the closed-form draws against a brute-force refit per draw, and
its size with six clusters.

The ``wildboottest`` package (pyfixest's ``Feols.wildboottest`` backend) is not installed,
so the reference is a brute-force loop: for every one of the 2^G Rademacher sign vectors
(full enumeration, G <= 10) build y*, refit with ``linalg.wls_fit`` and recompute the CRV1
t with ``linalg.crv1_vcov``. Tolerance 1e-8 on t's (same algebra, different order of
floating-point operations; the t's are O(1)); the p-values must be identical.

Size (about 2 s, so in the default run): 200 data sets with G = 6 clusters under H0 with a cluster-level regressor;
the WCR rejection rate at 5% must lie within 3 Monte Carlo SEs (3 * 0.0154) of 0.05.
The CRV1 t(G-1) rate is printed beside it for the report; it is not asserted.
"""

import numpy as np
import pandas as pd
import pytest

from impact.estimate.linalg import build_design, crv1_vcov, wls_fit
from impact.estimate.wild import _restricted_design, wild_cluster_bootstrap


def _data(seed, G=6, n_per=(20, 40), beta=0.0, fe=True):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(n_per[0], n_per[1], G)
    g = np.repeat(np.arange(G), sizes)
    n = len(g)
    per = rng.integers(0, 4, n)  # a second, non-nested fixed effect
    xg = rng.normal(size=G)
    x = xg[g] + 0.5 * rng.normal(size=n)
    z = rng.normal(size=n)
    u = rng.normal(size=G)[g] * (1 + np.abs(xg[g])) + rng.normal(size=n)
    y = beta * x + 0.3 * z + 0.2 * per + u
    frame = pd.DataFrame({"y": y, "x": x, "z": z, "g": g, "per": per})
    design = build_design(frame, ["per"] if fe else [], ["x", "z"] if fe else ["x", "z"])
    w = rng.uniform(0.5, 2.0, n)
    return design, y, w, g


def _brute_t(design, y, w, g, V, impose_null, col):
    fit = wls_fit(design, y, w)
    base = wls_fit(_restricted_design(design, col), y, w) if impose_null else fit
    Zb = design.Z[:, base.keep] if not impose_null else _restricted_design(design, col).Z[:, base.keep]
    yhat = np.asarray(Zb @ base.coef[base.keep]).ravel()
    b0 = 0.0 if impose_null else fit.coef[col]
    out = []
    for v in V:
        ystar = yhat + v[g] * base.resid
        f = wls_fit(design, ystar, w)
        Vc, _, _ = crv1_vcov(design, f, w, g, [col])
        out.append((f.coef[col] - b0) / np.sqrt(Vc[0, 0]))
    return np.array(out)


@pytest.mark.parametrize("impose_null", [True, False])
def test_enumeration_equals_brute_force(impose_null):
    design, y, w, g = _data(1, G=6)
    col = design.x_index("x")
    res = wild_cluster_bootstrap(design, y, w, g, "x", impose_null=impose_null, B=999, seed=3)
    assert res.enumerated and res.n_boot == 2 ** 6
    from impact.estimate.wild import draw_weights
    V, _ = draw_weights(6, 999, "rademacher", np.random.default_rng(0))
    tb = _brute_t(design, y, w, g, V, impose_null, col)
    np.testing.assert_allclose(res.t_boot, tb, rtol=0, atol=1e-8)
    fit = wls_fit(design, y, w)
    Vc, _, _ = crv1_vcov(design, fit, w, g, [col])
    t_obs = fit.coef[col] / np.sqrt(Vc[0, 0])
    assert res.t_stat == pytest.approx(t_obs, abs=1e-10)
    assert res.p_value == np.mean(np.abs(tb) >= abs(t_obs) * (1 - 1e-10))
    # deterministic: another seed gives the same enumeration and p-value
    res2 = wild_cluster_bootstrap(design, y, w, g, "x", impose_null=impose_null, seed=99)
    assert res2.p_value == res.p_value


def test_wcr_identity_draw_and_sampled_webb():
    design, y, w, g = _data(2, G=12)
    col = design.x_index("x")
    res = wild_cluster_bootstrap(design, y, w, g, col, weights="webb", B=199, seed=5)
    assert not res.enumerated and res.n_boot == 199
    rng = np.random.default_rng(5)
    V = rng.choice(np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0,
                             np.sqrt(1.5)]), size=(199, 12))
    tb = _brute_t(design, y, w, g, V, True, col)
    np.testing.assert_allclose(res.t_boot, tb, rtol=0, atol=1e-8)
    # with v = 1 for every cluster the WCR draw reproduces the data's t
    tb1 = _brute_t(design, y, w, g, np.ones((1, 12)), True, col)
    assert tb1[0] == pytest.approx(res.t_stat, abs=1e-8)
    assert res.ci_low < res.estimate < res.ci_high


def test_large_effect_rejected_and_errors():
    design, y, w, g = _data(3, G=8, beta=3.0)
    res = wild_cluster_bootstrap(design, y, w, g, "x")
    # v = +1 and v = -1 both reproduce |t| under WCR, so p >= 2/2^G; a strong effect is rejected
    assert 2 / 2 ** 8 <= res.p_value <= 0.05
    with pytest.raises(ValueError, match="weights"):
        wild_cluster_bootstrap(design, y, w, g, "x", weights="mammen")
    with pytest.raises(ValueError, match="2 clusters"):
        wild_cluster_bootstrap(design, y, w, np.zeros_like(g), "x")


def test_size_six_clusters_monte_carlo():
    from scipy import stats
    R, G = 200, 6
    rej = {"wcr_rademacher": 0, "wcr_webb": 0, "crv1_t": 0}
    for r in range(R):
        design, y, w, g = _data(1000 + r, G=G)
        rr = wild_cluster_bootstrap(design, y, w, g, "x", weights="rademacher")
        rw = wild_cluster_bootstrap(design, y, w, g, "x", weights="webb", B=999, seed=r)
        rej["wcr_rademacher"] += rr.p_value <= 0.05
        rej["wcr_webb"] += rw.p_value <= 0.05
        rej["crv1_t"] += 2 * stats.t.sf(abs(rw.t_stat), G - 1) <= 0.05
    rates = {k: v / R for k, v in rej.items()}
    print("rejection rates at 5% (G=6, R=200):", rates)
    mcse = np.sqrt(0.05 * 0.95 / R)
    assert abs(rates["wcr_webb"] - 0.05) <= 3 * mcse
    assert abs(rates["wcr_rademacher"] - 0.05) <= 3 * mcse
