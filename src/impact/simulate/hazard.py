"""Clients' covariates and the monthly competing-risks hazard.

Notes
-----
In every month at risk (the start month included, as in the data contract) a spell
ends with destination ``j`` in {work, education, moved, other} or continues, with
multinomial-logit probabilities

    P_j = exp(eta_j) / (1 + sum_l exp(eta_l)).

For exit to work

    eta_work = ALPHA_work + x'beta + theta_i - 0.025 max(age-30, 0) - 0.45 log(1+dur)
               + lp[m, k] + park[m, k] + quality_coef * quality_mean
               + c_s * (q_ck - quality_mean) + programme_direct * ramp[m, k]

with ``theta_i ~ N(0, 0.5^2)`` a client frailty that persists over repeat spells (so
observed duration dependence is partly selection), ``dur`` months since the month of the
true start date, ``q_ck`` the true quality of the client's caseworker in month ``k`` and
``c_s`` the log-odds per quality point for the spell's intake ladder step ``s``
(``simulate.quality_coef_ladder``; ``quality_coef`` for steps it does not list and for an
unrecorded step). The quality term is anchored at ``quality_mean``: at the mean quality
every step has the log-odds of the homogeneous model, so the calibration and the ladder
main effects hold whatever the slopes; with ``c_s = quality_coef`` the term is exactly
``quality_coef * q_ck``. Only the intake step enters: the ladder steps a spell climbs at
its reviews (the ``progress`` table, :mod:`.progress`) do not feed back into any exit.

For exit to education

    eta_education = ALPHA_edu - 0.12 max(age-22, 0) - 0.2 log(1+dur)
                    + education_quality_coef * (q_ck - quality_mean)

so quality (and the programme, through the quality it adds) moves exit to education too;
the exits moved and other depend on age, household and duration only. The labour market,
business parks and the programme's direct effect move exit to work alone. A
counterfactual in quality (one point higher, or without the programme) shifts every eta
that depends on quality, so it changes the education term in the denominator of
``P_work`` as well. Intercepts are calibrated so that the 2016-17 outflow to work per client
matches the CBS municipal figures and the stock and total outflow come near them (in benefit
units, as the data contract counts clients; see :mod:`impact.simulate.reference`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["SEX", "EDUCATION", "HOUSEHOLD", "EXITS", "draw_clients", "draw_ladder",
           "draw_ladder_step", "static_work", "dynamic_work", "other_etas", "probabilities",
           "logistic"]

SEX = np.array(["F", "M", "X", "unknown"], dtype=object)
EDUCATION = np.array(["low", "medium", "high", "unknown"], dtype=object)
HOUSEHOLD = np.array(["single", "single_parent", "couple", "couple_children", "other", "unknown"],
                     dtype=object)
EXITS = np.array([None, "work", "education", "moved", "other"], dtype=object)

_P_SEX = [0.52, 0.472, 0.003, 0.005]
_P_EDU = [0.48, 0.32, 0.10, 0.10]
_P_HH = [0.55, 0.19, 0.08, 0.11, 0.04, 0.03]

ALPHA_WORK = -3.2
ALPHA_EDU = -5.9
ALPHA_MOVED = -5.4
ALPHA_OTHER = -4.75
_B_SEX = np.array([-0.10, 0.0, 0.0, 0.0])
_B_EDU = np.array([-0.30, 0.0, 0.30, -0.10])
_B_HH = np.array([0.0, -0.30, 0.05, -0.10, 0.0, 0.0])
_B_LADDER = np.array([0.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5])  # index 0 = missing
_B_PRIOR = -0.006
FRAILTY_SD = 0.5


def draw_clients(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Time-invariant client traits: age at (first) intake, sex, education, household,
    frailty (codes index :data:`SEX`, :data:`EDUCATION`, :data:`HOUSEHOLD`)."""
    age = np.clip(np.round(18 + rng.gamma(2.2, 8.5, n)), 18, 70).astype(np.int64)
    return {
        "age": age,
        "sex": rng.choice(4, n, p=_P_SEX).astype(np.int8),
        "edu": rng.choice(4, n, p=_P_EDU).astype(np.int8),
        "hh": rng.choice(6, n, p=_P_HH).astype(np.int8),
        "frailty": rng.normal(0, FRAILTY_SD, n),
    }


def draw_ladder_step(rng: np.random.Generator, edu: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Participation-ladder step 1..6 (never 0), given education code and age."""
    edu_score = np.array([-0.5, 0.0, 0.6, -0.3])[edu]
    z = 3.1 + edu_score - 0.02 * (age - 40) + rng.normal(0, 1.1, len(edu))
    return np.clip(np.round(z), 1, 6).astype(np.int8)


def draw_ladder(rng: np.random.Generator, edu: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Participation-ladder step 1..6 at intake (0 = not recorded, 4%)."""
    step = draw_ladder_step(rng, edu, age)
    step[rng.random(len(edu)) < 0.04] = 0
    return step


def draw_prior(rng: np.random.Generator, n: int) -> np.ndarray:
    """Months on benefit in the five years before a first spell (55% none)."""
    return np.where(rng.random(n) < 0.55, 0, rng.integers(1, 61, n)).astype(np.int64)


def static_work(sex, edu, hh, ladder, prior, frailty) -> np.ndarray:
    """The time-invariant part of the exit-to-work log-odds of a spell."""
    return (ALPHA_WORK + _B_SEX[sex] + _B_EDU[edu] + _B_HH[hh] + _B_LADDER[ladder]
            + _B_PRIOR * prior + frailty)


def dynamic_work(age: np.ndarray, dur: np.ndarray) -> np.ndarray:
    """Age and duration terms of the exit-to-work log-odds."""
    return -0.025 * np.maximum(age - 30, 0) - 0.45 * np.log1p(dur)


def other_etas(age: np.ndarray, dur: np.ndarray, hh: np.ndarray) -> tuple[np.ndarray, ...]:
    """Log-odds of exit to education, moved, other (education without its quality term,
    which the engine adds)."""
    ld = np.log1p(dur)
    edu = ALPHA_EDU - 0.12 * np.maximum(age - 22, 0) - 0.2 * ld
    moved = ALPHA_MOVED - 0.03 * np.maximum(age - 25, 0) - 0.15 * ld
    other = (ALPHA_OTHER + 0.02 * np.maximum(age - 40, 0) + 3.0 * (age >= 67)
             + 0.3 * ((hh == 2) | (hh == 3)) - 0.15 * ld)
    return edu, moved, other


def probabilities(eta_w: np.ndarray, denom_other: np.ndarray) -> np.ndarray:
    """Exit-to-work probability given its log-odds and ``1 + sum exp(other etas)``."""
    e = np.exp(eta_w)
    return e / (denom_other + e)


def logistic(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))``."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))
