"""Readers: which files are found, how CSV variants are read, what fails loudly, and
that nothing is ever written to the raw folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from impact.ingest import ContractError, find_table_files, read_raw_folder


def _hash(folder: Path) -> dict[str, tuple[str, float]]:
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime)
            for p in sorted(folder.iterdir())}


def _write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return path


def test_comma_csv_keeps_codes_as_text_with_leading_zeros(tmp_path):
    _write(tmp_path, "quality.csv",
           "unit_type,unit_id,municipality,date,instrument,score\n"
           "caseworker,007,0363,2020-01-01,fidelity_audit,3.5\n"
           "caseworker,,363,20200101,fidelity_audit,NA\n")
    df = read_raw_folder(tmp_path)["quality"]
    assert df["unit_id"].tolist()[0] == "007" and pd.isna(df["unit_id"].iloc[1])
    assert df["municipality"].tolist() == ["0363", "363"]
    assert df["score"].iloc[0] == "3.5" and pd.isna(df["score"].iloc[1])
    assert df.attrs["source"] == "quality.csv" and df.attrs["csv_sep"] == ","


def test_semicolon_csv_with_decimal_comma_is_detected(tmp_path):
    _write(tmp_path, "labour_market.csv",
           "Area;Period;Indicator;Value\nGM0363;2020-Q1;unemployment_rate;4,25\n"
           "AM18;2020;vacancy_rate;-0,5\nGM0599;2020-03;jobs;12000\n")
    _write(tmp_path, "shocks.csv",
           "shock_id;municipality;date;type;jobs;description\n"
           "B1;0599;2020-01-01;business_park_opening;400;Haven, fase 2,5\n")
    raw = read_raw_folder(tmp_path)
    lm = raw["labour_market"]
    assert list(lm.columns) == ["Area", "Period", "Indicator", "Value"]  # names as given
    assert lm["Value"].tolist() == ["4.25", "-0.5", "12000"]
    assert raw["shocks"]["description"].iloc[0] == "Haven, fase 2,5"  # text untouched
    assert lm.attrs["csv_sep"] == ";" and lm.attrs["decimal"] == ","


def test_explicit_separator_and_decimal_override_detection(tmp_path):
    _write(tmp_path, "progress.csv", 'spell_id,date,measure,value\nS1,2020-01-01,x,"3,5"\n')
    assert read_raw_folder(tmp_path)["progress"]["value"].iloc[0] == "3,5"
    got = read_raw_folder(tmp_path, csv_sep=",", decimal=",")["progress"]["value"].iloc[0]
    assert got == "3.5"


def test_byte_order_mark_is_skipped(tmp_path):
    _write(tmp_path, "progress.csv", "\ufeffspell_id;date;measure;value\nS1;2020-01-01;x;1\n")
    assert list(read_raw_folder(tmp_path)["progress"].columns)[0] == "spell_id"


def test_wrong_encoding_names_the_file_and_the_fix(tmp_path):
    _write(tmp_path, "municipalities.csv",
           "municipality,name,region\nGM1900,Súdwest-Fryslân,AM02\n", encoding="cp1252")
    with pytest.raises(ContractError, match=r"municipalities\.csv.*'utf-8'.*data\.encoding"):
        read_raw_folder(tmp_path)
    df = read_raw_folder(tmp_path, encoding="cp1252")["municipalities"]
    assert df["name"].iloc[0] == "Súdwest-Fryslân"


def test_file_names_are_case_insensitive_and_other_files_ignored(tmp_path):
    _write(tmp_path, "Trajectories.CSV", "spell_id\nS1\n")
    _write(tmp_path, "notes.txt", "hello")
    _write(tmp_path, "trajectories_old.csv", "spell_id\nS0\n")
    pd.DataFrame({"shock_id": ["B1"]}).to_parquet(tmp_path / "SHOCKS.parquet")
    raw = read_raw_folder(tmp_path)
    assert sorted(raw) == ["shocks", "trajectories"]  # absent tables are simply absent
    assert raw["trajectories"].attrs["source"] == "Trajectories.CSV"


def test_two_files_for_one_table_is_an_error(tmp_path):
    _write(tmp_path, "trajectories.csv", "spell_id\nS1\n")
    pd.DataFrame({"spell_id": ["S1"]}).to_parquet(tmp_path / "Trajectories.parquet")
    with pytest.raises(ContractError, match="trajectories.*2 files.*exactly one"):
        find_table_files(tmp_path)


@pytest.mark.parametrize(
    "name,content,match",
    [
        ("trajectories.parquet", b"not parquet at all", r"trajectories\.parquet: unreadable parquet"),
        ("trajectories.xlsx", b"PK\x03\x04 broken zip", r"trajectories\.xlsx: unreadable xlsx"),
        ("trajectories.sav", b"\x00\x01garbage", r"trajectories\.sav: unreadable sav"),
        ("trajectories.csv", b"", r"trajectories\.csv: the file is empty"),
        ("trajectories.csv", b'a,b\n1,"2\n', r"trajectories\.csv: unreadable csv"),
    ],
)
def test_unreadable_file_names_file_and_table(tmp_path, name, content, match):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ContractError, match=match) as exc:
        read_raw_folder(tmp_path)
    assert exc.value.table == "trajectories"


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(ContractError, match="does not exist.*data.raw_dir"):
        read_raw_folder(tmp_path / "nope")


def test_parquet_integers_stay_integers_with_nulls(tmp_path):
    pd.DataFrame({"spell_id": pd.array([1, None], dtype="Int64"),
                  "start_date": pd.to_datetime(["2020-01-01", "2020-02-01"]).date}).to_parquet(
        tmp_path / "trajectories.parquet")
    df = read_raw_folder(tmp_path)["trajectories"]
    assert str(df["spell_id"].dtype) == "Int64"
    assert str(df["start_date"].dtype).startswith("datetime64")


def test_reading_never_writes_to_the_folder(tmp_path):
    _write(tmp_path, "trajectories.csv", "spell_id;value\nS1;1,5\n")
    pd.DataFrame({"shock_id": ["B1"]}).to_parquet(tmp_path / "shocks.parquet")
    pd.DataFrame({"municipality": ["GM0363"]}).to_excel(tmp_path / "municipalities.xlsx", index=False)
    before = _hash(tmp_path)
    read_raw_folder(tmp_path)
    assert _hash(tmp_path) == before


def test_repeated_csv_header_is_an_error_not_a_renamed_column(tmp_path):
    _write(tmp_path, "trajectories.csv", "spell_id;Sex;sex\nS1;F;M\n")
    with pytest.raises(ContractError, match=r"trajectories\.csv: column 'sex' appears twice"):
        read_raw_folder(tmp_path)
