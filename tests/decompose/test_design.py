"""The decomposition design's label codes: the same as factorising every value as a string."""

import numpy as np
import pandas as pd
import pytest

from impact.decompose.design import _label_codes
from impact.estimate.frames import age_band, duration_band


def _reference(values):
    """Every value as a string (missing -> 'unknown'), factorised over sorted labels."""
    s = pd.Series(values).astype("string").fillna("unknown")
    codes, labels = pd.factorize(s, sort=True)
    return codes.astype("int64"), list(labels)


rng = np.random.default_rng(7)
CASES = {
    "arrow strings with missing": pd.Series(rng.choice(["b", "a", None, "unknown", "é"], 500),
                                            dtype="str"),
    "object strings with NaN": np.array(["b", None, "a", np.nan, "b"], dtype=object),
    "floats with NaN": np.where(rng.random(400) < 0.1, np.nan, rng.integers(1, 12, 400) / 2),
    "integers": rng.integers(0, 15, 300),
    "age bands (categorical)": age_band(rng.integers(18, 70, 300)),
    "duration bands": duration_band(rng.integers(0, 90, 300)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_label_codes_equal_string_factorisation(name):
    codes, labels = _label_codes(CASES[name])
    ref_codes, ref_labels = _reference(CASES[name])
    np.testing.assert_array_equal(codes, ref_codes)
    assert list(labels) == ref_labels


@pytest.mark.parametrize("band", [age_band, duration_band])
def test_band_codes_equal_the_codes_of_every_row_banded(band):
    """``_band_codes`` bands the distinct values only: the codes and labels of banding
    every row, for integers, floats with missing values (banded as missing) and a batch
    with no value at all."""
    from impact.decompose.design import _band_codes

    r = np.random.default_rng(3)
    floats = r.integers(0, 90, 500).astype(float)
    floats[r.random(500) < 0.2] = np.nan
    for x in (r.integers(0, 90, 500), r.integers(15, 70, 300).astype(np.int32), floats,
              np.full(40, np.nan), np.array([33])):
        codes, labels = _band_codes(x, band)
        ref_codes, ref_labels = _reference(band(x))
        np.testing.assert_array_equal(codes, ref_codes)
        assert list(labels) == ref_labels


def test_int_codes_equal_numpy_unique():
    """``_int_codes`` (factorised, then the distinct values ranked): the codes and labels
    of ``np.unique(return_inverse=True)``, negative values and one value included."""
    from impact.decompose.design import _int_codes

    r = np.random.default_rng(4)
    for x in (r.integers(-9999, 40, 700), np.where(r.random(300) < 0.5, -9999, 3),
              np.array([7]), r.integers(-3, 3, 50).astype(np.int32)):
        labels, codes = np.unique(x, return_inverse=True)
        got_codes, got_labels = _int_codes(x)
        np.testing.assert_array_equal(got_codes, codes)
        assert list(got_labels) == [str(v) for v in labels]
