"""The planted truth, as the data contract's estimands define it.

All effects are means over the person-months the pipeline builds from the tables (a
spell at risk from the month of ``start_date`` to the month of ``end_date`` or the window
end, clipped to the window) of model probabilities (:mod:`.hazard`), in percentage
points. ``P_j(.)`` is the multinomial-logit probability of exit ``j`` in the month,
``P_any = 1 - P(stay) = sum_j P_j``. A counterfactual shifts every eta that depends on
what it changes, so the competing terms of the denominator move with it:
``P_j(q + 1) = exp(eta_j(q + 1)) / (1 + sum_l exp(eta_l(q + 1)))``, where one quality
point adds the spell's own coefficient ``c_s`` (``quality_coef_ladder`` of its intake
step, else ``quality_coef``) to ``eta_work`` and ``education_quality_coef`` to
``eta_education``.

- ``quality_effect_pp``: mean of ``P_work(q + 1) - P_work(q)``, ``q`` the true quality of
  that month's caseworker, client, labour market and shocks equal.
- ``quality_effect_education_pp``, ``quality_effect_any_pp``: the same for
  ``P_education`` and ``P_any``.
- ``reliability``: ``var(true quality) / var(score)`` over the ``fidelity_audit`` scores
  dated in the window (a sample quantity).
- ``adoption_att_pp``: mean over adopting municipalities' person-months from their
  adoption month on of ``P_work - P_work(no programme)`` (no quality lift, which also
  leaves ``eta_education`` without it, and no direct effect).
- ``adoption_att_education_pp``, ``adoption_att_any_pp``: the same for ``P_education``
  and ``P_any`` over the same person-months.
- ``shock_effect_pp``: mean over person-months in months 0..11 after a
  ``business_park_opening`` in the client's municipality of ``P_work - P_work(no
  opening)``.

``heterogeneity`` breaks the quality and adoption effects down by client group at the
finest level, so that the truth of any grouping follows by summing:
``heterogeneity[block][dimension][level]`` with ``block`` ``quality`` (all window
person-months) or ``adoption`` (the person-months of ``adoption_att_pp``), ``dimension``
one of ``ladder_step`` (intake step, ``"0"`` = unrecorded, ``"1"``..``"6"``), ``age``
(calendar year of the month minus ``birth_year``, the panel's ``age``), ``sex``,
``education_level``, ``household`` (contract labels), ``duration`` (months since the
month of the true start date, the panel's ``duration``, also for left-truncated spells)
and ``prior_benefit_months``; numeric levels are decimal strings. Each level present in
the block's person-months (levels without any are left out) holds ``person_months``
(int) and ``work_pp_sum``, ``education_pp_sum``, ``any_pp_sum``: sums over those
person-months of ``100 (P_j(counterfactual) - P_j(actual))`` (quality: ``q + 1``;
adoption: actual minus no programme, so both are the effects' signs). ``work_pp_sum /
person_months`` is the group's effect in pp, and the sums over all levels of any dimension
are ``n * quality_effect_pp`` (``n_person_months``) and ``adoption_person_months *
adoption_att_pp`` (likewise for education and any exit). :func:`group_effect` gives the
effect of a union of levels.

``progress`` (``None`` when ``simulate.progress`` is false) mirrors what the pipeline
estimates from the ``progress`` table (model in :mod:`.progress`). A *written review* is
one with rows in the table (review month ``>= window start - progress_review_months``, of
a spell in ``trajectories``). An *outcome review* is a written review in a window month
with a recorded baseline: the spell's previous review is written, or, for its first
review, the intake ladder step is recorded in ``trajectories``. Outcomes:
``ladder_step_up`` (1 if the step rose at the review; only outcome reviews whose baseline
step, the previous written ``ladder_step`` or the recorded intake step, is below 6) and
``goal_reached`` (the recorded value; all outcome reviews). Per outcome:

- ``quality_effect_pp``: mean over its outcome reviews of ``100 (P(qbar + 1) - P(qbar))``
  (``qbar`` the mean true quality over the review's interval, ramp as realised);
- ``adoption_att_pp``: mean over its outcome reviews in adopting municipalities with
  review month ``>=`` the adoption month of ``100 (P(qbar, rampbar) - P(qbar0, 0))``
  (``qbar0`` the interval's mean quality without the programme's lift);
- ``n_reviews``, ``n_adoption_reviews``: the reviews those two means run over;
- ``rate_pct``: the realised outcome rate (x100) over its outcome reviews;
- ``expected_rate_pct``: the mean model probability (x100) over them.

Beside the outcomes: ``review_months``, ``n_written_reviews`` (reviews written, each two
rows), ``n_outcome_reviews``.

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

from typing import Any, Iterable

import numpy as np

from . import hazard as hz
from .accumulate import GROUP_DIMS
from .engine import Sim
from .params import SimulateParams
from .progress import progress_truth
from .tables import kept_spells
from .world import World

__all__ = ["build_truth", "group_effect", "GROUP_BLOCKS", "GROUP_OUTCOMES"]

GROUP_BLOCKS = ("quality", "adoption")
GROUP_OUTCOMES = ("work", "education", "any")
_LABELS = {"sex": hz.SEX, "education_level": hz.EDUCATION, "household": hz.HOUSEHOLD}


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
    kept = kept_spells(sim, w)
    return {
        "window": {"start": p.start, "end": p.end},
        "n_spells": int(len(kept)),
        "n_person_months": int(acc["pm"]),
        "quality_effect_pp": pp(acc["dq"], acc["pm"]),
        "quality_effect_education_pp": pp(acc["dq_edu"], acc["pm"]),
        "quality_effect_any_pp": pp(acc["dq_any"], acc["pm"]),
        "reliability": _f(np.var(tq) / np.var(sc)) if len(sc) > 1 else None,
        "adoption_att_pp": pp(acc["adopt_d"], acc["adopt_pm"]),
        "adoption_att_education_pp": pp(acc["adopt_d_edu"], acc["adopt_pm"]),
        "adoption_att_any_pp": pp(acc["adopt_d_any"], acc["adopt_pm"]),
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
        "heterogeneity": _heterogeneity(sim),
        "progress": _progress(sim, w, p, kept),
    }


def group_effect(truth: dict, block: str, dimension: str, levels: Iterable[str],
                 outcome: str = "work") -> float:
    """The planted effect (pp) of a union of levels of one grouping dimension.

    Parameters
    ----------
    truth : dict
        A truth dict (as built, or read back from ``truth.json``).
    block : str
        ``quality`` (one quality point more) or ``adoption`` (the programme's ATT).
    dimension : str
        A key of ``truth["heterogeneity"][block]``, e.g. ``ladder_step`` or ``age``.
    levels : iterable of str
        Levels of that dimension (numbers may be given as ints; they are compared as
        strings). Levels without person-months in the block contribute nothing.
    outcome : str
        ``work``, ``education`` or ``any``.

    Returns
    -------
    float
        ``sum of <outcome>_pp_sum / sum of person_months`` over the levels; NaN when they
        have no person-months.

    Raises
    ------
    ValueError
        For an unknown block, dimension or outcome.
    """
    het = truth.get("heterogeneity") or {}
    if block not in GROUP_BLOCKS:
        raise ValueError(f"group_effect: block {block!r}; allowed: {', '.join(GROUP_BLOCKS)}")
    if outcome not in GROUP_OUTCOMES:
        raise ValueError(f"group_effect: outcome {outcome!r}; allowed: {', '.join(GROUP_OUTCOMES)}")
    dims = het.get(block, {})
    if dimension not in dims:
        raise ValueError(f"group_effect: dimension {dimension!r}; allowed: {', '.join(GROUP_DIMS)}")
    cells = dims[dimension]
    chosen = [cells[str(x)] for x in dict.fromkeys(str(v) for v in levels) if str(x) in cells]
    pm = sum(c["person_months"] for c in chosen)
    if not pm:
        return float("nan")
    return float(sum(c[f"{outcome}_pp_sum"] for c in chosen) / pm)


def _heterogeneity(sim: Sim) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """``heterogeneity`` of the truth (see module docstring) from the engine's sums."""
    out: dict[str, dict] = {}
    for block in GROUP_BLOCKS:
        out[block] = {}
        for dim in GROUP_DIMS:
            sums = sim.groups[block][dim]
            labels = _LABELS.get(dim)
            cells = {}
            for code in np.flatnonzero(sums[0] > 0):
                level = str(labels[code]) if labels is not None else str(int(code))
                cells[level] = {"person_months": int(round(sums[0, code])),
                                "work_pp_sum": _f(100 * sums[1, code]),
                                "education_pp_sum": _f(100 * sums[2, code]),
                                "any_pp_sum": _f(100 * sums[3, code])}
            out[block][dim] = cells
    return out


def _progress(sim: Sim, w: World, p: SimulateParams, kept: np.ndarray) -> dict[str, Any] | None:
    """``progress`` of the truth (see module docstring): the written reviews of kept spells."""
    if not p.progress:
        return None
    rev = sim.reviews
    is_kept = np.zeros(len(sim.spells["start"]), dtype=bool)
    is_kept[kept] = True
    sel = is_kept[rev["spell"].astype(np.int64)] if len(rev["spell"]) else np.zeros(0, bool)
    rev = {k: v[sel] for k, v in rev.items()}
    spell = rev["spell"].astype(np.int64)
    intake_recorded = sim.spells["ladder"][spell] > 0
    adopt_k = w.munis["adoption_k"].to_numpy()[sim.spells["muni"][spell]]
    return progress_truth(rev, intake_recorded, adopt_k, w.k_start, p)


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
