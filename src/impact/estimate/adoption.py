"""Staggered programme adoption: the imputation estimator, its event study and pre-trend test.

Notes
-----
Borusyak, Jaravel and Spiess (2024, *Review of Economic Studies* 91(6), "Revisiting event
study designs"). On adopting-unit x month cells with outcome Y = 100 * exits_work /
person_months and weight p = person_months:

1. Fit Y(0) on untreated cells Omega_0 (never adopted, or more than
   ``anticipation_months`` before adoption) by WLS:
   ``Y = a_unit + g_region,month + X'b + sum_e d_e S_e + u``, X the composition means of
   cells.parquet and the municipal labour-market indicators (``lm_*_muni``; the
   programme does not move a municipality's unemployment rate, and local labour-market
   luck is what must not be credited to it), S_e the number of ``shock.type`` events in
   the municipality at event time e (pooled over events), so a shock near adoption is
   not credited to it.
2. Impute Y(0) on adopted cells (month >= adoption month) and on anticipation cells;
   tau_it = Y_it - Yhat_it(0). A cell whose region-month has no untreated cell (every
   unit of the region adopted) is imputed from the same model with calendar-month
   instead of region x month effects, so the ATT still covers all adopted person-months
   (counted in ``n_fallback_cells``).
3. ATT = sum p tau / sum p over adopted cells (person-month weights, the contract's
   estimand); event-time and cohort paths likewise.

Variance: BJS Theorem 3 conservative clustered variance, sum_c (sum_{it in c} v_it e_it)^2
with v_it the estimator's implied weights (untreated: -p Z0 (Z0'P Z0)^- Z1'w) and, on
treated cells, e_it = tau_it - taubar, taubar the eq. (8) cluster-weighted mean of tau
within the cell's event time, leaving out its own cluster (did_imputation's ``leaveout``).
Small-sample factors as CRV1 (see ``imputation``); intervals use t(G-1).

Pre-trends: BJS Test 1 — on Omega_0 add dummies for 3-month bins of event time
-pretrend_months .. -1-anticipation, CRV1 Wald F(q, G-1) (bins keep q well below the
number of clusters, so the clustered covariance is not near-singular). Plain TWFE
(``adopted`` on the same controls and fixed effects, pyfixest, CRV1) is reported beside
it: biased under staggered timing with dynamic effects (Goodman-Bacon 2021), shown for
comparison only.

Team-level adoption: when the adoption table has team rows, the unit is the team (the
rest of a municipality forms its own unit); clusters stay municipalities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from impact.estimate.frames import (
    UnitRows, adoption_months, composition_controls, event_dummies, lm_controls, month_index,
    rate_pp, unit_cells, warn,
)
from impact.estimate.imputation import Imputation, aggregate, impute, wild_parts
from impact.estimate.inference import wants_wild, with_wild
from impact.estimate.linalg import build_design, crv1_vcov, wald_f, wls_fit
from impact.estimate.naive import naive_before_after
from impact.estimate.params import EstimateParams
from impact.estimate.results import row

__all__ = ["AdoptionImputation", "adoption_cells", "estimate_adoption", "impute_adoption",
           "with_adoption_month"]

_EST = "imputation (Borusyak-Jaravel-Spiess 2024), own WLS"
_VCOV = "BJS Thm3 conservative, leave-out eq.8 by event time, cluster={c}, CRV1-style ssc; t(G-1)"


def adoption_cells(cells: pd.DataFrame | None, person_months: pd.DataFrame | None,
                   adoption: pd.DataFrame | None, programme: str,
                   by: dict[str, np.ndarray] | None = None,
                   counts: tuple[str, ...] = ("exit_work",),
                   rows: UnitRows | None = None) -> pd.DataFrame | None:
    """Unit x month cells with ``g`` (adoption month index, NaN = never); None if no rows.

    With ``by`` (extra keys per person-month, e.g. a client group) or team-level adoption
    the cells are built from ``person_months`` (``frames.unit_cells``, summing ``counts``),
    else taken from the panel's municipality-month ``cells``. ``rows``: the person-months'
    ``frames.unit_rows`` if already built (for several ``by`` in turn).
    """
    muni_t, team_t = adoption_months(adoption, programme)
    if not muni_t and not team_t:
        return None
    if team_t or by is not None:
        if person_months is None:
            raise ValueError("team-level adoption and group cells need person_months")
        frame = unit_cells(person_months, set(team_t), by=by, counts=counts, rows=rows)
        return with_adoption_month(frame, muni_t, team_t)
    frame = cells.copy()
    frame["unit"] = frame["municipality"].astype(str)
    if "t" not in frame:
        frame["t"] = month_index(frame["month"]).astype("int64")
    return _finish(frame, frame["unit"].map(muni_t))


def with_adoption_month(frame: pd.DataFrame, muni_t: dict, team_t: dict) -> pd.DataFrame:
    """Unit x month cells of ``frames.unit_cells`` with ``g``, the unit's adoption month
    index (a team's own, else its municipality's), as ``adoption_cells`` returns them."""
    is_team = frame["unit"].str.startswith("team:")
    g = np.where(is_team, frame["unit"].str[5:].map(team_t), frame["municipality"].map(muni_t))
    return _finish(frame, g)


def _finish(frame: pd.DataFrame, g) -> pd.DataFrame:
    frame["g"] = pd.to_numeric(pd.Series(g, index=frame.index), errors="coerce").astype(float)
    counted = ["person_months", *(c for c in frame.columns if c.startswith("exits_"))]
    for c in counted:  # never sum or scale small integer types
        frame[c] = pd.to_numeric(frame[c]).astype("float64")
    frame = frame[frame["person_months"] > 0].reset_index(drop=True)
    for c in ("municipality", "region", "unit"):
        frame[c] = frame[c].astype(str)
    return frame


def _twfe(frame: pd.DataFrame, xcols: list[str], cluster: str) -> tuple[float, float]:
    """Plain TWFE ``adopted`` coefficient: WLS with unit and region-month effects, CRV1.

    Solved directly (sparse normal equations, ``linalg.wls_fit``) rather than by
    pyfixest's iterative demeaning, whose last digits vary between runs; the two agree
    to 1e-6 (tests/estimate/test_estimate_reference.py checks our WLS/CRV1 against
    pyfixest with the same fixest small-sample convention).
    """
    design = build_design(frame, ["unit", "regmonth"], ["adopted"] + list(xcols))
    w = frame["person_months"].to_numpy(dtype="float64")
    fit = wls_fit(design, frame["y"].to_numpy(dtype="float64"), w)
    col = design.x_index("adopted")
    V, _, _ = crv1_vcov(design, fit, w, frame[cluster].to_numpy(), [col])
    return float(fit.coef[col]), float(np.sqrt(V[0, 0]))


@dataclass(frozen=True)
class AdoptionImputation:
    """The imputation step of the adoption model on unit cells (``impute_adoption``).

    ``frame`` the cells with ``y`` (pp), ``regmonth``, ``adopted`` and the shock columns;
    ``p`` weights; ``rel`` = t - g; masks ``treated``, ``antic``, ``untreated``; ``xcols``
    the controls; ``imputation`` None when no cell could be imputed.
    """

    frame: pd.DataFrame
    p: np.ndarray
    rel: np.ndarray
    treated: np.ndarray
    antic: np.ndarray
    untreated: np.ndarray
    xcols: list[str]
    imputation: Imputation | None


def impute_adoption(frame: pd.DataFrame, events: pd.DataFrame, params: EstimateParams,
                    time_effects: str = "region_month", controls: bool = True,
                    extra_fe: tuple[str, ...] = (), events_col: str = "exits_work"
                    ) -> AdoptionImputation:
    """Steps 1-2 of the module notes: fit Y(0) on untreated cells, impute adopted ones.

    ``extra_fe`` adds fixed effects (frame columns) to both Y(0) models, e.g. ``group``
    for cells split by client group; ``events_col`` is the count whose rate is Y.
    """
    ap, cname = params.adoption, params.estimate.cluster
    f = frame.copy()
    f["y"] = rate_pp(f[events_col], f["person_months"])
    if time_effects not in ("region_month", "month"):
        raise ValueError(f"time_effects={time_effects!r} (allowed: region_month, month)")
    prefix = f["region"] + ":" if time_effects == "region_month" else ""
    f["regmonth"] = prefix + f["t"].astype(str)
    p = f["person_months"].to_numpy(dtype="float64")
    rel = f["t"].to_numpy(dtype="float64") - f["g"].to_numpy()
    treated = rel >= 0
    antic = (rel < 0) & (rel >= -ap.anticipation_months)
    untreated = ~treated & ~antic
    f["adopted"] = treated.astype(float)

    xcols = (composition_controls(f) + lm_controls(f, params.estimate.lm_controls)
             if controls else [])
    S, keys = event_dummies(f["municipality"].to_numpy(), f["t"].to_numpy(), events,
                            params.shock.event_window, pooled=True)
    in0 = S[untreated].any(axis=0)
    if (~in0).any() and S[~untreated][:, ~in0].any():
        warn(f"adoption: shock event times {[keys[i][1] for i in np.flatnonzero(~in0)]} occur "
             "only in adopted cells; their shock effect cannot be separated from adoption")
    for j in np.flatnonzero(in0):
        f[f"shock_e{j}"] = S[:, j]
        xcols.append(f"shock_e{j}")

    imp = impute(f, f["y"].to_numpy(), p, ["unit", "regmonth", *extra_fe], xcols, untreated,
                 treated | antic, f[cname].to_numpy(), "adoption",
                 fallback_fe=["unit", "t", *extra_fe])
    return AdoptionImputation(f, p, rel, treated, antic, untreated, xcols, imp)


def estimate_adoption(frame: pd.DataFrame, events: pd.DataFrame, params: EstimateParams,
                      time_effects: str = "region_month", controls: bool = True,
                      att_only: bool = False
                      ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Imputation ATT, event study, pre-trend test, TWFE and naive number on unit cells.

    ``att_only``: the overall ATT and its inference only (row and headline keys
    ``att_pp, std_error, ci_low, ci_high, p_value, n_clusters``), for the many refits of
    leave-one-out checks: no event study, pre-trend test, TWFE or naive number.

    ``time_effects``: ``region_month`` (default) or ``month`` (national calendar-month
    effects instead of region x month, for specification sweeps). ``controls=False``
    leaves out the client-mix and labour-market controls (the shock bins stay).
    """
    ap, alpha, cname = params.adoption, params.estimate.alpha, params.estimate.cluster
    prep = impute_adoption(frame, events, params, time_effects, controls)
    f, p, rel, treated, antic, untreated, xcols, imp = (
        prep.frame, prep.p, prep.rel, prep.treated, prep.antic, prep.untreated, prep.xcols,
        prep.imputation)
    if imp is None or not treated[imp.idx1].any():
        warn("adoption: no adopted cell can be imputed; adoption block not estimated")
        return [], None
    idx1 = imp.idx1
    p1, rel1, tr1 = p[idx1], rel[idx1].astype(int), treated[idx1]
    g1 = f["g"].to_numpy()[idx1].astype(int)
    labels: list[tuple[str, Any, Any]] = [("att", None, None)]
    cols = [np.where(tr1, p1, 0.0)]
    for ell in ([] if att_only else np.unique(rel1)):
        labels.append(("event_time", int(ell), None))
        cols.append(np.where(rel1 == ell, p1, 0.0))
    for gg in ([] if att_only else np.unique(g1[tr1])):
        labels.append(("att", None, f"{gg // 12:04d}-{gg % 12 + 1:02d}"))
        cols.append(np.where(tr1 & (g1 == gg), p1, 0.0))
    W1 = np.column_stack(cols)
    est, scores = aggregate(imp, W1, rel1)
    se = np.sqrt((scores ** 2).sum(axis=0))
    G = imp.n_clusters
    common = dict(df=G - 1, alpha=alpha, n_clusters=G, estimator=_EST,
                  vcov=_VCOV.format(c=cname))
    rows = [row("adoption_imputation", term, e, s_, rel_time=ell, cohort=coh,
                n_obs=int(np.count_nonzero(w)), **common)
            for (term, ell, coh), e, s_, w in zip(labels, est, se, W1.T)]
    if att_only:
        att = rows[0]
        headline = {k: att[k] for k in ("std_error", "ci_low", "ci_high", "p_value")}
        headline.update(att_pp=att["estimate"], n_clusters=G,
                        ci_method=f"BJS conservative, t(G-1), cluster={cname}")
        if wants_wild(G, params.estimate):
            a, c = wild_parts(imp, W1[:, 0])
            headline, rows[0] = with_wild(headline, att, a, c, params.estimate, params.seed,
                                          "adoption")
        return rows, headline

    pre_p, pre_rows = _pretrend(f, xcols, untreated, rel, p, f[cname], ap, alpha)
    rows += pre_rows
    twfe, twfe_se = _twfe(f, xcols, cname)
    rows.append(row("adoption_twfe", "adopted", twfe, twfe_se, df=G - 1, alpha=alpha,
                    n_obs=len(f), n_clusters=G, estimator="TWFE WLS (exact, CRV1 fixest ssc)",
                    vcov=f"CRV1 cluster={cname}, fixest ssc (nonnested); t(G-1)"))
    naive = naive_before_after(f, "unit", f["g"].to_numpy())
    rows.append(row("adoption_naive", "post_minus_pre", naive, n_obs=len(f),
                    estimator="pooled rate months 0..11 minus -12..-1", vcov="none"))
    att = rows[0]
    headline = {
        "att_pp": att["estimate"], "std_error": att["std_error"], "ci_low": att["ci_low"],
        "ci_high": att["ci_high"], "p_value": att["p_value"], "naive_pp": naive,
        "estimator": "imputation_bjs2024",
        "weights": "treated person-months",
        "ci_method": f"BJS conservative, t(G-1), cluster={cname}", "n_clusters": G,
        "n_obs": int(len(f)), "n_treated_cells": int(tr1.sum()),
        "n_dropped_cells": int((treated & ~np.isin(np.arange(len(f)), idx1)).sum()),
        "n_fallback_cells": imp.n_fallback,
        # share of the estimand's person-months (all adopted cells) that could be imputed
        "coverage_share": float(p1[tr1].sum() / p[treated].sum()),
        "pretrend_p_value": pre_p, "twfe_pp": twfe, "twfe_std_error": twfe_se,
        "unit": "team" if f["unit"].str.startswith("team:").any() else "municipality",
    }
    if wants_wild(G, params.estimate):
        a, c = wild_parts(imp, W1[:, 0])
        headline, rows[0] = with_wild(headline, att, a, c, params.estimate, params.seed,
                                      "adoption")
    return rows, headline


def _pretrend(f, xcols, untreated, rel, p, cluster, ap, alpha):
    """BJS Test 1: pre-period event-time dummies (3-month bins) on Omega_0, CRV1 Wald F."""
    bins = sorted({int(np.floor(ell / 3)) * 3 for ell in range(-ap.pretrend_months,
                                                                -ap.anticipation_months)})
    g = f.copy()
    names, starts = [], []
    for b in bins:
        d = (rel >= b) & (rel <= b + 2) & (rel < -ap.anticipation_months)
        d &= rel >= -ap.pretrend_months
        if np.any(untreated & d):
            g[f"lead_{-b}"] = d.astype(float)
            names.append(f"lead_{-b}")
            starts.append(b)
    if not names:
        return float("nan"), []
    d2 = build_design(g, ["unit", "regmonth"], xcols + names)
    fit = wls_fit(d2, g["y"].to_numpy(), p, untreated)
    cols = [d2.x_index(n) for n in names]
    kept = [c for c in cols if c in set(fit.keep)]
    if not kept:
        return float("nan"), []
    V, G, _ = crv1_vcov(d2, fit, p, cluster.to_numpy(), kept)
    b = fit.coef[kept]
    F, pval, q = wald_f(b, V, np.eye(len(kept)), G - 1)
    vc = f"CRV1 cluster={cluster.name}, fixest ssc (nonnested); t(G-1)"
    rows = [row("adoption_imputation", "pretrend_bin", bi, np.sqrt(V[i, i]), df=G - 1,
                alpha=alpha, rel_time=starts[cols.index(c)], n_obs=int(untreated.sum()),
                n_clusters=G, estimator="BJS Test 1, 3-month lead bins (own WLS)", vcov=vc)
            for i, (c, bi) in enumerate(zip(kept, b))]
    rows.append({"model": "adoption_imputation", "term": "pretrend_wald_F", "estimate": F,
                 "statistic": F, "p_value": pval, "n_obs": int(untreated.sum()), "n_clusters": G,
                 "estimator": f"BJS Test 1, joint F({q}, {G - 1})", "vcov": vc})
    return pval, rows
