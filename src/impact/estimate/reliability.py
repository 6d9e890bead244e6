"""Reliability of one measurement of the quality instrument, from both kinds of repetition.

Notes
-----
A caseworker u measured in session s (a unit and a date) by rater r scores
``x = q_u(t_s) + d_s + e_r``: true quality at that date, a session deviation shared by the
raters of the session, and a rater error. With mu the mean of all measurements and
moments taken over measurements (every measured unit and date, as the contract's
estimand says):

- ``var_total = E[(x - mu)^2]``;
- ``cov_same  = E[(x_i - mu)(xbar_same_i - mu)]`` with xbar_same_i the mean of the *other*
  raters of i's session = var(q) + var(d);
- ``var_true  = E[(x_i - mu)(xbar_cross_i - mu)]`` with xbar_cross_i the mean of the
  measurements of *other sessions of the same unit* at most ``reliability_max_gap_months``
  apart = var(q) (session deviations and rater errors are independent across sessions;
  the gap bounds drift of q between the two dates);
- ``reliability = var_true / var_total``; ``var_session = cov_same - var_true``;
  ``var_rater = var_total - cov_same``; inter-rater reliability = cov_same / var_total.

Each moment averages over the measurements that have such partners. Standard errors:
nonparametric bootstrap over caseworkers (all their sessions and raters resampled
together; ``estimate.n_boot`` draws, ``seed``), computed from per-caseworker sums.
(Generalizability theory: Shavelson and Webb 1991; cf. Brennan 2001, "Generalizability
Theory", for persons x occasions x raters designs.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from impact.estimate.frames import month_index, warn
from impact.estimate.naive import caseworker_scores
from impact.estimate.params import EstimateParams
from impact.estimate.results import row

__all__ = ["estimate_reliability", "reliability_moments"]

_STATS = ("N", "S1", "S2", "Cc", "Ac", "Bc", "Cs", "As", "Bs")


def _unit_sums(m: pd.DataFrame, gap: int) -> pd.DataFrame:
    """Per-unit sums behind every moment (columns ``_STATS``), from measurements ``m``."""
    m = m[["unit", "session", "t", "score"]].reset_index(drop=True)
    sess = (m.groupby(["unit", "session", "t"], sort=False)["score"].agg(["sum", "count"])
            .reset_index())
    m = m.merge(sess, on=["unit", "session", "t"])
    # same session, other raters
    other_n = m["count"] - 1
    same = np.divide(m["sum"] - m["score"], other_n, out=np.full(len(m), np.nan),
                     where=other_n > 0)
    # other sessions of the same unit within the gap
    pairs = sess.merge(sess, on="unit", suffixes=("", "_o"))
    pairs = pairs[(pairs["session"] != pairs["session_o"])
                  & ((pairs["t"] - pairs["t_o"]).abs() <= gap)]
    cross = pairs.groupby(["unit", "session"])[["sum_o", "count_o"]].sum().reset_index()
    m = m.merge(cross, on=["unit", "session"], how="left")
    xbar = np.divide(m["sum_o"].to_numpy(), m["count_o"].to_numpy(), out=np.full(len(m), np.nan),
                     where=m["count_o"].fillna(0).to_numpy() > 0)
    x = m["score"].to_numpy(dtype="float64")
    hc, hs = np.isfinite(xbar), np.isfinite(same)
    d = pd.DataFrame({
        "unit": m["unit"], "N": 1.0, "S1": x, "S2": x * x,
        "Cc": hc * 1.0, "Ac": np.where(hc, x * np.nan_to_num(xbar), 0.0),
        "Bc": np.where(hc, x + np.nan_to_num(xbar), 0.0),
        "Cs": hs * 1.0, "As": np.where(hs, x * np.nan_to_num(same), 0.0),
        "Bs": np.where(hs, x + np.nan_to_num(same), 0.0),
    })
    return d.groupby("unit")[list(_STATS)].sum()


def reliability_moments(sums: np.ndarray) -> np.ndarray:
    """Moments from summed ``_STATS`` (..., 9) -> (..., 6): reliability, inter-rater
    reliability, var_true, var_session, var_rater, var_total."""
    N, S1, S2, Cc, Ac, Bc, Cs, As, Bs = np.moveaxis(np.asarray(sums, dtype="float64"), -1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = S1 / N
        var_total = S2 / N - mu ** 2
        var_true = (Ac - mu * Bc + mu ** 2 * Cc) / Cc
        cov_same = (As - mu * Bs + mu ** 2 * Cs) / Cs
        return np.stack([var_true / var_total, cov_same / var_total, var_true,
                         cov_same - var_true, var_total - cov_same, var_total], axis=-1)


def estimate_reliability(quality: pd.DataFrame | None, params: EstimateParams
                         ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Variance components and reliability of ``quality.instrument``; (rows, summary)."""
    if quality is None or quality.empty:
        return [], None
    q = caseworker_scores(quality, params.quality.instrument)
    if q.empty:
        return [], None
    m = pd.DataFrame({"unit": q["unit_key"].astype(str).to_numpy(),
                      "session": pd.to_datetime(q["date"]).dt.strftime("%Y-%m-%d").to_numpy(),
                      "t": month_index(q["date"]), "score": q["score"].to_numpy(dtype="float64")})
    sums = _unit_sums(m, params.quality.reliability_max_gap_months)
    est = reliability_moments(sums.to_numpy().sum(axis=0))
    n_units = len(sums)
    if not np.isfinite(est[0]):
        warn("reliability: no caseworker has two sessions within "
             f"{params.quality.reliability_max_gap_months} months; reliability not estimated")
    boot = np.full((0, 6), np.nan)
    if params.estimate.n_boot > 0 and n_units > 1:
        rng = np.random.default_rng(params.seed)
        counts = rng.multinomial(n_units, np.full(n_units, 1.0 / n_units),
                                 size=params.estimate.n_boot)
        boot = reliability_moments(counts @ sums.to_numpy())
    se = np.nanstd(boot, axis=0, ddof=1) if len(boot) > 1 else np.full(6, np.nan)
    names = ("reliability", "inter_rater_reliability", "var_true", "var_session",
             "var_rater", "var_total")
    alpha = params.estimate.alpha
    vc = f"bootstrap over caseworkers, {params.estimate.n_boot} draws, seed; normal CI"
    rows = [row("quality_reliability", n, e, s, alpha=alpha, n_obs=len(m), n_clusters=n_units,
                estimator=f"variance components, cross-session covariance within "
                          f"{params.quality.reliability_max_gap_months} months", vcov=vc)
            for n, e, s in zip(names, est, se)]
    summary = {"reliability": float(est[0]), "reliability_std_error": float(se[0]),
               "inter_rater_reliability": float(est[1]), "n_measurements": int(len(m)),
               "n_caseworkers_measured": n_units}
    return rows, summary
