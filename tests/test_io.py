"""Outputs are written deterministically."""

import os

import pandas as pd
import pytest

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


def test_batches_keep_the_whole_file_dtypes(tmp_path):
    """An integer column with one missing value is float64 when the whole file is read; a
    batch without the missing value must not bring it back as int64 (3 would then be a
    value other than 3.0 for a text rule), nor a boolean column as bool. Also when the
    row groups carry no null counts (statistics off)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 1000
    table = pa.table({
        "i": pa.array([None if k == n - 1 else k % 7 for k in range(n)], pa.int64()),
        "b": pa.array([None if k == 5 else k % 2 == 0 for k in range(n)], pa.bool_()),
        "full": pa.array(np.arange(n), pa.int64()),
        "s": pa.array([str(k) for k in range(n)])})
    for stats in (True, False):
        path = tmp_path / f"pm_{stats}.parquet"
        pq.write_table(table, path, row_group_size=300, write_statistics=stats)
        whole = io.read_person_months(path)
        parts = list(io.iter_batches(path, ["i", "b", "full", "s"], 128))
        assert len(parts) == 8
        for part in parts:
            assert [str(part[c].dtype) for c in part] == [str(whole[c].dtype) for c in whole]
        back = pd.concat(parts, ignore_index=True)
        pd.testing.assert_frame_equal(back, whole)
        assert str(whole["i"].dtype) == "float64" and whole["b"].dtype == object


def _random_frame(rng, n: int) -> pd.DataFrame:
    """Columns of every plain kind, with the values that test a CSV writer: floats of
    every magnitude (the switch to exponents at 1e16 and 1e-5), signed zero, infinities,
    missing values, and text with commas, quotes, line feeds, spaces and non-ASCII."""
    import numpy as np

    mant = rng.uniform(-10, 10, n)
    floats = mant * 10.0 ** rng.integers(-320, 308, n).astype(float)
    short = rng.random(n) < 0.3  # short decimals, as most data hold
    floats[short] = np.round(mant[short], 1)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e15, 1e16, 1e-5, 1e-4, 0.1 + 0.2,
                        123456789.0, 5e-324, 1.7976931348623157e308, 2.5e-7])
    pick = rng.random(n) < 0.2
    floats[pick] = rng.choice(special, int(pick.sum()))
    alphabet = list("abcXYZ019 ,\"\n;\t'.-_/()é€ß")
    text = np.array(["".join(rng.choice(alphabet, rng.integers(1, 8))) for _ in range(n)],
                    dtype=object)
    text[rng.random(n) < 0.1] = None
    ints = pd.array(rng.integers(-10**12, 10**12, n), dtype="Int64")
    ints[rng.random(n) < 0.2] = pd.NA
    return pd.DataFrame({"i": rng.integers(-2**62, 2**62, n), "f": floats, "n": ints,
                         "s": pd.array(text, dtype="str"), "o": text})


def test_write_csv_duckdb_bytes_are_pandas_bytes(tmp_path):
    """Frames of plain columns go through DuckDB's writer: the same bytes as pandas'."""
    import numpy as np

    rng = np.random.default_rng(11)
    for n in (0, 1, 7, 3_000, 150_000):  # the last: many chunks, written in parallel
        df = _random_frame(rng, n)
        assert io._plain(df) is not None
        io.write_csv(df, tmp_path / "a.csv")
        ref = df.to_csv(index=False, lineterminator="\n").encode()
        assert (tmp_path / "a.csv").read_bytes() == ref, n


def test_write_csv_leaves_other_frames_to_pandas(tmp_path):
    """Text DuckDB would quote differently, other column types and names: pandas writes."""
    import numpy as np

    others = {
        "hash": pd.DataFrame({"s": ["a", "#b"]}), "cr": pd.DataFrame({"s": ["a\rb", "c"]}),
        "empty text": pd.DataFrame({"s": ["", "c"]}),
        "bool": pd.DataFrame({"b": [True, False]}),
        "date": pd.DataFrame({"d": pd.to_datetime(["2020-01-31", "2021-02-01"])}),
        "category": pd.DataFrame({"c": pd.Categorical(["x", "y"])}),
        "float32": pd.DataFrame({"f": np.array([0.1, 2.0], np.float32)}),
        "objects": pd.DataFrame({"o": np.array([1, "a"], dtype=object)}),
        "bytes": pd.DataFrame({"o": np.array([b"ab", "c"], dtype=object)}),
        "name": pd.DataFrame({"a b": [1, 2]}), "no columns": pd.DataFrame(index=[0, 1]),
    }
    for what, df in others.items():
        assert io._plain(df) is None, what
        io.write_csv(df, tmp_path / "b.csv")
        ref = df.to_csv(index=False, lineterminator="\n", date_format="%Y-%m-%d").encode()
        assert (tmp_path / "b.csv").read_bytes() == ref, what


def test_batches_read_text_as_the_plain_read_does(tmp_path):
    """Text columns are read dictionary-encoded and decoded (``io.decoded``): every frame
    equals the plain read's rows (values, nulls, dtypes), for text stored with and without
    a dictionary, long text, a column the file stores as a dictionary (it stays
    categorical), many distinct values, and row groups smaller or larger than a batch
    (frames never exceed ``batch_rows`` and cover the file in order)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(7)
    n = 5000
    words = np.array(["a", "b", "ü", "", "x,y", "3"], dtype=object)
    text = words[rng.integers(0, len(words), n)]
    text[rng.random(n) < 0.1] = None
    table = pa.table({
        "s": pa.array(text, pa.string()),
        "L": pa.array(text, pa.large_string()),
        "u": pa.array([f"id{k:06d}" for k in rng.permutation(n)]),
        "c": pa.array(text, pa.string()).dictionary_encode(),
        "x": pa.array(rng.normal(size=n))})
    for cols in (["s", "L", "u", "c", "x"], ["s", "L", "u", "x"]):
        for group, rows, dictionary in ((700, 1000, True), (3000, 1024, False),
                                        (128, 4096, True)):
            path = tmp_path / f"pm_{group}_{rows}.parquet"
            pq.write_table(table, path, row_group_size=group, use_dictionary=dictionary)
            plain = pq.read_table(path, columns=cols).to_pandas(date_as_object=False)
            parts = list(io.iter_batches(path, cols, rows))
            # frame by frame the plain read's (the byte-for-byte sums of every pass)
            grid = [b.num_rows for b in
                    pq.ParquetFile(path).iter_batches(batch_size=rows, columns=cols)]
            assert [len(p) for p in parts] == grid
            back = pd.concat(parts, ignore_index=True)
            pd.testing.assert_frame_equal(back, plain, check_exact=True)
            for p in parts:
                assert list(p.dtypes) == list(plain.dtypes)
            assert str(back["s"].dtype) == str(back["L"].dtype) != "category"
            assert "c" not in cols or str(back["c"].dtype) == "category"


_FAULTS = """
import resource, sys
import numpy as np
from impact import io
if sys.argv[1] == "keep":
    assert io.keep_freed_memory()
a = np.ones(1 << 24); del a   # 128 MB: the first time faults in either case
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    a = np.ones(1 << 24); del a
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(io.glibc_mallopt() is None, reason="glibc's mallopt only")
def test_keep_freed_memory_reuses_a_freed_block(monkeypatch):
    """A 128 MB block freed and asked for again: by default a new mapping each time, whose
    pages fault (and are zeroed) again; with ``keep_freed_memory`` the heap's block,
    already touched. The stages' batch loops do this every batch."""
    import subprocess
    import sys

    for k in [k for k in os.environ if k.startswith("MALLOC_") or k == "GLIBC_TUNABLES"]:
        monkeypatch.delenv(k)
    faults = {how: int(subprocess.run([sys.executable, "-c", _FAULTS, how], check=True,
                                      capture_output=True, text=True).stdout)
              for how in ("default", "keep")}
    assert faults["keep"] * 5 < faults["default"], faults


def test_keep_freed_memory_leaves_the_environments_settings(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert io.keep_freed_memory() is False
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=131072")
    assert io.keep_freed_memory() is False


def test_quoting_check_reads_offsets_and_bytes_as_the_values(monkeypatch):
    """``io._quoting_differs`` (offsets and value bytes) against a regular expression on
    each value: random text with nulls, empty strings, '#', carriage returns and other
    UTF-8, as sliced and chunked arrays, the bytes compared a few at a time."""
    import re

    import numpy as np
    import pyarrow as pa

    monkeypatch.setattr(io, "_SCAN_BYTES", 5)
    rng = np.random.default_rng(5)
    alphabet = ["a", "b", "é", "€", "#", "\r", "\n", "1"]
    for _ in range(300):
        n = int(rng.integers(0, 12))
        values = []
        for _ in range(n):
            r = rng.random()
            values.append(None if r < 0.1 else "" if r < 0.15 else "".join(
                rng.choice(alphabet, int(rng.integers(1, 6)),
                           p=[.3, .3, .1, .1, .03, .03, .04, .1])))
        a = pa.array(values, type=pa.large_string())
        lo = int(rng.integers(0, n + 1))
        for arr in (a, a.slice(lo), pa.chunked_array([a.slice(0, lo), a.slice(lo)],
                                                     type=pa.large_string())):
            vals = arr.to_pylist()
            expected = any(v is not None and (v == "" or re.search(r"[\r#]", v)) for v in vals)
            assert io._quoting_differs(arr) == expected, vals
