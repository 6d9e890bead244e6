"""Shapley decomposition of a change into the contributions of named factors.

A change ``v(all) - v(none)`` is split over factors by averaging each factor's marginal
contribution over all orders in which the factors could be switched from the base to
the comparison period (Shapley 1953; for decompositions Shorrocks 2013, "Decomposition
procedures for distributional analysis: a unified framework based on the Shapley
value", J. Econ. Inequality 11:99). Computed exactly over the 2^K subsets with weights
|S|! (K - |S| - 1)! / K!, not by sampling orders; the contributions sum to the total
change exactly and do not depend on the order the factors are listed in.

For an additive value function (as the linear decomposition model gives) each factor's
Shapley value is its own term's change; a non-additive one (a hazard model on the
log-odds scale, say) shares the interactions equally.
"""

from __future__ import annotations

from itertools import combinations
from math import factorial
from typing import Callable, Sequence

import numpy as np

__all__ = ["shapley"]


def shapley(value: Callable[[frozenset[str]], np.ndarray],
            factors: Sequence[str]) -> dict[str, np.ndarray]:
    """Exact Shapley values of ``factors`` for the set function ``value``.

    Parameters
    ----------
    value
        ``value(S)``: the outcome (any array shape, broadcast over rows or draws) with the
        factors in ``S`` at their comparison values and the others at their base values.
        Called once per subset (2^K calls).
    factors
        Distinct factor names; at most 12 (4,096 subsets).

    Returns
    -------
    dict factor -> contribution; the contributions sum to ``value(all) - value(none)``.
    """
    names = list(factors)
    K = len(names)
    if len(set(names)) != K:
        raise ValueError(f"shapley: factor names must be distinct, got {names}")
    if not 0 < K <= 12:
        raise ValueError(f"shapley: 1 to 12 factors, got {K}")
    cache = {frozenset(s): np.asarray(value(frozenset(s)), dtype="float64")
             for r in range(K + 1) for s in combinations(names, r)}
    out = {}
    for f in names:
        others = [g for g in names if g != f]
        total = np.zeros_like(cache[frozenset()])
        for r in range(K):
            weight = factorial(r) * factorial(K - r - 1) / factorial(K)
            for s in combinations(others, r):
                s = frozenset(s)
                total = total + weight * (cache[s | {f}] - cache[s])
        out[f] = total
    return out
