"""``impact.estimate.did.staggered_att`` against R ``did`` on ``mpdta`` and a brute force.

References
----------
R1  R ``did`` reference page of ``aggte`` (bcallaway11/did, docs/reference/aggte.md):
    ``att_gt(yname="lemp", tname="year", idname="countyreal", gname="first.treat",
    xformla=NULL, data=mpdta)`` (doubly robust, never treated, varying base period,
    ``set.seed(09152024)``), then ``aggte(out, type=...)`` for all four types.
R2  R ``did`` vignette "Getting Started with the did Package" (docs/articles/did-basics.md):
    the same call with ``xformla=~1``: ATT(g,t) table and the dynamic aggregation.
BF  A brute force written here: for t >= g, ATT(g,t) is the difference of mean changes
    Y_t - Y_(g-1) between cohort g and the controls (never treated; or never treated
    plus G > t), aggregated with cohort-size weights as Callaway & Sant'Anna (2021,
    section 3) define "simple", "group", "dynamic" and "calendar".

Tolerances
----------
- Point estimates vs R1/R2: ``PUBLISHED_ATOL = 1e-4``. R prints 4 decimals, so rounding
  alone is up to 5e-5 (e.g. the simple ATT -0.0399513 prints as "-0.04"); 1e-4 adds a
  margin of the same size and nothing more: any error in the estimator or the weights
  moves the numbers by 1e-3 or more.
- Standard errors vs R1/R2: ``SE_RTOL = 0.15``. Ours are analytic (influence function);
  R's published ones are multiplier-bootstrap draws (1,000 Mammen draws, IQR-based scale),
  each a random number: R's own pages disagree for the same quantity by up to 13%
  (event time 2: 0.0356 README, 0.0393 R1, 0.0402 R2; cohort 2004: 0.0277 README, 0.0300
  R1). 15% covers that spread; an SE that ignores the influence function (e.g. counting
  rows rather than units, or skipping the weight-estimation term) is off by far more.
- Brute force vs wrapper: ``BF_RTOL = 1e-10``: the same arithmetic in floating point.
- Not-yet-treated controls: R ``did`` publishes no mpdta numbers for them that we could
  find, so they are checked against BF only (exact), and their SEs for sanity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from impact.estimate.did import DidInputError, staggered_att
from impact.estimate.results import TIDY_COLUMNS

PUBLISHED_ATOL = 1e-4
SE_RTOL = 0.15
BF_RTOL = 1e-10
ROLES = dict(yname="lemp", tname="year", idname="countyreal", gname="first.treat")
AGGREGATIONS = ("simple", "group", "dynamic", "calendar")
CONTROLS = ("nevertreated", "notyettreated")

# R1: (overall estimate, overall SE, {key: (estimate, SE)}), never treated, DR.
R1 = {
    "simple": (-0.0400, 0.0119, {}),
    "group": (-0.0310, 0.0126, {2004: (-0.0797, 0.0300), 2006: (-0.0229, 0.0163),
                                2007: (-0.0261, 0.0167)}),
    "dynamic": (-0.0772, 0.0208, {-3: (0.0305, 0.0154), -2: (-0.0006, 0.0129),
                                  -1: (-0.0245, 0.0145), 0: (-0.0199, 0.0119),
                                  1: (-0.0510, 0.0160), 2: (-0.1373, 0.0393),
                                  3: (-0.1008, 0.0356)}),
    "calendar": (-0.0417, 0.0175, {2004: (-0.0105, 0.0242), 2005: (-0.0704, 0.0319),
                                   2006: (-0.0488, 0.0206), 2007: (-0.0371, 0.0133)}),
}
# R2: ATT(g,t) (group, time): (estimate, SE), never treated, DR, xformla = ~1.
R2_ATTGT = {
    (2004, 2004): (-0.0105, 0.0243), (2004, 2005): (-0.0704, 0.0331),
    (2004, 2006): (-0.1373, 0.0412), (2004, 2007): (-0.1008, 0.0358),
    (2006, 2004): (0.0065, 0.0230), (2006, 2005): (-0.0028, 0.0210),
    (2006, 2006): (-0.0046, 0.0175), (2006, 2007): (-0.0412, 0.0196),
    (2007, 2004): (0.0305, 0.0147), (2007, 2005): (-0.0027, 0.0156),
    (2007, 2006): (-0.0311, 0.0179), (2007, 2007): (-0.0261, 0.0175),
}


@pytest.fixture(scope="module")
def mpdta() -> pd.DataFrame:
    return pd.read_csv(Path(__file__).parent / "data" / "mpdta.csv")


@pytest.fixture(scope="module")
def fits(mpdta):
    return {(c, a): staggered_att(mpdta, control_group=c, aggregation=a, **ROLES)
            for c in CONTROLS for a in AGGREGATIONS}


def _key(table: pd.DataFrame, aggregation: str) -> pd.Series:
    if aggregation == "group":
        return table["cohort"].astype(float).astype(int)
    if aggregation == "dynamic":
        return table["rel_time"].astype(int)
    return table["term"].str.extract(r"t=(\d+)")[0].astype(int)


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_never_treated_matches_published_r_did(fits, aggregation):
    tidy = fits[("nevertreated", aggregation)].tidy()
    est, se, detail = R1[aggregation]
    overall = tidy[tidy["term"] == "ATT"]
    assert len(overall) == 1
    assert overall["estimate"].iloc[0] == pytest.approx(est, abs=PUBLISHED_ATOL)
    assert overall["std_error"].iloc[0] == pytest.approx(se, rel=SE_RTOL)
    rows = tidy[tidy["term"] != "ATT"]
    got = dict(zip(_key(rows, aggregation), zip(rows["estimate"], rows["std_error"])))
    assert sorted(got) == sorted(detail)
    for key, (e_ref, se_ref) in detail.items():
        assert got[key][0] == pytest.approx(e_ref, abs=PUBLISHED_ATOL), key
        assert got[key][1] == pytest.approx(se_ref, rel=SE_RTOL), key


def test_att_gt_matches_published_vignette(fits):
    gt = fits[("nevertreated", "simple")].att_gt
    got = {(g, t): (e, s) for g, t, e, s in gt.itertuples(index=False)}
    assert sorted(got) == sorted(R2_ATTGT)
    for cell, (e_ref, se_ref) in R2_ATTGT.items():
        assert got[cell][0] == pytest.approx(e_ref, abs=PUBLISHED_ATOL), cell
        assert got[cell][1] == pytest.approx(se_ref, rel=SE_RTOL), cell


def _brute_force(df: pd.DataFrame, control: str) -> dict:
    """ATT(g,t), t >= g, and the four aggregations from plain means (see BF above)."""
    wide = df.pivot(index="countyreal", columns="year", values="lemp")
    g_of = df.groupby("countyreal")["first.treat"].first().reindex(wide.index)
    groups = sorted(g for g in g_of.unique() if g > 0)
    share = {g: float((g_of == g).mean()) for g in groups}
    att = {}
    for g in groups:
        for t in [t for t in wide.columns if t >= g]:
            change = wide[t] - wide[g - 1]
            ctrl = (g_of == 0) if control == "nevertreated" else (g_of == 0) | (g_of > t)
            att[(g, t)] = change[g_of == g].mean() - change[ctrl].mean()

    def wmean(cells):
        w = np.array([share[g] for g, _ in cells])
        return float(np.dot(w, [att[c] for c in cells]) / w.sum())

    by_group = {g: float(np.mean([a for (gg, _), a in att.items() if gg == g]))
                for g in groups}
    event = {e: wmean([c for c in att if c[1] - c[0] == e])
             for e in sorted({t - g for g, t in att})}
    calendar = {t: wmean([c for c in att if c[1] == t]) for t in sorted({t for _, t in att})}
    return {
        "att_gt": att,
        "simple": (wmean(list(att)), {}),
        "group": (float(np.dot([share[g] for g in groups], list(by_group.values()))
                        / sum(share.values())), by_group),
        "dynamic": (float(np.mean(list(event.values()))), event),
        "calendar": (float(np.mean(list(calendar.values()))), calendar),
    }


@pytest.mark.parametrize("control", CONTROLS)
@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_matches_brute_force(mpdta, fits, control, aggregation):
    ref_overall, ref_detail = _brute_force(mpdta, control)[aggregation]
    tidy = fits[(control, aggregation)].tidy()
    assert tidy.loc[tidy["term"] == "ATT", "estimate"].iloc[0] == pytest.approx(
        ref_overall, rel=BF_RTOL)
    rows = tidy[tidy["term"] != "ATT"]
    got = dict(zip(_key(rows, aggregation), rows["estimate"]))
    for key, value in ref_detail.items():  # dynamic: e >= 0 only (BF has no pre-periods)
        assert got[key] == pytest.approx(value, rel=BF_RTOL), key


@pytest.mark.parametrize("control", CONTROLS)
def test_post_period_att_gt_matches_brute_force(mpdta, fits, control):
    ref = _brute_force(mpdta, control)["att_gt"]
    gt = fits[(control, "simple")].att_gt
    got = {(g, t): e for g, t, e, _ in gt.itertuples(index=False)}
    for cell, value in ref.items():
        assert got[cell] == pytest.approx(value, rel=BF_RTOL), cell


def test_not_yet_treated_standard_errors_are_sane(fits):
    """No published reference: analytic SEs finite and within 15% of never-treated's.

    On mpdta the never-treated (309 of 500 counties) dominate both control groups, so the
    two sets of SEs differ by a few per cent (R1 tolerance argument applies).
    """
    for agg in AGGREGATIONS:
        nyt = fits[("notyettreated", agg)].tidy()
        nev = fits[("nevertreated", agg)].tidy()
        assert np.isfinite(nyt["std_error"]).all() and (nyt["std_error"] > 0).all()
        assert nyt["std_error"].iloc[0] == pytest.approx(nev["std_error"].iloc[0], rel=0.15)


def test_tidy_schema_and_meta(fits):
    res = fits[("nevertreated", "dynamic")]
    tidy = res.tidy()
    assert list(tidy.columns) == list(TIDY_COLUMNS)
    assert tidy["term"].iloc[0] == "ATT" and (tidy["term"] == "ATT").sum() == 1
    assert res.att == tidy["estimate"].iloc[0]
    row = tidy.iloc[0]
    assert row["ci_low"] < row["estimate"] < row["ci_high"]
    assert row["statistic"] == pytest.approx(row["estimate"] / row["std_error"])
    assert res.meta["library"] == "moderndid" and res.meta["n_units"] == 500
    assert res.meta["inference"].startswith("analytic")
    tidy.loc[0, "estimate"] = 99.0  # tidy() hands out a copy
    assert res.tidy()["estimate"].iloc[0] != 99.0
    assert "ATT" in res.summary()


def test_input_frame_not_mutated(mpdta):
    before = mpdta.copy()
    staggered_att(mpdta, **ROLES)
    pd.testing.assert_frame_equal(mpdta, before)


def test_bootstrap_is_seeded(mpdta):
    a = staggered_att(mpdta, bootstrap=True, biters=199, seed=3, **ROLES).tidy()
    b = staggered_att(mpdta, bootstrap=True, biters=199, seed=3, **ROLES).tidy()
    assert a["std_error"].iloc[0] == b["std_error"].iloc[0]
    assert a["std_error"].iloc[0] == pytest.approx(R1["simple"][1], rel=SE_RTOL)
    assert "bootstrap" in a["vcov"].iloc[0]


@pytest.mark.parametrize("change, kwargs, message", [
    (lambda d: d.drop(columns="lemp"), {}, r"column\(s\) \['lemp'\] not in df"),
    (lambda d: d.assign(**{"first.treat": np.where(
        (d["countyreal"] == 8001) & (d["year"] == 2003), 2004, d["first.treat"])}), {},
     r"must be constant within 'countyreal'.*1 unit\(s\), e.g. 8001"),
    (lambda d: d, {"aggregation": "eventstudy"},
     r"aggregation='eventstudy' is not supported; use one of 'simple', 'group', "
     r"'dynamic', 'calendar'"),
    (lambda d: d, {"control_group": "never"}, r"control_group='never' is not supported"),
    (lambda d: d[d["first.treat"] > 0], {}, r"no never-treated units.*notyettreated"),
    (lambda d: d.assign(lemp=d["lemp"].where(d.index != 5)), {}, r"1 row\(s\) have missing"),
    (lambda d: pd.concat([d, d.iloc[:1]]), {}, r"1 duplicate \(countyreal, year\)"),
    (lambda d: d, {"cluster": "countyreal"}, r"needs the multiplier bootstrap"),
])
def test_rejects_bad_input_with_clear_message(mpdta, change, kwargs, message):
    with pytest.raises(DidInputError, match=message):
        staggered_att(change(mpdta), **{**ROLES, **kwargs})
