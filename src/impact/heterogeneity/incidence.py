"""Cumulative incidence of exits by client group: competing risks from person-month counts.

Three steps, each a plain function on frames or DuckDB relations (never paths):

1. :func:`incidence_counts` aggregates the person-month panel to one row per group and
   duration (months since the true start of the spell): person-months at risk, exits to
   work, to education and of any kind, and the distinct clients at risk. In DuckDB it is
   one pass, out of core (two hash aggregates that spill beyond the connection's
   ``memory_limit``, see :func:`impact.panel.connect`) and linear in person-months; a
   pandas engine gives the same table for small frames.
2. :func:`cumulative_incidence` turns the counts into the discrete-time Aalen-Johansen
   estimate of the cumulative incidence function (CIF) of each exit type, with
   delta-method standard errors and pointwise intervals.
3. :func:`suppress_incidence` applies the project's disclosure rule (``privacy.min_cell``).

Estimator
---------
Exits are competing risks: ``work``, ``education`` and ``other`` (= any exit that is not
to work or education). At duration ``d`` (0 = the start month) let ``n(d)`` be the
person-months at risk and ``e_k(d)`` the exits of type ``k``. The cause-specific discrete
hazards and the survival are::

    h_k(d) = e_k(d) / n(d),   h(d) = sum_k h_k(d) = e_any(d) / n(d)
    S(d)   = prod_{s <= d} (1 - h(s)),            S(-1) = 1
    F_k(d) = sum_{s <= d} S(s - 1) h_k(s)                      (the CIF)

``F_work + F_education + F_other = 1 - S`` at every ``d``; the row ``outcome = any`` is
``1 - S``. ``F_k(d)`` is the probability that a spell has ended by the end of month ``d``
(of its duration) with an exit of type ``k``.

Left truncation. A spell that began before the panel window enters the risk set at the
duration it has in the window's first month (``duration > 0``), so ``n(d)`` counts every
spell under observation at duration ``d``, delayed entries included. This is the standard
product-limit treatment of delayed entry; it assumes *independent* delayed entry (the
hazard at ``d`` of a spell observed from ``d`` on equals that of one observed from its
start) and independent (non-informative) censoring at the window's end. Durations
without anyone at risk are simply absent (they contribute no factor); if a group has no
one at risk at ``d = 0`` its curve is conditional on reaching its first observed duration.

Standard errors (delta method)
------------------------------
Conditional on the risk sets, the exits at each ``d`` are taken as multinomial,
``(e_1, e_2, e_3, n - e_any) ~ Mult(n(d); h_1, h_2, h_3, 1 - h)``, independently across
``d``, so ``Cov(h_j, h_l) = (h_j [j = l] - h_j h_l) / n(d)``. For a horizon ``D >= d``::

    dF_k(D)/dh_j(d) = S(d-1) [j = k] - a(d),   a(d) = (F_k(D) - F_k(d)) / (1 - h(d))

(the second term: ``h_j(d)`` lowers ``S(s-1)`` for every later ``s`` through the factor
``1 - h(d)``; it is the same for every cause ``j``). The quadratic form ``g' Cov g`` per
``d`` simplifies to::

    Var F_k(D) = sum_{d <= D} [ h_k (1 - h_k) S(d-1)^2
                                - 2 h_k S(d-1) (F_k(D) - F_k(d))
                                + h / (1 - h) (F_k(D) - F_k(d))^2 ] / n(d)

(all ``h`` at ``d``; the last term is 0 when ``h(d) = 1``, its limit). For ``k = any``
(``h_k = h``) this reduces to Greenwood's formula ``S(D)^2 sum h / ((1 - h) n)``. It is
conditional on the risk sets and treats the months of one spell, and the spells of one
client, as independent contributions -- the usual Greenwood/Aalen-type assumption; it
ignores dependence between repeated spells of one client. Intervals are Wald intervals
``F +/- z_{1-alpha/2} SE`` clipped to ``[0, 1]`` (degenerate ``[0, 0]`` where ``F = 0``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from impact.disclosure.suppress import secondary
from impact.heterogeneity.incidence_counts import (  # noqa: F401 (step 1, re-exported)
    COUNT_COLUMNS, IncidenceInputError, incidence_counts,
)

__all__ = [
    "COUNT_COLUMNS", "INCIDENCE_COLUMNS", "OUTCOMES", "IncidenceInputError",
    "incidence_counts", "cumulative_incidence", "suppress_incidence",
]

#: Columns of :func:`cumulative_incidence` (``suppressed`` added by :func:`suppress_incidence`).
INCIDENCE_COLUMNS = ("group", "duration", "outcome", "cif", "std_error", "ci_low", "ci_high",
                     "at_risk", "clients", "cum_exits", "group_clients")
#: Outcomes, in output order; ``education`` is left out when the counts have no education.
OUTCOMES = ("work", "education", "other", "any")


# --------------------------------------------------------------------------- estimator


def _delta_variance(h_k: np.ndarray, h: np.ndarray, n: np.ndarray, s_prev: np.ndarray,
                    f: np.ndarray) -> np.ndarray:
    """``Var F_k(D)`` for every ``D`` (module docstring), O(len^2) and exact in form."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_n = np.where(n > 0, 1.0 / n, 0.0)
        ratio = np.where(h < 1, h / (1 - h), 0.0)  # the term vanishes when h = 1 (F flat after)
    diff = f[:, None] - f[None, :]  # [D, d] = F(D) - F(d)
    lower = np.tril(np.ones_like(diff, dtype=bool))
    term = (h_k * (1 - h_k) * s_prev**2)[None, :] - 2 * (h_k * s_prev)[None, :] * diff \
        + ratio[None, :] * diff**2
    var = np.where(lower, term * inv_n[None, :], 0.0).sum(axis=1)
    return np.clip(var, 0.0, None)


def _check_counts(counts: pd.DataFrame) -> bool:
    need = {"group", "duration", "at_risk", "clients", "exits_work", "exits_any"}
    missing = need - set(counts.columns)
    if missing:
        raise IncidenceInputError(f"counts lack the column(s) {sorted(missing)}")
    has_edu = "exits_education" in counts.columns
    c = counts
    edu = c["exits_education"] if has_edu else 0
    if counts.duplicated(["group", "duration"]).any():
        raise IncidenceInputError("counts have a group and duration twice")
    bad = ((c["exits_work"] < 0) | (c["exits_any"] > c["at_risk"])
           | (c["exits_work"] + edu > c["exits_any"]) | (c["clients"] > c["at_risk"]))
    if has_edu:
        bad |= c["exits_education"] < 0
    if bad.any():
        raise IncidenceInputError(f"{int(bad.sum())} count row(s) are inconsistent (exits < 0, "
                                  "work + education > any, any > at_risk or clients > at_risk)")
    return has_edu


def cumulative_incidence(counts: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Discrete-time Aalen-Johansen cumulative incidence per group, with delta-method SEs.

    Parameters
    ----------
    counts
        :func:`incidence_counts` output (or the same columns from elsewhere); rows with
        ``at_risk = 0`` contribute nothing. ``group_clients`` is carried along if present.
    alpha
        Intervals are ``1 - alpha`` (default 95%), pointwise.

    Returns
    -------
    pandas.DataFrame
        :data:`INCIDENCE_COLUMNS`, one row per group, outcome (``work``, ``education``,
        ``other``, ``any``; no ``education`` without ``exits_education``) and duration,
        in that order: ``cif`` (probability, 0..1, of having left by the end of month
        ``duration`` through that outcome; ``any`` = 1 - S), ``std_error``,
        ``ci_low``/``ci_high`` (clipped to [0, 1]), ``at_risk`` and ``clients`` at that
        duration, ``cum_exits`` (exits of that outcome at durations ``<= duration``, the
        numerator behind the point), ``group_clients`` (if in ``counts``).
        See the module docstring for the estimator, its assumptions and the variance.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    has_edu = _check_counts(counts)
    z = stats.norm.ppf(1 - alpha / 2)
    outcomes = [o for o in OUTCOMES if has_edu or o != "education"]
    carry = "group_clients" in counts.columns
    pieces = []
    for group, g in counts.groupby("group", sort=False):
        g = g.sort_values("duration", kind="mergesort")
        n = g["at_risk"].to_numpy(dtype="float64")
        ev = {"work": g["exits_work"].to_numpy(dtype="float64"),
              "any": g["exits_any"].to_numpy(dtype="float64")}
        ev["education"] = (g["exits_education"].to_numpy(dtype="float64") if has_edu
                           else np.zeros(len(g)))
        ev["other"] = ev["any"] - ev["work"] - ev["education"]
        with np.errstate(divide="ignore", invalid="ignore"):
            hz = {k: np.where(n > 0, v / n, 0.0) for k, v in ev.items()}
        surv = np.cumprod(1 - hz["any"])
        s_prev = np.r_[1.0, surv[:-1]]
        for outcome in outcomes:
            cif = 1 - surv if outcome == "any" else np.cumsum(s_prev * hz[outcome])
            var = _delta_variance(hz[outcome], hz["any"], n, s_prev, cif)
            se = np.sqrt(var)
            piece = pd.DataFrame({
                "group": group, "duration": g["duration"].to_numpy(), "outcome": outcome,
                "cif": cif, "std_error": se,
                "ci_low": np.clip(cif - z * se, 0, 1), "ci_high": np.clip(cif + z * se, 0, 1),
                "at_risk": g["at_risk"].to_numpy(), "clients": g["clients"].to_numpy(),
                "cum_exits": np.cumsum(ev[outcome]).round().astype("int64"),
            })
            if carry:
                piece["group_clients"] = g["group_clients"].to_numpy()
            pieces.append(piece)
    cols = [c for c in INCIDENCE_COLUMNS if carry or c != "group_clients"]
    if not pieces:
        return pd.DataFrame(columns=cols)
    out = pd.concat(pieces, ignore_index=True)[cols]
    out["group"] = out["group"].astype(str)
    out["outcome"] = out["outcome"].astype(str)
    return out


# --------------------------------------------------------------------------- disclosure


def suppress_incidence(incidence: pd.DataFrame, min_cell: int, *,
                       secondary_outcomes: bool = True) -> pd.DataFrame:
    """Disclosure control of :func:`cumulative_incidence` output (``privacy.min_cell``).

    The project's rule is that every count and every numerator of a rate rests on at least
    ``min_cell``. Here:

    1. Groups with fewer than ``min_cell`` distinct clients overall (``group_clients``)
       are dropped entirely.
    2. A point (group, outcome, duration) is blanked when fewer than ``min_cell`` clients
       are at risk at that duration (all outcomes of that duration), or when its
       numerator, ``cum_exits`` of that outcome, is between 1 and ``min_cell - 1``.
       ``cum_exits = 0`` is published (``cif = 0``): nobody's exit is counted, and the
       statement "no exit of this type yet" rests on a risk set of at least ``min_cell``
       clients.
    3. Secondary (``secondary_outcomes``, default on): where ``any`` is published the
       three exit types add up to it (counts and CIFs alike), so one blank type could be
       recovered by subtraction; when exactly one of work/education/other is blank at a
       point, the published one with the fewest exits (the earlier in outcome order on
       ties) is blanked too (:func:`impact.disclosure.suppress.secondary`).

    Blanked points keep their row: ``cif``, ``std_error``, ``ci_low``, ``ci_high`` become
    NaN and ``at_risk``, ``clients``, ``cum_exits`` NA (nullable Int64); the new boolean
    column ``suppressed`` flags them.

    Not covered (decide at publication): differences between consecutive durations
    (``cum_exits(d) - cum_exits(d - 1)`` are the month's exits and may be small), and
    totals published in *other* tables (an overall curve beside group curves).
    """
    if isinstance(min_cell, bool) or not isinstance(min_cell, (int, np.integer)) or min_cell < 1:
        raise ValueError(f"min_cell must be an integer >= 1, got {min_cell!r}")
    if "group_clients" not in incidence.columns:
        raise IncidenceInputError("suppress_incidence needs group_clients (from incidence_counts)")
    out = incidence.loc[incidence["group_clients"] >= min_cell].reset_index(drop=True).copy()
    hide = np.array((out["clients"] < min_cell)
                    | ((out["cum_exits"] > 0) & (out["cum_exits"] < min_cell)), dtype=bool)
    if secondary_outcomes and len(out):
        parts = out["outcome"].isin(["work", "education", "other"]).to_numpy()
        key = out[["group", "duration"]].astype(str).agg("\x1f".join, axis=1).to_numpy()
        any_shown = pd.Series(~hide[(out["outcome"] == "any").to_numpy()],
                              index=key[(out["outcome"] == "any").to_numpy()])
        use = parts & any_shown.reindex(key).fillna(False).to_numpy(dtype=bool)
        idx = np.flatnonzero(use)
        # order within a point: work, education, other (rows are in that outcome order)
        rank = out["outcome"].map({"work": 0, "education": 1, "other": 2}).to_numpy()
        idx = idx[np.lexsort((rank[idx], key[idx]))]
        hide[idx] = secondary(hide[idx], key[idx],
                              out["cum_exits"].to_numpy(dtype="float64")[idx])
    for c in ("cif", "std_error", "ci_low", "ci_high"):
        out[c] = out[c].astype("float64").mask(hide)
    for c in ("at_risk", "clients", "cum_exits"):
        out[c] = out[c].astype("Int64").mask(hide)
    out["suppressed"] = hide
    return out

