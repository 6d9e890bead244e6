"""``GroupDimension.codes`` keeps the level of each set of distinct values for the next
batch (``_levels_of``, in the dimension's own ``_seen``): the codes must be those of
matching afresh, whatever came before, also where 1, 1.0, "1" and True are one value to
Python's ``==`` but not as text."""

from __future__ import annotations

import numpy as np
import pandas as pd

from impact.heterogeneity import params as hp


def _fresh(d: hp.GroupDimension, values) -> np.ndarray:
    d._seen.clear()
    return d.codes(values)


def test_codes_from_the_cache_equal_fresh_matching():
    d = hp.GroupDimension("x", "x", "levels", ("one", "low", "yes"),
                          (("1.0",), ("low", 2), (True,)))
    inputs = [np.array([1.0, 2.0, np.nan]), np.array([1, 2, 1]),
              pd.Series([1, 1.0, "1", "low", None], dtype=object),
              pd.Series(["1.0", "2", None], dtype="string"), np.array([True, False]),
              pd.array([1, 2, None], dtype="Int64"), pd.Series(["1", "low"], dtype=object)]
    fresh = [_fresh(d, v) for v in inputs]
    # 1.0 matches "1.0" as text, the integer 1 does not: the cache must keep them apart
    assert list(fresh[0]) == [0, 1, -1] and list(fresh[1]) == [-1, 1, -1]
    d._seen.clear()
    rng = np.random.default_rng(5)
    for i in rng.integers(0, len(inputs), 60):   # every order, the cache warm
        np.testing.assert_array_equal(d.codes(inputs[i]), fresh[i])
    assert 0 < len(d._seen) <= len(inputs)


def test_the_cache_stays_small():
    d = hp.GroupDimension("y", "y", "levels", ("a", "b"), ((1,), (2,)))
    for k in range(200):   # a new set of distinct values every batch
        np.testing.assert_array_equal(d.codes(np.array([1, 2, 100 + k])), [0, 1, -1])
    assert len(d._seen) <= 64


def test_a_rule_value_that_cannot_be_hashed():
    """params.yaml: a level given as a list of lists is refused with a clear message; a
    dimension made in code with such a value still codes (without the cache)."""
    import pytest

    from impact.config import ConfigError

    with pytest.raises(ConfigError, match="levels.a must be a list of values"):
        hp._dimension("x", {"column": "x", "levels": {"a": [[1, 2]], "b": [3]}})
    d = hp.GroupDimension("x", "x", "levels", ("a", "b"), (([1, 2],), (3,)))
    np.testing.assert_array_equal(d.codes(np.array([3, 1, 3])), [1, -1, 1])


def test_equal_dimensions_that_match_differently_keep_apart():
    """Rules (1,) and (True,) are equal to Python (so the two dimensions are), but 1
    matches 1 and True does not (text "1" against "True"; booleans are not numbers
    here): each dimension keeps its own levels, whichever codes first."""
    a = hp._dimension("flag", {"column": "f", "levels": {"yes": [1], "no": [0]}})
    b = hp._dimension("flag", {"column": "f", "levels": {"yes": [True], "no": [False]}})
    assert a == b
    x = np.array([1, 0, 1])
    fresh_b = b.codes(x)
    np.testing.assert_array_equal(fresh_b, [-1, -1, -1])
    b._seen.clear()
    np.testing.assert_array_equal(a.codes(x), [0, 1, 0])
    np.testing.assert_array_equal(b.codes(x), fresh_b)
