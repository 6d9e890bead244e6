"""The planted truth, as the data contract's estimands define it.

All effects are means over the person-months the pipeline builds from the tables (a
spell at risk from the month of ``start_date`` to the month of ``end_date`` or the window
end, clipped to the window) of model probabilities of exit to work, in percentage
points:

- ``quality_effect_pp``: mean of ``P(work | q + 1) - P(work | q)``, ``q`` the true
  quality of that month's caseworker, all else (competing exits included) equal.
- ``reliability``: ``var(true quality) / var(score)`` over the ``fidelity_audit`` scores
  dated in the window (a sample quantity).
- ``adoption_att_pp``: mean over adopting municipalities' person-months from their
  adoption month on of ``P(work) - P(work | no programme)`` (no quality lift, no direct
  effect).
- ``shock_effect_pp``: mean over person-months in months 0..11 after a
  ``business_park_opening`` in the client's municipality of ``P(work) - P(work | no
  opening)``.

Other keys: ``window``, ``seed``, ``params`` (the resolved section), ``n_spells`` (rows of
``trajectories``), ``n_person_months``, ``adoption_person_months``,
``shock_person_months``, ``exit_work_rate_pct`` (realised), ``n_fidelity_audits`` (scores
dated in the window), ``n_municipalities``, ``n_adopters``, ``n_park_openings``,
``corr_quality_prosperity`` (planted municipal means; exactly the parameter),
``local_conditions_captured_r2`` (share of the yearly local deviations, net of municipality
and year, that the municipal unemployment indicator sees), ``municipalities`` (per code:
region, prosperity, lm_intercept, quality_planted_mean, person-month weighted
quality_mean and quality_mean_no_programme, person_months, exits_work,
expected_exit_work_rate_pct, adoption_month, park_month, years) and ``teams`` (per
``"<municipality>:<team_id>"``: municipality, planted effect, quality_mean,
person_months; team of the month's caseworker).

``municipalities[code]["years"]`` breaks the municipality's window person-months down by
calendar year: a dict keyed by the year as a string (``"2016"``, ..., every calendar year
the window touches, partial first and last years included), each with

- ``person_months`` (int) and ``exits_work`` (int, realised exits to work in that year's
  person-months); they sum over the years to the municipality's ``person_months`` and
  ``exits_work``.
- ``exit_work_rate_pct``: ``100 * exits_work / person_months`` (realised).
- ``expected_exit_work_rate_pct``: mean of the model ``P(work)`` in pp; its person-month
  weighted mean over the years is the municipality's ``expected_exit_work_rate_pct``.
- ``park_effect_pp``: mean over that year's person-months of ``P(work) - P(work | no
  opening)`` (the own business park's lift switched off, all else equal), in pp. Unlike
  ``shock_effect_pp`` it covers every month of the year, so it includes the anticipation
  months before the opening and the fade after ``park_full_months``; it is 0 in years
  without any lift and for municipalities without a park. The decomposition's ``shocks``
  component of the change between years ``y0`` and ``y1`` is planted as
  ``park_effect_pp[y1] - park_effect_pp[y0]``.
- ``programme_effect_pp``: mean over that year's person-months of ``P(work) - P(work | no
  programme)`` (quality lift and direct effect switched off, as for ``adoption_att_pp``),
  in pp; 0 in months before the adoption month and for never-adopters, so the yearly value
  is diluted in the adoption year and during the ramp.
- ``quality_mean``: mean true quality of the month's caseworker (programme lift included).

All but the two counts are ``None`` when ``person_months`` is 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .engine import Sim
from .params import SimulateParams
from .tables import kept_spells
from .world import World

__all__ = ["build_truth"]


def build_truth(sim: Sim, w: World, p: SimulateParams) -> dict[str, Any]:
    """JSON-serialisable truth dict (see module docstring)."""
    acc, ma, ta = sim.acc, sim.muni_acc, sim.team_acc
    a = sim.audits
    in_window = (a["k"] >= w.k_start) if a else np.zeros(0, bool)
    tq, sc = (a["true_q"][in_window], a["score"][in_window]) if a else (np.zeros(0), np.zeros(0))
    codes = w.munis["municipality"].tolist()
    mu = w.munis
    per_muni = {}
    for i, code in enumerate(codes):
        pm = ma["pm"][i]
        per_muni[code] = {
            "region": mu["region"].iat[i],
            "prosperity": _f(mu["prosperity"].iat[i]),
            "lm_intercept": _f(mu["lm_intercept"].iat[i]),
            "quality_planted_mean": _f(mu["quality_mu"].iat[i]),
            "quality_mean": _f(ma["q"][i] / pm) if pm else None,
            "quality_mean_no_programme": _f(ma["q_noprog"][i] / pm) if pm else None,
            "person_months": int(pm),
            "exits_work": int(ma["exits_work"][i]),
            "expected_exit_work_rate_pct": _f(100 * ma["p_work"][i] / pm) if pm else None,
            "adoption_month": _month(w, mu["adoption_k"].iat[i]),
            "park_month": _month(w, mu["park_k"].iat[i]),
            "years": _years(sim, i),
        }
    st = sim.staff
    per_team = {}
    for t in range(len(st.team_num)):
        key = f"{codes[st.team_muni[t]]}:T{st.team_num[t]:02d}"
        pm = ta["pm"][t]
        per_team[key] = {"municipality": codes[st.team_muni[t]], "effect": _f(st.team_v[t]),
                         "quality_mean": _f(ta["q"][t] / pm) if pm else None, "person_months": int(pm)}
    pp = lambda num, den: _f(100 * num / den) if den else None  # noqa: E731
    return {
        "window": {"start": p.start, "end": p.end},
        "n_spells": int(len(kept_spells(sim, w))),
        "n_person_months": int(acc["pm"]),
        "quality_effect_pp": pp(acc["dq"], acc["pm"]),
        "reliability": _f(np.var(tq) / np.var(sc)) if len(sc) > 1 else None,
        "adoption_att_pp": pp(acc["adopt_d"], acc["adopt_pm"]),
        "shock_effect_pp": pp(acc["shock_d"], acc["shock_pm"]),
        "adoption_person_months": int(acc["adopt_pm"]),
        "shock_person_months": int(acc["shock_pm"]),
        "exit_work_rate_pct": pp(ma["exits_work"].sum(), acc["pm"]),
        "n_fidelity_audits": int(len(sc)),
        "n_municipalities": len(codes),
        "n_adopters": int((mu["adoption_k"] >= 0).sum()),
        "n_park_openings": int((mu["park_k"] >= 0).sum()),
        "corr_quality_prosperity": _f(np.corrcoef(mu["quality_mu"], mu["prosperity"])[0, 1])
        if len(codes) > 2 else None,
        "local_conditions_captured_r2": _captured_r2(w),
        "params": p.to_dict(),
        "municipalities": per_muni,
        "teams": per_team,
    }


def _years(sim: Sim, i: int) -> dict[str, dict[str, Any]]:
    """Calendar-year breakdown of municipality row ``i`` (see module docstring)."""
    ya = sim.muni_year_acc
    out = {}
    for j, year in enumerate(sim.years):
        pm = ya["pm"][i, j]
        per = (lambda x, scale=100.0: _f(scale * x / pm) if pm else None)  # noqa: E731
        out[str(int(year))] = {
            "person_months": int(pm),
            "exits_work": int(ya["exits_work"][i, j]),
            "exit_work_rate_pct": per(ya["exits_work"][i, j]),
            "expected_exit_work_rate_pct": per(ya["p_work"][i, j]),
            "park_effect_pp": per(ya["park_d"][i, j]),
            "programme_effect_pp": per(ya["programme_d"][i, j]),
            "quality_mean": per(ya["q"][i, j], 1.0),
        }
    return out


def _captured_r2(w: World) -> float | None:
    """R-squared of the yearly local log-odds deviation (municipality x year, both
    demeaned) on its part that the municipal unemployment indicator sees, window years."""
    years = (w.t0 + np.arange(w.k_start, w.n_months)) // 12
    cols = [np.flatnonzero(years == y) + w.k_start for y in np.unique(years)]
    obs = np.stack([w.local_obs[:, c].mean(axis=1) for c in cols], axis=1)
    tot = obs + np.stack([w.local_unobs[:, c].mean(axis=1) for c in cols], axis=1)
    dm = lambda x: x - x.mean(axis=0) - x.mean(axis=1, keepdims=True) + x.mean()  # noqa: E731
    a, b = dm(obs).ravel(), dm(tot).ravel()
    if a.std() == 0 or b.std() == 0:
        return 0.0 if b.std() > 0 else None
    return _f(np.corrcoef(a, b)[0, 1] ** 2)


def _f(x) -> float:
    return float(np.round(float(x), 10))


def _month(w: World, k) -> str | None:
    if k < 0:
        return None
    m = int(w.t0 + k)
    return f"{m // 12:04d}-{m % 12 + 1:02d}"
