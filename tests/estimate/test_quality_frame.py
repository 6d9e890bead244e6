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


def test_frame_of_the_panel_equals_frame_of_its_sample_rows():
    """``quality_frame`` codes levels in order of first appearance *in the sample* and
    takes no copy of the sample's rows: on the whole panel it is what it is on the sample's
    rows alone, with levels first seen outside the sample, a missing level and rows
    dropped for a missing control."""
    import warnings

    from impact.estimate.params import EstimateParams
    from impact.estimate.quality import quality_frame

    from .dgp import simulate

    pm = simulate(seed=5, n_muni=6, n_regions=2, n_months=18, caseload=40, n_cw=3).person_months
    pm["household"] = pm["household"].astype("str")
    pm.loc[pm.index[:30], ["quality_b"]] = np.nan            # outside the sample ...
    pm.loc[pm.index[:30], "household"] = "only_outside"      # ... with a level of its own
    pm.loc[pm.index[:30], "education_level"] = "first_outside"
    pm.loc[pm.index[500:520], "education_level"] = "first_outside"  # also inside, later
    pm.loc[pm.index[40:60], "sex"] = np.nan
    pm["prior_benefit_months"] = pm["prior_benefit_months"].astype("float64")
    pm.loc[pm.index[70:75], "prior_benefit_months"] = np.nan
    sample = pm["quality_a"].notna() & pm["quality_b"].notna()
    params = EstimateParams.from_dict(estimate={"controls": [
        "sex", "household", "education_level", "age_band", "prior_benefit_months"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = quality_frame(pm, params, extra={"#row": np.arange(len(pm), dtype=float)})
        b = quality_frame(pm[sample].reset_index(drop=True), params,
                          extra={"#row": np.flatnonzero(sample.to_numpy()).astype(float)})
    assert a[1] == b[1] and a[2] == b[2]
    n_house = pm.loc[sample, "household"].nunique(dropna=False)
    assert sum(n.startswith("household[") for n in a[1]) == n_house - 1  # one left out
    np.testing.assert_array_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[3], b[3])
    np.testing.assert_array_equal(a[4], b[4])
    np.testing.assert_array_equal(np.asarray(a[5]), np.asarray(b[5]))
