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
    """Headline block and tidy row with the wild interval, p-value and bootstrap standard
    error in place (the contract: a bootstrap interval carries the bootstrap SE); the
    analytic ones are kept as ``*_analytic``.

    Where the wild interval is unbounded (too few treated clusters), ``metrics.json`` still
    needs numbers: the analytic interval, SE and p-value stay, flagged with
    ``wild_unbounded`` and a ``ci_method`` that says the interval is likely too narrow.
    """
    res = score_wild(a, c, weights=est.wild_weights, B=est.wild_draws, seed=seed,
                     alpha=est.alpha, scale=head.get("std_error"))
    analytic = {"std_error_analytic": head["std_error"], "ci_low_analytic": head["ci_low"],
                "ci_high_analytic": head["ci_high"],
                "p_value_analytic": head.get("p_value", tidy_row.get("p_value"))}
    common = {"wild_draws": res.n_boot, "wild_weights": res.weights,
              "wild_p_value": res.p_value}
    if np.isfinite(res.ci_low) and np.isfinite(res.ci_high):
        method = res.describe(est.alpha)
        new = {"std_error": res.std_error, "ci_low": res.ci_low, "ci_high": res.ci_high,
               "p_value": res.p_value}
        flag: dict[str, Any] = {}
    else:
        method = (f"{head['ci_method']} (likely too narrow: the wild score bootstrap "
                  f"interval for {key} is unbounded with {res.n_clusters} clusters, too "
                  "few treated)")
        new = {}
        flag = {"wild_unbounded": True, "wild_ci_low": _finite(res.ci_low),
                "wild_ci_high": _finite(res.ci_high)}
    head = {**head, **analytic, **new, "ci_method": method, **common, **flag}
    tidy_row = {**tidy_row, **new, "vcov": f"{tidy_row.get('vcov')}; interval: {method}"}
    if new:
        tidy_row["statistic"] = tidy_row["estimate"] / res.std_error if res.std_error else np.nan
    return head, tidy_row


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
