"""Planted truths of the heterogeneity analysis (issue 9): quality effects by client group,
the education channel and the optional ``progress`` table.

Group person-months and progress reviews are recounted from the written tables and must
match the truth exactly; effects are compared with what the model implies given the
realised rates, with margins of four binomial (Poisson) standard errors.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from impact.simulate import SimulateParams, simulate_country
from impact.simulate.lean import simulate as lean_simulate
from impact.simulate.params import DEFAULT_QUALITY_COEF_LADDER
from impact.simulate.truth import group_effect

from .conftest import SEED  # noqa: F401  (the reference fixture lives there)

HOMOGENEOUS = {"quality_coef_ladder": None, "education_quality_coef": 0.0}
DIMS = ("ladder_step", "age", "sex", "education_level", "household", "duration",
        "prior_benefit_months")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def planted(reference):
    """The small preset with the default (planted) heterogeneity and progress."""
    p = SimulateParams.from_dict({"preset": "small"})
    return p, simulate_country(p, reference, seed=SEED)


@pytest.fixture(scope="module")
def homogeneous(reference):
    p = SimulateParams.from_dict({"preset": "small", **HOMOGENEOUS})
    return p, simulate_country(p, reference, seed=SEED)


def _m(s: pd.Series) -> np.ndarray:
    """'YYYY-MM[-DD]' -> year*12 + month-1."""
    s = pd.Series(s).astype(str)
    return (s.str[:4].astype(int) * 12 + s.str[5:7].astype(int) - 1).to_numpy()


def _person_months(tables, p) -> pd.DataFrame:
    """The contract's at-risk person-months, expanded from ``trajectories`` (with the
    panel's duration and age) and the caseworker of each month from the assignments."""
    tr = tables["trajectories"]
    w0, w1 = p.start_month, p.end_month
    first = _m(tr["start_date"])
    last = np.where(tr["end_date"].isna(), w1, _m(tr["end_date"].fillna("2000-01-01")))
    lo, hi = np.maximum(first, w0), np.minimum(last, w1)
    n = np.clip(hi - lo + 1, 0, None)
    row = np.repeat(np.arange(len(tr)), n)
    month = lo[row] + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    col = lambda c: tr[c].to_numpy()[row]  # noqa: E731
    pm = pd.DataFrame({
        "spell_id": col("spell_id"), "municipality": col("municipality"), "month": month,
        "caseworker_id": col("caseworker_id"),
        "ladder_step": tr["ladder_step"].fillna(0).astype(int).to_numpy()[row],
        "age": month // 12 - col("birth_year"), "sex": col("sex"),
        "education_level": col("education_level"), "household": col("household"),
        "duration": month - first[row], "prior_benefit_months": col("prior_benefit_months"),
        "exit_work": (month == last[row]) & (col("exit_reason") == "work"),
        "exit_education": (month == last[row]) & (col("exit_reason") == "education"),
    })
    a = tables["caseworker_assignments"]
    a = pd.DataFrame({"spell_id": a["spell_id"], "month": _m(a["start_date"]),
                      "cw": a["caseworker_id"]}).sort_values("month")
    pm = pd.merge_asof(pm.sort_values("month"), a, on="month", by="spell_id")
    pm["caseworker_id"] = pm["cw"].fillna(pm["caseworker_id"])
    return pm.drop(columns="cw").reset_index(drop=True)


def _adoption_month(tables, pm: pd.DataFrame) -> np.ndarray:
    ad = tables["adoption"]
    ad = ad[ad["programme"] == "gewogen_maatwerk"]
    k = pd.Series(_m(ad["adoption_date"]), index=ad["municipality"].to_numpy())
    return pm["municipality"].map(k).to_numpy(dtype=float)  # NaN: never adopts


# --- group sums --------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["homogeneous", "planted"])
def test_group_sums_add_up_to_the_totals_for_every_dimension(which, request):
    p, country = request.getfixturevalue(which)
    t = json.loads(json.dumps(country.truth))
    het = t["heterogeneity"]
    totals = {"quality": (t["n_person_months"], {"work": t["quality_effect_pp"],
                                                 "education": t["quality_effect_education_pp"],
                                                 "any": t["quality_effect_any_pp"]}),
              "adoption": (t["adoption_person_months"], {"work": t["adoption_att_pp"],
                                                         "education": t["adoption_att_education_pp"],
                                                         "any": t["adoption_att_any_pp"]})}
    for block, (n, effects) in totals.items():
        assert n > 10_000 and set(het[block]) == set(DIMS)
        for dim, cells in het[block].items():
            assert sum(c["person_months"] for c in cells.values()) == n, (block, dim)
            for outcome, effect in effects.items():
                total = sum(c[f"{outcome}_pp_sum"] for c in cells.values())
                assert abs(total / n - effect) < 1e-9, (block, dim, outcome)
                assert group_effect(t, block, dim, cells, outcome) == pytest.approx(effect, abs=1e-9)
    # without ladder coefficients and education term the old truths hold: only exit to
    # work moves with quality, so P(education) falls a little (denominator) and P(any)
    # rises by less than P(work)
    if which == "homogeneous":
        for key in ("quality_effect", "adoption_att"):
            work, edu, any_ = (t[f"{key}{s}_pp"] for s in ("", "_education", "_any"))
            assert work > 0 and edu < 0 and 0 < any_ < work
            assert abs(edu) < 0.01 * work
        # and the education exit rate barely moves: 100 dP_e ~ -P_e P_w (e^c - 1) per month
        steps = het["quality"]["ladder_step"]
        for level, c in steps.items():
            assert c["work_pp_sum"] > 0 and c["education_pp_sum"] <= 0, level


def test_group_person_months_recounted_from_the_tables(planted):
    p, country = planted
    het = country.truth["heterogeneity"]
    pm = _person_months(country.tables, p)
    adopt = _adoption_month(country.tables, pm)
    adopted = np.isfinite(adopt) & (pm["month"].to_numpy() >= np.nan_to_num(adopt, nan=1e9))
    assert adopted.sum() == country.truth["adoption_person_months"]
    # the panel's duration counts from the true start, also for left-truncated spells
    assert pm["duration"].max() > p.end_month - p.start_month
    for block, rows in (("quality", pm), ("adoption", pm[adopted])):
        for dim in DIMS:
            counts = rows[dim].astype(str).value_counts().to_dict()
            got = {lv: c["person_months"] for lv, c in het[block][dim].items()}
            assert got == counts, (block, dim)
    assert set(het["quality"]["sex"]) <= {"F", "M", "X", "unknown"}
    assert set(het["quality"]["ladder_step"]) == {str(s) for s in range(7)}


def test_planted_ladder_effects_match_the_model(planted, homogeneous):
    """At a monthly rate ``r`` one quality point adds ``(e^c - 1) r`` to P(work) (up to a
    factor ``1 - O(r)``), so the truth of a ladder group is ``100 (e^c_s - 1) r_s`` with
    ``r_s`` the group's realised rate, within 4 Poisson SE of its exits (+5% for the
    approximation); steps 3-4 (c = 0.25) beat step 1 (c = 0.05) by that ratio."""
    p, country = planted
    t = country.truth
    coef = dict(DEFAULT_QUALITY_COEF_LADDER)
    assert p.quality_coef_by_step() == [p.quality_coef] + [coef[s] for s in range(1, 7)]
    pm = _person_months(country.tables, p)
    got, want, exits = {}, {}, {}
    for name, levels in (("1", [1]), ("3-4", [3, 4])):
        sel = pm["ladder_step"].isin(levels)
        exits[name] = pm.loc[sel, "exit_work"].sum()
        rate = exits[name] / sel.sum()
        want[name] = 100 * (np.exp(coef[levels[0]]) - 1) * rate
        got[name] = group_effect(t, "quality", "ladder_step", [str(s) for s in levels])
        assert abs(got[name] / want[name] - 1) < 4 / np.sqrt(exits[name]) + 0.05, name
    ratio, ratio_want = got["3-4"] / got["1"], want["3-4"] / want["1"]
    assert ratio > coef[3] / coef[1]  # the planted slope ratio, and a higher base rate too
    margin = 4 * np.sqrt(1 / exits["1"] + 1 / exits["3-4"]) + 0.1
    assert abs(np.log(ratio / ratio_want)) < margin
    # homogeneous: every step has the same slope, so the groups differ only by their rates
    ph, ch = homogeneous
    pmh = _person_months(ch.tables, ph)
    for s in ("1", "3", "4"):
        sel = pmh["ladder_step"] == int(s)
        e = pmh.loc[sel, "exit_work"].sum()
        w = 100 * (np.exp(ph.quality_coef) - 1) * e / sel.sum()
        assert abs(group_effect(ch.truth, "quality", "ladder_step", [s]) / w - 1) < 4 / np.sqrt(e) + 0.05


def test_adoption_group_effects_use_the_spells_own_slope(planted):
    """The programme adds ``x = (c_s * programme_quality_lift + programme_direct) * ramp``
    to eta_work, so P(work) - P(work | no programme) ~ P(work) (1 - e^-x): estimated by the
    realised exits weighted with ``1 - e^-x``, within 4 Poisson SE (+5%)."""
    p, country = planted
    pm = _person_months(country.tables, p)
    ka = _adoption_month(country.tables, pm)
    month = pm["month"].to_numpy()
    on = np.isfinite(ka) & (month >= np.nan_to_num(ka, nan=1e9))
    ramp = np.clip((month - np.nan_to_num(ka) + 1) / p.programme_ramp_months, 0, 1)
    c = np.array(p.quality_coef_by_step())[pm["ladder_step"].to_numpy()]
    x = (c * p.programme_quality_lift + p.programme_direct) * ramp
    y = pm["exit_work"].to_numpy()
    for levels in ([1], [2], [3, 4], [5, 6]):
        sel = on & pm["ladder_step"].isin(levels).to_numpy()
        want = 100 * np.sum(y[sel] * (1 - np.exp(-x[sel]))) / sel.sum()
        got = group_effect(country.truth, "adoption", "ladder_step", [str(s) for s in levels])
        assert abs(got / want - 1) < 4 / np.sqrt(y[sel].sum()) + 0.05, (levels, got, want)


# --- the education channel ---------------------------------------------------------------

def _education_gradient(country, p) -> tuple[float, float]:
    """Log ratio of the exit-to-education rate in person-months whose caseworker's mean
    fidelity_audit score is above the median to that below it, and its Poisson SE."""
    pm = _person_months(country.tables, p)
    q = country.tables["quality"]
    score = q[q["instrument"] == "fidelity_audit"].groupby(["municipality", "unit_id"])["score"].mean()
    s = score.reindex(pd.MultiIndex.from_arrays([pm["municipality"], pm["caseworker_id"]])).to_numpy()
    ok = np.isfinite(s)
    pm, s = pm[ok], s[ok]
    top = s >= np.median(s)
    e1, e0 = pm["exit_education"][top].sum(), pm["exit_education"][~top].sum()
    return float(np.log((e1 / top.sum()) / (e0 / (~top).sum()))), float(np.sqrt(1 / e1 + 1 / e0))


def test_education_exits_rise_with_quality_only_when_planted(reference, homogeneous):
    # raw tables only: measured caseworker quality against realised exits to education.
    # Without the education term the two halves differ by chance (|z| < 4); with a strong
    # one (1 log-odds per point, halves ~1.5 points apart) the top half exits clearly more
    ph, ch = homogeneous
    lr0, se0 = _education_gradient(ch, ph)
    assert abs(lr0) < 4 * se0
    p1 = SimulateParams.from_dict({"preset": "small", **HOMOGENEOUS, "education_quality_coef": 1.0})
    c1 = simulate_country(p1, reference, seed=SEED)
    lr1, se1 = _education_gradient(c1, p1)
    assert lr1 > 3 * se1 and lr1 - lr0 > 2 * np.hypot(se0, se1)
    assert c1.truth["quality_effect_education_pp"] > 0 and c1.truth["adoption_att_education_pp"] > 0


def test_education_truth_matches_the_realised_rate(planted):
    """One quality point multiplies exp(eta_education) by e^0.1, so the truth is about
    ``100 (e^0.1 - 1) r_edu`` (realised rate; 4 Poisson SE of the education exits + 5%)."""
    p, country = planted
    t = country.truth
    pm = _person_months(country.tables, p)
    e = pm["exit_education"].sum()
    want = 100 * (np.exp(p.education_quality_coef) - 1) * e / len(pm)
    assert abs(t["quality_effect_education_pp"] / want - 1) < 4 / np.sqrt(e) + 0.05
    # any exit: the work and education gains, less what the other exits lose
    assert t["quality_effect_pp"] < t["quality_effect_any_pp"] < (
        t["quality_effect_pp"] + t["quality_effect_education_pp"])


# --- progress ----------------------------------------------------------------------------

def _reviews(country, p) -> pd.DataFrame:
    """One row per written review (both measures side by side), with the spell's facts."""
    pr = country.tables["progress"]
    wide = pr.pivot(index=["spell_id", "date"], columns="measure", values="value").reset_index()
    tr = country.tables["trajectories"].set_index("spell_id")
    wide["month"] = _m(wide["date"])
    wide["start"] = _m(tr.loc[wide["spell_id"], "start_date"])
    wide["dur"] = wide["month"] - wide["start"]
    wide["intake"] = tr.loc[wide["spell_id"], "ladder_step"].to_numpy()
    wide["municipality"] = tr.loc[wide["spell_id"], "municipality"].to_numpy()
    return wide.sort_values(["spell_id", "month"], ignore_index=True)


def test_progress_table_obeys_the_contract(planted):
    p, country = planted
    pr, tr = country.tables["progress"], country.tables["trajectories"]
    assert list(pr.columns) == ["spell_id", "date", "measure", "value"] and len(pr) > 10_000
    assert pr["value"].dtype == np.float64
    assert pr["date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert pd.to_datetime(pr["date"], format="%Y-%m-%d").notna().all()
    assert pr["spell_id"].isin(tr["spell_id"]).all()
    assert set(pr["measure"]) == {"ladder_step", "goal_reached"}
    steps = pr.loc[pr["measure"] == "ladder_step", "value"]
    assert set(steps) <= set(range(1, 7)) and set(steps) == set(range(1, 7))
    assert set(pr.loc[pr["measure"] == "goal_reached", "value"]) == {0.0, 1.0}
    assert pr.equals(pr.sort_values(["spell_id", "date", "measure"], ignore_index=True))
    assert not pr.duplicated(["spell_id", "date", "measure"]).any()
    # both measures at every review, on the same day, never outside the spell
    assert (pr.groupby(["spell_id", "date"])["measure"].nunique() == 2).all()
    t = tr.set_index("spell_id")
    d = pd.to_datetime(pr["date"])
    assert (d > pd.to_datetime(t.loc[pr["spell_id"], "start_date"]).to_numpy()).all()
    end = pd.to_datetime(t.loc[pr["spell_id"], "end_date"]).to_numpy()
    assert (pd.isna(end) | (d.to_numpy() <= end)).all()


def test_reviews_fall_every_r_months_and_steps_rise_by_at_most_one(planted):
    p, country = planted
    R, w0, w1 = p.progress_review_months, p.start_month, p.end_month
    rv = _reviews(country, p)
    assert (rv["dur"] > 0).all() and (rv["dur"] % R == 0).all()
    assert rv["month"].between(w0 - R, w1).all() and (rv["month"] < w0).any()
    same = rv["spell_id"].eq(rv["spell_id"].shift())
    assert (rv["month"].diff()[same] == R).all()  # no review is skipped
    step_diff = rv["ladder_step"].diff()[same]
    assert step_diff.isin([0, 1]).all() and (step_diff == 1).any()
    first = ~same & (rv["dur"] == R) & rv["intake"].notna()
    up = rv.loc[first, "ladder_step"] - rv.loc[first, "intake"]
    assert up.isin([0, 1]).all() and first.sum() > 100
    # exactly the reviews due: every month m of the spell at risk with m - start a positive
    # multiple of R, from window start - R to the window end
    tr = country.tables["trajectories"]
    start = _m(tr["start_date"])
    last = np.where(tr["end_date"].isna(), w1, _m(tr["end_date"].fillna("2000-01-01")))
    lo, hi = np.maximum(start + R, w0 - R), np.minimum(last, w1)
    n_due = np.clip(np.floor((hi - start) / R) - np.ceil((lo - start) / R) + 1, 0, None)
    n_written = rv.groupby("spell_id").size().reindex(tr["spell_id"], fill_value=0).to_numpy()
    np.testing.assert_array_equal(n_written, n_due.astype(int))


def test_progress_truth_is_recounted_from_the_tables(planted):
    p, country = planted
    t = country.truth["progress"]
    R, w0 = p.progress_review_months, p.start_month
    rv = _reviews(country, p)
    written = set(zip(rv["spell_id"], rv["month"]))
    prev = rv.groupby("spell_id")["ladder_step"].shift()
    has_prev = np.array([(s, m - R) in written for s, m in zip(rv["spell_id"], rv["month"])])
    first = rv["dur"] == R
    baseline = np.where(first, rv["intake"], np.where(has_prev, prev, np.nan))
    outcome = (rv["month"] >= w0).to_numpy() & np.isfinite(baseline.astype(float))
    ad = country.tables["adoption"]
    ad = ad[ad["programme"] == "gewogen_maatwerk"]
    ka = rv["municipality"].map(pd.Series(_m(ad["adoption_date"]), index=ad["municipality"].to_numpy()))
    adopted = (rv["month"] >= ka).to_numpy()  # NaN (never) compares False
    ladder = outcome & (baseline.astype(float) < 6)
    up = (rv["ladder_step"].to_numpy() > baseline.astype(float))
    goal = rv["goal_reached"].to_numpy()
    assert t["review_months"] == R and t["n_written_reviews"] == len(rv)
    assert t["n_outcome_reviews"] == outcome.sum()
    for name, sel, y in (("ladder_step_up", ladder, up), ("goal_reached", outcome, goal)):
        o = t[name]
        assert o["n_reviews"] == sel.sum() > 1000, name
        assert o["n_adoption_reviews"] == (sel & adopted).sum() > 100, name
        assert o["rate_pct"] == pytest.approx(100 * y[sel].mean(), abs=1e-8)
        # the realised rate is a binomial draw around the model's mean probability
        e = o["expected_rate_pct"] / 100
        assert abs(y[sel].mean() - e) < 4 * np.sqrt(e * (1 - e) / sel.sum()), name
        assert o["quality_effect_pp"] > 0 and o["adoption_att_pp"] > 0
    # one point of mean quality ~ coef * p(1-p) on the probability scale
    for name, coef in (("ladder_step_up", p.ladder_up_quality), ("goal_reached", p.goal_quality)):
        e = t[name]["expected_rate_pct"] / 100
        assert 0.8 < t[name]["quality_effect_pp"] / (100 * coef * e * (1 - e)) < 1.15, name


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")
def test_progress_probabilities_are_exact_with_constant_quality(reference):
    # every caseworker at quality_mean and no programme: qbar = quality_mean at every
    # review, so the truth's model probabilities follow from the tables alone
    p = SimulateParams.from_dict({"preset": "small", "scale": 0.3, "quality_muni_sd": 0.0,
                                  "quality_team_sd": 0.0, "quality_caseworker_sd": 0.0,
                                  "quality_drift_sd": 0.0, "adoption_share": 0.0,
                                  "progress_review_months": 4})
    country = simulate_country(p, reference, seed=SEED)
    t = country.truth["progress"]
    logistic = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    qm, R = p.quality_mean, p.progress_review_months
    g0, g1 = logistic(p.goal_base + p.goal_quality * qm), logistic(p.goal_base + p.goal_quality * (qm + 1))
    assert t["goal_reached"]["expected_rate_pct"] == pytest.approx(100 * g0, abs=1e-9)
    assert t["goal_reached"]["quality_effect_pp"] == pytest.approx(100 * (g1 - g0), abs=1e-9)
    assert t["goal_reached"]["adoption_att_pp"] is None and t["goal_reached"]["n_adoption_reviews"] == 0
    # the step-up probability depends on the baseline step: recount it from the tables
    rv = _reviews(country, p)
    assert (rv["dur"] % R == 0).all()
    written = set(zip(rv["spell_id"], rv["month"]))
    prev = rv.groupby("spell_id")["ladder_step"].shift().to_numpy()
    has_prev = np.array([(s, m - R) in written for s, m in zip(rv["spell_id"], rv["month"])])
    base = np.where(rv["dur"] == R, rv["intake"].astype(float), np.where(has_prev, prev, np.nan))
    sel = (rv["month"].to_numpy() >= p.start_month) & (base < 6)
    assert sel.sum() == t["ladder_step_up"]["n_reviews"]
    z = p.ladder_up_base + p.ladder_up_quality * qm - 0.15 * (base[sel] - 3)
    assert t["ladder_step_up"]["expected_rate_pct"] == pytest.approx(100 * logistic(z).mean(), abs=1e-9)
    d = logistic(z + p.ladder_up_quality) - logistic(z)
    assert t["ladder_step_up"]["quality_effect_pp"] == pytest.approx(100 * d.mean(), abs=1e-9)


def test_progress_off_writes_no_table_and_changes_nothing_else(reference, homogeneous):
    p, country = homogeneous
    off = SimulateParams.from_dict({"preset": "small", **HOMOGENEOUS, "progress": False})
    c = simulate_country(off, reference, seed=SEED)
    assert "progress" not in c.tables and c.truth["progress"] is None
    assert set(country.tables) - set(c.tables) == {"progress"}
    for name, table in c.tables.items():  # the review process draws from its own stream
        pd.testing.assert_frame_equal(table, country.tables[name], check_exact=True)
    a = {k: v for k, v in country.truth.items() if k not in ("params", "progress")}
    b = {k: v for k, v in c.truth.items() if k not in ("params", "progress")}
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# --- parameters --------------------------------------------------------------------------

@pytest.mark.parametrize("d, words", [
    ({"quality_coef_ladder": {7: 0.1}}, ["simulate.quality_coef_ladder", "7", "1..6"]),
    ({"quality_coef_ladder": {0: 0.1}}, ["simulate.quality_coef_ladder", "0", "1..6"]),
    ({"quality_coef_ladder": {3: "high"}}, ["simulate.quality_coef_ladder[3]", "'high'", "number"]),
    ({"quality_coef_ladder": {3: 5.0}}, ["simulate.quality_coef_ladder[3]", "5.0", "[-2, 2]"]),
    ({"quality_coef_ladder": [0.1, 0.2]}, ["simulate.quality_coef_ladder", "mapping"]),
    ({"education_quality_coef": "0.1"}, ["simulate.education_quality_coef", "'0.1'", "number"]),
    ({"progress_review_months": -6}, ["simulate.progress_review_months", "-6", "integer", "[1, 24]"]),
    ({"progress_review_months": 2.5}, ["simulate.progress_review_months", "2.5", "integer"]),
    ({"progress": "yes"}, ["simulate.progress", "'yes'", "true or false"]),
    ({"goal_quality": True}, ["simulate.goal_quality", "True", "number"]),
    ({"ladder_up_base": None, "ladder_up_programme": "x"}, ["simulate.ladder_up_programme", "'x'"]),
])
def test_bad_heterogeneity_params_name_the_key(d, words):
    with pytest.raises(ValueError) as err:
        SimulateParams.from_dict(d)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_heterogeneity_params_parse_and_round_trip():
    default = SimulateParams.from_dict({})
    assert default.quality_coef_ladder == DEFAULT_QUALITY_COEF_LADDER
    assert (default.education_quality_coef, default.progress, default.progress_review_months) == (0.1, True, 6)
    assert SimulateParams.from_dict({"quality_coef_ladder": None}).quality_coef_ladder is None
    assert SimulateParams.from_dict({"quality_coef_ladder": {}}).quality_coef_ladder is None
    p = SimulateParams.from_dict({"quality_coef_ladder": {"4": 0.3, 2: 0}, "quality_coef": 0.1})
    assert p.quality_coef_ladder == ((2, 0.0), (4, 0.3))
    assert p.quality_coef_by_step() == [0.1, 0.1, 0.0, 0.1, 0.3, 0.1, 0.1]
    d = p.to_dict()
    assert d["quality_coef_ladder"] == {"2": 0.0, "4": 0.3}
    assert json.loads(json.dumps(d)) == d and SimulateParams.from_dict(json.loads(json.dumps(d))) == p
    # params.yaml's section is the default
    section = yaml.safe_load((ROOT / "params.yaml").read_text())["simulate"]
    assert SimulateParams.from_dict(section) == default


def test_group_effect_rejects_unknown_names_and_handles_empty_groups(planted):
    t = planted[1].truth
    assert np.isnan(group_effect(t, "quality", "ladder_step", ["9"]))
    assert group_effect(t, "quality", "ladder_step", [3, "4"]) == group_effect(
        t, "quality", "ladder_step", ["3", "4", "4"])
    for args in (("quality", "colour", ["1"]), ("shock", "age", ["30"])):
        with pytest.raises(ValueError, match=args[0] if args[0] == "shock" else "colour"):
            group_effect(t, *args)
    with pytest.raises(ValueError, match="outcome"):
        group_effect(t, "quality", "age", ["30"], outcome="moved")


def test_lean_dgp_takes_ladder_slopes():
    kw = {"seed": 2, "n_muni": 8, "n_months": 24, "caseload": 60}
    base = lean_simulate(**kw)
    assert base.truth["quality_pp"] == 1.5 and "quality_pp_ladder" not in base.truth
    het = lean_simulate(**kw, beta_ladder={1: 0.5, 3: 3.0, 4: 3.0})
    slopes = het.truth["quality_pp_ladder"]
    assert slopes == {"1": 0.5, "2": 1.5, "3": 3.0, "4": 3.0, "5": 1.5, "6": 1.5}
    pm = het.person_months
    want = pm["ladder_step"].astype(str).map(slopes).mean()
    assert het.truth["quality_pp"] == pytest.approx(want, rel=1e-12)
