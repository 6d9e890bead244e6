"""The data-driven check of the programme effect (``cddf.programme``).

* the person-month imputation (FWL for the characteristics and controls, cell WLS for
  the fixed effects) equals pyfixest ``feols`` on the untreated person-months with the
  fixed effects as factors, predicted on the adopted ones (``predict(newdata)``, which
  adds the estimated fixed effects);
* with a strong planted gradient of the programme effect by ladder step (tau about 1 pp
  at steps 1-2, 3 at 3-4, 5.5 at 5-6) the proxy sorts it: GATES rise from the bottom
  to the top group, BLP beta2 > 0, CLAN puts steps 5-6 in the top group and step 1 in
  the bottom group. (Significance is not asserted: with 30 municipalities per half the
  programme's group effects are noisy, see docs/methods.md.)
* tables have the quality check's columns; without adoption there is nothing.

Seeds are fixed once, before any result was seen.
"""

import numpy as np
import pandas as pd
import pyfixest as pf
import pytest

from impact.estimate import EstimateParams
from impact.estimate.frames import month_index
from impact.heterogeneity.cddf import cddf_programme, cddf_quality
from impact.heterogeneity.cddf.programme import _controls, impute_person_months
from impact.heterogeneity.params import HeterogeneityParams
from impact.simulate.lean import simulate

WORK = {"work": "exit_work"}


@pytest.fixture(scope="module")
def tiny():
    return simulate(seed=6, n_muni=8, n_regions=2, n_months=24, caseload=100)


def test_person_month_imputation_equals_pyfixest(tiny):
    pm, params = tiny.person_months, EstimateParams()
    t = pm["t"].to_numpy()
    g = month_index(pm["adoption_month"])
    treated = np.isfinite(g) & (t - g >= 0)
    untreated = ~np.isfinite(g) | (t - g < -params.adoption.anticipation_months)
    edu = pd.get_dummies(pm["education_level"], drop_first=True, dtype=float)
    C = _controls(pm, params)
    X = np.column_stack([edu.to_numpy(), C])
    frame = pd.DataFrame({"municipality": pd.factorize(pm["municipality"])[0],
                          "regmonth": pd.factorize(pm["region"].astype(str) + ":"
                                                   + pm["t"].astype(str))[0], "t": t})
    Y = 100.0 * pm[["exit_work"]].to_numpy(dtype="float64")
    tau, ok = impute_person_months(frame, Y, X, untreated, treated)
    df = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    df["y"] = Y[:, 0]
    df["municipality"] = pm["municipality"].astype(str).to_numpy()
    df["regmonth"] = (pm["region"].astype(str) + ":" + pm["t"].astype(str)).to_numpy()
    # keep the columns that vary among the untreated (pyfixest drops the others too)
    xs = [c for c in df.columns if c.startswith("x") and df.loc[untreated, c].std() > 0]
    fit = pf.feols(f"y ~ {' + '.join(xs)} | municipality + regmonth", data=df[untreated])
    new = df[treated].reset_index(drop=True)
    seen = (new["municipality"].isin(df.loc[untreated, "municipality"])
            & new["regmonth"].isin(df.loc[untreated, "regmonth"])).to_numpy()
    assert seen.sum() > 100
    pred = fit.predict(newdata=new[seen], atol=1e-12, btol=1e-12)
    np.testing.assert_allclose(tau[seen, 0], new.loc[seen, "y"].to_numpy() - pred, atol=1e-6)
    assert ok.all()  # the others are imputed with municipality + month effects


@pytest.fixture(scope="module")
def gradient():
    sim = simulate(seed=21, n_muni=60, n_months=36, caseload=150,
                   beta_ladder={1: 0.0, 2: 0.0, 3: 8.0, 4: 8.0, 5: 16.0, 6: 16.0})
    het = HeterogeneityParams(cddf_splits=5, cddf_groups=4)
    return sim, cddf_programme(sim.person_months, EstimateParams(), het, WORK, seed=11)


def test_planted_gradient_is_sorted(gradient):
    sim, res = gradient
    pm = sim.person_months
    by_step = pm[pm["adopted"] == 1].groupby("ladder_step")["tau_true"].mean()
    assert by_step[5] > by_step[3] > by_step[1] + 1.5  # the planted gradient
    g = res.gates.set_index("group")["estimate"]
    assert g["4"] > g["3"] > g["1"] and g["4"] > g["2"]
    assert g["top-bottom"] > 1.0
    assert res.blp.set_index("term").loc["beta2_heterogeneity", "estimate"] > 0
    clan = res.clan.set_index(["dimension", "group"])
    assert clan.loc[("ladder_step", "5-6"), "difference"] > 0
    assert clan.loc[("ladder_step", "1"), "difference"] < 0
    assert clan.loc["ladder_step", "difference"].abs().max() == pytest.approx(
        clan.loc[["ladder_step", "age", "education", "household"], "difference"].abs().max())


def test_tables_match_the_quality_check_and_need_adoption(gradient, tiny):
    _, res = gradient
    het = HeterogeneityParams(cddf_splits=1, cddf_groups=3)
    q = cddf_quality(tiny.person_months, EstimateParams(), het, WORK, seed=1)
    for name in ("blp", "gates", "clan"):
        assert list(getattr(res, name).columns) == list(getattr(q, name).columns)
    pm = tiny.person_months.assign(adoption_month=pd.NaT)
    empty = cddf_programme(pm, EstimateParams(), het, WORK)
    assert empty.blp.empty and empty.gates.empty
