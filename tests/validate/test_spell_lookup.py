"""``validate.spells._positions``: the Arrow lookup behind the unknown-spell check and the
spell's municipality as given, against a plain Python dictionary."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from impact.validate.spells import _positions


def _reference(values, keys) -> np.ndarray:
    first = {}
    for i, k in enumerate(keys):
        if isinstance(k, str):
            first.setdefault(k, i)
    return np.array([first.get(v, -1) if isinstance(v, str) else -1 for v in values])


@pytest.mark.parametrize("dtype", ["str", "object", pd.ArrowDtype(pa.large_string())])
def test_positions_match_a_dictionary(dtype):
    rng = np.random.default_rng(5)
    keys = [f"S{i:05d}" for i in rng.permutation(400)] + ["S00003"]  # a repeat: the first
    pool = [f"S{i:05d}" for i in range(500)] + [None]  # 100 unknown ids and missing ones
    values = [pool[i] for i in rng.integers(0, len(pool), 3_000)]
    got = _positions(pd.Series(values, dtype=dtype), pd.Series(keys, dtype="str"))
    np.testing.assert_array_equal(got, _reference(values, keys))
    assert (got == -1).sum() > 100 and got.dtype == np.int64


def test_positions_of_nothing():
    assert len(_positions(pd.Series([], dtype="str"), pd.Series(["a"], dtype="str"))) == 0
    got = _positions(pd.Series(["a", None], dtype="str"), pd.Series([], dtype="str"))
    np.testing.assert_array_equal(got, [-1, -1])
