"""Which interval a headline carries: analytic clustered, or the wild score bootstrap.

``estimate.inference``: ``cluster`` keeps the analytic interval (CRV1 or BJS, t(G-1));
``wild`` always uses the wild score bootstrap (``scorewild``); ``auto`` (default) uses it
when the estimate rests on fewer than ``estimate.wild_below`` clusters, since a study of
six municipalities is common and t(G-1) with CRV1 over-rejects there (measured in
tests/estimate/test_scorewild.py: 19% at a nominal 5% with six clusters).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from impact.estimate.params import EstimateSection
from impact.estimate.scorewild import score_wild

__all__ = ["wants_wild", "with_wild"]


def wants_wild(n_clusters: int, est: EstimateSection) -> bool:
    """True when the headline interval should come from the wild score bootstrap (never
    with fewer than two clusters: no clustered interval exists, the block is null)."""
    if n_clusters < 2:
        return False
    if est.inference == "wild":
        return True
    return est.inference == "auto" and n_clusters < est.wild_below


def with_wild(head: dict[str, Any], tidy_row: dict[str, Any], a, c, est: EstimateSection,
              seed: int, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Headline block and tidy row with the wild interval and p-value in place.

    The analytic standard error stays (the bootstrap interval need not be symmetric);
    the analytic interval is kept as ``ci_low_analytic``/``ci_high_analytic``.
    """
    res = score_wild(a, c, weights=est.wild_weights, B=est.wild_draws, seed=seed,
                     alpha=est.alpha, scale=head.get("std_error"))
    method = res.describe(est.alpha)
    lo, hi = res.ci_low, res.ci_high
    extra: dict[str, Any] = {}
    if not (np.isfinite(lo) and np.isfinite(hi)):
        # the test rejects no value on one side: too few treated clusters to bound the
        # effect. metrics.json needs numbers, so the analytic interval stays, flagged.
        lo, hi = head["ci_low"], head["ci_high"]
        method = (f"{head['ci_method']} (likely too narrow: the wild score bootstrap "
                  f"interval is unbounded with {res.n_clusters} clusters, too few treated)")
        extra = {"wild_unbounded": True, "wild_ci_low": _finite(res.ci_low),
                 "wild_ci_high": _finite(res.ci_high)}
    head = {**head, "ci_low_analytic": head["ci_low"], "ci_high_analytic": head["ci_high"],
            "ci_low": lo, "ci_high": hi, "p_value": res.p_value, "ci_method": method,
            "wild_draws": res.n_boot, "wild_weights": res.weights, **extra}
    tidy_row = {**tidy_row, "ci_low": lo, "ci_high": hi, "p_value": res.p_value,
                "vcov": f"{tidy_row.get('vcov')}; interval: {method}"}
    return head, tidy_row


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
