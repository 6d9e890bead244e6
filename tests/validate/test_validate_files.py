"""From files to validated tables: every supported format gives the same result as the
frames themselves, and the raw folder is byte-for-byte unchanged afterwards."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

import vdata
from impact.ingest import ContractError, RawFolder, read_raw_folder


def _write(raw: dict[str, pd.DataFrame], folder: Path, fmt: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in raw.items():
        path = folder / f"{name}.{fmt}"
        if fmt == "csv":
            df.to_csv(path, index=False)
        elif fmt == "semicolon.csv":
            out = df.copy()
            for col in ("score", "value"):
                if col in out:
                    out[col] = out[col].str.replace(".", ",", regex=False)
            out.to_csv(folder / f"{name}.csv", index=False, sep=";")
        elif fmt == "parquet":
            _native(name, df).to_parquet(path, index=False)
        elif fmt in ("sav", "dta"):
            import pyreadstat

            out = _native(name, df)
            for col in out.columns:  # SPSS/Stata: dates as datetimes, text without nulls
                if str(out[col].dtype).startswith("datetime"):
                    continue
                if str(out[col].dtype) == "Int64":
                    out[col] = out[col].astype("float64")
                else:
                    out[col] = out[col].astype(object).where(out[col].notna(), "")
            (pyreadstat.write_sav if fmt == "sav" else pyreadstat.write_dta)(out, str(path))
        elif fmt == "xlsx":
            _native(name, df).to_excel(path, index=False)


def _native(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """The table with native types, as a Parquet/SPSS/Stata/Excel extract stores it."""
    out = df.copy()
    for col in out.columns:
        if col in ("start_date", "end_date", "date", "adoption_date"):
            out[col] = pd.to_datetime(out[col], format="mixed")
        elif col in ("birth_year", "prior_benefit_months", "ladder_step", "jobs", "population"):
            out[col] = pd.to_numeric(out[col]).astype("Int64")
        elif col in ("score",) or (col == "value"):
            out[col] = pd.to_numeric(out[col])
    if name == "shocks":  # municipality codes stored as numbers lose their 'GM' and zeros
        out["municipality"] = out["municipality"].str[2:].astype(int)
    return out


def _tree_hash(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def expected():
    return vdata.run(vdata.tables())


@pytest.mark.parametrize("fmt", ["csv", "semicolon.csv", "parquet", "sav", "dta", "xlsx"])
def test_each_format_validates_like_the_frames(fmt, tmp_path, expected):
    _write(vdata.tables(), tmp_path, fmt)
    before = _tree_hash(tmp_path)
    raw = read_raw_folder(tmp_path)
    result = vdata.run(raw)
    assert _tree_hash(tmp_path) == before  # the raw folder is never written to
    assert result.report["rejected_rows"] == 0
    for name, table in expected.tables.items():
        pd.testing.assert_frame_equal(result.tables[name], table, check_exact=False)
    src = result.report["tables"]["trajectories"]["source"]
    assert src == "trajectories.csv" if "csv" in fmt else src == f"trajectories.{fmt}"


class _Counting(dict):
    """A dict of tables that counts how often each is taken."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.taken: dict[str, int] = {}

    def __getitem__(self, key):
        self.taken[key] = self.taken.get(key, 0) + 1
        return super().__getitem__(key)


def test_each_table_is_taken_once_and_a_lazy_folder_validates_alike(tmp_path, expected):
    raw = _Counting(vdata.tables())
    result = vdata.run(raw)
    assert raw.taken == dict.fromkeys(vdata.tables(), 1)  # beside (progress) too
    for name, table in result.tables.items():
        pd.testing.assert_frame_equal(table, expected.tables[name], check_exact=True)
    _write(vdata.tables(), tmp_path, "csv")
    folder = RawFolder(tmp_path)
    assert sorted(folder) == sorted(vdata.tables()) and "progress" in folder
    lazy = vdata.run(folder)
    for name, table in lazy.tables.items():
        pd.testing.assert_frame_equal(table, expected.tables[name], check_exact=False)


def test_a_lazy_folder_reads_a_file_when_its_table_is_asked_for(tmp_path):
    _write(vdata.tables(), tmp_path, "csv")
    (tmp_path / "progress.csv").write_bytes(b"")   # unreadable: an empty file
    folder = RawFolder(tmp_path)
    assert len(folder) == len(vdata.tables()) and "progress" in folder   # nothing read yet
    with pytest.raises(ContractError, match=r"progress\.csv: the file is empty"):
        folder["progress"]
    # validated: the read error is the progress table's, raised after the tables before it
    with pytest.raises(ContractError, match=r"progress\.csv: the file is empty"):
        vdata.run(folder)
    # an error of an earlier table (trajectories, before progress) comes first
    bad = vdata.tables()["trajectories"].drop(columns=["spell_id"])
    bad.to_csv(tmp_path / "trajectories.csv", index=False)
    with pytest.raises(ContractError, match="trajectories"):
        vdata.run(RawFolder(tmp_path))
