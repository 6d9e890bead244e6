"""``impact.estimate.sunab.sun_abraham`` against published numbers, pyfixest and a truth.

References
----------
R1  R ``did`` reference page of ``aggte`` on ``mpdta`` (as in test_did_reference.py):
    dynamic ATT(e), e = 0..3: -0.0199, -0.0510, -0.1373, -0.1008; simple ATT -0.0400.
    With never-treated controls, no covariates and a balanced panel, Sun-Abraham's
    saturated regression (reference e = -1) gives CATT(g, e) = the DiD of cohort g
    against the never treated between g - 1 and g + e, i.e. Callaway-Sant'Anna's
    ATT(g, g + e) for e >= 0; the interaction weights are cohort shares among the cohorts
    observed at e (R ``did``'s dynamic weights), and the overall ATT weights every post
    cell by its size (R ``did``'s simple weights). So the numbers must agree.
PF  pyfixest ``event_study(..., estimator="saturated").aggregate()`` (beta), the same
    regression and interaction weights coded independently, every relative period.
ID  One treated cohort: the IW estimates are the coefficients of the plain event-study
    regression with one dummy per relative period (an identity).
SIM Known truth: cohorts with different dynamic paths; SA's ATT(e) within 3.5 SE of the
    truth at every e; the pooled TWFE event study shows spurious leads.

Tolerances
----------
- R1: ``PUBLISHED_ATOL = 1e-4`` (R prints 4 decimals; same reasoning as
  test_did_reference.py).
- PF: estimates ``1e-8`` absolute and SEs ``1e-6`` relative (same normal equations and
  CRV1; both demean iteratively, but on a balanced panel one sweep is exact).
- ID: ``1e-10``: the same regression.
- SIM: 3.5 SE for each of 13 relative periods (a false alarm below 1% under the null);
  the pooled TWFE lead bias is more than 4 SE by construction (seed fixed in advance).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyfixest as pf
import pytest

from impact.estimate.did import DidInputError
from impact.estimate.results import TIDY_COLUMNS
from impact.estimate.sunab import sun_abraham

PUBLISHED_ATOL = 1e-4
ROLES = dict(yname="lemp", tname="year", idname="countyreal", gname="first.treat")
SIM = dict(yname="y", tname="t", idname="id", gname="g")
R1_DYNAMIC = {0: -0.0199, 1: -0.0510, 2: -0.1373, 3: -0.1008}
R1_SIMPLE = -0.0400


@pytest.fixture(scope="module")
def mpdta() -> pd.DataFrame:
    return pd.read_csv(Path(__file__).parent / "data" / "mpdta.csv")


@pytest.fixture(scope="module")
def fit(mpdta):
    return sun_abraham(mpdta, **ROLES)


def _es(res) -> pd.DataFrame:
    t = res.tidy()
    return t[t["term"] == "ATT(e)"].set_index("rel_time")


def _sim(seed: int, cohorts=(0, 4, 6, 8), n: int = 600, periods: int = 10) -> pd.DataFrame:
    """Balanced panel; cohort g's effect at e >= 0 is slope_g * (e + 1)."""
    rng = np.random.default_rng(seed)
    slope = {0: 0.0, 4: 1.0, 5: 0.8, 6: 0.5, 8: 0.0}
    g = rng.choice(np.asarray(cohorts), size=n)
    df = pd.DataFrame({"id": np.repeat(np.arange(n), periods),
                       "t": np.tile(np.arange(periods), n), "g": np.repeat(g, periods)})
    e = df["t"] - df["g"]
    df["effect"] = np.where((df["g"] > 0) & (e >= 0), df["g"].map(slope) * (e + 1), 0.0)
    df["y"] = (np.repeat(rng.normal(size=n), periods) + np.tile(rng.normal(size=periods), n)
               + df["effect"] + rng.normal(scale=0.5, size=len(df)))
    return df


def test_schema(fit):
    tab = fit.tidy()
    assert list(tab.columns) == list(TIDY_COLUMNS)
    assert tab["term"].iloc[0] == "ATT"
    assert list(_es(fit).index) == [-4, -3, -2, 0, 1, 2, 3]
    assert (tab["n_clusters"] == 500).all()
    w = fit.catt.groupby("rel_time")["weight"].sum()
    assert np.allclose(w, 1.0)


def test_mpdta_matches_r_did_published(fit):
    es = _es(fit)
    for e, ref in R1_DYNAMIC.items():
        assert abs(es.loc[e, "estimate"] - ref) < PUBLISHED_ATOL, e
    assert abs(fit.att - R1_SIMPLE) < PUBLISHED_ATOL


def test_mpdta_matches_pyfixest_saturated(mpdta, fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pf.event_study(mpdta, estimator="saturated", cluster="countyreal",
                             **{k: v for k, v in ROLES.items()}).aggregate()
    ref.index = ref.index.astype(float).astype(int)
    es = _es(fit)
    assert list(es.index) == list(ref.index)
    for e in es.index:
        assert abs(es.loc[e, "estimate"] - float(ref.loc[e, "Estimate"])) < 1e-8
        assert np.isclose(es.loc[e, "std_error"], float(ref.loc[e, "Std. Error"]), rtol=1e-6)


def test_single_cohort_equals_plain_event_study():
    df = _sim(3, cohorts=(0, 5), n=200)
    res = sun_abraham(df, **SIM)
    d = df.copy()
    rel = d["t"] - d["g"]
    es = _es(res)
    names = []
    for e in es.index:
        name = f"d{e + 100}"
        d[name] = ((d["g"] == 5) & (rel == e)).astype(float)
        names.append(name)
    ref = pf.feols(f"y ~ {' + '.join(names)} | id + t", data=d, vcov={"CRV1": "id"})
    assert np.allclose(es["estimate"].to_numpy(), ref.coef()[names].to_numpy(), atol=1e-10)
    assert np.allclose(es["std_error"].to_numpy(), ref.se()[names].to_numpy(), rtol=1e-8)


def test_recovers_heterogeneous_dynamic_effects_where_twfe_fails():
    df = _sim(1)
    res = sun_abraham(df, **SIM)
    es = _es(res)
    treated = df[df["g"] > 0]
    truth = (treated.assign(e=treated["t"] - treated["g"]).groupby("e")["effect"].mean()
             .reindex(es.index))
    z = (es["estimate"] - truth) / es["std_error"]
    assert (z.abs() < 3.5).all(), z
    post = treated[treated["t"] >= treated["g"]]
    att = _att_row(res)
    assert abs(att["estimate"] - post["effect"].mean()) < 3 * att["std_error"]
    # pooled TWFE event study (never treated at the reference): contaminated leads
    d = df.assign(relc=np.where(df["g"] > 0, df["t"] - df["g"], -1))
    twfe = pf.feols("y ~ i(relc, ref=-1) | id + t", data=d, vcov={"CRV1": "id"})
    leads = [k for k in twfe.coef().index if "::-" in k]
    assert (twfe.coef()[leads] / twfe.se()[leads]).abs().max() > 4


def _att_row(res) -> pd.Series:
    t = res.tidy()
    return t[t["term"] == "ATT"].iloc[0]


def test_last_treated_control_equals_recoded_never_treated():
    df = _sim(2, cohorts=(4, 6, 8))
    res = sun_abraham(df, **SIM)
    assert res.meta["control"] == "last treated (8)"
    recoded = df[df["t"] < 8].assign(g=lambda x: x["g"].where(x["g"] != 8, 0))
    ref = sun_abraham(recoded, **SIM)
    pd.testing.assert_series_equal(_es(res)["estimate"], _es(ref)["estimate"])


def test_input_errors(mpdta):
    with pytest.raises(DidInputError, match="ref_period"):
        sun_abraham(mpdta, **ROLES, ref_period=-9)
    with pytest.raises(DidInputError, match="not in df"):
        sun_abraham(mpdta, **{**ROLES, "yname": "nope"})
    with pytest.raises(DidInputError, match="control cohort"):
        sun_abraham(mpdta[mpdta["first.treat"] == 2007], **ROLES)
