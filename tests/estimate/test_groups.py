"""``groups.group_index``: group ids in sorted key order, as pandas' groupby.ngroup."""

import numpy as np
import pandas as pd
import pytest

from impact.estimate.groups import group_index, sorted_codes


def _pandas(keys):
    return pd.DataFrame({f"k{i}": k for i, k in enumerate(keys)}).groupby(
        [f"k{i}" for i in range(len(keys))], sort=True).ngroup().to_numpy()


def test_group_index_equals_groupby_ngroup():
    rng = np.random.default_rng(4)
    n = 20_000
    keys = [rng.integers(0, 7, n),                              # small codes, used as they are
            rng.normal(size=n).round(1),                        # floats, negative too
            rng.integers(-5, 5, n),                             # negative integers
            rng.choice([0.0, 1.0], n),                          # a dummy
            rng.integers(0, 1 << 40, n)]                        # large integers
    gid, size = group_index(keys)
    ref = _pandas(keys)
    np.testing.assert_array_equal(gid, ref)
    assert size == ref.max() + 1


def test_group_index_keeps_order_when_radix_product_overflows():
    """Many wide keys: the mixed radix is recoded along the way and the order survives."""
    rng = np.random.default_rng(5)
    keys = [rng.integers(0, 5000, 3000).astype(float) for _ in range(8)]
    gid, size = group_index(keys)
    np.testing.assert_array_equal(gid, _pandas(keys))
    assert size == len(np.unique(np.column_stack(keys), axis=0))


def test_sorted_codes_and_missing_keys():
    codes, k = sorted_codes(np.array([3.5, -1.0, 3.5, 2.0]))
    assert k == 3 and codes.tolist() == [2, 0, 2, 1]
    with pytest.raises(ValueError, match="missing"):
        group_index([np.array([1.0, np.nan])])


def test_group_index_unsorted_is_first_appearance():
    rng = np.random.default_rng(6)
    keys = [rng.integers(0, 4, 5000), rng.normal(size=5000).round(1)]
    gid, size = group_index(keys, sort=False)
    ref = pd.DataFrame({"a": keys[0], "b": keys[1]}).groupby(["a", "b"], sort=False).ngroup()
    np.testing.assert_array_equal(gid, ref.to_numpy())
    first = np.unique(gid, return_index=True)[1]
    assert (np.diff(first) > 0).all() and size == len(first)
