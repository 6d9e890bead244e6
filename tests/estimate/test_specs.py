"""Named specifications: validation, overrides, the headline choice, and one run per
estimator on the lean simulator with the headline block's contract keys."""

from __future__ import annotations

import pytest

from impact.config import ConfigError, load_params
from impact.estimate import EstimateParams, run_specification
from impact.estimate.specs import ESTIMATORS, parse_headline, parse_specifications
from impact.report.metrics import CONTRACT_KEYS


def test_project_params_parse_and_headline_names_exist():
    params = load_params("params.yaml")
    specs, head = params.specifications, params.headline
    assert set(head) == {"quality", "adoption", "shock"}
    for block, name in head.items():
        assert specs[name].block == block
    # the staggered-adoption estimators of the issue all have a specification
    assert {s.estimator for s in specs.values() if s.block == "adoption"} >= {
        "imputation", "twfe", "cs_never", "cs_notyet", "sunab"}


@pytest.mark.parametrize("spec, msg", [
    ({"block": "quality"}, "lacks 'estimator'"),
    ({"block": "labour", "estimator": "iv"}, "block='labour' is not allowed"),
    ({"block": "quality", "estimator": "cs_never"}, "estimator='cs_never' is not allowed"),
    ({"block": "quality", "estimator": "iv", "fixed_effects": "county"}, "fixed_effects"),
    ({"block": "adoption", "estimator": "twfe", "controls": ["sex"]}, "quality models only"),
    ({"block": "shock", "estimator": "imputation", "sample": "inflow"}, "only 'all'"),
    ({"block": "quality", "estimator": "iv", "inference": "jackknife"}, "inference"),
    ({"block": "quality", "estimator": "iv", "clusters": "region"}, "unknown key"),
    ({"block": "quality", "estimator": "iv", "controls": ["shoe_size"]}, "shoe_size"),
    ({"block": "adoption", "estimator": "sunab", "cluster": "region"}, "own inference"),
    ({"block": "adoption", "estimator": "twfe", "inference": "wild"}, "no wild"),
])
def test_bad_specification_names_key_and_allowed_values(spec, msg):
    with pytest.raises(ValueError, match=msg) as err:
        parse_specifications({"m1": spec})
    assert "specifications.m1" in str(err.value)


def test_bad_names_and_headline():
    with pytest.raises(ValueError, match="letters, digits"):
        parse_specifications({"a b": {"block": "quality", "estimator": "iv"}})
    specs = parse_specifications({"q": {"block": "quality", "estimator": "iv"},
                                  "a": {"block": "adoption", "estimator": "imputation"},
                                  "t": {"block": "adoption", "estimator": "twfe"},
                                  "o": {"block": "quality", "estimator": "ols"}})
    with pytest.raises(ValueError, match="not a specification"):
        parse_headline({"quality": "nope", "adoption": "a"}, specs)
    with pytest.raises(ValueError, match="is a adoption model"):
        parse_headline({"quality": "a", "adoption": "a"}, specs)
    with pytest.raises(ValueError, match="headline.quality is not set"):
        parse_headline({"adoption": "a"}, specs)
    assert parse_headline({"quality": "q", "adoption": "a"}, specs) == {
        "quality": "q", "adoption": "a", "shock": None}
    # only estimators of the contract's estimands may feed metrics.json
    with pytest.raises(ValueError, match="does not estimate the data contract"):
        parse_headline({"quality": "q", "adoption": "t"}, specs)
    with pytest.raises(ValueError, match="does not estimate the data contract"):
        parse_headline({"quality": "o", "adoption": "a"}, specs)


def test_config_error_names_the_section(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("specifications:\n  q: {block: quality, estimator: probit}\n"
                 "headline: {quality: q}\n")
    with pytest.raises(ConfigError, match=r"\[specifications\].*probit"):
        load_params(p).validate_all()


def test_overrides_apply_only_what_is_set():
    base = EstimateParams.from_dict(estimate={"cluster": "municipality"})
    spec = parse_specifications({"q": {"block": "quality", "estimator": "iv",
                                       "fixed_effects": "municipality_month",
                                       "inference": "wild"}})["q"]
    p = spec.apply(base)
    assert p.estimate.quality_fe == "municipality_month"
    assert p.estimate.inference == "wild"
    assert p.estimate.cluster == "municipality" and p.estimate.controls == base.estimate.controls


@pytest.mark.slow
@pytest.mark.parametrize("block, estimator", [
    (b, e) for b, es in ESTIMATORS.items() for e in es])
def test_every_estimator_fills_its_headline_block(sim, block, estimator):
    spec = parse_specifications({"s": {"block": block, "estimator": estimator}})["s"]
    res = run_specification(spec, sim.person_months, sim.cells, sim.quality, sim.adoption,
                            sim.shocks, EstimateParams.from_dict(seed=1))
    head = res.headline[block]
    assert head is not None, res.meta["warnings"]
    assert head["specification"] == "s"
    for key in CONTRACT_KEYS[block]:
        assert isinstance(head[key], float), (key, head[key])
    assert head["ci_low"] < head[CONTRACT_KEYS[block][0]] < head["ci_high"]
    assert not res.tidy.empty and {b for b in ESTIMATORS if b != block}.isdisjoint(
        {m.split("_")[0] for m in res.tidy["model"]})


@pytest.mark.slow
@pytest.mark.parametrize("block, estimator", [("quality", "iv"), ("adoption", "imputation"),
                                              ("shock", "imputation")])
def test_wild_bootstrap_switches_on_below_the_cluster_threshold(sim, block, estimator):
    """The lean data have 20 municipalities: analytic at wild_below 12, wild at 50."""
    spec = parse_specifications({"s": {"block": block, "estimator": estimator}})["s"]
    heads = {}
    for below in (12, 50):
        p = EstimateParams.from_dict(estimate={"wild_below": below, "wild_draws": 999}, seed=1)
        res = run_specification(spec, sim.person_months, sim.cells, sim.quality,
                                sim.adoption, sim.shocks, p)
        heads[below] = res.headline[block]
    analytic, wild = heads[12], heads[50]
    assert analytic["n_clusters"] == wild["n_clusters"] == 20
    assert "wild" not in analytic["ci_method"] and "ci_low_analytic" not in analytic
    assert wild["ci_method"].startswith("wild score bootstrap")
    key = CONTRACT_KEYS[block][0]
    assert wild[key] == analytic[key] and wild["std_error_analytic"] == analytic["std_error"]
    assert wild["ci_low_analytic"] == analytic["ci_low"]
    # the block carries the bootstrap SE with the bootstrap interval (data contract)
    assert 0.3 < wild["std_error"] / analytic["std_error"] < 3
    assert wild["ci_low"] < wild[key] < wild["ci_high"]
    assert (wild["ci_low"], wild["ci_high"]) != (analytic["ci_low"], analytic["ci_high"])
    ratio = (wild["ci_high"] - wild["ci_low"]) / (analytic["ci_high"] - analytic["ci_low"])
    assert ratio > 0.5
    if block != "shock":  # many treated clusters: the same order of magnitude
        assert ratio < 2.5
    else:  # 4 shocked municipalities: few treated clusters make the score test weak
        assert wild["n_events"] == 4 and ratio > 1


def test_sensitivity_only_for_sunab():
    with pytest.raises(ValueError, match="sensitivity needs"):
        parse_specifications({"a": {"block": "adoption", "estimator": "cs_never",
                                    "sensitivity": True}})
    with pytest.raises(ValueError, match="value_added applies to quality"):
        parse_specifications({"a": {"block": "adoption", "estimator": "twfe",
                                    "value_added": True}})


@pytest.mark.slow
def test_sunab_specification_with_rambachan_roth_rows(sim):
    spec = parse_specifications({"s": {"block": "adoption", "estimator": "sunab",
                                       "sensitivity": True}})["s"]
    p = EstimateParams.from_dict(adoption={"pretrend_months": 6,
                                           "sensitivity_mbar": [0.5, 1, 2]}, seed=1)
    res = run_specification(spec, sim.person_months, sim.cells, sim.quality, sim.adoption,
                            sim.shocks, p)
    rr = res.model("adoption_sunab_honest").set_index("term")
    orig = rr.loc["rr_original_ci"]
    rm = rr.loc["rr_rm_ci"].sort_values("statistic")
    assert rm["statistic"].tolist() == [0.5, 1.0, 2.0]
    # the target is the event-month-0 effect of the same event study
    att0 = res.tidy[(res.tidy["model"] == "adoption_sunab") & (res.tidy["term"] == "att_e")
                    & (res.tidy["rel_time"] == 0)]["estimate"].iloc[0]
    assert orig["estimate"] == pytest.approx(att0, rel=1e-8)
    # robust intervals widen with Mbar and contain the estimate
    assert (rm["ci_low"].diff().dropna() <= 1e-12).all()
    assert (rm["ci_high"].diff().dropna() >= -1e-12).all()
    assert ((rm["ci_low"] <= att0) & (att0 <= rm["ci_high"])).all()
    assert "rr_breakdown_mbar" in res.headline["adoption"]


@pytest.mark.slow
def test_alternatives_run_on_shock_adjusted_rates(sim):
    """CS / Sun-Abraham / Bacon cells are net of the estimated shock path from the
    anticipation month on, in the shocked municipalities' windows only."""
    import numpy as np

    from impact.estimate.adoption import adoption_cells
    from impact.estimate.alternatives import alternatives_panel
    from impact.estimate.frames import shock_events
    from impact.estimate.run import shock_adjusted
    from impact.estimate.shock import estimate_shock

    p = EstimateParams.from_dict(seed=1)
    frame = adoption_cells(sim.cells, sim.person_months, sim.adoption, p.adoption.programme)
    events = shock_events(sim.shocks, p.shock.type)
    adj = shock_adjusted(frame, sim.cells, sim.person_months, events, p)
    rows, _ = estimate_shock(sim.cells, sim.person_months, events, p)
    path = {r["rel_time"]: r["estimate"] for r in rows if r["term"] == "event_time"
            and r["cohort"] is None and r["rel_time"] >= -p.shock.anticipation_months}
    ev = events.set_index("municipality")["t_event"]
    e = adj["t"] - adj["municipality"].map(ev)
    expect = np.array([path.get(int(x), 0.0) if np.isfinite(x) else 0.0 for x in e])
    np.testing.assert_allclose(adj["y_adjust"].to_numpy(), expect, atol=1e-12)
    assert (adj["y_adjust"] != 0).sum() > 0 and (adj.loc[e.isna(), "y_adjust"] == 0).all()
    raw, _ = alternatives_panel(frame)
    net, _ = alternatives_panel(adj)
    np.testing.assert_allclose(raw["y"] - net["y"],
                               adj.sort_values(["unit", "t"])["y_adjust"].to_numpy(), atol=1e-12)


@pytest.mark.slow
def test_randomization_inference_in_the_imputation_specification(sim):
    spec = parse_specifications({"s": {"block": "adoption", "estimator": "imputation"}})["s"]
    p = EstimateParams.from_dict(adoption={"ri_permutations": 19}, seed=1)
    res = run_specification(spec, sim.person_months, sim.cells, sim.quality, sim.adoption,
                            sim.shocks, p)
    head = res.headline["adoption"]
    assert head["ri_permutations"] == 19
    # the p-value's grid is 1/20 .. 1; a planted effect of ~1.8 pp ranks the data first
    assert head["ri_p_value"] == pytest.approx(1 / 20)
    ri = res.model("adoption_imputation").set_index("term").loc["ri_p_value"]
    assert ri["p_value"] == head["ri_p_value"] and ri["estimate"] == pytest.approx(head["att_pp"])
    off = run_specification(spec, sim.person_months, sim.cells, sim.quality, sim.adoption,
                            sim.shocks, EstimateParams.from_dict(seed=1))
    assert "ri_p_value" not in off.headline["adoption"]
