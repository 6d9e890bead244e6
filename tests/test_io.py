"""Outputs are written deterministically."""

import pandas as pd

from impact import io


def test_parquet_bytes_identical_across_writes(tmp_path):
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None]})
    io.write_parquet(df, tmp_path / "1.parquet")
    io.write_parquet(df, tmp_path / "2.parquet")
    assert (tmp_path / "1.parquet").read_bytes() == (tmp_path / "2.parquet").read_bytes()
    back = io.read_parquet(tmp_path / "1.parquet")
    assert back["a"].tolist() == [1, 2, 3]


def test_clean_dir_replaces_contents(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    (d / "stale.txt").write_text("old")
    io.clean_dir(d)
    assert list(d.iterdir()) == []


def test_to_jsonable_handles_numpy_and_nan():
    import numpy as np

    out = io.to_jsonable({"x": np.float64(1.5), "y": np.int64(2), "z": float("nan"), "w": [np.nan]})
    assert out == {"x": 1.5, "y": 2, "z": None, "w": [None]}


def test_read_person_months_dates_as_datetime64(tmp_path):
    """Month columns come back as datetime64 (not date objects) with the same month
    index; a missing adoption month stays missing."""
    import datetime as dt

    import numpy as np
    import pandas as pd

    from impact.estimate.frames import month_index

    df = pd.DataFrame({"month": [dt.date(2016, 1, 1), dt.date(2023, 12, 1)],
                       "adoption_month": [dt.date(2019, 5, 1), None], "t": [0, 1]})
    df.to_parquet(tmp_path / "pm.parquet")
    got = io.read_person_months(tmp_path / "pm.parquet")
    assert got["month"].dtype.kind == "M" and got["adoption_month"].dtype.kind == "M"
    np.testing.assert_array_equal(month_index(got["month"]), month_index(df["month"]))
    np.testing.assert_array_equal(month_index(got["adoption_month"]),
                                  month_index(df["adoption_month"]))
    assert list(io.read_person_months(tmp_path / "pm.parquet", columns=["t"]).columns) == ["t"]
