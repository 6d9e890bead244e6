"""``panel_summary``: the study window, person-month count and caseworker exits of a
panel file read in batches equal those of the whole frame, for both samples and whatever
the batch size; with missing caseworkers and exits, and batches with no inflow row."""

import numpy as np
import pandas as pd
import pytest

from impact import io
from impact.estimate.naive import naive_quality
from impact.estimate.panel_summary import summary_file, summary_of


@pytest.fixture(scope="module")
def frame(sim):
    pm = sim.person_months.copy()
    rng = np.random.default_rng(5)
    cw = pm["caseworker_key"].astype("object")
    cw[rng.random(len(pm)) < 0.01] = None                # unknown caseworker
    ex = pm["exit_work"].astype("float64")
    ex[rng.random(len(pm)) < 0.01] = np.nan              # unknown exit
    pm = pm.assign(caseworker_key=cw, exit_work=ex)
    # the left-truncated rows first: the first batches hold no inflow row
    return pm.sort_values("left_truncated", ascending=False, kind="stable")


@pytest.mark.parametrize("sample", ["all", "inflow"])
@pytest.mark.parametrize("batch", [997, 1 << 20])
def test_file_equals_frame(frame, sim, tmp_path, sample, batch):
    path = tmp_path / "person_months.parquet"
    io.write_parquet(frame, path)
    whole = io.read_person_months(path)
    ref, got = summary_of(whole, sample), summary_file(path, sample, batch_rows=batch)
    assert got.n_person_months == ref.n_person_months > 0
    assert (got.first_month, got.last_month) == (ref.first_month, ref.last_month)
    pd.testing.assert_frame_equal(got.exits, ref.exits)
    assert ref.exits["count"].sum() < ref.n_person_months  # the missing ones left out
    inst = sim.quality["instrument"].iloc[0]
    pm = whole if sample == "all" else whole[whole["left_truncated"] == 0]
    assert naive_quality(None, sim.quality, inst, exits=got.exits) == naive_quality(
        pm, sim.quality, inst)


def test_inflow_sample_is_smaller(frame, tmp_path):
    path = tmp_path / "person_months.parquet"
    io.write_parquet(frame, path)
    a, b = summary_file(path, "all"), summary_file(path, "inflow")
    assert 0 < b.n_person_months < a.n_person_months


def test_inflow_of_a_boolean_flag_with_missing_values(frame, tmp_path):
    """``left_truncated`` stored as booleans (False is 0, a missing value is not): the
    file's inflow sample is the frame's."""
    flag = frame["left_truncated"].astype(bool).astype("object")
    flag.iloc[::50] = None
    pm = frame.assign(left_truncated=flag)
    path = tmp_path / "person_months.parquet"
    io.write_parquet(pm, path)
    whole = io.read_person_months(path)
    assert whole["left_truncated"].isna().any()
    ref, got = summary_of(whole, "inflow"), summary_file(path, "inflow", batch_rows=997)
    assert got.n_person_months == ref.n_person_months > 0
    assert (got.first_month, got.last_month) == (ref.first_month, ref.last_month)
    pd.testing.assert_frame_equal(got.exits, ref.exits)


def test_nan_exits_and_numeric_caseworker_keys(tmp_path):
    """A float exit holding NaN (as Arrow, DuckDB or polars write it) counts as missing,
    not as a batch's sum turned NaN; a numeric caseworker key becomes the text pandas
    makes of it ("7.0" where the column has a missing value): as ``summary_of``."""
    import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    month = [datetime.date(2020, 1 + i % 12, 1) for i in range(8)]
    tables = {
        "nan": pa.table({"month": month, "caseworker_key": ["a", "a", "b", None] * 2,
                         "exit_work": pa.array([1.0, np.nan, 1.0, 0.0, None, 1.0, np.nan,
                                                1.0], from_pandas=False),
                         "left_truncated": pa.array([0, 1] * 4, pa.int8())}),
        "numeric": pa.table({"month": month, "caseworker_key": pa.array([7, 7, None, 8] * 2),
                             "exit_work": pa.array([1, 0, 1, 1] * 2, pa.int8()),
                             "left_truncated": pa.array([0] * 8, pa.int8())}),
    }
    for name, table in tables.items():
        path = tmp_path / f"{name}.parquet"
        pq.write_table(table, path, row_group_size=3)
        whole = io.read_person_months(path)
        for sample in ("all", "inflow"):
            ref, got = summary_of(whole, sample), summary_file(path, sample, batch_rows=3)
            assert got.n_person_months == ref.n_person_months > 0
            assert (got.first_month, got.last_month) == (ref.first_month, ref.last_month)
            pd.testing.assert_frame_equal(got.exits, ref.exits)
    assert summary_file(tmp_path / "nan.parquet").exits.loc["a", "sum"] == 2.0
    assert list(summary_file(tmp_path / "numeric.parquet").exits.index) == ["7.0", "8.0"]
