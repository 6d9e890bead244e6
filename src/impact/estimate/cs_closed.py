"""Callaway-Sant'Anna (2021) without covariates, in closed form.

The adoption alternatives (``alternatives._cs``) estimate Callaway-Sant'Anna on a
balanced unit x month panel with no covariates, no sampling weights, the varying base
period, no anticipation and analytic errors, aggregated "simple" and "dynamic". In that
case every group-time effect is a difference of means,

    ATT(g,t) = mean(Y_t - Y_b | G = g) - mean(Y_t - Y_b | control at t),

with b = g - 1 after adoption (the last period before g) and b = t - 1 before it, and its
influence function, per unit i of the n units, is

    psi_i = n [1{G_i = g} (dY_i - m_T) / n_T - 1{i control} (dY_i - m_C) / n_C]

(the regression estimator of Sant'Anna & Zhao (2020) with an intercept only, as R ``did``
and moderndid rescale it: ``n / n_cell * att.inf.func``). Controls at t are the never
treated (``nevertreated``) or the units adopting after t, the cohort itself excluded
(``notyettreated``). The aggregations follow R ``did``'s ``aggte``: cohort-share weights
P(G = g) and the term for their estimation (``wif``); "dynamic" averages by event time
e = t - g, its overall effect the mean over e >= 0. Standard errors are
sqrt(mean(psi^2) / n), and below sqrt(eps) * 10 missing, as there.

This is what ``moderndid.att_gt(est_method="reg", base_period="varying", boot=False)``
and ``moderndid.aggte`` compute for such a panel, down to its preparation: ``gname`` 0
or after the last period is never treated, units treated in the first period are
dropped, without never-treated units the not-yet-treated comparison keeps the periods
before the last cohort's, and never-treated controls need 5 units.
``tests/estimate/test_cs_closed.py`` checks every number against moderndid (to 1e-9)
and the recovery of a known effect. Why not moderndid itself: it fits each of the
~10,000 national cells (342 municipalities x 120 months) by a regression and then
computes the covariance of all of them and a Wald pre-test of parallel trends (an SVD
of its pre-period block) that nothing here reports: 93 s a control group, 57 of them
the pre-test. Here: one array operation per cohort, well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from impact.estimate.did import DidInputError

__all__ = ["CSAggregate", "callaway_santanna"]

#: R ``did`` / moderndid report a standard error at or below this as missing
_TINY = np.sqrt(np.finfo(float).eps) * 10
#: never-treated controls need this many units (R ``did``, moderndid: 5 + covariates)
_MIN_NEVER = 5


@dataclass(frozen=True)
class CSAggregate:
    """One aggregation, with the attribute names of moderndid's ``AGGTEResult`` that
    ``did._rows`` reads (``event_times`` and the by-event arrays empty for "simple")."""

    overall_att: float
    overall_se: float
    event_times: np.ndarray
    att_by_event: np.ndarray
    se_by_event: np.ndarray


def _se(psi: np.ndarray, n: int) -> np.ndarray:
    se = np.sqrt(np.mean(psi ** 2, axis=0) / n)
    return np.where(se <= _TINY, np.nan, se)


def _wide(data: pd.DataFrame, yname: str, tname: str, idname: str, gname: str,
          control_group: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outcome matrix (units x periods), the units' cohorts (inf: never) and the periods,
    after moderndid's preparation (see the module docstring)."""
    t_all = data[tname].to_numpy(float)
    periods = np.unique(t_all)
    g = data[gname].to_numpy(float)
    g = np.where((g == 0) | (g > periods[-1]), np.inf, g)
    keep = g > periods[0]                            # treated in the first period: dropped
    if not np.isinf(g[keep]).any():
        if control_group == "nevertreated":
            raise DidInputError("no never-treated units (gname == 0)")
        if keep.any():                               # not yet treated: before the last
            keep &= t_all < g[keep].max()            # cohort (every kept g is finite)
    units, u = np.unique(data[idname].to_numpy()[keep], return_inverse=True)
    periods, p = np.unique(t_all[keep], return_inverse=True)
    if len(periods) < 2:
        raise DidInputError("fewer than two periods to compare")
    y = np.full((len(units), len(periods)), np.nan)
    y[u, p] = data[yname].to_numpy(float)[keep]
    cohort = np.full(len(units), np.nan)
    cohort[u] = g[keep]
    complete = ~np.isnan(y).any(axis=1)              # balanced: units seen every period
    y, cohort = y[complete], cohort[complete]
    if not np.isfinite(cohort).any():
        raise DidInputError("no treated units")
    if control_group == "nevertreated" and np.isinf(cohort).sum() < _MIN_NEVER:
        raise DidInputError(f"never-treated group too small ({int(np.isinf(cohort).sum())} "
                            f"units, fewer than {_MIN_NEVER}); use not-yet-treated controls")
    return y, cohort, periods


def _group_time(y: np.ndarray, cohort: np.ndarray, periods: np.ndarray, control_group: str
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every estimable ATT(g,t): cohorts, periods, estimates and influence functions
    (units x cells), cohort by cohort, periods in order."""
    n = len(cohort)
    groups, times, atts, psis = [], [], [], []
    t = periods[1:]
    for g in np.unique(cohort[np.isfinite(cohort)]):
        treated = cohort == g
        last_pre = np.flatnonzero(periods < g)[-1]
        base = np.where(g <= t, last_pre, np.arange(len(t)))      # varying base period
        dy = y[:, 1:] - y[:, base]
        if control_group == "nevertreated":
            control = np.broadcast_to(np.isinf(cohort)[:, None], dy.shape)
        else:
            control = (cohort[:, None] > t[None, :]) & ~treated[:, None]
        n_c = control.sum(axis=0)
        ok = n_c > 0                                   # a cell needs controls
        dy, control, n_c = dy[:, ok], control[:, ok], n_c[ok]
        n_t = int(treated.sum())
        m_t = dy[treated].mean(axis=0)
        m_c = np.where(control, dy, 0.0).sum(axis=0) / n_c
        psi = n * (treated[:, None] * (dy - m_t) / n_t - control * (dy - m_c) / n_c)
        groups.append(np.full(ok.sum(), g))
        times.append(t[ok])
        atts.append(m_t - m_c)
        psis.append(psi)
    return (np.concatenate(groups), np.concatenate(times), np.concatenate(atts),
            np.hstack(psis))


def _aggregate(att: np.ndarray, psi: np.ndarray, cells: np.ndarray, cohort: np.ndarray,
               groups: np.ndarray, share: dict[float, float]) -> tuple[float, np.ndarray]:
    """Cohort-share weighted mean of the ATT(g,t) in ``cells`` and its influence function,
    with the term for the estimated shares (R ``did``: ``wif``)."""
    g = groups[cells]
    pg = np.array([share[v] for v in g])
    total = pg.sum()
    a = att[cells]
    member = (cohort[:, None] == g[None, :]).astype(float)        # units x cells
    wif = (member - pg) / total - np.outer((member - pg).sum(axis=1), pg) / total ** 2
    return float(a @ (pg / total)), psi[:, cells] @ (pg / total) + wif @ a


def callaway_santanna(data: pd.DataFrame, *, yname: str, tname: str, idname: str,
                      gname: str, control_group: str) -> dict[str, CSAggregate]:
    """The "simple" and "dynamic" aggregations of Callaway-Sant'Anna on a long panel.

    Parameters
    ----------
    data
        One row per unit and period, no missing values (``did._check_panel``).
    yname, tname, idname, gname
        Outcome, period (numeric), unit and first treated period (0: never).
    control_group
        ``"nevertreated"`` or ``"notyettreated"``.

    Returns
    -------
    dict
        ``{"simple": CSAggregate, "dynamic": CSAggregate}``.

    Raises
    ------
    DidInputError
        No never-treated units (or fewer than 5) for never-treated controls, no treated
        units, fewer than two periods, or no group-time effect with controls.
    """
    if control_group not in ("nevertreated", "notyettreated"):
        raise DidInputError(f"control_group={control_group!r} is not supported")
    y, cohort, periods = _wide(data, yname, tname, idname, gname, control_group)
    n = len(cohort)
    groups, times, att, psi = _group_time(y, cohort, periods, control_group)
    if not len(att):
        raise DidInputError("no group-time effect has control units")
    share = {g: float(np.mean(cohort == g)) for g in np.unique(groups)}
    empty = np.array([])
    overall, psi_s = _aggregate(att, psi, groups <= times, cohort, groups, share)
    simple = CSAggregate(overall, float(_se(psi_s[:, None], n)[0]), empty, empty, empty)
    event = times - groups
    e_all = np.unique(event)
    by_e = [_aggregate(att, psi, event == e, cohort, groups, share) for e in e_all]
    att_e = np.array([a for a, _ in by_e])
    psi_e = np.column_stack([p for _, p in by_e])
    post = e_all >= 0
    if post.any():
        att_d = float(np.nanmean(att_e[post]))
        se_d = float(_se((psi_e[:, post] @ np.full(post.sum(), 1 / post.sum()))[:, None], n)[0])
    else:
        att_d = se_d = np.nan
    dynamic = CSAggregate(att_d, se_d, e_all, att_e, _se(psi_e, n))
    return {"simple": simple, "dynamic": dynamic}
