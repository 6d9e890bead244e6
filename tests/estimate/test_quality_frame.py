"""The quality model's dummy codes: the same whether a column arrives as its Arrow-backed
Series or as an object array, and a duration band's index codes like its label."""

import numpy as np
import pandas as pd

from impact.estimate.frames import duration_band, duration_band_index
from impact.estimate.quality import _codes

rng = np.random.default_rng(11)


def _object_codes(values):
    return pd.factorize(pd.Series(np.asarray(values, dtype=object)),
                        use_na_sentinel=False)[0]


def test_series_codes_equal_object_codes():
    s = pd.Series(rng.choice(["single", None, "couple", "other"], 1000), dtype="str")
    np.testing.assert_array_equal(_codes(s), _object_codes(s.to_numpy()))
    assert _codes(s)[np.flatnonzero(s.isna().to_numpy())[0]] >= 0  # missing: a code


def test_duration_band_index_codes_equal_label_codes():
    d = rng.integers(0, 100, 2000)
    np.testing.assert_array_equal(_codes(duration_band_index(d)),
                                  _object_codes(duration_band(d)))
