"""The truth is consistent with the tables and with the planted parameters.

The at-risk person-months are recounted from the tables with an obvious loop (the
contract's definition, caseworker of the month from the assignments), and must match the
truth exactly; effects have the planted signs and vanish when their parameter is zero.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from impact.simulate import REFERENCE_FILES, SimulateParams, load_reference, simulate_country

from .conftest import SEED  # noqa: F401  (the reference fixture lives there)


@pytest.fixture(scope="module")
def small(reference):
    p = SimulateParams.from_dict({"preset": "small"})
    return p, simulate_country(p, reference, seed=SEED)


def _month(s: str) -> int:
    return int(s[:4]) * 12 + int(s[5:7]) - 1


def _loop_count(tables, start: str, end: str):
    """Person-months, exits to work per municipality and person-months per team, by loop."""
    w0, w1 = _month(start), _month(end)
    asg: dict[str, list] = {}
    for r in tables["caseworker_assignments"].itertuples(index=False):
        asg.setdefault(r.spell_id, []).append((_month(r.start_date), r.team_id))
    pm, exits, team_pm = {}, {}, {}
    for r in tables["trajectories"].itertuples(index=False):
        first = _month(r.start_date)
        last = w1 if pd.isna(r.end_date) else _month(r.end_date)
        for m in range(max(first, w0), min(last, w1) + 1):
            pm[r.municipality] = pm.get(r.municipality, 0) + 1
            team = r.team_id
            for since, t in asg.get(r.spell_id, []):
                if since <= m:
                    team = t
            key = f"{r.municipality}:{team}"
            team_pm[key] = team_pm.get(key, 0) + 1
        if r.exit_reason == "work" and w0 <= last <= w1:
            exits[r.municipality] = exits.get(r.municipality, 0) + 1
    return pm, exits, team_pm


def test_person_months_recounted_by_loop_match_the_truth(small):
    p, country = small
    truth = country.truth
    pm, exits, team_pm = _loop_count(country.tables, p.start, p.end)
    assert sum(pm.values()) == truth["n_person_months"]
    assert truth["n_spells"] == len(country.tables["trajectories"])
    for code, t in truth["municipalities"].items():
        assert t["person_months"] == pm.get(code, 0), code
        assert t["exits_work"] == exits.get(code, 0), code
    assert {k: v["person_months"] for k, v in truth["teams"].items() if v["person_months"]} == team_pm
    assert 200_000 < truth["n_person_months"] < 400_000


def test_truth_is_json_and_effects_have_the_planted_sign(small):
    p, country = small
    t = json.loads(json.dumps(country.truth))
    rate = t["exit_work_rate_pct"] / 100
    assert 0.7 < 100 * rate < 1.6
    # marginal effect of one quality point ~ coef * p(1-p), in pp, with the coefficient of
    # each intake ladder step (quality_coef_ladder) and that step's realised rate
    tr = country.tables["trajectories"]
    w0, w1 = _month(p.start), _month(p.end)
    first = tr["start_date"].map(_month)
    last = tr["end_date"].map(lambda d: w1 if pd.isna(d) else _month(d))
    pm = (np.minimum(last, w1) - np.maximum(first, w0) + 1).clip(lower=0)
    work = (tr["exit_reason"] == "work") & last.between(w0, w1)
    step = tr["ladder_step"].fillna(0).astype(int)
    coef = np.array(p.quality_coef_by_step())
    assert pm.sum() == t["n_person_months"]
    approx = 0.0
    for s in range(7):
        n_s, r_s = pm[step == s].sum(), work[step == s].sum() / max(pm[step == s].sum(), 1)
        approx += 100 * coef[s] * r_s * (1 - r_s) * n_s / pm.sum()
    assert 0.6 * approx < t["quality_effect_pp"] < 1.6 * approx
    assert t["adoption_att_pp"] > 0 and t["shock_effect_pp"] > 0
    # the reliability of one score: var(true) / (var(true) + session + rater + leniency variance)
    noise = p.audit_session_sd**2 + p.audit_rater_sd**2 + p.audit_rater_bias_sd**2
    assert 0.4 < t["reliability"] < 0.8
    assert t["reliability"] == pytest.approx(1 / (1 + noise), abs=0.15)
    assert t["params"] == p.to_dict() and t["seed"] == SEED
    assert t["window"] == {"start": "2018-01", "end": "2021-12"}


def test_effects_vanish_when_not_planted(reference):
    # quality must move no exit at all: no ladder-specific coefficients, and no education
    # term (whose shift would move P(work) through the denominator)
    homogeneous = {"quality_coef_ladder": None, "education_quality_coef": 0.0}
    p = SimulateParams.from_dict({"preset": "small", "scale": 0.2, "quality_coef": 0.0,
                                  "programme_direct": 0.0, "park_lift": 0.0, **homogeneous})
    t = simulate_country(p, reference, seed=SEED).truth
    assert t["quality_effect_pp"] == 0 and t["adoption_att_pp"] == 0 and t["shock_effect_pp"] == 0
    for key in ("quality_effect_education_pp", "quality_effect_any_pp",
                "adoption_att_education_pp", "adoption_att_any_pp"):
        assert t[key] == 0, key
    p = SimulateParams.from_dict({"preset": "small", "scale": 0.2, "quality_coef": -0.2,
                                  "park_lift": -0.3, **homogeneous})
    t = simulate_country(p, reference, seed=SEED).truth
    assert t["quality_effect_pp"] < 0 and t["adoption_att_pp"] < 0 and t["shock_effect_pp"] < 0


@pytest.mark.parametrize("corr", [-0.6, 0.6])
def test_planted_quality_prosperity_correlation_is_exact(reference, corr):
    # without caseworker, team, drift and programme variation, the realised municipal mean
    # quality is the planted one, whose correlation with prosperity is exactly the parameter
    p = SimulateParams.from_dict({"preset": "small", "scale": 0.3, "quality_prosperity_corr": corr,
                                  "quality_caseworker_sd": 0.0, "quality_team_sd": 0.0,
                                  "quality_drift_sd": 0.0, "programme_quality_lift": 0.0})
    t = simulate_country(p, reference, seed=SEED).truth
    assert t["corr_quality_prosperity"] == pytest.approx(corr, abs=1e-9)
    mu = pd.DataFrame(t["municipalities"]).T
    assert np.allclose(mu["quality_mean"].astype(float), mu["quality_planted_mean"].astype(float))
    realised = np.corrcoef(mu["quality_mean"].astype(float), mu["prosperity"].astype(float))[0, 1]
    assert realised == pytest.approx(corr, abs=1e-9)
