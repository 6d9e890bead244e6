"""Value-added read from the panel file in two passes (``value_added_stream``) equals
``value_added`` on the same rows: every unit's counts, modal municipality, raw value-added
and noise variance and the summary's deterministic numbers to 1e-8. What follows the two
optimisers (the signal variance, located to ``xatol`` = 1e-10 max raw^2, and the
MixedLM's REML) moves with rounding in their inputs at that tolerance, so shrinkage, EB,
intervals, the BLUPs and their summaries are compared to 1e-6 relative (measured: 1e-8).

The panel (``file_like_panel``) has a control with missing values (rows dropped), a
labour-market column with a gap (not a control), a household level first seen in the
last rows (here only in rows with a missing control); also rows without a caseworker or
team, a client without an id, and a team spread over two municipalities. Batches of 61 to
5,000 rows cut units, spells and cells; both levels, pooled covariates, unit noise.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from estimate.dgp import file_like_panel
from impact import io
from impact.estimate.value_added import value_added
from impact.estimate.value_added_stream import value_added_file

TOL = 1e-8


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    pm = file_like_panel(seed=20261204, mask_seed=6)
    rng = np.random.default_rng(8)
    pm["caseworker_key"] = pm["caseworker_key"].mask(rng.random(len(pm)) < 0.01)
    pm["team_key"] = pm["team_key"].mask(rng.random(len(pm)) < 0.01)
    pm.loc[pm.index[100:130], "client_id"] = None
    # the household level first seen in the last rows only where a control is missing:
    # a level with no complete row (in memory an all-zero column, dropped)
    pm.loc[pm["household"] == "late_level", "prior_benefit_months"] = np.nan
    # a team that also serves another municipality's clients
    team = pm["team_key"].dropna().iloc[0]
    other = pm["municipality"] != pm.loc[pm["team_key"] == team, "municipality"].iloc[0]
    pm.loc[other[other].index[:50], "team_key"] = team
    path = tmp_path_factory.mktemp("va") / "person_months.parquet"
    io.write_parquet(pm, path)
    return path


#: downstream of an optimiser (module notes)
OPTIMISED = {"shrinkage", "eb_va", "eb_sd", "ci_low", "ci_high", "mixedlm_va", "signal_sd",
             "mean_shrinkage", "mixedlm_signal_sd", "mixedlm_noise_var_pm", "corr_eb_mixedlm"}


def _compare(got, want):
    assert got.level == want.level
    a, b = got.units, want.units
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for c in b.columns:
        if pd.api.types.is_numeric_dtype(b[c]):
            x, y = a[c].to_numpy(dtype="float64"), b[c].to_numpy(dtype="float64")
            assert np.array_equal(np.isnan(x), np.isnan(y)), c
            scale = max(1.0, float(np.nanmax(np.abs(y)))) if np.isfinite(y).any() else 1.0
            tol = 1e-6 if c in OPTIMISED else TOL
            np.testing.assert_allclose(np.nan_to_num(x), np.nan_to_num(y), rtol=0,
                                       atol=tol * scale, err_msg=c)
        else:
            assert a[c].astype(str).tolist() == b[c].astype(str).tolist(), c
    assert set(got.summary) == set(want.summary)
    for k, v in want.summary.items():
        if isinstance(v, float):
            tol = 1e-6 if k in OPTIMISED else TOL
            assert np.isclose(got.summary[k], v, rtol=tol, atol=1e-10, equal_nan=True), k
        else:
            assert got.summary[k] == v, k


def _said(rec):
    """The warnings on dropped rows and left-out columns (not the MixedLM's convergence,
    which is the optimiser's)."""
    return sorted(str(r.message) for r in rec if "MixedLM" not in str(r.message))


@pytest.mark.parametrize("batch_rows,level,options", [
    (61, "caseworker", {}),
    (777, "team", {"covariates": "pooled"}),
    (5000, "caseworker", {"noise": "unit", "controls": ["age_band", "sex", "duration",
                                                         "prior_benefit_months"]}),
], ids=["61-caseworker", "777-team-pooled", "5000-unit-noise"])
def test_file_equals_in_memory(panel, batch_rows, level, options):
    pm = io.read_person_months(panel)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        want = value_added(pm, level, **options)
        said_want = _said(rec)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        got = value_added_file(panel, level, batch_rows=batch_rows, **options)
        said_got = _said(rec)
    assert want.summary["n_dropped_no_unit"] > 0 and want.summary["n_dropped_missing"] > 0
    assert said_got == said_want    # the same rows dropped, the same columns left out
    _compare(got, want)


def test_missing_column_is_named(panel, tmp_path):
    pm = io.read_person_months(panel).drop(columns=["household"])
    path = tmp_path / "person_months.parquet"
    io.write_parquet(pm, path)
    with pytest.raises(ValueError, match="household"):
        value_added_file(path, "caseworker")


def test_row_codes_round_trip():
    # pass 1's codes for pass 2: every size of code, batches with no row used, bit masks
    # of lengths that are not multiples of 8
    from impact.estimate.value_added_stream import _RowCodes

    rng = np.random.default_rng(3)
    rows, want = _RowCodes(), []
    for n, top in [(13, 300), (1000, 70_000), (5, 0), (77, 5 * 10**9), (9, 1 << 16)]:
        used = rng.random(n) < 0.6
        if top == 0:
            used[:] = False
        m = int(used.sum())
        codes = [rng.integers(0, top + 1, m), np.full(m, top, dtype="int64")]
        rows.put(used, codes if m else [])
        want.append((used, codes if m else []))
    got = list(rows.read())
    rows.close()
    assert len(got) == len(want)
    for (u, c), (wu, wc) in zip(got, want):
        assert u.dtype == bool and np.array_equal(u, wu)
        assert len(c) == len(wc) and all(np.array_equal(x, y) and x.dtype == np.int64
                                         for x, y in zip(c, wc))
