"""The effect of caseworker process quality on the monthly exit-to-work probability.

Notes
-----
Person-month linear probability model, municipality and region x month fixed effects
projected out exactly at the municipality-month cell level (``pmreg``; never dummy
columns, no convergence tolerance):

    100 * exit_work_it = beta * q_c(i,t),t + x_it'g + l_mt'h + a_m + d_region(m),t
                         + adoption-bin and shock-bin effects + u

q is the *true* quality of the month's caseworker, seen only through noisy measurements.
``quality_a`` and ``quality_b`` average the caseworker's odd- and even-numbered sessions
near the month: both measure q with independent errors (different sessions, so different
session deviations and raters), so 2SLS of the outcome on ``quality_a`` instrumented by
``quality_b`` removes the attenuation of errors-in-variables (e.g. Wooldridge 2010,
*Econometric Analysis of Cross Section and Panel Data*, sec. 5.3.2). The uncorrected OLS
on ``quality_score`` (all measurements in the window) is reported beside it. Sample:
person-months with both halves measured.

Controls: client covariates (categorical ones as dummies, one level left out), the municipal
labour-market indicators ``lm_*_muni``, the adoption event-time bin of the client's unit
(programme effects free to grow, so the programme is not credited to quality) and the
3-month bin of ``shock_event_time`` (so a shock is not). ``estimate.quality_fe =
municipality_month`` replaces municipality + region x month by municipality x month
effects, which absorb every municipal shock, programme and labour market.

Inference: CRV1 by ``estimate.cluster`` with pyfixest's default small-sample correction
(checked against pyfixest feols and linearmodels IV2SLS in tests/estimate/test_reference.py)
``ssc(k_adj=True, k_fixef="nonnested", G_adj=True)`` = G/(G-1) * (N-1)/(N-K), K counting
the fixed effects not nested in the clusters (R fixest's default; pyfixest
utils/utils.py `get_ssc`), and t(G-1) intervals.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from impact.estimate.frames import (
    adoption_bin, age_band, duration_band_index, lm_candidates, lm_controls, month_index, warn,
)
from impact.estimate.inference import wants_wild, with_wild
from impact.estimate.params import CATEGORICAL_CONTROLS, EstimateParams
from impact.estimate.linalg import scatter_dummies
from impact.estimate.pmreg import PMFit, cell_demean, fe_df, fit_pm
from impact.estimate.results import row

__all__ = ["estimate_quality", "fixed_effects", "model_columns", "model_reads", "quality_frame",
           "quality_rows"]


#: person-month columns the quality model reads besides its controls and ``lm_*`` columns
_READS = frozenset({"t", "exit_work", "quality_a", "quality_b", "quality_score", "age",
                    "duration", "municipality", "region", "caseworker_key", "adoption_month",
                    "shock_event_time"})


def _codes(values) -> np.ndarray:
    """Integer codes in order of first appearance; missing values get a code of their own.

    Give a panel column as the Series itself: its Arrow strings are factorised in C
    (about 0.05 s for 1.2 million rows), where the object array of ``to_numpy()`` takes
    0.5 s; the codes are the same (tests/estimate/test_quality_frame.py)."""
    v = values if isinstance(values, pd.Series) else pd.Series(values)
    return pd.factorize(v, use_na_sentinel=False)[0].astype("int64")


def quality_frame(pm: pd.DataFrame, params: EstimateParams,
                  outcomes: Mapping[str, str] | None = None,
                  extra: Mapping[str, np.ndarray] | None = None, spare: int = 0) -> tuple[
        np.ndarray, list[str], list[str], pd.DataFrame, np.ndarray, np.ndarray]:
    """The estimation matrix of the quality model on person-months measured twice.

    Returns (A, column names, exogenous control names, cell table, cell code per row,
    cluster code per row). Columns: y, quality_a, quality_b, quality_score, numeric
    controls, labour-market controls, then dummies (most frequent level left out) of the
    categorical controls, the adoption event-time bin and the 3-month shock bin.

    ``outcomes`` maps A's outcome column names to person-month columns (each times 100,
    in pp; default ``{"y": "exit_work"}``); ``extra`` adds columns given per row of ``pm``
    (e.g. group interactions of the heterogeneity analysis) after the outcomes and
    quality columns, not listed among the exogenous controls. Rows with a missing
    outcome or extra value are dropped like rows with a missing control. ``spare``: A has
    that many more (zero) columns after the named ones, for the caller to fill
    (no second n-row matrix needed to widen it).
    """
    if "quality_a" not in pm or "quality_b" not in pm:
        warn("quality: person_months has no quality_a/quality_b columns")
        return np.empty((0, 0)), [], [], pd.DataFrame(), np.empty(0, int), np.empty(0)
    sample = (pm["quality_a"].notna() & pm["quality_b"].notna()).to_numpy()
    if not sample.any():
        return np.empty((0, 0)), [], [], pd.DataFrame(), np.empty(0, int), np.empty(0)
    # the model's columns of every row, then each one cut to the sample as it is made: no
    # copy of the sample's rows of the frame (measured on 2.8 million rows, 450 MB less at
    # the peak); a frame's column selection is a view (copy-on-write)
    outcomes = dict(outcomes or {"y": "exit_work"})
    s = pm[model_reads(pm.columns, params, outcomes)]
    lm = lm_controls(pm.loc[sample, lm_candidates(pm.columns, params.estimate.lm_controls)],
                     params.estimate.lm_controls)
    cols, raw, t = model_columns(s, params, outcomes, extra or {}, lm)
    for c in list(cols):  # one column at a time: the whole-frame one is freed at once
        cols[c] = cols[c][sample]
    # categorical codes in order of first appearance in the sample (``_codes`` of the
    # sample's values: the whole column's codes renumbered)
    cats = {c: (pd.factorize(_codes(v)[sample])[0].astype("int64") if first
                else np.asarray(v)[sample]) for c, (v, first) in raw.items()}
    del raw
    rows, t = np.flatnonzero(sample), t[sample]
    bad = [c for c, v in cols.items() if not np.isfinite(v).all()]
    if bad:
        keep = np.ones(len(rows), bool)
        for c in bad:
            keep &= np.isfinite(cols[c])
        warn(f"quality: {int((~keep).sum())} person-months dropped for missing {bad}")
        rows, t = rows[keep], t[keep]
        cols = {c: v[keep] for c, v in cols.items()}
        cats = {c: v[keep] for c, v in cats.items()}
    # dummy levels (most frequent level left out), written straight into A: no second copy
    # of the (n x k) matrix exists at any time
    levels: dict[str, np.ndarray] = {}
    for c, codes in cats.items():
        lo = int(codes.min())  # integer codes (bins may be negative): count, no sort
        counts = np.bincount(codes - lo)
        present = np.flatnonzero(counts)
        counts, present = counts[present], present + lo
        levels[c] = present[present != present[np.argmax(counts)]]
    names = list(cols) + [f"{c}[{lv}]" for c, lv_ in levels.items() for lv in lv_]
    n = len(rows)
    A = np.zeros((n, len(names) + spare), order="F")  # column-major for BLAS (pmreg)
    for j, c in enumerate(cols):
        A[:, j] = cols[c]
    del cols
    j = len(names) - sum(len(v) for v in levels.values())
    for c, lv_ in levels.items():  # one scatter per control
        scatter_dummies(A, cats[c], {int(lv): j + k for k, lv in enumerate(lv_)})
        j += len(lv_)
    # municipality and region as codes into their distinct labels: the per-row label
    # arrays below point at those few strings (8 bytes a row) instead of holding a string
    # object per row (measured on 2.8 million rows: 380 MB less at the peak)
    mcode, mlab = pd.factorize(pm["municipality"].astype(str), use_na_sentinel=False)
    rcode, rlab = pd.factorize(pm["region"].astype(str), use_na_sentinel=False)
    mlab, rlab = np.asarray(mlab, dtype=object), np.asarray(rlab, dtype=object)
    mcode, rcode = mcode[rows].astype("int64"), rcode[rows]
    # cell = (municipality, month), coded in order of first appearance via one integer key
    t0, span = (int(t.min()), int(t.max() - t.min()) + 1) if n else (0, 1)
    cell_code = pd.factorize(mcode * span + (t - t0))[0]
    first = pd.Series(np.arange(n)).groupby(cell_code).first().to_numpy()
    cells = pd.DataFrame({"municipality": mlab[mcode[first]], "region": rlab[rcode[first]],
                          "t": t[first]})
    cells["regmonth"] = cells["region"] + ":" + cells["t"].astype(str)
    cells["munimonth"] = cells["municipality"] + ":" + cells["t"].astype(str)
    cl = rlab[rcode] if params.estimate.cluster == "region" else mlab[mcode]
    if pd.Series(rlab if params.estimate.cluster == "region" else mlab).nunique() < 2:
        # one municipality's own extract: cluster by caseworker
        warn(f"quality: one {params.estimate.cluster} only; standard errors clustered by "
             "caseworker instead")
        cl = pm["caseworker_key"].iloc[rows].astype(str).to_numpy()
    not_exog = {*outcomes, "quality_a", "quality_b", "quality_score", *(extra or {})}
    exog = [n for n in names if n not in not_exog]
    return A, names, exog, cells, cell_code, cl


def model_reads(columns, params: EstimateParams, outcomes: Mapping[str, str]) -> list[str]:
    """The person-month columns (of ``columns``, in their order) the quality model reads:
    only these are copied (identifiers and the month's dates are most of a row's bytes)."""
    wanted = _READS | set(params.estimate.controls) | set(outcomes.values())
    return [c for c in columns if c in wanted or c.startswith("lm_")]


def model_columns(s: pd.DataFrame, params: EstimateParams, outcomes: Mapping[str, str],
                  extra: Mapping[str, np.ndarray], lm: list[str]
                  ) -> tuple[dict[str, np.ndarray], dict[str, tuple[Any, bool]], np.ndarray]:
    """The quality model's columns on sample rows ``s`` (measured twice), before rows with
    missing values are dropped: ``(numeric columns, categorical keys, t)``.

    Numeric columns (float64, in A's order): outcomes (x 100), quality_a, quality_b,
    quality_score, ``extra``, numeric controls, the labour-market columns ``lm``.
    Categorical keys, per control: ``(values, first)``; ``first`` True means the levels
    are coded in order of first appearance (``_codes``), False that the values are the
    integer codes themselves (the adoption and shock bins). Shared by ``quality_frame``
    (all rows at once) and ``quality_stream`` (batches of a Parquet file)."""
    t = s["t"].to_numpy(dtype="int64")
    cols: dict[str, np.ndarray] = {
        name: 100.0 * pd.to_numeric(s[c]).to_numpy(dtype="float64")
        for name, c in outcomes.items()}
    cols.update({
        "quality_a": s["quality_a"].to_numpy(dtype="float64"),
        "quality_b": s["quality_b"].to_numpy(dtype="float64"),
        "quality_score": pd.to_numeric(s["quality_score"]).to_numpy(dtype="float64"),
    })
    for name, v in extra.items():
        cols[name] = np.asarray(v, dtype="float64")
    cats: dict[str, tuple[Any, bool]] = {}
    for c in params.estimate.controls:
        if c == "age_band":
            cats[c] = (age_band(s["age"].to_numpy()), True)
        elif c == "duration_band":
            # the band's index: the same first-appearance codes as its label
            cats[c] = (duration_band_index(s["duration"].to_numpy()), True)
        elif c in CATEGORICAL_CONTROLS:
            cats[c] = (s[c], True)
        else:
            cols[c] = pd.to_numeric(s[c], errors="coerce").to_numpy(dtype="float64")
    for c in lm:
        cols[c] = pd.to_numeric(s[c], errors="coerce").to_numpy(dtype="float64")
    if params.estimate.quality_fe == "region_month":
        g = month_index(s["adoption_month"]) if "adoption_month" in s else np.full(len(s), np.nan)
        cats["adoption_bin"] = (adoption_bin(t - g, params.adoption.anticipation_months), False)
        e = (pd.to_numeric(s["shock_event_time"], errors="coerce").to_numpy(dtype="float64")
             if "shock_event_time" in s else np.full(len(s), np.nan))
        cats["shock_bin"] = (np.where(np.isfinite(e), np.floor(np.nan_to_num(e) / 3),
                                      -9999).astype("int64"), False)
    return cols, cats, t


def estimate_quality(person_months: pd.DataFrame, params: EstimateParams,
                     estimator: str = "iv"
                     ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """2SLS quality effect (quality_a ~ quality_b) and the uncorrected OLS beside it.

    ``estimator`` ("iv" or "ols") picks the one the headline block reports; with few
    clusters (``inference.wants_wild``) its interval is the wild score bootstrap's.
    """
    A, names, exog, cells, cell_code, cl = quality_frame(person_months, params)
    if len(A) == 0:
        warn("quality: no person-month has both quality_a and quality_b; not estimated")
        return [], None
    n_cl = int(pd.Series(cl).nunique())  # hashing: sorting 3M strings took seconds
    cname, fe, df_fe = fixed_effects(cells, n_cl, params)
    cell_demean(A, cells, cell_code, fe)
    wild = wants_wild(n_cl, params.estimate)
    gram = A.T @ A  # the one pass both fits read their cross-products from
    iv = fit_pm(A, names, "y", "quality_a", exog, "quality_b", cl, df_fe,
                wild_parts=wild and estimator == "iv", gram=gram)
    ols = fit_pm(A, names, "y", "quality_score", exog, None, cl, df_fe,
                 wild_parts=wild and estimator == "ols", gram=gram)
    return quality_rows(iv, ols, cname, fe, params, estimator)


def fixed_effects(cells: pd.DataFrame, n_clusters: int, params: EstimateParams
                  ) -> tuple[str, list[str], int]:
    """(cluster name, fixed-effect columns of the cell table, FE levels counted in K)."""
    cname = params.estimate.cluster
    if n_clusters > cells[cname].nunique():
        cname = "caseworker"
    fe = (["munimonth"] if params.estimate.quality_fe == "municipality_month"
          else ["municipality", "regmonth"])
    # FE nested in the clusters are not counted in K; caseworker clusters nest none
    cell_cl = (cells["region"] if cname == "region" else cells["municipality"] if
               cname == "municipality" else pd.Series(np.arange(len(cells))))
    return cname, fe, fe_df(cells, fe, cell_cl.to_numpy())


def quality_rows(iv: PMFit, ols: PMFit, cname: str, fe: list[str], params: EstimateParams,
                 estimator: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Tidy rows and headline block of the 2SLS and OLS fits (``estimate_quality``)."""
    alpha = params.estimate.alpha
    G = iv.n_clusters
    vc = f"CRV1 cluster={cname}, fixest ssc (nonnested): G/(G-1)(N-1)/(N-K); t(G-1)"
    fes = " + ".join(fe)
    rows = []
    for model, fit, est in (("quality_iv", iv, "2SLS quality_a ~ quality_b"),
                            ("quality_ols", ols, "OLS on quality_score, uncorrected")):
        rows.append(row(model, "quality", fit.coef, fit.se, df=G - 1, alpha=alpha,
                        n_obs=fit.n_obs, n_clusters=G, vcov=vc,
                        estimator=f"{est}; FE {fes} projected out by cell (own, = pyfixest)"))
    rows.append({"model": "quality_iv", "term": "first_stage_F", "estimate": iv.first_stage_f,
                 "statistic": iv.first_stage_f, "n_obs": iv.n_obs, "n_clusters": G,
                 "estimator": "first-stage CRV1 Wald F of quality_b", "vcov": vc})
    k, fit = (0, iv) if estimator == "iv" else (1, ols)
    r = rows[k]
    headline = {
        "effect_pp": r["estimate"], "std_error": r["std_error"], "ci_low": r["ci_low"],
        "ci_high": r["ci_high"], "p_value": r["p_value"],
        "estimator": "2sls_quality_a_by_quality_b" if k == 0 else "ols_quality_score",
        "ci_method": f"CRV1 t(G-1), cluster={cname}", "n_clusters": G, "n_obs": fit.n_obs,
        "uncorrected_pp": ols.coef, "uncorrected_std_error": ols.se,
        "first_stage_F": iv.first_stage_f,
    }
    if fit.wild_a is not None:
        headline, rows[k] = with_wild(headline, r, fit.wild_a, fit.wild_c, params.estimate,
                                      params.seed, "quality")
    return rows, headline
