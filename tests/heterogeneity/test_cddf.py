"""The data-driven heterogeneity check (CDDF BLP / GATES / CLAN) of the quality effect.

The algebra of one split is checked against fits built independently from the panel
(``quality_frame`` on the half's person-months, ``fit_pm_multi``); the aggregation over
splits against hand-computed numbers; the whole procedure against the lean DGP without
heterogeneity (size, outcome redrawn) and with heterogeneity planted in the DGP itself
(``simulate(beta_ladder=...)``: the true slope on true quality differs by ladder step).
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from impact.estimate import EstimateParams
from impact.estimate.pmreg import cell_demean, fe_df, fit_pm, fit_pm_multi
from impact.estimate.quality import quality_frame
from impact.heterogeneity.cddf import (
    NONE_LEVEL, aggregate_splits, cddf_quality, publication_view, split_inference,
)
from impact.heterogeneity.params import HeterogeneityParams
from impact.simulate.lean import simulate

FE = ["municipality", "regmonth"]
WORK = {"work": "exit_work"}


@pytest.fixture(scope="module")
def lean():
    """Homogeneous quality effect (1.5 pp per point), 30 municipalities."""
    return simulate(seed=5, n_muni=30, n_months=36, caseload=100)


@pytest.fixture(scope="module")
def one_split(lean):
    """S = 1 with a fixed Main half (every other municipality)."""
    munis = np.sort(lean.person_months["municipality"].unique())
    main = munis[::2]
    het = HeterogeneityParams(cddf_splits=1, cddf_groups=4)
    res = cddf_quality(lean.person_months, EstimateParams(), het, WORK, main_clusters=[main])
    return main, het, res


def _codes(pm, het):
    """Group code per dimension, 'in no group' as a level of its own (label '(none)')."""
    out = {}
    for d in het.groups:
        c = d.codes(pm[d.column])
        out[d.name] = (c, list(d.labels) + [NONE_LEVEL])
    return out


def _dummies(codes):
    """Group dummies of every dimension, one level dropped: any full-rank coding of the
    group main effects spans the same space."""
    extra = {}
    for n, (c, _) in codes.items():
        for v in np.unique(c)[1:]:
            extra[f"{n}#{v}"] = (c == v).astype(float)
    return extra


def _direct(pm, extra, xs, zs, controls):
    """Own matrix of the half, demeaned by its own cells; 2SLS of y on xs by zs."""
    params = EstimateParams()
    A, names, exog, cells, code, cl = quality_frame(pm, params, extra=extra)
    assert len(A) == (pm["quality_a"].notna() & pm["quality_b"].notna()).sum()
    df_fe = fe_df(cells, FE, cells["municipality"].to_numpy())
    cell_demean(A, cells, code, FE)
    fit = fit_pm_multi(A, names, "y", xs, exog + controls, zs, cl, df_fe)
    pooled = fit_pm(A, names, "y", "quality_a", exog + controls, "quality_b", cl, df_fe)
    return fit, pooled


def _per(res, table, term=None):
    p = res.per_split
    p = p[p["table"] == table]
    return p if term is None else p[p["term"] == term]


def test_split_inference_and_aggregation_by_hand():
    """Split intervals at level 1 - 2 alpha; medians of estimates and bounds; p = min(1,
    2 x median p); non-finite splits left out; even counts average the middle pair."""
    inf = split_inference([2.0, np.nan], [1.0, 1.0], [9, 9], alpha=0.05)
    crit = stats.t.ppf(0.95, 9)
    assert inf["ci_low"][0] == pytest.approx(2 - crit)
    assert inf["ci_high"][0] == pytest.approx(2 + crit)
    assert inf["p_value"][0] == pytest.approx(2 * stats.t.sf(2.0, 9))
    assert np.isnan(inf["p_value"][1])
    per = pd.DataFrame({
        "k": ["a"] * 4 + ["b"] * 3,
        "estimate": [1.0, 3.0, 2.0, np.nan, 5.0, 7.0, 6.0],
        "ci_low": [0.0, 1.0, 0.5, 9.0, 4.0, 5.0, 4.5],
        "ci_high": [2.0, 4.0, 3.0, 9.0, 6.0, 9.0, 8.0],
        "p_value": [0.01, 0.20, 0.04, 0.0, 0.6, 0.9, 0.8],
        "m": [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 4.0],
    })
    agg = aggregate_splits(per, ["k"], medians=("m",)).set_index("k")
    assert agg.loc["a", "estimate"] == 2.0 and agg.loc["a", "n_splits"] == 3
    assert agg.loc["a", "ci_low"] == 0.5 and agg.loc["a", "ci_high"] == 3.0
    assert agg.loc["a", "p_value"] == pytest.approx(0.08)
    assert agg.loc["a", "m"] == 2.0  # the NaN-estimate split's 4.0 is left out
    assert agg.loc["b", "p_value"] == 1.0  # 2 x 0.8 capped
    two = aggregate_splits(per.iloc[:2], ["k"]).iloc[0]
    assert two["estimate"] == 2.0 and two["p_value"] == pytest.approx(0.21)


def test_single_split_equals_direct_fits(lean, one_split):
    """S = 1, fixed split: the proxy equals the interaction 2SLS on Aux, and BLP and GATES
    (coefficients and CRV1 SEs) equal fit_pm_multi on the Main half's own matrix (1e-10);
    the published numbers are that split's with a 1 - 2 alpha interval and p doubled."""
    main, het, res = one_split
    pm = lean.person_months
    is_main = pm["municipality"].isin(main).to_numpy()
    assert [list(m) for m in res.main_clusters] == [list(main)]
    prox = res.proxies
    # -- Aux: the proxy
    pa = pm[~is_main]
    codes = _codes(pa, het)
    qa, qb = pa["quality_a"].to_numpy(), pa["quality_b"].to_numpy()
    dums = _dummies(codes)
    extra = dict(dums)
    for n in dums:
        extra[f"qa*{n}"], extra[f"qb*{n}"] = qa * dums[n], qb * dums[n]
    fit, _ = _direct(pa, extra, ["quality_a", *[f"qa*{n}" for n in dums]],
                     ["quality_b", *[f"qb*{n}" for n in dums]], list(dums))
    b = dict(zip(prox["dimension"] + "|" + prox["group"], prox["coef"]))
    # the direct fit's dummies drop the lowest code; the proxy's the first group: compare
    # the effect of each level relative to the first group, and the first groups' effect
    level = {n: np.zeros(len(labels)) for n, (_, labels) in codes.items()}
    for i, n in enumerate(dums, start=1):
        dim, v = n.split("#")
        level[dim][int(v)] = fit.coef[i]  # code -1 indexes the last label, "(none)"
    b0 = fit.coef[0] + sum(v[0] for v in level.values())
    np.testing.assert_allclose(b["(intercept)|"], b0, rtol=1e-9)
    for dim, (c, labels) in codes.items():
        for v in np.unique(c):
            np.testing.assert_allclose(b[f"{dim}|{labels[v]}"], level[dim][v] - level[dim][0],
                                       rtol=1e-9, atol=1e-9)
    # -- Main: the proxy's prediction, BLP and GATES on the half's own matrix
    pmm = pm[is_main]
    codes = _codes(pmm, het)
    S = np.full(len(pmm), b["(intercept)|"])
    for n, (c, labels) in codes.items():
        S += np.array([b.get(f"{n}|{lab}", np.nan) for lab in labels])[c]
    sample = (pmm["quality_a"].notna() & pmm["quality_b"].notna()).to_numpy()
    Sc = S - S[sample].mean()
    K = het.cddf_groups
    grp = np.searchsorted(np.quantile(S[sample], np.arange(1, K) / K), S, side="left")
    qa, qb = pmm["quality_a"].to_numpy(), pmm["quality_b"].to_numpy()
    dums = _dummies(codes)
    extra = {"qaS": qa * Sc, "qbS": qb * Sc, **dums}
    for g in range(K):
        extra[f"qa#{g}"], extra[f"qb#{g}"] = qa * (grp == g), qb * (grp == g)
        if g:
            extra[f"G#{g}"] = (grp == g).astype(float)
    blp, pooled = _direct(pmm, extra, ["quality_a", "qaS"], ["quality_b", "qbS"], list(dums))
    gates, _ = _direct(pmm, extra, [f"qa#{g}" for g in range(K)],
                       [f"qb#{g}" for g in range(K)], list(dums) + [f"G#{g}" for g in range(1, K)])
    per_b, per_g = _per(res, "blp"), _per(res, "gates")
    np.testing.assert_allclose(per_b["estimate"], blp.coef, rtol=1e-10)
    np.testing.assert_allclose(per_b["std_error"], np.sqrt(np.diag(blp.V)), rtol=1e-10)
    np.testing.assert_allclose(per_g["estimate"].iloc[:K], gates.coef, rtol=1e-10)
    np.testing.assert_allclose(per_g["std_error"].iloc[:K], np.sqrt(np.diag(gates.V)), rtol=1e-10)
    c = np.r_[-1.0, np.zeros(K - 2), 1.0]
    np.testing.assert_allclose(per_g["estimate"].iloc[K], c @ gates.coef, rtol=1e-10)
    np.testing.assert_allclose(per_g["std_error"].iloc[K], np.sqrt(c @ gates.V @ c), rtol=1e-10)
    # group sizes on the estimation sample
    sizes = np.bincount(grp[sample], minlength=K)
    assert per_g["n_person_months"].iloc[:K].tolist() == sizes.tolist()
    # published numbers of S = 1: the split's estimate, t(G-1) interval at 1 - 2 alpha
    alpha, G = res.alpha, blp.n_clusters
    crit = stats.t.ppf(1 - alpha, G - 1)
    est = np.r_[blp.coef, gates.coef, c @ gates.coef]
    se = np.r_[np.sqrt(np.diag(blp.V)), np.sqrt(np.diag(gates.V)), np.sqrt(c @ gates.V @ c)]
    out = pd.concat([res.blp, res.gates])
    np.testing.assert_allclose(out["estimate"], est, rtol=1e-10)
    np.testing.assert_allclose(out["ci_low"], est - crit * se, rtol=1e-9)
    np.testing.assert_allclose(out["ci_high"], est + crit * se, rtol=1e-9)
    p = np.minimum(1, 2 * 2 * stats.t.sf(np.abs(est / se), G - 1))
    np.testing.assert_allclose(out["p_value"], p, rtol=1e-8)


def test_blp_average_equals_pooled_effect_on_main(lean, one_split):
    """beta1 (S centred on Main) and the plain pooled 2SLS on the Main half estimate the
    same average effect: they differ by less than the pooled SE."""
    main, het, res = one_split
    pmm = lean.person_months[lean.person_months["municipality"].isin(main)]
    dums = _dummies(_codes(pmm, het))
    _, pooled = _direct(pmm, dums, ["quality_a"], ["quality_b"], list(dums))
    beta1 = res.blp.set_index("term").loc["beta1_average", "estimate"]
    assert abs(beta1 - pooled.coef) < pooled.se, (beta1, pooled.coef, pooled.se)


def test_no_heterogeneity_size():
    """Lean DGP without heterogeneity, the outcome redrawn R = 100 times from its true
    probability: the CDDF test of beta2 = 0 rejects at most at alpha + 3 MC SE, and so
    does the single split's test (which the median aggregation makes conservative)."""
    R, alpha = 100, 0.10
    sim = simulate(seed=7, n_muni=30, n_months=24, caseload=80)
    pm = sim.person_months
    rng = np.random.default_rng(70)
    p = pm["p_true"].to_numpy() / 100
    ys = pd.DataFrame({f"y{r}": (rng.random(len(pm)) < p).astype("int8") for r in range(R)},
                      index=pm.index)
    pm = pd.concat([pm, ys], axis=1)
    het = HeterogeneityParams(cddf_splits=3, cddf_groups=4)
    res = cddf_quality(pm, EstimateParams(), het, {f"r{r}": f"y{r}" for r in range(R)},
                       alpha=alpha, seed=3)
    bound = alpha + 3 * np.sqrt(alpha * (1 - alpha) / R)
    agg = res.blp[res.blp["term"] == "beta2_heterogeneity"]
    assert len(agg) == R and agg["p_value"].notna().all()
    assert (agg["p_value"] < alpha).mean() <= bound
    first = _per(res, "blp", "beta2_heterogeneity")
    first = first[first["split"] == 0]
    assert (first["p_value"] < alpha).mean() <= bound
    tb = res.gates[res.gates["group"] == "top-bottom"]
    assert (tb["p_value"] < alpha).mean() <= bound


def test_planted_heterogeneity_is_found():
    """The true quality slope rises with the ladder step (0 / 0 / 1.5 / 1.5 / 3 / 3 pp per
    point for steps 1-6): BLP beta2 > 0 significantly, GATES top > bottom significantly,
    and CLAN puts ladder steps 5-6 in the top group and 1 in the bottom group, ladder
    being the dimension that separates top from bottom most."""
    sim = simulate(seed=21, n_muni=30, n_months=36, caseload=100,
                   beta_ladder={1: 0.0, 2: 0.0, 3: 1.5, 4: 1.5, 5: 3.0, 6: 3.0})
    het = HeterogeneityParams(cddf_splits=5, cddf_groups=4)
    res = cddf_quality(sim.person_months, EstimateParams(), het, WORK, seed=11)
    blp = res.blp.set_index("term")
    assert blp.loc["beta2_heterogeneity", "estimate"] > 0
    assert blp.loc["beta2_heterogeneity", "p_value"] < 0.05
    g = res.gates.set_index("group")
    assert g.loc["4", "estimate"] > g.loc["1", "estimate"]
    assert g.loc["top-bottom", "estimate"] > 0 and g.loc["top-bottom", "p_value"] < 0.05
    clan = res.clan.set_index(["dimension", "group"])
    hi, lo = clan.loc[("ladder_step", "5-6")], clan.loc[("ladder_step", "1")]
    assert hi["mean_top"] > hi["mean_bottom"] and hi["ci_low"] > 0 and hi["p_value"] < 0.05
    assert lo["difference"] < 0 and lo["ci_high"] < 0 and lo["p_value"] < 0.05
    assert clan["difference"].abs().idxmax()[0] == "ladder_step"


def test_deterministic_and_seeded(lean):
    """Same seed: identical tables; another seed: other splits."""
    het = HeterogeneityParams(cddf_splits=2, cddf_groups=3)
    pm = lean.person_months
    a = cddf_quality(pm, EstimateParams(), het, WORK, seed=1)
    b = cddf_quality(pm, EstimateParams(), het, WORK, seed=1)
    for t in ("blp", "gates", "clan", "per_split", "proxies"):
        pd.testing.assert_frame_equal(getattr(a, t), getattr(b, t))
    assert all((x == y).all() for x, y in zip(a.main_clusters, b.main_clusters))
    c = cddf_quality(pm, EstimateParams(), het, WORK, seed=2)
    assert any(set(x) != set(y) for x, y in zip(a.main_clusters, c.main_clusters))
    # halves: Main has the extra cluster of an odd count; every cluster in one half
    G = pm["municipality"].nunique()
    assert all(len(m) == G - G // 2 for m in a.main_clusters)


def test_disclosure_flags(lean, one_split):
    """With min_cell above every group's clients nothing is published and the publication
    view blanks every statistic and count; group counts are at least min_cell when
    published."""
    main, het, res = one_split
    assert res.gates["published"].all() and res.blp["published"].all()
    assert (res.gates.loc[res.gates["published"], "n_clients"] >= res.min_cell).all()
    big = cddf_quality(lean.person_months, EstimateParams(), het, WORK,
                       main_clusters=[main], min_cell=10**7)
    view = publication_view(big)
    for name, t in view.items():
        assert not t["published"].any()
        stat = [c for c in t.columns
                if c not in ("outcome", "term", "group", "dimension", "published", "n_splits")]
        assert t[stat].isna().all().all(), name
    # a dimension's shares add up to one in top and bottom: never exactly one hidden row
    # per dimension (secondary suppression)
    hidden = (~res.clan["published"]).groupby(res.clan["dimension"]).sum()
    assert not (hidden == 1).any()
