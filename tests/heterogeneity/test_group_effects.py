"""Group effects of quality: the interaction 2SLS against pyfixest, and its behaviour."""

import numpy as np
import pandas as pd
from linearmodels.iv import IV2SLS
import pytest

from impact.estimate import EstimateParams
from impact.estimate.linalg import independent_columns
from impact.estimate.pmreg import cell_demean, fe_df, fit_pm_multi
from impact.estimate.quality import quality_frame
from impact.heterogeneity.params import HeterogeneityParams
from impact.heterogeneity.quality import quality_by_group
from impact.simulate.lean import simulate

RTOL = 1e-6


@pytest.fixture(scope="module")
def lean():
    return simulate(seed=5, n_muni=16, n_months=36, caseload=150)


@pytest.fixture(scope="module")
def tiny():
    """Small enough for the explicit-dummy reference (a dense N x ~300 matrix)."""
    return simulate(seed=6, n_muni=8, n_regions=2, n_months=24, caseload=100)


def _ladder():
    return {d.name: d for d in HeterogeneityParams().groups}["ladder_step"]


def test_interaction_iv_equals_linearmodels(tiny):
    """fit_pm_multi on the projected matrix = linearmodels IV2SLS with FE dummies, 4 endogenous."""
    pm = tiny.person_months
    dim = _ladder()
    codes = dim.codes(pm["ladder_step"])
    extra = {}
    for h in range(len(dim.labels)):
        d = (codes == h).astype(float)
        extra[f"qa{h}"], extra[f"qb{h}"] = pm["quality_a"].to_numpy() * d, pm["quality_b"].to_numpy() * d
        if h:
            extra[f"D{h}"] = d
    params = EstimateParams()
    A, names, exog, cells, code, cl = quality_frame(pm, params, extra=extra)
    safe = {n: f"c{i}" for i, n in enumerate(names)}
    df = pd.DataFrame(A.copy(), columns=[safe[n] for n in names])
    df["municipality"] = cells["municipality"].to_numpy()[code]
    df["regmonth"] = cells["regmonth"].to_numpy()[code]
    fe = ["municipality", "regmonth"]
    df_fe = fe_df(cells, fe, cells["municipality"].to_numpy())
    cell_demean(A, cells, code, fe)
    H = len(dim.labels)
    xs, zs = [f"qa{h}" for h in range(H)], [f"qb{h}" for h in range(H)]
    dums = [f"D{h}" for h in range(1, H)]
    fit = fit_pm_multi(A, names, "y", xs, exog + dums, zs, cl, df_fe)
    # linearmodels IV2SLS with explicit FE dummies (pyfixest takes one endogenous variable
    # only); its unadjusted clustered covariance times our CRV1 factor, as in
    # tests/estimate/test_estimate_reference.py
    dummies = pd.concat([pd.get_dummies(df["municipality"], dtype=float),
                         pd.get_dummies(df["regmonth"], dtype=float)], axis=1)
    exo = pd.concat([dummies, df[[safe[e] for e in exog + dums]]], axis=1)
    gram = exo.T @ exo
    d = np.sqrt(np.diag(gram))
    exo = exo.iloc[:, independent_columns((gram / np.outer(d, d)).to_numpy())]
    k = [safe[x] for x in xs]
    lm = IV2SLS(df[safe["y"]], exo, df[k], df[[safe[z] for z in zs]]).fit(
        cov_type="clustered", clusters=df["municipality"], debiased=False)
    N, G = len(df), df["municipality"].nunique()
    factor = G / (G - 1) * (N - 1) / (N - fit.df_k)
    np.testing.assert_allclose(fit.coef, lm.params[k].to_numpy(), rtol=RTOL)
    np.testing.assert_allclose(fit.V, lm.cov.loc[k, k].to_numpy() * factor, rtol=1e-5,
                               atol=1e-12)


def test_group_effects_recover_homogeneous_truth(lean):
    """The lean DGP's quality effect is 1.5 pp in every ladder group: each group estimate
    lies within 3 SE of it, and the pooled effect too."""
    [ge] = quality_by_group(lean.person_months, EstimateParams(), _ladder(), {"work": "exit_work"})
    truth = lean.truth["quality_pp"]
    assert ge.labels == ("1", "2", "3-4", "5-6")
    z = (ge.estimate - truth) / ge.se
    assert np.all(np.abs(z) < 3), z
    assert abs(ge.overall - truth) < 3 * ge.overall_se
    # counts on the estimation sample: person-months add up to the pooled sample
    assert ge.n_person_months.sum() == ge.n_person_months.sum() > 0
    assert np.all(ge.n_clients <= ge.n_person_months)


def test_empty_group_is_dropped_not_fatal(lean):
    """A group no person-month falls in gets NaN, the others are estimated."""
    pm = lean.person_months.copy()
    pm.loc[pm["ladder_step"] == 2, "ladder_step"] = 1
    [ge] = quality_by_group(pm, EstimateParams(), _ladder(), {"work": "exit_work"})
    assert np.isnan(ge.estimate[1]) and ge.n_person_months[1] == 0
    assert np.isfinite(ge.estimate[[0, 2, 3]]).all()


def test_adoption_group_atts_recover_truth(lean):
    """The lean DGP's programme effect does not depend on the ladder step: every group
    ATT lies within 3 SE of the overall truth, and the pooled ATT equals the headline
    model's ATT computed on the same split cells within 3 SE."""
    from impact.heterogeneity.adoption import adoption_by_group

    [ge] = adoption_by_group(lean.person_months, lean.adoption, lean.shocks, EstimateParams(),
                             _ladder(), {"work": "exit_work"})
    truth = lean.truth["att_pp"]
    z = (ge.estimate - truth) / ge.se
    assert np.all(np.abs(z) < 3), (ge.estimate, ge.se, truth)
    assert abs(ge.overall - truth) < 3 * ge.overall_se
    assert ge.scores.shape == (ge.n_clusters, 4)
    assert (ge.n_person_months > 0).all() and (ge.n_clients <= ge.n_person_months).all()


def test_romano_wolf_family_spans_dimensions(lean):
    """The quality family of one outcome is adjusted jointly over dimensions: adjusted
    p-values are at least each model's own Romano-Wolf p-values and at least the raw
    bootstrap p; the draws of two models share their cluster weights."""
    from impact.estimate.multiplicity import max_t_adjust
    from impact.heterogeneity.run import _cluster_labels, group_tables
    from impact.heterogeneity.wcr import wcr_weights

    pm = lean.person_months
    params = EstimateParams()
    dims = {d.name: d for d in HeterogeneityParams().groups}
    W = wcr_weights(_cluster_labels(pm, params), B=399, seed=3)
    res = [quality_by_group(pm, params, dims[k], {"work": "exit_work"}, wcr=W)[0]
           for k in ("ladder_step", "education")]
    groups, _ = group_tables(res, min_cell=10, alpha=0.05)
    q = groups[groups["published"]].set_index(["dimension", "group"])
    assert len(q) == 7 and q["adjustment"].eq("romano_wolf").all()
    for ge in res:
        own = max_t_adjust(ge.t_stat, ge.t_boot)
        joint = q.loc[ge.dimension].loc[list(ge.labels), "p_adjusted"].to_numpy()
        assert np.all(joint >= own - 1e-12), (ge.dimension, joint, own)


def test_quality_by_group_with_unrecorded_steps_equals_linearmodels(tiny):
    """End to end, with a fifth of the ladder steps missing: ``quality_by_group`` (one
    demeaned base matrix, interaction columns added per dimension, the rows in no group a
    group of their own) = linearmodels IV2SLS with explicit FE dummies and five
    endogenous slopes, on the reported four."""
    pm = tiny.person_months.copy()
    rng = np.random.default_rng(11)
    clients = pm["client_id"].unique()
    lost = set(rng.choice(clients, size=len(clients) // 5, replace=False))
    pm.loc[pm["client_id"].isin(lost), "ladder_step"] = np.nan
    dim = _ladder()
    [ge] = quality_by_group(pm, EstimateParams(), dim, {"work": "exit_work"})
    codes = dim.codes(pm["ladder_step"])
    assert (codes < 0).any()
    codes[codes < 0] = 4
    extra = {}
    for h in range(5):
        d = (codes == h).astype(float)
        extra[f"qa{h}"], extra[f"qb{h}"] = (pm["quality_a"].to_numpy() * d,
                                            pm["quality_b"].to_numpy() * d)
        if h:
            extra[f"D{h}"] = d
    A, names, exog, cells, code, cl = quality_frame(pm, EstimateParams(), extra=extra)
    safe = {n: f"c{i}" for i, n in enumerate(names)}
    df = pd.DataFrame(A, columns=[safe[n] for n in names])
    dummies = pd.concat([pd.get_dummies(cells["municipality"].to_numpy()[code], dtype=float),
                         pd.get_dummies(cells["regmonth"].to_numpy()[code], dtype=float)],
                        axis=1)
    dummies.columns = [f"fe{i}" for i in range(dummies.shape[1])]
    exo = pd.concat([dummies, df[[safe[e] for e in exog + [f"D{h}" for h in range(1, 5)]]]],
                    axis=1)
    gram = exo.T @ exo
    d = np.sqrt(np.diag(gram))
    exo = exo.iloc[:, independent_columns((gram / np.outer(d, d)).to_numpy())]
    k = [safe[f"qa{h}"] for h in range(5)]
    lm = IV2SLS(df[safe["y"]], exo, df[k], df[[safe[f"qb{h}"] for h in range(5)]]).fit(
        cov_type="clustered", clusters=pd.Series(cl), debiased=False)
    np.testing.assert_allclose(ge.estimate, lm.params[k].to_numpy()[:4], rtol=RTOL)
    # our CRV1 factor: K = 5 slopes + independent demeaned controls + the FE levels not
    # nested in the municipality clusters (fixest "nonnested"); linearmodels' unadjusted
    # clustered covariance times that factor is ours
    N, G = len(df), ge.n_clusters
    fe = ["municipality", "regmonth"]
    dm = cell_demean(A.copy(order="F"), cells, code, fe)
    ex_cols = [names.index(e) for e in exog + [f"D{h}" for h in range(1, 5)]]
    K = 5 + np.linalg.matrix_rank(dm[:, ex_cols]) + fe_df(cells, fe, cells["municipality"].to_numpy())
    factor = G / (G - 1) * (N - 1) / (N - K)
    lm_se = np.sqrt(np.diag(lm.cov.loc[k, k].to_numpy()) * factor)[:4]
    np.testing.assert_allclose(ge.se, lm_se, rtol=1e-5)


def test_adoption_family_gets_romano_wolf_with_shared_weights(lean):
    """With the shared cluster weights the programme's groups get joint draws and the
    family is adjusted by Romano-Wolf; adjusted p-values are never below the raw ones."""
    from impact.heterogeneity.adoption import adoption_by_group
    from impact.heterogeneity.run import _cluster_labels, group_tables
    from impact.heterogeneity.wcr import wcr_weights

    pm, params = lean.person_months, EstimateParams()
    W = wcr_weights(_cluster_labels(pm, params), B=199, seed=4)
    [ge] = adoption_by_group(pm, lean.adoption, lean.shocks, params, _ladder(),
                             {"work": "exit_work"}, wcr=W)
    assert ge.t_boot.shape == (199, 4) and np.isfinite(ge.t_boot).all()
    groups, _ = group_tables([ge], min_cell=10, alpha=0.05)
    pub = groups[groups["published"]]
    assert pub["adjustment"].eq("romano_wolf").all() and len(pub) == 4
    assert (pub["p_adjusted"] >= pub["p_value"] - 1e-12).all()
    # without weights: Holm
    [ge0] = adoption_by_group(pm, lean.adoption, lean.shocks, params, _ladder(),
                              {"work": "exit_work"})
    assert group_tables([ge0], min_cell=10, alpha=0.05)[0]["adjustment"].eq("holm").all()


def test_group_fit_from_wcr_draws_equals_fit_pm_multi(lean):
    """With cluster weights the group estimates and scores come from the WCR draws'
    unrestricted fit instead of a separate ``fit_pm_multi``: the same numbers, for every
    outcome; the pooled effects (all outcomes from one ``fit_pm`` call) equal one call per
    outcome."""
    from impact.heterogeneity.run import _cluster_labels
    from impact.heterogeneity.wcr import wcr_weights

    pm = lean.person_months
    params = EstimateParams()
    outcomes = {"work": "exit_work", "any": "exit_any"}
    W = wcr_weights(_cluster_labels(pm, params), B=99, seed=3)
    boot = quality_by_group(pm, params, _ladder(), outcomes, wcr=W)
    plain = quality_by_group(pm, params, _ladder(), outcomes)
    assert [g.outcome for g in boot] == [g.outcome for g in plain] == ["work", "any"]
    for b, p in zip(boot, plain):
        assert b.t_boot is not None and p.t_boot is None
        np.testing.assert_allclose(b.estimate, p.estimate, rtol=1e-9)
        np.testing.assert_allclose(b.scores, p.scores, rtol=1e-8, atol=1e-12)
        assert b.overall == p.overall and b.overall_se == p.overall_se
        assert (b.clusters == p.clusters).all() and b.n_clusters == p.n_clusters
        np.testing.assert_array_equal(b.n_events, p.n_events)
    assert not np.array_equal(boot[0].n_events, boot[1].n_events)


def test_fit_pm_several_outcomes_equals_one_call_each(lean):
    """``fit_pm`` with a list of outcomes = one call per outcome (coefficient, SE, first
    stage F and wild score parts)."""
    from impact.estimate.pmreg import fit_pm

    pm = lean.person_months
    A, names, exog, cells, code, cl = quality_frame(
        pm, EstimateParams(), outcomes={"y1": "exit_work", "y2": "exit_any"})
    cell_demean(A, cells, code, ["municipality", "regmonth"])
    many = fit_pm(A, names, ["y1", "y2"], "quality_a", exog, "quality_b", cl, 3,
                  wild_parts=True)
    for y, m in zip(["y1", "y2"], many):
        one = fit_pm(A, names, y, "quality_a", exog, "quality_b", cl, 3, wild_parts=True)
        assert m.coef == pytest.approx(one.coef, rel=1e-12)
        assert m.se == pytest.approx(one.se, rel=1e-10)
        assert m.first_stage_f == one.first_stage_f and m.n_obs == one.n_obs
        np.testing.assert_allclose(m.wild_a, one.wild_a, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(m.wild_c, one.wild_c, rtol=1e-12)
    assert many[0].coef != many[1].coef
