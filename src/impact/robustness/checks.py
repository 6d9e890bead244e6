"""Robustness checks of the headline conclusions (stage ``robustness``).

Each check is one tidy row: ``check``, ``block``, ``estimate``, ``std_error``, ``ci_low``,
``ci_high``, ``p_value``, ``expect`` (what a robust result looks like), ``passes``
(bool) and ``note``.

- **Placebo adoption dates**: every adopter's date moved ``placebo_shift_months``
  earlier, on its months before the real date (minus the anticipation window) only: the
  imputation ATT should be zero (interval covers 0).
- **Placebo shocks**: the same for the ``shock.type`` events; and, where the shocks table
  has events of ``placebo_shock_type`` (events known to have no effect on hiring, such as
  a reorganisation), their event-study effect, which should also be zero.
- **Leave one municipality out**: the adoption ATT without each municipality in turn (in
  parallel, ``impact.compute``) and the quality effect without each (exact, from the
  decomposition model's leave-one-cluster-out fits). Robust: every estimate keeps the
  headline's sign.
- **Pre-trends**: the BJS pre-trend test of the adoption headline (p above 0.05).
- **Alternative outcomes and crisis months dropped**: grid cells of the sweep (same
  estimator and fixed effects as the headline): the effect keeps its sign and stays
  significant.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from impact.compute import ComputeParams, parallel_map
from impact.estimate.adoption import adoption_cells, estimate_adoption
from impact.estimate.frames import EstimationWarning, shock_events
from impact.estimate.params import EstimateParams
from impact.estimate.shock import estimate_shock

__all__ = ["COLUMNS", "placebo_adoption", "placebo_shock", "leave_one_out_adoption", "row"]

COLUMNS = ["check", "block", "estimate", "std_error", "ci_low", "ci_high", "p_value",
           "expect", "passes", "note"]


def row(check: str, block: str, head: dict[str, Any] | None, key: str, expect: str,
        note: str = "", headline_sign: float = 1.0) -> dict[str, Any]:
    """A check's row from an estimator's headline block (``key`` names the estimate)."""
    if head is None:
        return {"check": check, "block": block, "estimate": None, "std_error": None,
                "ci_low": None, "ci_high": None, "p_value": None, "expect": expect,
                "passes": None, "note": note or "not estimable"}
    est, lo, hi = head[key], head["ci_low"], head["ci_high"]
    if expect == "zero":
        passes = bool(lo <= 0 <= hi)
    elif expect == "same sign, significant":
        passes = bool(np.sign(est) == np.sign(headline_sign) and not (lo <= 0 <= hi))
    else:
        raise ValueError(f"expect={expect!r}")
    return {"check": check, "block": block, "estimate": float(est),
            "std_error": float(head["std_error"]), "ci_low": float(lo), "ci_high": float(hi),
            "p_value": None if head.get("p_value") is None else float(head["p_value"]),
            "expect": expect, "passes": passes, "note": note}


def placebo_adoption(cells: pd.DataFrame, pm: pd.DataFrame, adoption: pd.DataFrame | None,
                     shocks: pd.DataFrame | None, params: EstimateParams, shift: int
                     ) -> dict[str, Any] | None:
    """Imputation ATT of adoption dates ``shift`` months early, before the real dates."""
    frame = adoption_cells(cells, pm, adoption, params.adoption.programme)
    if frame is None:
        return None
    g = frame["g"].to_numpy()
    keep = ~np.isfinite(g) | (frame["t"].to_numpy() < g - params.adoption.anticipation_months)
    f = frame[keep].copy()
    f["g"] = f["g"] - shift
    events = shock_events(shocks, params.shock.type)
    return estimate_adoption(f.reset_index(drop=True), events, params)[1]


def placebo_shock(cells: pd.DataFrame, pm: pd.DataFrame, shocks: pd.DataFrame | None,
                  params: EstimateParams, shift: int, shock_type: str | None = None
                  ) -> dict[str, Any] | None:
    """Shock event-study effect of ``shock_type`` events (default ``shock.type``); with
    ``shift`` > 0, of the events moved ``shift`` months early, before the real dates."""
    events = shock_events(shocks, shock_type or params.shock.type)
    if events.empty:
        return None
    c = cells.copy()
    if shift:
        first = events.groupby("municipality")["t_event"].min()
        real = c["municipality"].astype(str).map(first).to_numpy(dtype="float64")
        ant = params.shock.anticipation_months
        c = c[~np.isfinite(real) | (c["t"].to_numpy() < real - ant)]
        events = events.assign(t_event=events["t_event"] - shift)
    return estimate_shock(c.reset_index(drop=True), pm, events, params)[1]


def _drop_one(task: tuple) -> tuple[str, dict[str, Any] | None]:
    frame, events, params, muni = task
    f = frame[frame["municipality"] != muni].reset_index(drop=True)
    with warnings.catch_warnings():  # the full fit has reported them already
        warnings.simplefilter("ignore", EstimationWarning)
        return muni, estimate_adoption(f, events, params, att_only=True)[1]


def leave_one_out_adoption(cells: pd.DataFrame, pm: pd.DataFrame,
                           adoption: pd.DataFrame | None, shocks: pd.DataFrame | None,
                           params: EstimateParams, compute: ComputeParams | None = None
                           ) -> pd.DataFrame:
    """The imputation ATT without each municipality (columns municipality, estimate,
    std_error, ci_low, ci_high)."""
    frame = adoption_cells(cells, pm, adoption, params.adoption.programme)
    cols = ["municipality", "estimate", "std_error", "ci_low", "ci_high"]
    if frame is None:
        return pd.DataFrame(columns=cols)
    events = shock_events(shocks, params.shock.type)
    munis = sorted(frame["municipality"].unique())
    res = parallel_map(_drop_one, [(frame, events, params, m) for m in munis], compute,
                       desc="leave one municipality out")
    return pd.DataFrame([{"municipality": m, "estimate": h and h["att_pp"],
                          "std_error": h and h["std_error"], "ci_low": h and h["ci_low"],
                          "ci_high": h and h["ci_high"]} for m, h in res], columns=cols)
