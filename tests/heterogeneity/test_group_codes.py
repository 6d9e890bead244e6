"""``GroupDimension.codes`` keeps the levels of each set of distinct values for the next
batch (``_set_levels``, in the dimension's own ``_seen``) and codes plain integers in a
short range through a table of that range (``_int_table`` for levels): the codes must be
those of matching afresh, whatever came before, also where 1, 1.0, "1" and True are one
value to Python's ``==`` but not as text, and the same whichever path a batch takes."""

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
    assert 0 < len(d._seen) <= len(inputs)


def test_a_value_matched_beside_others_as_when_its_set_was_first_seen():
    """Matching a set of values at once can give one of them another level than matching
    it alone (``pd.to_numeric`` of the text of 2^53 + 1 is exact alone, rounded to 2^53
    beside a word): each batch gets its own set's levels, whichever set came first."""
    d = hp.GroupDimension("g", "g", "levels", ("a", "b"), ((2 ** 53,), ("x",)))
    for dtype in ("str", object):
        batches = [pd.Series(["9007199254740993", "abc"], dtype=dtype),
                   pd.Series(["9007199254740993"], dtype=dtype),
                   pd.Series(["abc", "9007199254740993", "x"], dtype=dtype)]
        fresh = [_fresh(d, b) for b in batches]
        for order in ([0, 1, 2], [1, 0, 2], [2, 1, 0, 1, 2, 0]):
            d._seen.clear()
            for i in order:
                np.testing.assert_array_equal(d.codes(batches[i]), fresh[i])


def test_the_cache_stays_small(monkeypatch):
    monkeypatch.setattr(hp, "_CACHE", 50)
    d = hp.GroupDimension("y", "y", "levels", ("a", "b"), ((1,), (2,)))
    for k in range(200):   # a new distinct value every batch, far out of range
        np.testing.assert_array_equal(d.codes(np.array([1, 2, 10 ** 6 * (k + 1)])),
                                      [0, 1, -1])
    assert 0 < len(d._seen) <= 50


_INT_CASES = [   # dtype, low, high of the values drawn (then the type's extremes)
    ("int8", -3, 60), ("int16", -3, 60), ("int32", -3, 60), ("int64", -3, 60),
    ("uint8", 200, 255), ("uint16", 0, 60), ("uint32", 7, 60), ("uint64", 0, 60),
    ("uint64", 2 ** 63 + 10, 2 ** 63 + 60), ("int64", 2 ** 63 - 60, 2 ** 63 - 1),
    ("int64", -(2 ** 63), -(2 ** 63) + 60),
]


@pytest.mark.parametrize("kind,labels,rules", [
    ("bands", ("young", "mid", "old"), ((None, 24), (25, 44.5), (40, None))),
    ("levels", ("one", "two-three", "text"), ((1, 1.0), (2, 3), ("4",))),
])
@pytest.mark.parametrize("dtype,low,high", _INT_CASES)
def test_integers_through_their_range_as_through_the_distinct_values(kind, labels, rules,
                                                                       dtype, low, high):
    """Plain integers in a short range are coded by a table of the range (levels: a kept
    table, widened as batches need); wide ranges, floats and nullable integers by the
    general path: the same codes either way, in any order of batches."""
    rng = np.random.default_rng(11)
    d = hp.GroupDimension("z", "z", kind, labels, rules)
    info = np.iinfo(dtype)
    narrow = np.asarray(rng.integers(low, high, 500, endpoint=True, dtype=dtype))
    shifted = narrow + np.asarray(high - low, dtype=dtype) if high <= int(info.max) - (
        high - low) else narrow - np.asarray(high - low, dtype=dtype)
    extremes = np.r_[narrow, np.array([info.min, info.max], dtype=dtype)]
    batches = [narrow, shifted, narrow[:1], extremes, narrow[::-1]]
    refs = [_fresh(d, pd.Series(x, dtype=object)) for x in batches]   # never a table
    for order in ([0, 1, 2, 3, 4], [3, 2, 1, 0, 4, 1]):
        d._seen.clear()
        for i in order:
            np.testing.assert_array_equal(d.codes(batches[i]), refs[i])
    assert len(d._seen) <= len(batches)
    np.testing.assert_array_equal(d.codes(np.zeros(0, dtype=dtype)), np.zeros(0))
    if low == -3:   # by the rules themselves
        x = narrow.astype("float64")
        want = (np.where(x <= 24, 0, np.where(x <= 44.5, 1, 2)) if kind == "bands" else
                np.select([x == 1, (x == 2) | (x == 3), x == 4], [0, 1, 2], -1))
        np.testing.assert_array_equal(_fresh(d, narrow), want)


def test_a_levels_table_stays_short(monkeypatch):
    """A levels dimension of integers spread wider than ``_RANGE`` takes the general path
    (no table of every integer between), and its kept table never grows past it."""
    d = hp.GroupDimension("s", "s", "levels", ("a", "b"), ((1,), (5000,)))
    x = np.zeros(131_072, dtype="int64")
    x[-1] = 100_000
    np.testing.assert_array_equal(d.codes(x)[[0, -1]], [-1, -1])
    assert all(len(v[1]) <= hp._RANGE + 1 for k, v in d._seen.items() if k[0] == "ints")
    for lo in (0, 3000, 6000, 9000):   # windows that could widen the table step by step
        y = np.arange(lo, lo + 3000)
        np.testing.assert_array_equal(d.codes(y), np.select([y == 1, y == 5000], [0, 1], -1))
        tables = [v[1] for k, v in d._seen.items() if k[0] == "ints"]
        assert tables and all(len(t) <= hp._RANGE + 1 for t in tables)


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
