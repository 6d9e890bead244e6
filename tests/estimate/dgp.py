"""The lean DGP for estimator tests: a re-export of :mod:`impact.simulate.lean`."""

from impact.simulate.lean import *  # noqa: F401,F403
from impact.simulate.lean import _dur_band  # noqa: F401


def file_like_panel(seed: int, mask_seed: int):
    """A small simulated panel with the hard cases of a real file, for the tests that read
    the panel file in batches (``quality_stream``, ``hazard_stream``): missing values of a
    control, a labour-market column with a gap, a household level first seen in the last
    rows, and rows outside the sample (one quality half missing)."""
    import numpy as np

    p = simulate(seed=seed, n_muni=9, n_regions=3, n_months=24, caseload=60,  # noqa: F405
                 n_cw=4).person_months
    p = p.drop(columns=["p_true", "tau_true"])
    rng = np.random.default_rng(mask_seed)
    p["prior_benefit_months"] = p["prior_benefit_months"].astype("float64").mask(
        rng.random(len(p)) < 0.02)
    p["lm_gap_muni"] = p["lm_unemployment_rate_muni"].mask(rng.random(len(p)) < 0.01)
    p.loc[p.index[-40:], "household"] = "late_level"
    p.loc[p.index[5:9], "quality_b"] = np.nan  # outside the sample
    return p
