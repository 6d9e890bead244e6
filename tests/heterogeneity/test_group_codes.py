"""``GroupDimension.codes`` keeps the level of each distinct value for the next batch
(``_value_levels``, in the dimension's own ``_seen``) and codes plain integers in a short
range through a table of that range: the codes must be those of matching afresh,
whatever came before, also where 1, 1.0, "1" and True are one value to Python's ``==``
but not as text, and the same whichever path a batch takes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

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
    assert 0 < len(d._seen) <= sum(len(pd.unique(pd.Series(v).dropna())) for v in inputs)


def test_the_cache_stays_small(monkeypatch):
    monkeypatch.setattr(hp, "_CACHE", 50)
    d = hp.GroupDimension("y", "y", "levels", ("a", "b"), ((1,), (2,)))
    for k in range(200):   # a new distinct value every batch, far out of range
        np.testing.assert_array_equal(d.codes(np.array([1, 2, 10 ** 6 * (k + 1)])),
                                      [0, 1, -1])
    assert 0 < len(d._seen) <= 50


@pytest.mark.parametrize("kind,labels,rules", [
    ("bands", ("young", "mid", "old"), ((None, 24), (25, 44.5), (40, None))),
    ("levels", ("one", "two-three", "text"), ((1, 1.0), (2, 3), ("4",))),
])
@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "uint16", "uint64"])
def test_integers_through_their_range_as_through_the_distinct_values(kind, labels, rules,
                                                                       dtype):
    """Plain integers in a short range are coded by a table of the range; wide ranges,
    floats and nullable integers by the general path: the same codes either way."""
    rng = np.random.default_rng(11)
    d = hp.GroupDimension("z", "z", kind, labels, rules)
    info = np.iinfo(dtype)
    lo = max(int(info.min), -3)
    narrow = rng.integers(lo, min(int(info.max), 60), 500).astype(dtype)
    wide = np.r_[narrow, np.array([info.max], dtype=dtype)]
    for x in (narrow, wide, narrow[:1]):
        got = _fresh(d, x)
        ref = _fresh(d, pd.Series(x, dtype=object))           # never the range table
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(d.codes(x), ref)        # the cache warm
    if kind == "bands":   # numerically, by the rules
        x = narrow.astype("float64")
        want = np.where(x <= 24, 0, np.where(x <= 44.5, 1, 2))
        np.testing.assert_array_equal(_fresh(d, narrow), want)
    else:
        want = np.select([narrow == 1, (narrow == 2) | (narrow == 3), narrow == 4],
                         [0, 1, 2], -1)
        np.testing.assert_array_equal(_fresh(d, narrow), want)
    np.testing.assert_array_equal(d.codes(np.zeros(0, dtype=dtype)), np.zeros(0))


def test_a_rule_value_that_cannot_be_hashed():
    """params.yaml: a level given as a list of lists is refused with a clear message; a
    dimension made in code with such a value still codes (without the cache)."""
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
