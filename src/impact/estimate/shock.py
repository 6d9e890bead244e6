"""Local labour-market shocks (e.g. business-park openings) as an event study on cells.

Notes
-----
On municipality x month cells (Y = 100 * exits_work / person_months, weight p =
person_months) the event study with one dummy per event k and event time e in
``shock.event_window``,

    Y_mt = a_m + g_region(m),t + sum_k sum_e d_ke 1[m = m_k, t - t_k = e] + X_mt'b + u_mt,

gives each in-window cell its own dummy, so it equals the imputation estimator
(Borusyak, Jaravel and Spiess 2024): fit the model without dummies on the cells outside
every window (the reference; anticipation months before the date are inside the window,
so they are not in it), impute Y(0) in the windows, d_ke = Y - Yhat(0). This is how it is
computed (``imputation``), because the dummy regression's CRV1 errors cannot see the noise
of the cells its dummies fit exactly, while BJS's conservative variance does; the point
estimates equal pyfixest's dummy regression (tests/estimate/test_reference.py).

X: the composition means of the cell (so the estimand holds the clients fixed, as the
contract's "what it would have been without the opening" for the same person-months)
and the share of the cell's person-months in each adoption event-time bin (the programme
is controlled for, pooled over cohorts, with effects free to grow). Municipal
labour-market indicators are *not* controlled for: the shock moves them. Region x month
effects make the other municipalities of the region the comparison (spillovers there
would bias the effect towards zero).

``effect_pp`` = sum_k sum_{e in effect_window} p_ke d_ke / sum p_ke: the average over the
person-months of the shocked municipalities in months 0..11, as the contract defines it.
Standard errors: BJS Theorem 3 conservative variance clustered by municipality (taubar by
event time, own cluster left out), t(G-1). The event-study path pools events at each event
time with person-month weights; the pre-trend test is the joint Wald F test (covariance
from the same cluster scores) of the pooled path before the anticipation months.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from impact.estimate.frames import (
    adoption_bin, composition_controls, event_dummies, month_index, rate_pp, warn,
)
from impact.estimate.imputation import aggregate, impute, wild_parts
from impact.estimate.inference import wants_wild, with_wild
from impact.estimate.linalg import wald_f
from impact.estimate.naive import naive_before_after
from impact.estimate.params import EstimateParams
from impact.estimate.results import row

__all__ = ["estimate_shock", "adoption_shares", "cell_model_rows", "WEIGHT"]

_EST = "event study by imputation (per-event windows; BJS 2024), own WLS"


#: the row weight of ``cell_model_rows``: person-months each row stands for
WEIGHT = "n_person_months"


def adoption_shares(person_months: pd.DataFrame | None, anticipation: int
                    ) -> pd.DataFrame | None:
    """Share of each municipality-month's person-months per adoption event-time bin.
    ``person_months``: the person-months, or ``cell_model_rows`` (each row counted
    ``n_person_months`` times; the same shares)."""
    if person_months is None or "adoption_month" not in person_months:
        return None
    g = month_index(person_months["adoption_month"])
    if not np.isfinite(g).any():
        return None
    b = adoption_bin(person_months["t"].to_numpy(dtype="float64") - g, anticipation)
    d = pd.DataFrame({"municipality": person_months["municipality"].astype(str).to_numpy(),
                      "t": person_months["t"].to_numpy(dtype="int64"), "b": b,
                      "w": (person_months[WEIGHT].to_numpy(dtype="float64")
                            if WEIGHT in person_months else 1.0)})
    tab = pd.crosstab([d["municipality"], d["t"]], d["b"], values=d["w"], aggfunc="sum",
                      normalize="index").fillna(0.0)
    tab = tab.drop(columns=[-9999], errors="ignore")
    tab.columns = [f"adb_{'m' if c < 0 else ''}{abs(c)}" for c in tab.columns]
    return tab.reset_index()


def estimate_shock(cells: pd.DataFrame, person_months: pd.DataFrame | None,
                   events: pd.DataFrame, params: EstimateParams
                   ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Event-study effect of ``shock.type`` events; (tidy rows, headline block or None)."""
    sp_, alpha, cname = params.shock, params.estimate.alpha, params.estimate.cluster
    f = cells.copy()
    f["municipality"] = f["municipality"].astype(str)
    f["region"] = f["region"].astype(str)
    if "t" not in f:
        f["t"] = month_index(f["month"]).astype("int64")
    for c in ("person_months", "exits_work"):  # never sum or scale small integer types
        f[c] = pd.to_numeric(f[c]).astype("float64")
    f = f[f["person_months"] > 0].reset_index(drop=True)
    events = events[events["municipality"].isin(set(f["municipality"]))].reset_index(drop=True)
    if events.empty:
        return [], None
    f["y"] = rate_pp(f["exits_work"], f["person_months"])
    f["regmonth"] = f["region"] + ":" + f["t"].astype(str)
    # (sparse: the per-event columns of the national cells are a 1 GB dense matrix)
    D, keys = event_dummies(f["municipality"].to_numpy(), f["t"].to_numpy(), events,
                            sp_.event_window, pooled=False, sparse=True)
    per_cell = np.asarray(D.sum(axis=1)).ravel()
    in_window = per_cell > 0
    if (per_cell > 1).any():
        warn(f"shock: {int((per_cell > 1).sum())} cells lie in the windows of two events; "
             "the headline counts their person-months once; per-event rows count them for each event")
    xcols = composition_controls(f)
    shares = adoption_shares(person_months, params.adoption.anticipation_months)
    if shares is not None:
        f = f.merge(shares, on=["municipality", "t"], how="left")
        anames = [c for c in shares.columns if c.startswith("adb_")]
        f[anames] = f[anames].fillna(0.0)
        xcols += anames
    p = f["person_months"].to_numpy(dtype="float64")
    imp = impute(f, f["y"].to_numpy(), p, ["municipality", "regmonth"], xcols, ~in_window,
                 in_window, f[cname].to_numpy(), "shock", fallback_fe=["municipality", "t"])
    if imp is None:
        warn("shock: no event-window cell can be imputed; shock block not estimated")
        return [], None
    D1, p1 = D[imp.idx1], p[imp.idx1]
    ev_k = np.array([k for k, _ in keys])
    ev_e = np.array([e for _, e in keys])
    group = ev_e[_first_column(D1)]  # event time of the cell (first event)
    lo_eff, hi_eff = sp_.effect_window

    def hits(M, sel: np.ndarray) -> np.ndarray:   # each row's ones in columns ``sel``
        return M @ sel.astype("float64")

    def target(sel: np.ndarray) -> np.ndarray:
        return p1 * hits(D1, sel)

    labels: list[tuple[str, Any, Any]] = [("effect", None, None)]
    # the headline counts each person-month once, also where two openings' windows overlap
    in_effect = (ev_e >= lo_eff) & (ev_e <= hi_eff)
    cols = [p1 * (hits(D1, in_effect) > 0)]
    for k, ev in events.iterrows():
        labels.append(("effect", None, str(ev.shock_id)))
        cols.append(target((ev_k == k) & (ev_e >= lo_eff) & (ev_e <= hi_eff)))
    for e in range(sp_.event_window[0], sp_.event_window[1] + 1):
        labels.append(("event_time", e, None))
        cols.append(target(ev_e == e))
    pre_end = -sp_.anticipation_months - 1
    bins = [(b, min(b + 2, pre_end)) for b in range(sp_.event_window[0], pre_end + 1, 3)]
    if len(events) <= len(bins):  # too few events for a joint test of several bins
        bins = [(sp_.event_window[0], pre_end)] if bins else []
    for b0, b1 in bins:
        labels.append(("pretrend_bin", b0, None))
        cols.append(target((ev_e >= b0) & (ev_e <= b1)))
    W = np.column_stack(cols)
    has = W.sum(axis=0) > 0
    if not has[0]:
        warn("shock: no imputable cell in the effect window; shock block not estimated")
        return [], None
    labels = [lab for lab, h in zip(labels, has) if h]
    W = W[:, has]
    est, scores = aggregate(imp, W, group)
    se = np.sqrt((scores ** 2).sum(axis=0))
    G = imp.n_clusters
    vc = (f"BJS Thm3 conservative, leave-out eq.8 by event time, cluster={cname}, "
          "CRV1-style ssc; t(G-1)")
    common = dict(df=G - 1, alpha=alpha, n_clusters=G, estimator=_EST, vcov=vc)
    rows = [row("shock_event_study", term, e_, s_, rel_time=ell, cohort=coh,
                n_obs=int(np.count_nonzero(w)), **common)
            for (term, ell, coh), e_, s_, w in zip(labels, est, se, W.T)]
    pre = [i for i, (term, _, _) in enumerate(labels) if term == "pretrend_bin"]
    pre_p = float("nan")
    if pre:
        cov = scores[:, pre].T @ scores[:, pre]
        F, pre_p, q = wald_f(est[pre], cov, np.eye(len(pre)), G - 1)
        rows.append({"model": "shock_event_study", "term": "pretrend_wald_F", "estimate": F,
                     "statistic": F, "p_value": pre_p, "n_obs": len(f), "n_clusters": G,
                     "estimator": f"joint F({q}, {G - 1}): pooled pre-anticipation path in "
                                  f"{len(pre)} bin(s) from event time {sp_.event_window[0]}",
                     "vcov": vc})
    naive = naive_before_after(f, "municipality",
                               events.rename(columns={"municipality": "unit"})[["unit", "t_event"]])
    rows.append(row("shock_naive", "post_minus_pre", naive, n_obs=len(f),
                    estimator="pooled rate months 0..11 minus -12..-1", vcov="none"))
    main = rows[0]
    headline = {
        "effect_pp": main["estimate"], "std_error": main["std_error"],
        "ci_low": main["ci_low"], "ci_high": main["ci_high"], "p_value": main["p_value"],
        "naive_pp": naive,
        "estimator": "event_study_imputation_bjs2024",
        "weights": "person-months of shocked municipalities at event times in effect window",
        "ci_method": f"BJS conservative, t(G-1), cluster={cname}", "n_events": int(len(events)),
        "n_clusters": G, "n_obs": int(len(f)), "n_dropped_cells": imp.n_lost,
        "n_fallback_cells": imp.n_fallback,
        # share of the estimand's person-months (effect-window cells) that could be imputed
        "coverage_share": float((p1 * (hits(D1, in_effect) > 0)).sum()
                                / (p * (hits(D, in_effect) > 0)).sum()),
        "pretrend_p_value": pre_p, "effect_window": list(sp_.effect_window),
    }
    if wants_wild(G, params.estimate):
        a, c = wild_parts(imp, W[:, 0])
        headline, rows[0] = with_wild(headline, main, a, c, params.estimate, params.seed,
                                      "shock")
    return rows, headline


def _first_column(M) -> np.ndarray:
    """Each row's first column holding a one in the CSR matrix ``M`` (sorted indices), 0
    for a row without one: ``np.argmax(M > 0, axis=1)`` of the dense matrix."""
    if M.nnz == 0:
        return np.zeros(M.shape[0], dtype=np.int64)
    start, end = M.indptr[:-1], M.indptr[1:]
    return np.where(end > start, M.indices[np.minimum(start, M.nnz - 1)], 0)


def cell_model_rows(path, batch_rows: int = 1 << 20) -> pd.DataFrame:
    """What the cell models read of the person-months (``run.cell_model_columns``:
    municipality, t, adoption_month), from the panel file a batch at a time: one row per
    distinct value triple with the person-months behind it (``WEIGHT``). On the national
    panel 63 million rows become tens of thousands; ``adoption_shares`` gives the same
    shares from them as from the rows.

    Each batch is counted by Arrow's hash aggregation on the columns as stored (text as
    its dictionary codes), and only the counts become a frame, with the dtypes
    ``io.iter_batches`` gives the columns, then summed as before: the same frame as
    pandas' ``groupby(...).size()`` of every batch, which took 5 of a national adoption
    stage's 8 CPU seconds (seven estimate stages and robustness each make it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from impact import io
    from impact.distinct import aggregated

    keys = ["municipality", "t", "adoption_month"]
    have = [c for c in keys if c in io.parquet_columns(path)]
    kinds = io.whole_file_dtypes(pq.ParquetFile(path), have)
    text, batches = io.stored_batches(path, have, batch_rows)
    counted = [c for c in (aggregated(pa.Table.from_batches([b]), have,
                                         [([], "count_all")], text) for b in batches)
               if c is not None]
    if not counted:
        return pd.DataFrame({**{c: [] for c in have}, WEIGHT: []})
    df = pa.Table.from_batches(counted).to_pandas(date_as_object=False)
    for c, kind in kinds.items():
        if str(df[c].dtype) != kind:
            df[c] = df[c].astype(kind)
    df = df.rename(columns={"count_all": WEIGHT})[[*have, WEIGHT]]
    out = df.groupby(have, dropna=False, sort=True, observed=True)[WEIGHT].sum()
    return out.reset_index()
