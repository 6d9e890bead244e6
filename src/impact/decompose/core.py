"""Split each municipality's change in the exit-to-work rate into named factors.

Notes
-----
For a unit u (a municipality, or the country) and a period P, the fitted model
(``impact.decompose.model``) gives the mean over u's person-months in P of each factor's
part of the predicted rate (percentage points):

- ``composition``: x_it'b over the client controls, plus the municipality effect (which
  cancels within a municipality; for the country its change is the shift of clients
  between municipalities);
- ``labour_market``: the region x month effect plus l_mt'h over the municipal indicators;
- ``shocks``: the shock event-time bins;
- ``quality``: the quality effect times the unit's mean measured quality (mean of
  ``quality_score`` over its measured person-months: measurement error averages out of a
  mean, so no reliability correction is needed here), plus the adoption event-time bins
  (the programme's effect beyond what it does through measured quality).

Between a base period P0 and a comparison period P1 each factor's Shapley value
(``impact.decompose.shapley``) is its contribution; ``residual`` is the observed change
minus the sum, so the five components add up to ``observed_change`` exactly.

Intervals: the WCU3 wild cluster bootstrap of ``impact.decompose.model`` (the
leave-one-cluster-out deviations of coefficients and fixed effects, Rademacher weights,
Webb's six-point weights below ``estimate.wild_below`` clusters), percentile intervals.
They carry the uncertainty of the fitted model; the observed change is data, and has
none (its interval is left empty); the residual's interval is that of observed minus
the explained part.

Disclosure: a municipality-pair is published only when in both periods its exits to
work and its distinct clients number at least ``privacy.min_cell``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from impact.decompose.design import FACTORS, Design, build_design
from impact.decompose.model import ModelFit, fit_model
from impact.decompose.params import DecomposeParams, Period
from impact.decompose.shapley import shapley
from impact.distinct import per_group, unique
from impact.estimate.frames import warn
from impact.estimate.params import EstimateParams
from impact.estimate.wild import draw_weights

__all__ = ["COMPONENTS", "NATIONAL", "Decomposition", "decompose_reads",
           "fit_decomposition_model", "row_codes", "row_labels", "unit_sums", "unit_means",
           "decompose"]

#: the country's code in the tables (CBS: Nederland)
NATIONAL = "NL01"
COMPONENTS = ("observed_change",) + FACTORS + ("residual",)


@dataclass
class Decomposition:
    table: pd.DataFrame
    fit: ModelFit
    design: Design
    info: dict[str, Any]


def decompose_reads(columns, params: EstimateParams) -> list[str]:
    """The person-month columns (of ``columns``, in their order) that ``decompose`` and the
    fair benchmark (``benchmark.run_benchmark``) read: the quality model's
    (``quality.model_reads``: outcome, quality, controls, labour market, fixed-effect and
    cluster keys, adoption and shock timing), the clients (disclosure counts) and the
    teams (the benchmark's team table). The stages load only these: identifiers of spells
    and intake caseworkers, dates and the other outcomes are a third of a row's bytes."""
    from impact.estimate.quality import model_reads

    wanted = set(model_reads(columns, params, {"y": "exit_work"}))
    wanted |= {"client_id", "team_key", params.estimate.cluster}
    return [c for c in columns if c in wanted]


def row_labels(column: pd.Series, rows: np.ndarray) -> np.ndarray:
    """``column.astype(str).to_numpy()[rows]`` (the same strings) as pointers into the
    column's distinct labels: 8 bytes a row instead of a string object per row (on the
    built-in panel's 2.8 million rows, about 140 MB less per column)."""
    codes, labels = pd.factorize(column.astype(str), use_na_sentinel=False)
    return np.asarray(labels, dtype=object)[codes[rows]]


def fit_decomposition_model(pm: pd.DataFrame, params: EstimateParams, estimator: str = "iv"
                            ) -> tuple[Design, ModelFit, np.ndarray]:
    """Build the design for all person-months and fit it on the measured ones (returned
    as a boolean mask)."""
    if estimator not in ("iv", "ols"):
        raise ValueError(f"decompose: estimator {estimator!r} is not linear (use iv or ols)")
    design = build_design(pm, params)
    need = ["quality_a", "quality_b"] if estimator == "iv" else ["quality_score"]
    sample = np.ones(len(pm), bool)
    for v in design.numeric.values():
        sample &= np.isfinite(v)
    measured = sample.copy()
    for c in need:
        measured &= (np.isfinite(pd.to_numeric(pm[c], errors="coerce").to_numpy(dtype="float64"))
                     if c in pm else False)
    has_quality = measured.sum() >= 2
    if has_quality:
        sample = measured
    else:
        warn("decompose: no quality measurements (no quality table, or no caseworker "
             "measured twice): the quality component holds the programme bins only")
    if sample.sum() < 2:
        raise ValueError("decompose: fewer than two person-months to fit")
    design.choose_levels(sample)
    y = 100.0 * pd.to_numeric(pm["exit_work"]).to_numpy(dtype="float64")[sample]
    lead = {"y": y}
    if has_quality and estimator == "iv":
        lead["quality"] = pm["quality_a"].to_numpy(dtype="float64")[sample]
        lead["quality_b"] = pm["quality_b"].to_numpy(dtype="float64")[sample]
    elif has_quality:
        lead["quality"] = pm["quality_score"].to_numpy(dtype="float64")[sample]
    A, names = design.matrix(sample, lead)
    cl = row_labels(pm[params.estimate.cluster], sample)
    if len(pd.unique(cl)) < 2 and "caseworker_key" in pm:  # hashing, not sorting, strings
        warn(f"decompose: one {params.estimate.cluster} only; intervals clustered by "
             "caseworker instead (an approximate jackknife: caseworkers do not nest in "
             "the municipality-month cells)")
        cl = row_labels(pm["caseworker_key"], sample)
    fit = fit_model(A, names, "y", "quality" if has_quality else None,
                    "quality_b" if has_quality and estimator == "iv" else None,
                    row_labels(pm["municipality"], sample), row_labels(pm["region"], sample),
                    pm["t"].to_numpy(dtype="int64")[sample], cl, jackknife=True)
    return design, fit, sample


def has_quality(fit: ModelFit) -> bool:
    """Whether the model has the quality effect (its first coefficient)."""
    return bool(fit.names) and fit.names[0] == "quality"


def row_codes(pm: pd.DataFrame, fit: ModelFit) -> dict[str, np.ndarray]:
    """Per person-month: its region x month effect and municipality effect in ``fit``
    (-1 if not fitted), exit to work and measured quality; computed once, used per period."""
    t = pm["t"].to_numpy(dtype="int64")
    region = pm["region"].astype(str).to_numpy()
    r_codes, r_labels = pd.factorize(region)
    keys = pd.Index([f"{r}:{m}" for r in r_labels for m in range(int(t.min()), int(t.max()) + 1)])
    width = int(t.max() - t.min()) + 1
    rm_code = keys.get_indexer(fit.regmonths)  # fitted effect -> key position
    lookup = np.full(len(keys), -1, dtype="int64")
    lookup[rm_code[rm_code >= 0]] = np.flatnonzero(rm_code >= 0)
    m_codes, m_labels = pd.factorize(pm["municipality"].astype(str))
    m_lookup = pd.Index(fit.munis).get_indexer(m_labels)
    return {"rm": lookup[r_codes * width + (t - t.min())], "m": m_lookup[m_codes],
            "exit": pd.to_numeric(pm["exit_work"]).to_numpy(dtype="float64"),
            "q": (pd.to_numeric(pm["quality_score"], errors="coerce").to_numpy(dtype="float64")
                  if "quality_score" in pm else np.full(len(pm), np.nan))}


def unit_sums(pm: pd.DataFrame, design: Design, fit: ModelFit, unit: np.ndarray,
              n_units: int, rows: np.ndarray, sample: np.ndarray,
              codes: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Per-unit sums over ``rows`` (bool) of each factor's part of the prediction.

    ``unit`` holds each row's unit code (0..n_units-1); ``sample`` marks the fitted rows
    (the order of ``fit.resid``). Returns sums (not means, so units can be added up):
    ``n`` (person-months), ``exits``, ``terms`` {factor: (n_units,)} without the quality
    effect, ``dw`` {factor: (n_units, G)} (derivative in the bootstrap weights),
    ``obs_dw`` (n_units, G) (the bootstrap perturbation of the exits, in pp),
    ``qsum``/``qn`` (measured quality), ``covered`` (person-months with fitted fixed
    effects).
    """
    codes = row_codes(pm, fit) if codes is None else codes
    gid = np.where(rows, unit, -1)
    ok = gid >= 0
    g = gid[ok]
    n = np.bincount(g, minlength=n_units).astype("float64")
    exits = np.bincount(g, weights=codes["exit"][ok], minlength=n_units)
    S = design.group_sums(gid, n_units)
    # person-months per unit x fitted region-month and x fitted municipality effect
    rm_code = codes["rm"]
    have = ok & (rm_code >= 0)
    R = len(fit.regmonths)
    cnt = np.bincount(gid[have] * R + rm_code[have], minlength=n_units * R).reshape(n_units, R)
    m_code = codes["m"]
    have_m = have & (m_code >= 0)
    M = len(fit.munis)
    mcnt = np.bincount(gid[have_m] * M + m_code[have_m],
                       minlength=n_units * M).reshape(n_units, M)
    q = codes["q"]
    qok = ok & np.isfinite(q)
    G = fit.psi.shape[0]
    gs = gid[sample]
    fs = gs >= 0
    # the wild bootstrap moves the observed rate with y*; the jackknife does not
    obs_dw = (np.zeros((n_units, G)) if fit.jack is not None else
              np.bincount(gs[fs] * G + fit.cluster_code[fs], weights=fit.resid[fs],
                          minlength=n_units * G).reshape(n_units, G))
    return factor_sums(design, fit, n, exits, S, cnt, mcnt, obs_dw,
                       np.bincount(gid[qok], weights=q[qok], minlength=n_units),
                       np.bincount(gid[qok], minlength=n_units).astype("float64"),
                       np.bincount(gid[have_m], minlength=n_units).astype("float64"))


def factor_sums(design: Design, fit: ModelFit, n, exits, S, cnt, mcnt, obs_dw, qsum, qn,
                covered) -> dict[str, Any]:
    """:func:`unit_sums` from per-unit sums: ``S`` (units x ``design.columns``) the
    regressors' sums, ``cnt`` (units x ``fit.regmonths``) and ``mcnt`` (units x
    ``fit.munis``) the person-months per fitted fixed effect (a region-month's only where
    the municipality effect is fitted too, for ``mcnt``), ``qsum``/``qn`` the measured
    quality, ``covered`` the person-months with both effects fitted."""
    coef = fit.coef
    dcoef, dlam, dalpha, jack = fit.perturbation()  # (K, G), (levels, G), (levels, G)
    terms, dw = {}, {}
    off = int(has_quality(fit))  # the quality effect comes first when there is one
    for f in FACTORS:
        j = np.array([k for k, c in enumerate(design.columns) if design.factor(c) == f], int)
        terms[f] = S[:, j] @ coef[off + j]
        dw[f] = S[:, j] @ dcoef[off + j]
    # labour market: region x month effects; composition: municipality effects (constant
    # within a municipality)
    terms["labour_market"] = terms["labour_market"] + cnt @ fit.lam
    dw["labour_market"] = dw["labour_market"] + cnt @ dlam
    terms["composition"] = terms["composition"] + mcnt @ fit.alpha
    dw["composition"] = dw["composition"] + mcnt @ dalpha
    return {"n": n, "exits": exits, "terms": terms, "dw": dw, "obs_dw": obs_dw,
            "qsum": qsum, "qn": qn, "covered": covered}


def unit_means(sums: dict[str, Any], fit: ModelFit) -> dict[str, Any]:
    """Means from :func:`unit_sums` (rates in pp); the quality factor gets the effect
    times the unit's mean measured quality. ``complete`` is False where a person-month
    has no fitted fixed effect or the unit has no measured quality."""
    n = sums["n"]
    den = np.where(n > 0, n, np.nan)
    qbar = np.where(sums["qn"] > 0, sums["qsum"] / np.maximum(sums["qn"], 1), np.nan)
    terms = {f: sums["terms"][f] / den for f in FACTORS}
    dw = {f: sums["dw"][f] / den[:, None] for f in FACTORS}
    measured = sums["qn"] > 0
    if has_quality(fit):
        terms["quality"] = terms["quality"] + fit.coef[0] * qbar
        dw["quality"] = dw["quality"] + np.outer(qbar, fit.perturbation()[0][0])
    else:
        measured = np.ones(len(n), bool)
    return {"n": n, "exits": sums["exits"], "observed": 100 * sums["exits"] / den,
            "obs_dw": sums["obs_dw"] / den[:, None], "terms": terms, "dw": dw,
            "quality_mean": qbar,
            "complete": (n > 0) & measured & (sums["covered"] == n)}


def _total(sums: dict[str, Any]) -> dict[str, Any]:
    """The sums of all units as one unit."""
    out = {}
    for k, v in sums.items():
        out[k] = ({f: a.sum(axis=0, keepdims=True) for f, a in v.items()} if isinstance(v, dict)
                  else v.sum(axis=0, keepdims=True))
    return out


def _stack(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in a.items():
        out[k] = ({f: np.concatenate([x, b[k][f]]) for f, x in v.items()} if isinstance(v, dict)
                  else np.concatenate([v, b[k]]))
    return out




def decompose(pm: pd.DataFrame, params: EstimateParams, dparams: DecomposeParams,
              min_cell: int = 10, estimator: str = "iv",
              names: dict[str, str] | None = None) -> Decomposition:
    """The decomposition table of every municipality and the country (module notes)."""
    design, fit, sample = fit_decomposition_model(pm, params, estimator)
    t = pm["t"].to_numpy(dtype="int64")
    pairs = period_pairs(dparams, int(t.min()), int(t.max()))
    muni_code, munis = pd.factorize(pm["municipality"].astype(str), sort=True)
    M = len(munis)
    client_code = pd.factorize(pm["client_id"].astype(str))[0] if "client_id" in pm else None
    codes = row_codes(pm, fit)
    per: dict[str, dict[str, Any]] = {}
    for label, p in periods_of(pairs).items():
        rows = (t >= p.first) & (t <= p.last)
        sums = unit_sums(pm, design, fit, muni_code, M, rows, sample, codes)
        clients = (np.concatenate([per_group(muni_code[rows], client_code[rows], M),
                                   [len(unique(client_code[rows]))]])
                   if client_code is not None else None)
        per[label] = period_means(sums, fit, clients)
    return decomposition_table(per, pairs, fit, design, list(munis), params, dparams,
                               min_cell, estimator, names)


def period_pairs(dparams: DecomposeParams, t_min: int, t_max: int) -> list:
    """The compared pairs of periods of a panel with months ``t_min..t_max``; an error when
    there is none, or a period is not inside the panel."""
    pairs = dparams.pairs(t_min, t_max)
    if not pairs:
        raise ValueError("decompose: no pair of periods (the window holds fewer than two "
                         "whole calendar years; list decompose.periods explicitly)")
    # a period (partly) outside the panel would give all-suppressed rows, or rates over
    # fewer months than its label says
    ym = lambda m: f"{m // 12}-{m % 12 + 1:02d}"  # noqa: E731
    for p in periods_of(pairs).values():
        if p.first < t_min or p.last > t_max:
            raise ValueError(f"decompose.periods: period {p.label!r} ({ym(p.first)}.."
                             f"{ym(p.last)}) is not inside the panel's months "
                             f"{ym(t_min)}..{ym(t_max)}")
    return pairs


def periods_of(pairs) -> dict[str, Period]:
    """The distinct periods of ``pairs`` by label, in order of appearance."""
    periods: dict[str, Period] = {}
    for a, b in pairs:
        periods.setdefault(a.label, a)
        periods.setdefault(b.label, b)
    return periods


def period_means(sums: dict[str, Any], fit: ModelFit, clients: np.ndarray | None
                 ) -> dict[str, Any]:
    """One period's means of every municipality and the country (the last row), from its
    per-municipality sums, with the distinct clients (None: not known)."""
    both = unit_means(_stack(sums, _total(sums)), fit)
    both["clients"] = (clients if clients is not None
                       else np.full(len(both["n"]), np.nan))
    return both


def decomposition_table(per: dict[str, dict[str, Any]], pairs, fit: ModelFit, design: Design,
                        munis: list[str], params: EstimateParams, dparams: DecomposeParams,
                        min_cell: int, estimator: str, names: dict[str, str] | None
                        ) -> Decomposition:
    """The decomposition table from each period's means (``period_means``): Shapley
    values, bootstrap intervals, disclosure (module notes)."""
    G = fit.psi.shape[0]
    rng = np.random.default_rng(params.seed)
    est = params.estimate
    weights = est.wild_weights if G < est.wild_below else "rademacher"
    W = draw_weights(G, dparams.n_boot, weights, rng)[0] if dparams.n_boot else np.zeros((0, G))
    lo_q, hi_q = 100 * est.alpha / 2, 100 * (1 - est.alpha / 2)
    codes = munis + [NATIONAL]
    names = dict(names or {})
    names.setdefault(NATIONAL, "Nederland")
    frames = []
    for a, b in pairs:
        p0, p1 = per[a.label], per[b.label]

        def value(S, p0=p0, p1=p1, part="terms"):
            return sum((p1 if f in S else p0)[part][f] for f in FACTORS)

        point = shapley(lambda S: value(S), FACTORS)
        deriv = shapley(lambda S: value(S, part="dw"), FACTORS)
        observed = p1["observed"] - p0["observed"]
        contrib = dict(point)
        contrib["residual"] = observed - sum(point[f] for f in FACTORS)
        contrib["observed_change"] = observed
        draws = {f: point[f][:, None] + deriv[f] @ W.T for f in FACTORS}
        # the observed change moves with y* in the bootstrap world, so the residual's
        # interval is that of (observed - explained)
        obs_draws = observed[:, None] + (p1["obs_dw"] - p0["obs_dw"]) @ W.T
        draws["residual"] = obs_draws - sum(draws[f] for f in FACTORS)
        publish = ((np.minimum(p0["exits"], p1["exits"]) >= min_cell)
                   & ~(np.minimum(p0["clients"], p1["clients"]) < min_cell))
        estimable = p0["complete"] & p1["complete"]
        status = np.where(~publish, "suppressed", np.where(estimable, "ok", "not_estimable"))
        for comp in COMPONENTS:
            if comp in draws and len(W):
                ci_low, ci_high = np.percentile(draws[comp], [lo_q, hi_q], axis=1)
            else:
                ci_low = ci_high = np.full(len(codes), np.nan)
            frames.append(pd.DataFrame({
                "municipality": codes, "period_from": a.label, "period_to": b.label,
                "component": comp, "contribution_pp": contrib[comp],
                "ci_low": ci_low, "ci_high": ci_high,
                "rate_from_pp": p0["observed"], "rate_to_pp": p1["observed"],
                "status": status}))
    table = pd.concat(frames, ignore_index=True)
    hide = table["status"] != "ok"
    table.loc[hide, ["contribution_pp", "ci_low", "ci_high"]] = np.nan
    table.loc[table["status"] == "suppressed", ["rate_from_pp", "rate_to_pp"]] = np.nan
    table.insert(1, "name", table["municipality"].map(names).fillna(""))
    order = {c: i for i, c in enumerate(COMPONENTS)}
    pair_order = {(a.label, b.label): i for i, (a, b) in enumerate(pairs)}
    table["_u"] = (table["municipality"] == NATIONAL).astype(int)
    table["_p"] = [pair_order[k] for k in zip(table["period_from"], table["period_to"])]
    table["_c"] = table["component"].map(order)
    table = (table.sort_values(["_u", "municipality", "_p", "_c"], kind="stable")
             .drop(columns=["_u", "_p", "_c"]).reset_index(drop=True))
    info = {"estimator": estimator, "n_obs": fit.n_obs, "n_clusters": int(G),
            "bootstrap": {"draws": int(len(W)), "weights": weights,
                          "method": "WCU3 wild cluster bootstrap (jackknife deviations), "
                                    "percentile"},
            "pairs": [[a.label, b.label] for a, b in pairs],
            "quality_effect_pp": float(fit.coef[0]) if has_quality(fit) else None,
            "quality_se": float(fit.se[0]) if has_quality(fit) else None}
    return Decomposition(table, fit, design, info)
