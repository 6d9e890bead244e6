"""EstimateParams: defaults work, bad keys and values fail with the key, value and options."""

import json

import pytest

from impact.estimate import EstimateParams


def test_defaults_just_work():
    p = EstimateParams.from_dict(estimate={}, quality={}, adoption={}, shock={}, seed=3)
    assert p.quality.instrument == "fidelity_audit"
    assert p.adoption.programme == "gewogen_maatwerk" and p.adoption.anticipation_months == 0
    assert p.shock.event_window == (-12, 24) and p.shock.effect_window == (0, 11)
    assert p.shock.anticipation_months == 2 and p.estimate.alpha == 0.05
    assert p.estimate.cluster == "municipality" and p.seed == 3
    json.dumps(p.to_dict())  # the sidecar can hold it


def test_none_sections_are_defaults():
    assert EstimateParams.from_dict(None, None, None, None) == EstimateParams()


def test_values_from_params_yaml_shapes():
    p = EstimateParams.from_dict(
        estimate={"alpha": 0.1, "cluster": "region", "controls": ["sex", "age"],
                  "lm_controls": ["unemployment_rate"]},
        quality={"instrument": "methodical_working"},
        adoption={"programme": "gilde", "anticipation_months": 3},
        shock={"type": "plant_closure", "event_window": [-6, 12], "effect_window": [0, 5],
               "anticipation_months": 1},
        seed=1)
    assert p.shock.event_window == (-6, 12) and p.estimate.controls == ("sex", "age")


@pytest.mark.parametrize("kwargs, words", [
    ({"estimate": {"alhpa": 0.05}}, ["estimate.alhpa", "alpha"]),
    ({"estimate": {"alpha": 0.7}}, ["estimate.alpha", "0.7"]),
    ({"estimate": {"cluster": "caseworker"}}, ["estimate.cluster", "caseworker", "municipality"]),
    ({"estimate": {"controls": ["sex", "shoe_size"]}}, ["shoe_size", "education_level"]),
    ({"estimate": {"controls": "sex"}}, ["estimate.controls", "list"]),
    ({"quality": {"instrumnet": "x"}}, ["quality.instrumnet", "instrument"]),
    ({"adoption": {"anticipation_months": -1}}, ["adoption.anticipation_months", "-1"]),
    ({"shock": {"event_window": [3, 24]}}, ["event_window", "[3, 24]"]),
    ({"shock": {"effect_window": [0, 30]}}, ["effect_window", "[0, 30]", "event_window"]),
    ({"shock": {"anticipation_months": 20}}, ["shock.anticipation_months", "20"]),
    ({"seed": -5}, ["seed", "-5"]),
    ({"estimate": {"n_boot": True}}, ["estimate.n_boot", "True"]),
])
def test_bad_values_name_key_value_and_allowed(kwargs, words):
    with pytest.raises(ValueError) as err:
        EstimateParams.from_dict(**kwargs)
    for w in words:
        assert w in str(err.value), (w, str(err.value))
