"""Alternative staggered-adoption estimators beside the imputation headline.

On the same unit x month cells the imputation estimator uses (outcome Y = 100 *
exits_work / person_months, the cell's exit-to-work rate in pp; unit = ``unit`` of
``adoption.adoption_cells``, the municipality unless adoption is by team; time = month
index; gname = adoption month, 0 for never adopted or adopted after the last month),
restricted to a **balanced** panel (units observed in every month; the rest are dropped
and counted in ``meta``), this module adds to the tidy table:

- ``adoption_cs_never`` / ``adoption_cs_notyet``: Callaway-Sant'Anna (2021) with never-
  treated / not-yet-treated controls (``cs_closed``: in closed form what moderndid's
  ``att_gt`` + ``aggte`` compute, as ``did.staggered_att`` calls them; analytic
  influence-function SEs clustered by unit, normal intervals, no bootstrap). Terms: ``att`` (simple
  aggregation), ``att_dynamic`` (dynamic aggregation's overall effect, the mean over
  e >= 0) and ``att_e`` rows by ``rel_time`` (the dynamic aggregation's ATT(e), pre-periods
  with R ``did``'s varying base period; not ``event_time``, which names the imputation
  and shock paths).
- ``adoption_sunab``: Sun-Abraham (2021) interaction-weighted estimator
  (``sunab.sun_abraham``, pyfixest, CRV1 by unit, t(G-1)). Terms ``att`` and
  ``att_e`` by ``rel_time`` (reference period -1).
- ``adoption_bacon``: Goodman-Bacon (2021) decomposition (``bacon.bacon_decomposition``)
  of the plain TWFE coefficient with unit and month effects on these cells. Per
  comparison type (``treated_vs_never``, ``earlier_vs_later``, ``later_vs_earlier``) a
  row with that term (estimate = weight-averaged 2x2 estimate) and a row
  ``weight:<type>`` (estimate = total weight of the type; no SE), plus ``twfe``: the TWFE
  coefficient fitted directly (own WLS, unit weights 1, CRV1 by unit, t(G-1)), which
  equals sum(weight x estimate) over the types (Goodman-Bacon 2021, Theorem 1).

All four are unweighted (each unit-month cell counts once, no controls, no region x month
effects), so under heterogeneous effects they estimate differently weighted averages than
the person-month-weighted imputation ATT. They take no time-varying controls, so a shock
coinciding with adoption is removed from the outcome instead: with a ``y_adjust`` column
in the cells (``run.shock_adjusted``, on by default through
``adoption.shock_adjust_alternatives``) Y is the rate minus the estimated shock path.
A failing estimator emits an ``EstimationWarning`` and leaves no rows.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from impact.estimate.frames import rate_pp, warn
from impact.estimate.linalg import build_design, crv1_vcov, wls_fit
from impact.estimate.results import row

__all__ = ["ALTERNATIVES", "adoption_alternatives", "alternatives_panel"]

#: valid values of ``adoption.alternatives``
ALTERNATIVES = ("cs", "sunab", "bacon")


def alternatives_panel(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Balanced long panel ``unit, tt, gg, y, uid`` from adoption cells (``adoption_cells``).

    ``tt`` is the month index renumbered 1..T and ``gg`` the adoption month on the same
    scale (0 = never adopted or adopted after the last month; adopted at or before the
    first month -> 1, an always-treated unit).
    """
    cols = ["unit", "t", "g", "exits_work", "person_months"]
    f = frame[cols + (["y_adjust"] if "y_adjust" in frame else [])].copy()
    t = f["t"].astype("int64")
    t0, t1 = int(t.min()), int(t.max())
    n_t = t.nunique()
    per_unit = f.groupby("unit")["t"].nunique()
    keep = per_unit.index[per_unit == n_t]
    n_units = int(per_unit.size)
    f = f[f["unit"].isin(keep)]
    g = f["g"].to_numpy(dtype="float64")
    gg = np.where(np.isnan(g) | (g > t1), 0, np.maximum(g - t0 + 1, 1))
    panel = pd.DataFrame({"unit": f["unit"].to_numpy(), "tt": (f["t"] - t0 + 1).astype("int64"),
                          "gg": gg.astype("int64"),
                          "y": rate_pp(f["exits_work"], f["person_months"])
                          - (f["y_adjust"].to_numpy() if "y_adjust" in f else 0.0)})
    panel = panel.sort_values(["unit", "tt"]).reset_index(drop=True)
    # moderndid needs a numeric unit id
    panel["uid"] = pd.factorize(panel["unit"], sort=True)[0].astype("int64") + 1
    units = panel.groupby("unit")["gg"].first()
    info = {"n_units": int(len(keep)), "n_units_dropped_unbalanced": n_units - int(len(keep)),
            "n_months": int(n_t), "n_cells": int(len(panel)),
            "n_never": int((units == 0).sum()), "n_cohorts": int(units[units > 0].nunique())}
    return panel, info


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Tidy rows as dicts, pandas' missing markers as None (``tidy_frame`` input)."""
    return [{k: (None if v is pd.NA else v) for k, v in r.items()}
            for r in table.to_dict("records")]


def _balanced_note(info: dict[str, Any]) -> str:
    return (f"balanced unit x month cells, unweighted: {info['n_units']} units x "
            f"{info['n_months']} months ({info['n_units_dropped_unbalanced']} incomplete "
            "unit(s) dropped)")


def _cs(panel, info, alpha, controls: tuple[str, ...] = ("nevertreated", "notyettreated")
        ) -> list[dict[str, Any]]:
    """Callaway-Sant'Anna, for each control group of ``controls`` (default both), the
    "simple" and "dynamic" aggregations.

    In closed form (``cs_closed.callaway_santanna``): on these cells (no covariates,
    no weights, varying base period, analytic errors) it computes what
    ``moderndid.att_gt(est_method="reg")`` + ``aggte`` do, which ``did.staggered_att``
    calls (without covariates outcome regression, IPW and doubly robust coincide: did.py,
    Notes), in a fraction of a second instead of 1.5 minutes nationally.
    """
    from impact.estimate.cs_closed import callaway_santanna
    from impact.estimate.did import DidInputError, _check_panel, _rows

    rows: list[dict[str, Any]] = []
    models = {"nevertreated": "adoption_cs_never", "notyettreated": "adoption_cs_notyet"}
    for control, model in ((c, models[c]) for c in controls):
        try:
            data = _check_panel(panel, "y", "tt", "uid", "gg", [])
            if control == "nevertreated" and not (data["gg"] == 0).any():
                raise DidInputError("no never-treated units (gname == 0)")
            aggs = callaway_santanna(data, yname="y", tname="tt", idname="uid", gname="gg",
                                     control_group=control)
            common = {"n_obs": len(data), "n_clusters": int(data["uid"].nunique()),
                      "estimator": f"Callaway-Sant'Anna reg (= dr without covariates), "
                                   f"{control} (closed form, as moderndid); "
                                   f"{_balanced_note(info)}",
                      "vcov": "analytic (influence function), clustered by unit, normal "
                              "critical values"}
            out = []
            for agg, res in aggs.items():
                for r in _rows(res, agg, alpha, common):
                    if r["term"] == "ATT":
                        r["term"] = "att" if agg == "simple" else "att_dynamic"
                    elif r["term"] == "ATT(e)":
                        r["term"] = "att_e"
                    r["model"] = model
                    out.append(r)
            rows += out
        except Exception as exc:  # non-fatal: a warning, the other estimators go on
            warn(f"{model}: Callaway-Sant'Anna ({control}) not estimated: {exc}")
    return rows


def _sunab(panel, info, alpha, sensitivity=None) -> list[dict[str, Any]]:
    from impact.estimate.sunab import sun_abraham

    try:
        res = sun_abraham(panel, yname="y", tname="tt", idname="uid", gname="gg",
                          alpha=alpha)
    except Exception as exc:
        warn(f"adoption_sunab: Sun-Abraham not estimated: {exc}")
        return []
    rows = _honest(res, alpha, **sensitivity) if sensitivity else []
    for r in _records(res.table):
        r["term"] = {"ATT": "att", "ATT(e)": "att_e"}[r["term"]]
        r["model"] = "adoption_sunab"
        r["estimator"] = f"{r['estimator']}; {_balanced_note(info)}"
        rows.append(r)
    return rows


def _honest(res, alpha: float, mbar, pre_months: int, post_months: int
            ) -> list[dict[str, Any]]:
    """Rambachan-Roth rows (model ``adoption_sunab_honest``) on event months
    -pre_months..post_months of the Sun-Abraham event study (reference -1), targeting the
    treated-weighted mean effect over months 0..post_months."""
    from impact.estimate.honest import sensitivity

    try:
        ref = int(res.meta["ref_period"])
        es = res.table[res.table["term"] == "ATT(e)"].set_index("rel_time")
        times = [e for e in range(-max(pre_months, 2), post_months + 1) if e != ref]
        missing = [e for e in times if e not in es.index]
        if missing:
            raise ValueError(f"event months {missing} are not in the event study")
        post = res.catt[(res.catt["rel_time"] >= 0) & (res.catt["rel_time"] <= post_months)]
        weights = post.groupby("rel_time")["n_obs"].sum().reindex(
            range(post_months + 1), fill_value=0).to_numpy(dtype="float64")
        sens = sensitivity(es.loc[times, "estimate"].to_numpy(),
                           res.event_vcov.loc[times, times].to_numpy(), times, ref=ref,
                           weights=weights, mbar=mbar, alpha=alpha)
    except Exception as exc:
        warn(f"adoption_sunab: Rambachan-Roth sensitivity not computed: {exc}")
        return []
    return sens.to_rows("adoption_sunab_honest", alpha, n_clusters=int(res.meta["n_units"]))


def _bacon(panel, info, alpha) -> list[dict[str, Any]]:
    from impact.estimate.bacon import bacon_decomposition

    try:
        res = bacon_decomposition(panel, yname="y", tname="tt", idname="uid", gname="gg")
        d = panel.assign(adopted=((panel["gg"] > 0) & (panel["tt"] >= panel["gg"])).astype(float))
        design = build_design(d, ["unit", "tt"], ["adopted"])
        w = np.ones(len(d))
        fit = wls_fit(design, d["y"].to_numpy(dtype="float64"), w)
        col = design.x_index("adopted")
        V, G, _ = crv1_vcov(design, fit, w, d["unit"].to_numpy(), [col])
        twfe, twfe_se = float(fit.coef[col]), float(np.sqrt(V[0, 0]))
    except Exception as exc:
        warn(f"adoption_bacon: Goodman-Bacon decomposition not estimated: {exc}")
        return []
    if abs(twfe - res.twfe) > 1e-6 * max(1.0, abs(twfe)):
        warn(f"adoption_bacon: decomposition TWFE {res.twfe:.6g} differs from the fitted "
             f"TWFE {twfe:.6g}")
    est = f"Goodman-Bacon (2021) decomposition (own code); {_balanced_note(info)}"
    n_units = panel["unit"].nunique()
    rows = [row("adoption_bacon", "twfe", twfe, twfe_se, df=G - 1, alpha=alpha,
                n_obs=len(d), n_clusters=G,
                estimator=f"TWFE, unit + month effects, own WLS; {_balanced_note(info)}",
                vcov="CRV1 cluster=unit, fixest ssc; t(G-1)")]
    for s in res.summary().to_dict("records"):
        common = dict(n_obs=int(s["n_comparisons"]), n_clusters=n_units, estimator=est,
                      vcov="none (descriptive); n_obs = number of 2x2 comparisons")
        rows.append(row("adoption_bacon", str(s["type"]), s["estimate"], **common))
        rows.append(row("adoption_bacon", f"weight:{s['type']}", s["weight"], **common))
    return rows


_RUNNERS = {"cs": _cs, "sunab": _sunab, "bacon": _bacon}


def adoption_alternatives(frame: pd.DataFrame, which, alpha: float = 0.05,
                          sensitivity: dict[str, Any] | None = None,
                          cs_controls: tuple[str, ...] = ("nevertreated", "notyettreated")
                          ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Tidy rows of the selected alternatives (``which`` ⊆ ``ALTERNATIVES``) and meta.

    ``cs_controls``: the Callaway-Sant'Anna control groups to estimate (a specification
    that reports one, ``adoption_cs_never`` say, asks for that one only: each costs a
    full ``att_gt``).

    ``sensitivity`` (``mbar``, ``pre_months``, ``post_months``) adds Rambachan-Roth rows
    to the Sun-Abraham event study (``_honest``). Never raises on data problems: each
    estimator that fails warns (``EstimationWarning``) and contributes no rows.
    """
    which = [w for w in ALTERNATIVES if w in set(which)]
    if not which:
        return [], {}
    try:
        panel, info = alternatives_panel(frame)
    except Exception as exc:
        warn(f"adoption alternatives: panel not built: {exc}")
        return [], {}
    if info["n_units_dropped_unbalanced"]:
        warn(f"adoption alternatives: {info['n_units_dropped_unbalanced']} unit(s) not observed "
             f"in every month dropped; {info['n_units']} remain")
    rows: list[dict[str, Any]] = []
    for name in which:
        t0 = time.perf_counter()
        new = (_sunab(panel, info, alpha, sensitivity) if name == "sunab"
               else _cs(panel, info, alpha, tuple(cs_controls)) if name == "cs"
               else _RUNNERS[name](panel, info, alpha))
        if name == "sunab":
            # pyfixest's iterative demeaning varies in the last bits between runs (seen:
            # 7e-15); 10 decimals keep the written table byte-stable
            for r in new:
                for k in ("estimate", "std_error", "statistic", "p_value", "ci_low", "ci_high"):
                    if isinstance(r.get(k), float):
                        r[k] = round(float(r[k]), 10)
        rows += new
        # timings go to the log, never into an output file (outputs must be byte-stable)
        logging.getLogger(__name__).info("adoption alternative %s: %.1fs", name,
                                         time.perf_counter() - t0)
    return rows, info
