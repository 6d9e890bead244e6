"""The benchmark's region x month lookup: the same positions as the per-row string keys."""

import numpy as np
import pandas as pd

from impact.benchmark.expected import _regmonth_codes


def test_regmonth_codes_equal_per_row_string_keys():
    rng = np.random.default_rng(5)
    reg = rng.choice(["AM18", "AM09", "a:b", None], 600)  # a ':' in a code, a missing one
    t = rng.integers(100, 160, 600).astype("int32")
    pm = pd.DataFrame({"region": pd.Series(reg, dtype="str"), "t": t})
    fitted = sorted({f"{r}:{m}" for r, m in zip(reg[:250], t[:250]) if r is not None})
    per_row = (pm["region"].astype(str) + ":" + pm["t"].astype(str)).to_numpy()
    expected = pd.Index(fitted).get_indexer(per_row)
    np.testing.assert_array_equal(_regmonth_codes(pm, fitted), expected)
    assert (expected >= 0).any() and (expected < 0).any()
