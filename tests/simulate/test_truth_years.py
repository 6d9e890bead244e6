"""The per-municipality, per-calendar-year breakdown of the truth (``municipalities[code]["years"]``).

Counts are recounted from the tables per calendar year; the yearly means must add up to
the municipality's; the park and programme effects are zero exactly where their lift is
off and have the planted sign where it is on.
"""

import json

import numpy as np
import pandas as pd
import pytest

from impact.simulate import SimulateParams, simulate_country

from .conftest import SEED  # noqa: F401  (the reference fixture lives there)

# the small preset, and a window starting and ending mid-year (partial first and last years)
CASES = {
    "small": {"preset": "small"},
    "partial": {"preset": "small", "scale": 0.3, "start": "2018-07", "end": "2021-03"},
}


@pytest.fixture(scope="module", params=sorted(CASES))
def country(request, reference):
    p = SimulateParams.from_dict(CASES[request.param])
    c = simulate_country(p, reference, seed=SEED)
    return p, json.loads(json.dumps(c.truth)), c.tables


def _m(s: str) -> int:
    return int(s[:4]) * 12 + int(s[5:7]) - 1


def _recount(tables, start: str, end: str) -> tuple[pd.Series, pd.Series]:
    """Person-months and exits to work per (municipality, year), from the trajectories."""
    tr = tables["trajectories"]
    w0, w1 = _m(start), _m(end)
    month = lambda s: s.str[:4].astype(int) * 12 + s.str[5:7].astype(int) - 1  # noqa: E731
    first = month(tr["start_date"])
    ended = tr["end_date"].notna()
    last = pd.Series(w1, index=tr.index)
    last[ended] = month(tr.loc[ended, "end_date"])
    pm = {}
    for y in range(w0 // 12, w1 // 12 + 1):
        lo, hi = max(y * 12, w0), min(y * 12 + 11, w1)
        n = (np.minimum(last, hi) - np.maximum(first, lo) + 1).clip(lower=0)
        for code, v in n.groupby(tr["municipality"]).sum().items():
            pm[(code, str(y))] = int(v)
    work = tr[(tr["exit_reason"] == "work") & (last >= w0) & (last <= w1)]
    exits = work.groupby([work["municipality"], (last[work.index] // 12).astype(str)]).size()
    return pd.Series(pm), exits


def test_years_cover_the_window_and_counts_match_the_tables(country):
    p, t, tables = country
    years = [str(y) for y in range(_m(p.start) // 12, _m(p.end) // 12 + 1)]
    pm, exits = _recount(tables, p.start, p.end)
    assert pm.sum() == t["n_person_months"]
    for code, m in t["municipalities"].items():
        assert list(m["years"]) == years, code
        for y, v in m["years"].items():
            assert v["person_months"] == pm.get((code, y), 0), (code, y)
            assert v["exits_work"] == exits.get((code, y), 0), (code, y)


def test_years_add_up_to_the_municipality(country):
    _, t, _ = country
    for code, m in t["municipalities"].items():
        ys = list(m["years"].values())
        pm = np.array([v["person_months"] for v in ys], float)
        assert pm.sum() == m["person_months"], code
        assert sum(v["exits_work"] for v in ys) == m["exits_work"], code
        for v in ys:
            if v["person_months"] == 0:
                assert v["expected_exit_work_rate_pct"] is None and v["park_effect_pp"] is None
                continue
            rate = 100 * v["exits_work"] / v["person_months"]
            assert v["exit_work_rate_pct"] == pytest.approx(rate, rel=1e-8)
            assert 0 < v["expected_exit_work_rate_pct"] < 10
        if not pm.sum():
            continue
        def wmean(key):
            return sum(v[key] * v["person_months"] for v in ys if v["person_months"]) / pm.sum()

        assert (wmean("expected_exit_work_rate_pct")
                == pytest.approx(m["expected_exit_work_rate_pct"], rel=1e-6))
        assert wmean("quality_mean") == pytest.approx(m["quality_mean"], rel=1e-6)


def _event_year(month: str) -> int:
    return int(month[:4])


def test_park_effect_is_zero_without_a_lift_and_positive_in_the_opening_year(country):
    p, t, _ = country
    assert p.park_lift > 0 and t["n_park_openings"] > 0
    lo_off = p.park_anticipation_months  # lift starts this many months before the opening
    hi_off = p.park_full_months + p.park_fade_months - 1  # last month with a lift
    n_checked = 0
    for code, m in t["municipalities"].items():
        for y, v in m["years"].items():
            if not v["person_months"]:
                continue
            if m["park_month"] is None:
                assert abs(v["park_effect_pp"]) < 1e-12, (code, y)
                continue
            k = _m(m["park_month"])
            if int(y) < (k - lo_off) // 12 or int(y) > (k + hi_off) // 12:
                assert abs(v["park_effect_pp"]) < 1e-12, (code, y)  # no lift in any month
            else:
                assert v["park_effect_pp"] > 0, (code, y)
            if int(y) == _event_year(m["park_month"]):
                assert v["park_effect_pp"] > 0.01, (code, y)
                n_checked += 1
    assert n_checked == t["n_park_openings"]


def test_park_effect_over_all_months_exceeds_months_0_to_11(country):
    # every lifted person-month adds a positive difference, and the yearly breakdown covers
    # a superset of the months 0..11 that shock_effect_pp averages over (anticipation, fade)
    _, t, _ = country
    by_year = {}
    for m in t["municipalities"].values():
        for y, v in m["years"].items():
            if v["person_months"]:
                by_year[y] = by_year.get(y, 0.0) + v["park_effect_pp"] * v["person_months"]
    assert all(s >= 0 for s in by_year.values())
    shock_total = t["shock_effect_pp"] * t["shock_person_months"]
    assert sum(by_year.values()) > shock_total > 0


def test_programme_effect_is_zero_before_adoption_and_positive_after(country):
    p, t, _ = country
    assert t["n_adopters"] > 0
    w1 = _m(p.end)
    n_after = 0
    for code, m in t["municipalities"].items():
        ka = None if m["adoption_month"] is None else _m(m["adoption_month"])
        for y, v in m["years"].items():
            if not v["person_months"]:
                continue
            if ka is None or min(int(y) * 12 + 11, w1) < ka:  # never, or the year's window part ends before
                assert abs(v["programme_effect_pp"]) < 1e-12, (code, y)
            else:  # the adoption year has at least the adoption month (ramp > 0)
                assert v["programme_effect_pp"] > 0, (code, y)
                if int(y) * 12 > ka:
                    n_after += 1
    assert n_after > 0


def test_effects_take_the_sign_of_their_parameter(reference):
    # a negative park lift gives negative yearly park effects; no programme, no programme effect
    p = SimulateParams.from_dict({"preset": "small", "scale": 0.2, "park_lift": -0.3,
                                  "programme_direct": 0.0, "programme_quality_lift": 0.0})
    t = simulate_country(p, reference, seed=SEED).truth
    assert t["n_park_openings"] > 0 and t["n_adopters"] > 0
    for code, m in t["municipalities"].items():
        for y, v in m["years"].items():
            if not v["person_months"]:
                continue
            assert v["park_effect_pp"] <= 0, (code, y)
            assert v["programme_effect_pp"] == 0, (code, y)
            if m["park_month"] and int(y) == _event_year(m["park_month"]):
                assert v["park_effect_pp"] < -0.01, (code, y)
