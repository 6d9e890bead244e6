"""The decomposition table (impact.decompose.decompose) on synthetic linear panels.

- Accounting: the five components add up to the observed change, which is the change in
  the rates computed directly from the panel; each factor's contribution is the change
  in the mean of its own terms, recomputed row by row (the model is additive, so the
  Shapley value of a factor is its own change).
- The Shapley values do not depend on the order the factors are listed in.
- Recovery (Monte Carlo over panels with planted composition, shock, programme and
  quality changes): the intervals cover the planted contributions and the estimates are
  unbiased. Tolerances fixed before the first run: coverage of the nominal 95% intervals
  at least 80% per component (12 clusters, percentile wild bootstrap: some
  under-coverage is expected), and the mean error within 3 Monte Carlo standard errors
  (from the spread of the per-panel mean errors).
- Disclosure, explicit periods, and periods outside the panel.
"""

import numpy as np
import pandas as pd
import pytest

import impact.decompose.core as core
from impact.decompose import COMPONENTS, NATIONAL, DecomposeParams, decompose
from impact.decompose.design import FACTORS
from impact.decompose.params import parse_period
from impact.estimate.params import EstimateParams

from .synthetic import make_panel, planted_means

PARAMS = EstimateParams.from_dict(estimate={"controls": ["education_level",
                                                         "prior_benefit_months"]})
MIN_CELL = 10
SMALL = 11  # index of the small municipality in the disclosure panel


@pytest.fixture(scope="session")
def panel():
    return make_panel(21, small=(SMALL,))


@pytest.fixture(scope="session")
def result(panel):
    return decompose(panel[0], PARAMS, DecomposeParams(n_boot=199), MIN_CELL)


def _rates(pm, first, last):
    """Direct exit-to-work rates (pp) per municipality and for the country."""
    sel = pm[(pm["t"] >= first) & (pm["t"] <= last)]
    r = 100 * sel.groupby("municipality")["exit_work"].mean()
    r[NATIONAL] = 100 * sel["exit_work"].mean()
    return r


def _wide(table):
    return table.pivot(index=["municipality", "period_from", "period_to"],
                       columns="component", values="contribution_pp")


def test_table_shape_and_pairs(result, panel):
    pm = panel[0]
    tab = result.table
    assert result.info["pairs"] == [["2019", "2020"], ["2020", "2021"]]
    units = pm["municipality"].nunique() + 1
    assert len(tab) == units * 2 * len(COMPONENTS)
    assert list(tab.columns) == ["municipality", "name", "period_from", "period_to",
                                 "component", "contribution_pp", "ci_low", "ci_high",
                                 "rate_from_pp", "rate_to_pp", "status"]
    assert tab["municipality"].iloc[-1] == NATIONAL
    assert (tab.loc[tab["municipality"] == NATIONAL, "name"] == "Nederland").all()
    assert set(tab["status"]) == {"ok", "suppressed"}


def test_components_add_up_to_the_directly_computed_change(result, panel):
    pm = panel[0]
    tab = result.table
    ok = tab[tab["status"] == "ok"]
    # 11 municipalities (the small one is suppressed) and the country
    assert ok["municipality"].nunique() == pm["municipality"].nunique()
    w = _wide(ok)
    parts = w[list(FACTORS) + ["residual"]].sum(axis=1)
    np.testing.assert_allclose(parts, w["observed_change"], rtol=0, atol=1e-9)
    for (a, b), rows in ok.groupby(["period_from", "period_to"]):
        pa, pb = parse_period(a), parse_period(b)
        r0, r1 = _rates(pm, pa.first, pa.last), _rates(pm, pb.first, pb.last)
        first = rows.drop_duplicates("municipality").set_index("municipality")
        np.testing.assert_allclose(first["rate_from_pp"], r0[first.index], rtol=1e-12)
        np.testing.assert_allclose(first["rate_to_pp"], r1[first.index], rtol=1e-12)
        obs = rows[rows["component"] == "observed_change"].set_index("municipality")
        np.testing.assert_allclose(obs["contribution_pp"], (r1 - r0)[obs.index],
                                   rtol=0, atol=1e-9)
        # the observed change is data: no interval; the others have one
        assert obs[["ci_low", "ci_high"]].isna().all().all()
    est = ok[ok["component"] != "observed_change"]
    assert est[["ci_low", "ci_high"]].notna().all().all()
    assert (est["ci_low"] <= est["ci_high"]).all()


def test_contributions_are_each_factors_own_change(result, panel):
    """Additive model: each factor's Shapley value is the change in the mean of its own
    terms, recomputed here row by row from the coefficients and fixed effects."""
    pm = panel[0]
    fit, design = result.fit, result.design
    coef = dict(zip(fit.names, fit.coef))
    rm = (pm["region"] + ":" + pm["t"].astype(str)).to_numpy()
    row = {f: np.zeros(len(pm)) for f in FACTORS}
    for c in design.columns:
        row[design.factor(c)] += coef[c] * design.column(c).astype(float)
    row["composition"] += pd.Series(fit.alpha, index=fit.munis).reindex(
        pm["municipality"]).to_numpy()
    row["labour_market"] += pd.Series(fit.lam, index=fit.regmonths).reindex(rm).to_numpy()
    row["quality"] += coef["quality"] * pm["quality_score"].to_numpy()  # all measured
    terms = pd.DataFrame(row).assign(municipality=pm["municipality"].to_numpy(),
                                     t=pm["t"].to_numpy())

    def means(p):
        sel = terms[(terms["t"] >= p.first) & (terms["t"] <= p.last)]
        m = sel.groupby("municipality")[list(FACTORS)].mean()
        m.loc[NATIONAL] = sel[list(FACTORS)].mean()
        return m

    w = _wide(result.table[result.table["status"] == "ok"])
    for a, b in result.info["pairs"]:
        want = means(parse_period(b)) - means(parse_period(a))
        got = w.xs((a, b), level=["period_from", "period_to"])
        np.testing.assert_allclose(got[list(FACTORS)], want.loc[got.index, list(FACTORS)],
                                   rtol=0, atol=1e-9)


def test_factor_order_does_not_change_the_table(result, panel, monkeypatch):
    monkeypatch.setattr(core, "FACTORS", tuple(reversed(FACTORS)))
    other = decompose(panel[0], PARAMS, DecomposeParams(n_boot=199), MIN_CELL).table
    base = result.table
    pd.testing.assert_frame_equal(other.drop(columns=["contribution_pp", "ci_low", "ci_high"]),
                                  base.drop(columns=["contribution_pp", "ci_low", "ci_high"]))
    for c in ("contribution_pp", "ci_low", "ci_high"):
        np.testing.assert_allclose(other[c], base[c], rtol=0, atol=1e-12)


def test_small_municipality_is_suppressed(result, panel):
    pm, truth = panel
    code = truth["munis"]["municipality"].iloc[SMALL]
    tab = result.table
    rows = tab[tab["municipality"] == code]
    assert len(rows) == 2 * len(COMPONENTS) and (rows["status"] == "suppressed").all()
    assert rows[["contribution_pp", "ci_low", "ci_high", "rate_from_pp",
                 "rate_to_pp"]].isna().all().all()
    years = pm[pm["municipality"] == code].groupby(pm["t"] // 12)["exit_work"].sum()
    assert years.min() < MIN_CELL  # the reason: too few exits in a period
    assert (tab.loc[tab["municipality"] != code, "status"] == "ok").all()


def test_min_cell_threshold_is_inclusive():
    pm, _ = make_panel(5, clients=40)
    dp = DecomposeParams(n_boot=0, periods=[["2019", "2020"]])
    y = pm[pm["t"] < 2021 * 12].assign(year=lambda d: d["t"] // 12)
    exits = y.groupby(["municipality", "year"])["exit_work"].sum().unstack().min(axis=1)
    code, e = exits.idxmin(), int(exits.min())
    assert y.groupby(["municipality", "year"])["client_id"].nunique().min() > e + 1

    def status(min_cell):
        tab = decompose(pm, PARAMS, dp, min_cell).table
        return tab.loc[tab["municipality"] == code, "status"].unique().tolist()

    assert status(e) == ["ok"]
    assert status(e + 1) == ["suppressed"]


def test_explicit_periods(panel):
    pm = panel[0]
    dp = DecomposeParams.from_dict({"periods": [["2019", "2020-Q1"]], "n_boot": 0})
    tab = decompose(pm, PARAMS, dp, MIN_CELL).table
    assert set(zip(tab["period_from"], tab["period_to"])) == {("2019", "2020-Q1")}
    ok = tab[(tab["status"] == "ok") & (tab["component"] == "observed_change")]
    ok = ok.set_index("municipality")
    r0 = _rates(pm, 2019 * 12, 2019 * 12 + 11)
    r1 = _rates(pm, 2020 * 12, 2020 * 12 + 2)
    np.testing.assert_allclose(ok["contribution_pp"], (r1 - r0)[ok.index], rtol=0, atol=1e-9)
    np.testing.assert_allclose(ok["rate_to_pp"], r1[ok.index], rtol=1e-12)
    assert tab.loc[tab["status"] == "ok", ["ci_low", "ci_high"]].isna().all().all()  # n_boot 0


@pytest.mark.parametrize("periods", [[["2015", "2016"]], [["2021", "2022"]],
                                     [["2019", "2021-06:2022-06"]]])
def test_period_outside_the_panel_is_an_error(panel, periods):
    with pytest.raises(ValueError, match="not inside the panel's months 2019-01..2021-12"):
        decompose(panel[0], PARAMS, DecomposeParams(n_boot=0, periods=periods), MIN_CELL)


# ----------------------------------------------------------------------------- recovery
N_REPS = 10
TARGET = {"composition": "composition", "labour_market": "labour_market",
          "shocks": "shocks", "quality": "quality_measured"}


@pytest.fixture(scope="session")
def recovery():
    """Estimates, intervals and planted values of every published unit-pair and factor,
    over N_REPS panels. The planted quality contribution is theta times the change in the
    unit's mean *measured* quality plus the programme's: the quantity the decomposition
    defines (its intervals carry the model's uncertainty, not the audit noise in the
    unit's mean)."""
    out = []
    for rep in range(N_REPS):
        pm, truth = make_panel(1000 + rep)
        tab = decompose(pm, PARAMS, DecomposeParams(n_boot=199), MIN_CELL).table
        tab = tab[(tab["status"] == "ok") & tab["component"].isin(FACTORS)]
        for (a, b), rows in tab.groupby(["period_from", "period_to"]):
            pa, pb = parse_period(a), parse_period(b)
            d = {}
            for by in (True, False):
                m0 = planted_means(truth, pa.first, pa.last, by)
                m1 = planted_means(truth, pb.first, pb.last, by)
                diff = m1 - m0
                if not by:
                    diff.index = [NATIONAL]
                d[by] = diff
            planted = pd.concat([d[True], d[False]])
            for _, r in rows.iterrows():
                out.append({"rep": rep, "municipality": r["municipality"], "pair": (a, b),
                            "component": r["component"], "estimate": r["contribution_pp"],
                            "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                            "planted": planted.loc[r["municipality"], TARGET[r["component"]]]})
    out = pd.DataFrame(out)
    out["error"] = out["estimate"] - out["planted"]
    out["covered"] = (out["ci_low"] <= out["planted"]) & (out["planted"] <= out["ci_high"])
    # rows where the factor cannot move (no shock near either period) are exact zeros
    out["trivial"] = (out["ci_high"] - out["ci_low"] == 0) & (out["estimate"] == 0)
    return out


# The intervals come from the wild bootstrap of the leave-one-cluster-out deviations
# (WCU3; MacKinnon, Nielsen and Webb 2023). The residual wild bootstrap (CRV1-sized
# variance) covered only 77% (labour_market: 4 clusters per region) and 70% (shocks: 2
# shocked municipalities) here; a test of 40 panels measured 79% and 62%.


@pytest.mark.parametrize("component", FACTORS)
def test_intervals_cover_the_planted_contributions(recovery, component):
    r = recovery[(recovery["component"] == component) & ~recovery["trivial"]]
    assert len(r) >= 4 * N_REPS
    # the exact zeros are right: nothing planted there
    z = recovery[(recovery["component"] == component) & recovery["trivial"]]
    np.testing.assert_allclose(z["planted"], 0.0, atol=1e-12)
    assert r["covered"].mean() >= 0.80, (r["covered"].mean(),
                                         r.groupby("municipality")["covered"].mean())


@pytest.mark.parametrize("component", FACTORS)
def test_estimates_are_unbiased(recovery, component):
    r = recovery[recovery["component"] == component]
    per_rep = r.groupby("rep")["error"].mean()
    se = per_rep.std(ddof=1) / np.sqrt(len(per_rep))
    assert abs(per_rep.mean()) <= 3 * se, (per_rep.mean(), se)


def _planted_rows(recovery, component):
    """Rows of the municipalities where the component's factor was planted to move:
    client mix, a shock, the programme or a quality trend."""
    _, truth = make_panel(1000)  # the plan is the same in every replication
    m = truth["munis"].set_index("municipality")
    munis = {"composition": m.index[m["mix_change"] != 0],
             "shocks": m.index[m["shock_t"].notna()],
             "quality": m.index[m["adoption_t"].notna() | (m["quality_trend"] != 0)]}
    return recovery[(recovery["component"] == component)
                    & recovery["municipality"].isin(munis[component]) & ~recovery["trivial"]]


@pytest.mark.parametrize("component", ["composition", "shocks", "quality"])
def test_planted_changes_are_recovered(recovery, component):
    """Where a change was planted the mean error over panels is within 3 MC standard
    errors of zero, and the planted change is far from zero (the check has power)."""
    r = _planted_rows(recovery, component)
    per_rep = r.groupby("rep")["error"].mean()
    se = per_rep.std(ddof=1) / np.sqrt(len(per_rep))
    assert abs(per_rep.mean()) <= 3 * se, (per_rep.mean(), se)
    assert r["planted"].abs().mean() > 0.3  # pp: something was planted


@pytest.mark.parametrize("component", ["composition", "shocks", "quality"])
def test_planted_changes_are_covered(recovery, component):
    cov = _planted_rows(recovery, component)["covered"].mean()
    assert cov >= 0.80, cov


def test_one_municipality_extract(panel):
    """A single municipality's own extract: intervals clustered by caseworker (with a
    warning), components still add up, and the intervals are finite."""
    pm = panel[0]
    one = pm[pm["municipality"] == pm["municipality"].iloc[0]].reset_index(drop=True)
    with pytest.warns(Warning, match="clustered by caseworker"):
        tab = decompose(one, PARAMS, DecomposeParams(n_boot=99), MIN_CELL).table
    ok = tab[tab["status"] == "ok"]
    assert len(ok)
    wide = ok.pivot_table(index=["municipality", "period_from"], columns="component",
                          values="contribution_pp")
    parts = wide[list(FACTORS) + ["residual"]].sum(axis=1)
    assert np.max(np.abs(parts - wide["observed_change"])) < 1e-9
    est = ok[ok["component"].isin(FACTORS)]
    assert np.isfinite(est[["ci_low", "ci_high"]].to_numpy()).all()
