"""The grid cell's frame by DuckDB from the Parquet file (``cells_sql``, the pipeline's
path) against the pandas version (``cells.cell_frame``), every outcome and sample, on a
simulated panel with missing values planted in a client column and an indicator."""

import numpy as np
import pandas as pd
import pytest

from impact.simulate.lean import simulate
from impact.sweep.cells import cell_frame
from impact.sweep.cells_sql import cell_frame_sql, sample_frames_sql, with_adoption

CRISIS = ("2018-04", "2018-09")


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    pm = simulate(seed=5).person_months.copy()
    rng = np.random.default_rng(0)
    pm["prior_benefit_months"] = pd.array(
        np.where(rng.random(len(pm)) < 0.001, None, rng.integers(0, 60, len(pm))),
        dtype="Int64")
    lm = next(c for c in pm.columns if c.startswith("lm_") and c.endswith("_muni"))
    pm.loc[pm.sample(frac=0.0005, random_state=1).index, lm] = np.nan
    path = tmp_path_factory.mktemp("cells") / "person_months.parquet"
    pm.to_parquet(path)
    return pm, path


@pytest.mark.parametrize("outcome", ["month", "within_6", "within_12"])
@pytest.mark.parametrize("sample", ["all", "no_crisis", "inflow", "age_25_54"])
def test_sql_frame_equals_pandas_frame(panel, outcome, sample):
    pm, path = panel
    munis = sorted(pm["municipality"].unique())
    adopt = {m: int(pm["t"].min()) + 12 + i for i, m in enumerate(munis[::2])}
    want = cell_frame(pm, outcome, sample, CRISIS, adopt)
    got = cell_frame_sql(path, outcome, sample, CRISIS, adopt)
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want) > 0
    for c in want.columns:
        a, b = want[c], got[c]
        if a.dtype.kind in "fi":
            assert b.dtype.kind in "fi", c
            np.testing.assert_array_equal(np.isnan(a.to_numpy(float)),
                                          np.isnan(b.to_numpy(float)), err_msg=c)
            np.testing.assert_allclose(b.to_numpy(float), a.to_numpy(float), rtol=1e-11,
                                       atol=1e-11, err_msg=c)
        else:
            assert (a.astype(str).to_numpy() == b.astype(str).to_numpy()).all(), c
    assert np.isnan(got.filter(like="lm_").to_numpy()).any() or sample != "all"


def test_bad_axis_values(panel):
    _, path = panel
    with pytest.raises(ValueError, match="grid sample"):
        cell_frame_sql(path, "month", "everyone", CRISIS, {})
    with pytest.raises(ValueError, match="grid outcome"):
        cell_frame_sql(path, "weekly", "all", CRISIS, {})


@pytest.mark.parametrize("outcome", ["month", "within_12"])
def test_shared_sample_frames_are_each_cells_own(panel, outcome):
    """The stage ``sweep_frames@<outcome>`` makes every sample's frame from one aggregation
    per base sample (no_crisis cut from all); each is exactly the frame the cell would
    aggregate on its own, and ``with_adoption`` adds the cell's columns."""
    pm, path = panel
    munis = sorted(pm["municipality"].unique())
    adopt = {m: int(pm["t"].min()) + 6 + i for i, m in enumerate(munis[1::2])}
    samples = ["no_crisis", "all", "age_25_54", "inflow"]
    frames = sample_frames_sql(path, outcome, samples, CRISIS)
    assert list(frames) == samples
    assert len(frames["no_crisis"]) < len(frames["all"])   # the crisis months cut
    for sample in samples:
        own = cell_frame_sql(path, outcome, sample, CRISIS, adopt)
        assert "g" not in frames[sample] and "unit" not in frames[sample]
        pd.testing.assert_frame_equal(with_adoption(frames[sample], adopt), own)
    with pytest.raises(ValueError, match="grid sample"):
        sample_frames_sql(path, outcome, ["all", "everyone"], CRISIS)
