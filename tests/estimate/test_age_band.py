"""``frames.age_band`` bands the distinct ages and spreads the bands back to the rows: the
same Series (values, categories and their order, index, name) as ``pd.cut`` of every row."""

import numpy as np
import pandas as pd
import pytest

from impact.estimate.frames import age_band


def _per_row(age) -> pd.Series:
    a = pd.to_numeric(pd.Series(age), errors="coerce")
    out = pd.cut(a, [-np.inf, 24, 34, 44, 54, np.inf],
                 labels=["lt25", "25_34", "35_44", "45_54", "55p"])
    return out.cat.add_categories("unknown").fillna("unknown")


@pytest.mark.parametrize("age", [
    np.random.default_rng(0).integers(16, 70, 5000),
    np.r_[np.arange(10, 80, 0.5), np.nan, 24.000001, -1, 1e9],
    pd.Series([20, None, 40, 20], dtype="Int64", index=[5, 7, 9, 11], name="age"),
    pd.Series(["30", "x", None, "55", "30"], name="leeftijd"),
    np.array([], dtype=float),
    pd.Series([np.nan, np.nan]),
    [24, 24.0, 34.0000001, 54, 55],
])
def test_age_band_is_the_per_row_cut(age):
    pd.testing.assert_series_equal(age_band(age), _per_row(age))
