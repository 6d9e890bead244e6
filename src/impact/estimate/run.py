"""Run one named specification (``specs.Specification``) on the panel.

``run_specification`` returns an ``EstimationResult`` whose tidy rows are the chosen
estimator's model plus what its headline block needs beside it (the naive number; for
quality the instrument's reliability), and whose ``headline[block]`` carries the contract
keys of ``reports/metrics.json`` whatever the estimator:

- quality ``iv``/``ols``: ``quality.estimate_quality``; ``hazard_cloglog``/``hazard_logit``:
  ``hazard.quality_hazard``, the headline effect being its average marginal effect of one
  quality point in pp (one noisy measurement: attenuated like ``ols``);
- adoption ``imputation``/``twfe``: ``adoption.estimate_adoption``; ``cs_never``,
  ``cs_notyet``, ``sunab``, ``bacon``: ``alternatives`` on the balanced unweighted cells,
  headline = their overall ``att`` (bacon: the TWFE coefficient it decomposes);
- shock ``imputation``: ``shock.estimate_shock``.
"""

from __future__ import annotations

import warnings
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from impact.estimate.adoption import adoption_cells, estimate_adoption
from impact.estimate.alternatives import adoption_alternatives
from impact.estimate.frames import (
    EstimationWarning, event_dummies, inflow_rows, shock_events, warn,
)
from impact.estimate.inference import wants_wild
from impact.estimate.naive import naive_before_after, naive_quality
from impact.estimate.params import EstimateParams
from impact.estimate.quality import estimate_quality
from impact.estimate.reliability import estimate_reliability
from impact.estimate.results import EstimationResult, row, tidy_frame
from impact.estimate.panel_reads import (  # noqa: F401 (re-exported)
    CELL_MODEL_COLUMNS, cell_model_columns, load_person_months, panel_columns, streams_panel,
)
from impact.estimate.shock import estimate_shock
from impact.estimate.specs import Specification
from impact.estimate.value_added_run import Levels, value_added_block

__all__ = ["run_specification", "quality_block", "in_window", "cell_model_columns",
           "panel_columns", "streams_panel", "load_person_months", "CELL_MODEL_COLUMNS"]

_ALT_MODEL = {"cs_never": ("cs", "adoption_cs_never", "att"),
              "cs_notyet": ("cs", "adoption_cs_notyet", "att"),
              "sunab": ("sunab", "adoption_sunab", "att"),
              "bacon": ("bacon", "adoption_bacon", "twfe")}


def in_window(quality: pd.DataFrame, person_months: pd.DataFrame | None,
              summary=None) -> pd.DataFrame:
    """Measurements dated inside the study window (the panel's months): the contract's
    reliability is over the measured units and dates that are analysed. ``summary``
    (``panel_summary.PanelSummary``): its first and last month, when the person-months
    are not held."""
    if summary is None:
        months = pd.to_datetime(person_months["month"])
        first, last = months.min(), months.max()
    else:
        first, last = summary.first_month, summary.last_month
    lo, hi = first, last + pd.offsets.MonthBegin(1)
    dates = pd.to_datetime(quality["date"])
    return quality.loc[(dates >= lo) & (dates < hi)]


def _hazard(pm: pd.DataFrame, params: EstimateParams, link: str, panel: Path | None = None,
            sample: str = "all") -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    from impact.estimate.hazard import quality_hazard
    from impact.estimate.hazard_stream import quality_hazard_file

    try:
        h = (quality_hazard(pm, params, link=link) if panel is None
             else quality_hazard_file(panel, params, link, sample))
    except ValueError as exc:
        warn(f"quality: hazard ({link}) not estimated: {exc}")
        return [], None
    G, alpha = h.n_clusters, params.estimate.alpha
    vc = f"cluster-robust sandwich by {params.estimate.cluster}, G/(G-1)(N-1)/(N-K); t(G-1)"
    how = ("fixed effects absorbed, IRLS (feglm)" if h.fixed_effects == "absorbed"
           else "dummy fixed effects (statsmodels GLM)")
    est = f"discrete-time hazard, {link}, compressed cells, {how}, quality_a"
    model = f"quality_hazard_{link}"
    rows = [row(model, "ame_pp", h.ame_pp, h.ame_se, df=G - 1, alpha=alpha, n_obs=h.n_obs,
                n_clusters=G, estimator=est, vcov=vc + "; delta method"),
            row(model, "quality_coef", h.coef, h.std_error, df=G - 1, alpha=alpha,
                n_obs=h.n_obs, n_clusters=G, estimator=est, vcov=vc)]
    r = rows[0]
    if wants_wild(G, params.estimate):
        warn(f"quality: no wild bootstrap for the {link} hazard; its interval is analytic "
             f"with {G} clusters")
    head = {"effect_pp": r["estimate"], "std_error": r["std_error"], "ci_low": r["ci_low"],
            "ci_high": r["ci_high"], "p_value": r["p_value"], "estimator": model,
            "ci_method": f"delta method, t(G-1), cluster={params.estimate.cluster}",
            "n_clusters": G, "n_obs": h.n_obs}
    return rows, head


def quality_block(pm: pd.DataFrame | None, quality: pd.DataFrame, params: EstimateParams,
                  estimator: str = "iv", panel: Path | None = None, sample: str = "all",
                  summary=None, shared=None
                  ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Rows and headline of the quality block: effect, reliability, naive number.

    ``panel``: the person-month Parquet file ``pm`` was read from (its ``sample``); the
    2SLS and OLS then read it in batches (``quality_stream``: the same numbers, memory
    bounded), and so does the hazard (``hazard_stream``: the same cells), and ``pm`` is
    not read at all (may be None): the study window and the naive slope come from
    ``summary`` (``panel_summary.summary_file``; made here when not given). ``shared``:
    the 2SLS and OLS blocks from the shared pass instead (``quality_sums.load``)."""
    if estimator.startswith("hazard_"):
        q_rows, q_head = _hazard(pm, params, estimator.removeprefix("hazard_"), panel, sample)
    elif panel is not None:
        from impact.estimate.quality_stream import estimate_quality_file

        q_rows, q_head = estimate_quality_file(panel, params, estimator, sample,
                                               shared=shared)
    else:
        q_rows, q_head = estimate_quality(pm, params, estimator)
    if q_head is None:
        return q_rows, None
    if panel is not None and summary is None:
        from impact.estimate.panel_summary import summary_file

        summary = summary_file(panel, sample)
    rel_rows, rel = estimate_reliability(in_window(quality, pm, summary), params)
    naive, n_cw = naive_quality(pm, quality, params.quality.instrument,
                                exits=summary.exits if summary is not None else None)
    rows = q_rows + rel_rows + [row(
        "quality_naive", "mean_score", naive, n_obs=n_cw,
        estimator="person-month-weighted LS across caseworkers", vcov="none")]
    head = {**q_head, "naive_pp": naive,
            "reliability": (rel or {}).get("reliability", float("nan")),
            **{k: v for k, v in (rel or {}).items() if k != "reliability"}}
    return rows, head


def _alternative(frame: pd.DataFrame, spec: Specification, params: EstimateParams
                 ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    which, model, term = _ALT_MODEL[spec.estimator]
    ap = params.adoption
    sens = (dict(mbar=ap.sensitivity_mbar, pre_months=ap.pretrend_months,
                 post_months=ap.sensitivity_post_months) if spec.sensitivity else None)
    # the one control group this specification reports (the other is its own stage)
    cs = {"cs_never": ("nevertreated",), "cs_notyet": ("notyettreated",)}
    rows, info = adoption_alternatives(frame, [which], params.estimate.alpha, sens,
                                       cs_controls=cs.get(spec.estimator, ()))
    rows = [r for r in rows if r["model"] in (model, f"{model}_honest")]
    main = [r for r in rows if r["term"] == term and r.get("cohort") is None]
    if not main:
        return rows, None
    r = main[0]
    naive = naive_before_after(frame, "unit", frame["g"].to_numpy())
    rows.append(row("adoption_naive", "post_minus_pre", naive, n_obs=len(frame),
                    estimator="pooled rate months 0..11 minus -12..-1", vcov="none"))
    k = params.adoption.sensitivity_post_months
    honest = {key: v for x in rows if x["model"] == f"{model}_honest"
              and x["term"] == "rr_rm_breakdown"
              for key, v in (("rr_breakdown_mbar", x["estimate"]),
                             ("rr_target", f"treated-weighted mean of ATT(e), e = 0..{k} "
                                           "(not att_pp)"))}
    head = {"att_pp": r["estimate"], "std_error": r["std_error"], "ci_low": r["ci_low"],
            "ci_high": r["ci_high"], "p_value": r["p_value"], "naive_pp": naive, **honest,
            "estimator": model, "ci_method": r["vcov"], "n_clusters": r["n_clusters"],
            "n_obs": r["n_obs"], "weights": "unweighted balanced unit x month cells",
            "n_units_dropped_unbalanced": info.get("n_units_dropped_unbalanced")}
    return rows, head


def shock_adjusted(frame: pd.DataFrame, cells: pd.DataFrame, pm: pd.DataFrame,
                   events: pd.DataFrame, params: EstimateParams) -> pd.DataFrame:
    """``frame`` with ``y_adjust``: the estimated shock effect (pp) at each cell's event time.

    The pooled event-time path of ``shock.estimate_shock`` (imputation with region x month
    effects), from ``-shock.anticipation_months`` on (earlier leads are placebo), is subtracted from the cells' rates in the shock windows, so estimators that
    cannot take time-varying controls (Callaway-Sant'Anna, Sun-Abraham, Bacon) do not
    credit a shock that coincides with adoption to the programme. Their standard errors
    do not include this first step.
    """
    import dataclasses

    analytic = dataclasses.replace(params, estimate=dataclasses.replace(
        params.estimate, inference="cluster"))  # only the path is used, not its interval
    rows, head = estimate_shock(cells, pm, events, analytic)
    first = -params.shock.anticipation_months  # earlier event times are placebo leads
    path = {int(r["rel_time"]): r["estimate"] for r in rows
            if r["model"] == "shock_event_study" and r["term"] == "event_time"
            and r.get("cohort") is None and r.get("rel_time") is not None
            and r["rel_time"] >= first}
    if head is None or not path:
        warn("adoption alternatives: no shock path estimated; rates not shock-adjusted")
        return frame
    S, keys = event_dummies(frame["municipality"].to_numpy(), frame["t"].to_numpy(), events,
                            params.shock.event_window, pooled=True)
    tau = np.array([path.get(e, 0.0) for _, e in keys])
    return frame.assign(y_adjust=S @ tau if len(keys) else 0.0)


def _randomization(frame, events, params: EstimateParams, head: dict[str, Any]):
    """Randomization-inference p-value of the imputation ATT (``ri``): adoption dates
    permuted over units, the ATT re-estimated each time with analytic intervals."""
    import dataclasses

    from impact.estimate.ri import randomization_inference

    quiet = dataclasses.replace(params, estimate=dataclasses.replace(
        params.estimate, inference="cluster"))

    def att(f: pd.DataFrame) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            h = estimate_adoption(f, events, quiet)[1]
        if h is None:
            raise ValueError("no adopted cell can be imputed")
        return h["att_pp"]

    res = randomization_inference(frame, att, n_perm=params.adoption.ri_permutations,
                                  seed=params.seed)
    head = {**head, "ri_p_value": res.p_value, "ri_permutations": int(res.n_perm),
            "ri_failed": int(res.n_failed)}
    r = {**row("adoption_imputation", "ri_p_value", res.att_obs, n_obs=int(res.n_perm),
               estimator="randomization inference: adoption dates permuted over units "
                         f"({res.n_perm} permutations, {res.n_failed} failed)",
               vcov="none (p = (1 + #|ATT_b| >= |ATT|) / (1 + permutations))"),
         "p_value": res.p_value}
    return r, head


def _adoption(cells, pm, adoption, shocks, spec, params):
    frame = adoption_cells(cells, pm, adoption, params.adoption.programme)
    if frame is None:
        return [], None
    if spec.estimator in _ALT_MODEL:
        events = shock_events(shocks, params.shock.type)
        if params.adoption.shock_adjust_alternatives and not events.empty:
            frame = shock_adjusted(frame, cells, pm, events, params)
        return _alternative(frame, spec, params)
    events = shock_events(shocks, params.shock.type)
    rows, head = estimate_adoption(frame, events, params)
    if head is None or spec.estimator == "imputation":
        keep = ("adoption_imputation", "adoption_naive", "adoption_twfe")
        rows = [r for r in rows if r["model"] in keep]
        if head is not None and params.adoption.ri_permutations:
            ri_row, head = _randomization(frame, events, params, head)
            rows.append(ri_row)
        return rows, head
    twfe = next(r for r in rows if r["model"] == "adoption_twfe")
    if wants_wild(int(twfe["n_clusters"] or 0), params.estimate):
        warn(f"adoption: no wild bootstrap for TWFE; its interval is analytic with "
             f"{twfe['n_clusters']} clusters")
    head = {**{k: head[k] for k in ("naive_pp", "n_obs", "unit")},
            "att_pp": twfe["estimate"], "std_error": twfe["std_error"],
            "ci_low": twfe["ci_low"], "ci_high": twfe["ci_high"], "p_value": twfe["p_value"],
            "estimator": "twfe", "ci_method": twfe["vcov"], "n_clusters": twfe["n_clusters"],
            "weights": "person-months (TWFE implicit weights; see adoption_bacon)"}
    return [r for r in rows if r["model"] in ("adoption_twfe", "adoption_naive")], head


def run_specification(spec: Specification, person_months: pd.DataFrame | None,
                      cells: pd.DataFrame,
                      quality: pd.DataFrame | None, adoption: pd.DataFrame | None,
                      shocks: pd.DataFrame | None, base: EstimateParams,
                      panel: Path | None = None, workers: int = 1,
                      sums: Path | None = None) -> EstimationResult:
    """Estimate one specification; ``headline[spec.block]`` is None when not estimable.

    ``panel``: the Parquet file of ``person_months``; given, the quality 2SLS, OLS, hazard and
    value-added read it in batches instead (``streams_panel``), and ``person_months`` may
    be None for them (``panel_columns``: which columns it needs otherwise). ``workers``
    > 1: value-added's two levels in two processes. ``sums``: the specification's folder
    of the ``quality_sums`` stage; its blocks are used when written for these settings
    (``quality_sums.load``), else the regression makes its own pass.

    Estimation problems are ``EstimationWarning``s, collected in ``meta["warnings"]``.
    """
    from impact.estimate import publishable, versions

    params = spec.apply(base)
    head: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = []
    tables: dict[str, pd.DataFrame] = {}
    with warnings.catch_warnings(record=True) as caught, ExitStack() as stack:
        warnings.simplefilter("always", EstimationWarning)
        pm, summary = person_months, None
        streamed = panel is not None and streams_panel(spec)
        levels = None
        if spec.block == "quality" and spec.value_added and streamed:
            # started first: its workers begin small (``value_added_run``)
            levels = Levels(panel, params, spec.sample, workers)
            stack.callback(levels.close)
        if streamed and pm is None:  # nothing of the person-months held (``panel_columns``)
            from impact.estimate.panel_summary import summary_file

            summary = summary_file(panel, spec.sample)
        elif spec.sample == "inflow":
            pm = pm.loc[inflow_rows(pm)]
        if spec.block == "quality":
            if quality is not None and not quality.empty:
                from impact.estimate.quality_sums import load, pass_key

                rows, head = quality_block(pm, quality, params, spec.estimator,
                                           panel if streamed else None, spec.sample,
                                           summary=summary,
                                           shared=load(sums, pass_key(spec, base, panel)
                                                       if streamed else None))
            if spec.value_added:
                va_rows, tables = value_added_block(pm, params, levels)
                rows += va_rows
        elif spec.block == "adoption":
            rows, head = _adoption(cells, pm, adoption, shocks, spec, params)
        else:
            events = shock_events(shocks, params.shock.type)
            if not events.empty:
                rows, head = estimate_shock(cells, pm, events, params)
        if spec.block != "quality":
            head = publishable(spec.block, head, params.estimate.min_coverage)
    messages = [str(w.message) for w in caught if issubclass(w.category, EstimationWarning)]
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if head is not None:
        head = {**head, "specification": spec.name}
    meta = {"specification": spec.to_dict(), "params": params.to_dict(),
            "versions": versions(), "warnings": messages,
            "n_person_months": _n_person_months(pm, summary),
            "n_cells": int(len(cells))}
    headline = {b: None for b in ("quality", "adoption", "shock")}
    headline[spec.block] = head
    return EstimationResult(tidy_frame(rows), headline, meta, tables)


def _n_person_months(pm: pd.DataFrame | None, summary) -> int:
    from impact.estimate.shock import WEIGHT

    if pm is None:
        return int(summary.n_person_months)
    return int(pm[WEIGHT].sum()) if WEIGHT in pm else int(len(pm))
