"""Exact Shapley values (impact.decompose.shapley) against brute force over all orders.

The reference is the definition: a factor's Shapley value is its marginal contribution
v(S + f) - v(S), averaged over all K! orders in which the factors are switched on (S =
the factors before f). Everything is exact arithmetic on small numbers, so equality is
asserted to 1e-12.
"""

from itertools import permutations
from math import factorial

import numpy as np
import pytest

from impact.decompose.shapley import shapley

NAMES = ["composition", "labour_market", "shocks", "quality", "extra"]


def _nonadditive(names, seed):
    """v(S) = logistic(a + sum_{f in S} b_f + sum_{f<g in S} c_fg + d * [all of the first
    three in S]) on a vector of three 'rows', so the interactions are real."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=3)
    b = {f: rng.normal(size=3) for f in names}
    c = {(f, g): rng.normal(size=3) for i, f in enumerate(names) for g in names[i + 1:]}
    d = rng.normal(size=3)

    def value(S):
        z = a + sum((b[f] for f in S), np.zeros(3))
        z = z + sum((v for (f, g), v in c.items() if f in S and g in S), np.zeros(3))
        if set(names[:3]) <= set(S):
            z = z + d
        return 1 / (1 + np.exp(-z))

    return value


def _brute_force(value, names):
    out = {f: np.zeros(3) for f in names}
    for order in permutations(names):
        S = frozenset()
        for f in order:
            out[f] = out[f] + value(S | {f}) - value(S)
            S = S | {f}
    return {f: v / factorial(len(names)) for f, v in out.items()}


@pytest.mark.parametrize("K", [2, 3, 4, 5])
def test_equals_average_over_all_orders(K):
    names = NAMES[:K]
    value = _nonadditive(names, seed=K)
    got = shapley(value, names)
    want = _brute_force(value, names)
    assert list(got) == names
    for f in names:
        np.testing.assert_allclose(got[f], want[f], rtol=0, atol=1e-12)
    # efficiency: the contributions add up to the total change
    total = value(frozenset(names)) - value(frozenset())
    np.testing.assert_allclose(sum(got.values()), total, rtol=0, atol=1e-12)
    # the interactions are real: the values differ from the one-at-a-time changes
    solo = {f: value(frozenset({f})) - value(frozenset()) for f in names}
    assert max(np.abs(got[f] - solo[f]).max() for f in names) > 1e-3


@pytest.mark.parametrize("K", [3, 5])
def test_order_of_listing_does_not_matter(K):
    names = NAMES[:K]
    value = _nonadditive(names, seed=10 + K)
    base = shapley(value, names)
    for perm in [names[::-1], names[1:] + names[:1]]:
        other = shapley(value, perm)
        for f in names:
            np.testing.assert_allclose(other[f], base[f], rtol=0, atol=1e-12)


def test_additive_value_gives_each_factor_its_own_change():
    rng = np.random.default_rng(3)
    x0 = {f: rng.normal(size=(4, 2)) for f in NAMES[:4]}
    x1 = {f: rng.normal(size=(4, 2)) for f in NAMES[:4]}

    def value(S):
        return sum((x1 if f in S else x0)[f] for f in NAMES[:4])

    got = shapley(value, NAMES[:4])
    for f in NAMES[:4]:
        np.testing.assert_allclose(got[f], x1[f] - x0[f], rtol=0, atol=1e-12)
        assert got[f].shape == (4, 2)


def test_one_factor_and_call_count():
    calls = []

    def value(S):
        calls.append(S)
        return np.array([2.0 if S else 0.5])

    assert shapley(value, ["only"])["only"] == pytest.approx(1.5)
    calls.clear()
    shapley(lambda S: calls.append(S) or np.zeros(1), NAMES[:4])
    assert len(calls) == 2 ** 4 and len(set(calls)) == 2 ** 4


def test_errors():
    v = _nonadditive(NAMES[:2], 0)
    with pytest.raises(ValueError, match="distinct"):
        shapley(v, ["composition", "composition"])
    with pytest.raises(ValueError, match="1 to 12 factors, got 0"):
        shapley(v, [])
    with pytest.raises(ValueError, match="1 to 12 factors, got 13"):
        shapley(lambda S: np.zeros(1), [f"f{i}" for i in range(13)])
