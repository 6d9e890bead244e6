"""Intermediate results: the participation ladder and personal goals at periodic reviews.

Notes
-----
Every spell has a current participation-ladder step ``L``: its intake step, or for an
unrecorded intake step (``ladder_step`` null in ``trajectories``) a hidden step drawn the
way :func:`.hazard.draw_ladder_step` draws intake steps (never 0). A *review* happens in
every month ``k`` in which the spell is at risk (the exit month included; the review is
decided before the month's exit draw) and whose duration ``k - start month`` is a positive
multiple of ``R = progress_review_months``. The review's *interval* is the spell's months
after the previous review's month (from the start month for the first review) up to and
including the review month; over it

- ``qbar``: mean true quality of the spell's caseworker (programme lift included),
- ``rampbar``: mean programme ramp (0..1) of the spell's municipality,
- ``qbar0``: mean of ``q - programme_quality_lift * ramp`` (quality without the programme).

(For spells of the initial stock only the simulated months count; they lie in the burn-in,
long before any recorded review unless ``12 * burn_in_years < 2 R``.) At the review

- if ``L < 6``, ``L`` rises by one with probability ``logistic(ladder_up_base +
  ladder_up_quality * qbar + ladder_up_programme * rampbar - 0.15 (L - 3))``;
- ``goal_reached`` is 1 with probability ``logistic(goal_base + goal_quality * qbar +
  goal_programme * rampbar)``, else 0.

A review in month ``k >= window start - R`` writes two rows of the ``progress`` table:
``ladder_step`` (``L`` after the review, also when it is 6) and ``goal_reached`` (0/1),
dated on a day of the review month (not after the spell's end date). Earlier reviews are
not written. The ladder process does not feed back into the exits: the hazard keeps the
intake step (:mod:`.hazard`).

:func:`outcome_reviews` marks what the pipeline can estimate from the written tables (the
definitions of the truth in :mod:`.truth`).
"""

from __future__ import annotations

import numpy as np

from .hazard import logistic
from .params import SimulateParams

__all__ = ["STEP_SLOPE", "up_logit", "goal_logit", "outcome_reviews", "progress_truth"]

#: log-odds of a step up per ladder step above 3 (higher steps climb less easily)
STEP_SLOPE = -0.15


def up_logit(p: SimulateParams, qbar, rampbar, step) -> np.ndarray:
    """Log-odds of a step up at a review from step ``step`` (< 6)."""
    return (p.ladder_up_base + p.ladder_up_quality * np.asarray(qbar)
            + p.ladder_up_programme * np.asarray(rampbar) + STEP_SLOPE * (np.asarray(step) - 3))


def goal_logit(p: SimulateParams, qbar, rampbar) -> np.ndarray:
    """Log-odds of ``goal_reached = 1`` at a review."""
    return p.goal_base + p.goal_quality * np.asarray(qbar) + p.goal_programme * np.asarray(rampbar)


def outcome_reviews(rev: dict[str, np.ndarray], intake_recorded: np.ndarray, k_start: int,
                    review_months: int) -> np.ndarray:
    """Which written reviews are outcome reviews.

    Parameters
    ----------
    rev : dict of arrays
        The written reviews (one entry per review, not per row): ``spell`` (any integer
        key of the spell), ``k`` (month index), ``dur`` (months since the start month).
    intake_recorded : bool array
        Per review: the spell's intake ladder step is recorded in ``trajectories``.
    k_start : int
        Month index of the window start.
    review_months : int

    Returns
    -------
    bool array
        A review in a window month (``k >= k_start``) with a recorded baseline: the
        spell's previous review is written, or, for its first review (``dur == R``), the
        intake step is recorded.
    """
    spell, k, dur = (np.asarray(rev[c], dtype=np.int64) for c in ("spell", "k", "dur"))
    if len(k) == 0:
        return np.zeros(0, dtype=bool)
    span = int(k.max()) + review_months + 1
    key = spell * span + k
    sorted_key = np.sort(key)
    at = np.minimum(np.searchsorted(sorted_key, key - review_months), len(key) - 1)
    prev_written = sorted_key[at] == key - review_months
    first = dur == review_months
    return (k >= k_start) & np.where(first, intake_recorded, (dur > review_months) & prev_written)


def progress_truth(rev: dict[str, np.ndarray], intake_recorded: np.ndarray,
                   adopt_k_of_review: np.ndarray, k_start: int, p: SimulateParams) -> dict:
    """The ``progress`` block of the truth (see :mod:`.truth`) from the written reviews.

    ``rev`` holds per written review ``spell, k, dur, before, after, goal, qbar, rbar,
    q0bar``; ``adopt_k_of_review`` the adoption month index of the review's municipality
    (-1 = never).
    """
    R = p.progress_review_months
    out_rev = outcome_reviews(rev, intake_recorded, k_start, R)
    before, after = rev["before"].astype(np.int64), rev["after"].astype(np.int64)
    qbar, rbar, q0bar = rev["qbar"], rev["rbar"], rev["q0bar"]
    adopted = (adopt_k_of_review >= 0) & (rev["k"] >= adopt_k_of_review)
    res = {"review_months": R, "n_written_reviews": int(len(before)),
           "n_outcome_reviews": int(out_rev.sum())}
    specs = {
        "ladder_step_up": (out_rev & (before < 6), (after > before).astype(float),
                           lambda q, r: logistic(up_logit(p, q, r, before))),
        "goal_reached": (out_rev, rev["goal"].astype(float),
                         lambda q, r: logistic(goal_logit(p, q, r))),
    }
    for name, (sel, y, prob) in specs.items():
        p_act = prob(qbar, rbar)
        d_q = prob(qbar + 1.0, rbar) - p_act
        d_a = p_act - prob(q0bar, np.zeros_like(rbar))
        a = sel & adopted
        n, na = int(sel.sum()), int(a.sum())
        res[name] = {
            "quality_effect_pp": _pp(d_q[sel].sum(), n),
            "adoption_att_pp": _pp(d_a[a].sum(), na),
            "n_reviews": n,
            "n_adoption_reviews": na,
            "rate_pct": _pp(y[sel].sum(), n),
            "expected_rate_pct": _pp(p_act[sel].sum(), n),
        }
    return res


def _pp(num: float, den: int) -> float | None:
    return float(np.round(100.0 * float(num) / den, 10)) if den else None
