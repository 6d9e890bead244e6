"""Value-added (impact.estimate.value_added): known truth, MixedLM reference, edge cases.

The DGP below (``panel``) plants a caseworker effect theta_c (pp) on a monthly exit-to-work
probability, p = 12 + g_rt + client effects + duration dependence + theta_c, with binary
exits that end the spell; each exit is replaced by a new client of the same caseworker, so
caseloads are constant. Value-added is relative to the region-month, so the truth of unit
c is the mean over its person-months of theta_c minus the person-month mean of theta in
that region-month.

Tolerances (seeds fixed once, before results were seen, never tuned). A Monte Carlo of
the recovery DGP (``panel(seed)`` for seeds 1000-1059, default options; 60 draws) gave:
slope of truth on eb_va mean 0.996 (sd 0.060), signal-sd error mean 0.016 (sd 0.090;
the Fisher SE below averaged 0.108), split-sample sd sd 0.126, coverage mean 0.953
(sd 0.012, min 0.928), MSE(eb)/MSE(raw) mean 0.51 (max 0.64), corr(eb) - corr(raw) mean
0.032 (sd 0.014, min 0.004), slope on raw_va mean 0.59 (sd 0.03). Hence:
- slope 1 within 3 Monte Carlo sd (0.18): the slope's own OLS SE (about 0.037) ignores
  the estimation error of the signal variance and is too small;
- signal sd within 3 SE from the Fisher information of the normal-normal likelihood,
  se(s2) = sqrt(2 / sum_j (s2 + V_j)^-2), se(sd) = se(s2) / (2 sd) (design.md: a single
  draw within 3 SE of the truth); split-sample sd within 3 Monte Carlo sd (0.38);
- coverage over the 400 units in [0.90, 0.99] (about 4 sd either side);
- MSE ratio < 0.8 and slope on raw_va < 0.8 (both > 5 sd from the mean);
- EB = MixedLM BLUP with the same variance components: both are lambda_j raw_j, so only
  rounding differs (rtol 1e-7); with each method's own components, correlation > 0.99.
(With ``noise="unit"`` the same Monte Carlo gave slope mean 0.937 and signal sd +0.10:
each unit's own clustered variance moves with its exits, which is why it is not the
default.)
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from impact.estimate.frames import EstimationWarning
from impact.estimate.results import TIDY_COLUMNS, tidy_frame
from impact.estimate.value_added import (
    _SUMMARY_TERMS, mixedlm_blups, publishable_teams, signal_variance, value_added,
    value_added_rows,
)

SEED = 20261124
DUR_EFF = np.array([0.0, -0.8, -1.6, -2.2])


def panel(seed: int, n_cw: int = 400, months: int = 24, caseload=(3, 40), sd: float = 2.0,
          sorting: float = 0.0) -> tuple[pd.DataFrame, pd.Series]:
    """Person-months and the true value-added per caseworker key (see module docstring).

    ``sorting`` > 0 sends low-educated clients (1.5 pp less likely to exit) to good
    caseworkers, so a covariate coefficient without caseworker effects is biased.
    """
    rng = np.random.default_rng(seed)
    n_muni, n_reg = 20, 4
    cw_muni = np.arange(n_cw) % n_muni
    theta = rng.normal(0, sd, n_cw)
    load = np.full(n_cw, caseload) if np.isscalar(caseload) else rng.integers(
        caseload[0], caseload[1] + 1, n_cw)
    g = rng.normal(0, 0.5, (n_reg, months))
    cw = np.repeat(np.arange(n_cw), load)

    def clients(cws: np.ndarray, start: np.ndarray) -> dict[str, np.ndarray]:
        p_low = np.clip(0.3 + sorting * theta[cws] / sd, 0.02, 0.98)
        return {"cw": cws, "start": start, "female": rng.random(len(cws)) < 0.5,
                "low": rng.random(len(cws)) < p_low, "age": rng.integers(18, 64, len(cws)),
                "prior": rng.integers(0, 60, len(cws))}

    act = clients(cw, -rng.integers(0, 30, len(cw)))
    act["sid"] = np.arange(len(cw))
    next_id, rows = len(cw), []
    for m in range(months):
        dur = m - act["start"]
        band = np.searchsorted([0, 6, 12, 24], dur, side="right") - 1
        c = act["cw"]
        p = (12 + g[cw_muni[c] % n_reg, m] - 1.0 * act["female"] - 1.5 * act["low"]
             + DUR_EFF[band] + theta[c])
        exit_ = rng.random(len(c)) < np.clip(p, 0.5, 60) / 100
        rows.append(pd.DataFrame({"sid": act["sid"], "cw": c, "t": 24_000 + m, "dur": dur,
                                  "female": act["female"], "low": act["low"],
                                  "age": act["age"], "prior": act["prior"],
                                  "lt": act["start"] < 0, "exit": exit_}))
        new = clients(c[exit_], np.full(exit_.sum(), m + 1))
        new["sid"] = next_id + np.arange(exit_.sum())
        next_id += exit_.sum()
        act = {k: np.concatenate([v[~exit_], new[k]]) for k, v in act.items()}
    d = pd.concat(rows, ignore_index=True)
    c = d["cw"].to_numpy()
    key = np.array([f"GM{m:04d}:cw{i:03d}" for i, m in enumerate(cw_muni)])
    pm = pd.DataFrame({
        "spell_id": "S" + d["sid"].astype(str), "client_id": "C" + d["sid"].astype(str),
        "municipality": [f"GM{m:04d}" for m in cw_muni[c]],
        "region": [f"AM{m % n_reg:02d}" for m in cw_muni[c]], "t": d["t"],
        "duration": d["dur"], "age": d["age"], "sex": np.where(d["female"], "F", "M"),
        "education_level": np.where(d["low"], "low", "medium"),
        "household": np.where(d["sid"] % 3 == 0, "single", "couple"),
        "prior_benefit_months": d["prior"], "left_truncated": d["lt"].astype("int8"),
        "caseworker_key": key[c], "team_key": [f"GM{m:04d}:T{i // n_muni % 2}" for i, m in
                                               zip(c, cw_muni[c])],
        "exit_work": d["exit"].astype("int8")})
    th = pd.Series(theta[c])
    rel = th - th.groupby([pm["region"], pm["t"]]).transform("mean")
    return pm, rel.groupby(pm["caseworker_key"]).mean()


def _va(pm: pd.DataFrame, level: str = "caseworker", **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EstimationWarning)
        return value_added(pm, level, **kw)


@pytest.fixture(scope="module")
def sim():
    pm, truth = panel(SEED)
    return pm, truth, _va(pm)


def test_recovery_of_planted_caseworker_effects(sim):
    pm, truth, res = sim
    u = res.units.set_index("unit")
    tr = truth.reindex(u.index).to_numpy()
    eb, raw = u["eb_va"].to_numpy(), u["raw_va"].to_numpy()
    # shrinkage helps: closer to the truth and better ranked than the raw means
    assert np.mean((eb - tr) ** 2) < 0.8 * np.mean((raw - tr) ** 2)
    assert np.corrcoef(eb, tr)[0, 1] > np.corrcoef(raw, tr)[0, 1]
    # unbiased prediction: E[truth | eb] = eb (slope 1); raw means are over-dispersed
    slope = np.polyfit(eb, tr, 1)[0]
    assert abs(slope - 1) < 3 * 0.060, slope
    assert np.polyfit(raw, tr, 1)[0] < 0.8
    # signal sd against the planted one, within 3 Fisher SE
    s2, V = res.summary["signal_sd"] ** 2, u["noise_var"].to_numpy()
    se_sd = np.sqrt(2 / np.sum((s2 + V) ** -2)) / (2 * np.sqrt(s2))
    planted = np.sqrt(np.mean(tr ** 2))
    assert abs(res.summary["signal_sd"] - planted) < 3 * se_sd, (res.summary, planted, se_sd)
    assert abs(res.summary["signal_sd_split"] - planted) < 3 * 0.126
    cover = np.mean((u["ci_low"].to_numpy() <= tr) & (tr <= u["ci_high"].to_numpy()))
    assert 0.90 <= cover <= 0.99, cover
    assert res.summary["n_units"] == 400 and res.summary["n_person_months"] == len(pm)


def test_within_unit_covariates_undo_sorting():
    """Good caseworkers get the clients with worse prospects: a pooled covariate
    coefficient absorbs part of their effect; the within-unit one (CFR 2014) does not."""
    pm, truth = panel(SEED + 1, n_cw=200, caseload=30, sorting=0.25)
    within, pooled = _va(pm, mixedlm=False), _va(pm, covariates="pooled", mixedlm=False)
    planted = np.sqrt(np.mean(truth.to_numpy() ** 2))
    u = within.units
    s2 = within.summary["signal_sd"] ** 2
    se_sd = np.sqrt(2 / np.sum((s2 + u["noise_var"]) ** -2)) / (2 * np.sqrt(s2))
    assert abs(within.summary["signal_sd"] - planted) < 3 * se_sd
    assert pooled.summary["signal_sd"] < planted - 3 * se_sd


def test_eb_equals_mixedlm_blup_with_same_components():
    pm, _ = panel(SEED + 2, n_cw=120, caseload=15)  # equal precision: n_j all equal
    res = _va(pm)
    u = res.units
    assert u["n_person_months"].nunique() == 1
    ratio = res.summary["signal_sd"] ** 2 / res.summary["noise_var_pm"]
    n = u["n_person_months"].to_numpy(dtype=float)
    for split in (1, 3):  # one row per unit, or each unit's sums cut into 3 rows
        S = np.repeat(u["raw_va"].to_numpy() * n / split, split)
        group = np.repeat(np.arange(len(u)), split)
        blup, _, _ = mixedlm_blups(S, np.repeat(n / split, split), group, len(u), ratio,
                                   fixed=True)
        np.testing.assert_allclose(blup, u["eb_va"], rtol=1e-7, atol=1e-9)
    # equal precision: the ML signal variance has the closed form mean(raw^2) - V
    V = u["noise_var"].iloc[0]
    assert signal_variance(u["raw_va"].to_numpy(), u["noise_var"].to_numpy()) == pytest.approx(
        max(np.mean(u["raw_va"] ** 2) - V, 0), rel=1e-6)
    # each with its own variance components
    assert res.summary["corr_eb_mixedlm"] > 0.99
    assert np.corrcoef(u["eb_va"], u["mixedlm_va"])[0, 1] > 0.99


def test_mixedlm_beside_eb_on_unequal_units(sim):
    res = sim[2]
    assert res.summary["corr_eb_mixedlm"] > 0.99
    assert res.summary["mixedlm_signal_sd"] == pytest.approx(res.summary["signal_sd"], rel=0.1)


def test_edge_cases_and_input_untouched():
    pm, _ = panel(SEED + 3, n_cw=60, months=6, caseload=(5, 10))
    one = pm.iloc[[0]].assign(caseworker_key="GM0000:lonely", spell_id="Sx", client_id="Cx")
    frame = pd.concat([pm, one], ignore_index=True)
    frame.loc[frame.index[:7], "caseworker_key"] = None
    before = frame.copy()
    with pytest.warns(EstimationWarning, match="7 person-months without caseworker_key"):
        res = value_added(frame, "caseworker", mixedlm=False)
    pd.testing.assert_frame_equal(frame, before)
    assert res.summary["n_dropped_no_unit"] == 7
    assert res.summary["n_person_months"] == len(frame) - 7
    lonely = res.units.set_index("unit").loc["GM0000:lonely"]
    assert lonely["n_person_months"] == 1 and lonely["n_spells"] == 1
    assert lonely["shrinkage"] < 0.05 and np.isfinite(lonely["eb_va"])
    # almost all prior: posterior sd close to the signal sd
    assert lonely["eb_sd"] == pytest.approx(res.summary["signal_sd"], rel=0.05)
    with pytest.raises(ValueError, match="spell_id"):
        value_added(pm.drop(columns="spell_id"))
    with pytest.raises(ValueError, match="'age'"):
        value_added(pm.drop(columns="age"))
    with pytest.raises(ValueError, match="level='school'.*caseworker, team"):
        value_added(pm, "school")


def test_tidy_rows_and_publishable_teams():
    pm, _ = panel(SEED + 4, n_cw=80, months=12, caseload=(3, 12))  # 2 caseworkers a team
    small = pm[pm["team_key"] == "GM0000:T0"].iloc[:3].assign(team_key="GM0000:T9")
    team = _va(pd.concat([pm, small], ignore_index=True), "team")
    rows = tidy_frame(value_added_rows(team))
    assert list(rows.columns) == list(TIDY_COLUMNS)
    assert set(rows["model"]) == {"quality_value_added_team"}
    done = {k for k, v in team.summary.items() if k in _SUMMARY_TERMS and np.isfinite(v)}
    assert {"signal_sd", "mean_shrinkage"} <= done and set(rows["term"]) == done
    pub = publishable_teams(team, min_clients=10)
    assert "GM0000:T9" not in set(pub["team_key"])  # 3 clients
    assert len(pub) == len(team.units) - 1 and (pub["n_clients"] >= 10).all()
    assert "caseworker_key" not in pub and "unit" not in pub
    assert len(publishable_teams(team, min_clients=10, min_caseworkers=3)) == 0  # 2 per team
    with pytest.raises(ValueError, match="personnel assessment"):
        publishable_teams(_va(pm, mixedlm=False))
    with pytest.raises(ValueError, match="min_clients=0"):
        publishable_teams(team, min_clients=0)


def _statsmodels_ri(S, n, group, ratio, fixed=False):
    """statsmodels' REML fit of the model ``mixedlm_blups`` solves in closed form (the
    reference implementation): its model (to evaluate the likelihood at any gamma), BLUPs,
    s2 and phi."""
    from statsmodels.regression.mixed_linear_model import MixedLM, MixedLMParams

    z = np.sqrt(n)[:, None]
    model = MixedLM(S / z[:, 0], np.zeros((len(S), 0)), groups=group, exog_re=z)
    start = MixedLMParams.from_components(np.zeros(0), cov_re=np.array([[ratio]]))
    free = MixedLMParams.from_components(np.zeros(0), cov_re=np.zeros((1, 1))) if fixed else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(reml=True, start_params=start, free=free, method=["lbfgs"])
    s2 = float(np.asarray(fit.cov_re)[0, 0])
    blup = np.zeros(group.max() + 1)
    if s2 > 0:
        blup[list(fit.random_effects)] = [v.iloc[0] for v in fit.random_effects.values()]
    return model, blup, s2, float(fit.scale)


def _profile_ll(model, s2, phi):
    """statsmodels' REML log-likelihood at gamma = s2 / phi, phi profiled out."""
    from statsmodels.regression.mixed_linear_model import MixedLMParams

    gam = max(s2 / phi, 1e-12)   # statsmodels inverts the covariance: not exactly 0
    return model.loglike(MixedLMParams.from_components(np.zeros(0), cov_re=np.array([[gam]])),
                         profile_fe=False)


@pytest.mark.parametrize("seed,units,s2", [(0, 300, 0.5), (1, 300, 0.0), (2, 1500, 2.0)])
def test_mixedlm_closed_form_matches_statsmodels(seed, units, s2):
    """``mixedlm_blups`` against statsmodels MixedLM on rows of unequal weight, 1-10 a unit:
    the likelihood at its optimum is at least statsmodels' (whose L-BFGS stops near it), the
    estimates and BLUPs agree to statsmodels' convergence (about 1e-5 relative measured;
    1e-3 asserted), and with gamma fixed (both closed form then) to 1e-8. Without signal
    (s2 = 0) the optimum is on the boundary: s2 exactly 0, BLUPs 0."""
    rng = np.random.default_rng(seed)
    m = rng.integers(1, 11, units)
    g = np.repeat(np.arange(units), m)
    n = rng.integers(1, 60, len(g)).astype(float)
    theta = rng.normal(0, np.sqrt(s2), units)
    S = n * theta[g] + rng.normal(0, 1, len(g)) * np.sqrt(3.0 * n)
    blup, s2_c, phi_c = mixedlm_blups(S, n, g, units + 2, 0.1)   # two units without rows
    assert len(blup) == units + 2 and (blup[-2:] == 0).all()
    model, blup_s, s2_s, phi_s = _statsmodels_ri(S, n, g, 0.1)
    assert _profile_ll(model, s2_c, phi_c) >= _profile_ll(model, s2_s, phi_s) - 1e-9
    assert phi_c == pytest.approx(phi_s, rel=1e-3)
    if s2 == 0:
        assert s2_c == 0 and (blup == 0).all() and s2_s < 1e-3 * phi_s
    else:
        assert s2_c == pytest.approx(s2_s, rel=1e-3)
        np.testing.assert_allclose(blup[:units], blup_s, atol=1e-3 * np.abs(blup_s).max())
    for ratio in (0.05, 0.7):   # gamma plugged in: phi alone is fitted
        blup, s2_c, phi_c = mixedlm_blups(S, n, g, units, ratio, fixed=True)
        _, blup_s, s2_s, phi_s = _statsmodels_ri(S, n, g, ratio, fixed=True)
        assert (phi_c, s2_c) == pytest.approx((phi_s, s2_s), rel=1e-8)
        np.testing.assert_allclose(blup, blup_s, rtol=1e-8, atol=1e-12)
