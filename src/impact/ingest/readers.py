"""Read the raw contract files of one folder into frames, without typing them.

Readers are faithful: they return what the file holds, with codes and identifiers as
strings where the format stores text (leading zeros kept) and native types where it
stores numbers or dates. Typing, normalisation and every rule are the job of
:mod:`impact.validate`. The only change a reader makes to values is the decimal comma of
a Dutch CSV file, which it turns into a decimal point in the contract's numeric columns.

Nothing here writes to the folder: every file is opened read-only.
"""

from __future__ import annotations

import codecs
import csv
from pathlib import Path
from typing import Callable, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from impact.ingest.contract import TABLE_NAMES, numeric_columns
from impact.ingest.errors import ContractError

__all__ = ["read_raw_folder", "find_table_files", "read_table_file", "SUFFIXES", "NA_STRINGS"]

CsvSep = Literal[",", ";"]
Decimal = Literal[".", ","]

#: File suffixes recognised, in the order they are listed in messages.
SUFFIXES: tuple[str, ...] = (".csv", ".parquet", ".sav", ".dta", ".xlsx")

#: Strings a CSV cell may hold for "missing". Deliberately short: an identifier such as
#: 'NA' is rare, a code such as '0' or '-' must survive.
NA_STRINGS: tuple[str, ...] = ("", "NA", "N/A", "NULL", "null", "NaN", "nan", "None")

_DECIMAL_COMMA = r"^\s*([+-]?\d*),(\d+)\s*$"


def find_table_files(path: Path) -> dict[str, Path]:
    """Map each contract table to its file in ``path`` (file names case-insensitive).

    Raises
    ------
    ContractError
        When ``path`` is not a folder, or one table has more than one file
        (``trajectories.csv`` beside ``Trajectories.parquet``).
    """
    path = Path(path)
    if not path.is_dir():
        raise ContractError(
            f"raw data folder {str(path)!r} does not exist or is not a folder "
            f"(expected a folder with one file per contract table: params.yaml data.raw_dir)"
        )
    found: dict[str, list[Path]] = {}
    for file in sorted(path.iterdir()):
        if not file.is_file() or file.suffix.lower() not in SUFFIXES:
            continue
        stem = file.stem.strip().lower()
        if stem in TABLE_NAMES:
            found.setdefault(stem, []).append(file)
    for table, files in found.items():
        if len(files) > 1:
            names = ", ".join(f.name for f in files)
            raise ContractError(
                f"table '{table}': {len(files)} files in {str(path)!r} ({names}); "
                f"expected exactly one file named {table}.csv|.parquet|.sav|.dta|.xlsx",
                table=table,
            )
    return {table: files[0] for table, files in found.items()}


def read_raw_folder(
    path: Path,
    *,
    csv_sep: CsvSep | None = None,
    decimal: Decimal | None = None,
    encoding: str = "utf-8",
) -> dict[str, pd.DataFrame]:
    """Read every contract table found in ``path``.

    Parameters
    ----------
    path : Path
        The raw folder (``params.yaml`` → ``data.raw_dir``).
    csv_sep : {',', ';'} or None
        CSV separator; None detects it from the header line.
    decimal : {'.', ','} or None
        CSV decimal mark; None means ',' for ';'-separated files (as Dutch Excel writes
        them) and '.' otherwise.
    encoding : str
        Text encoding of CSV files (a byte-order mark is skipped).

    Returns
    -------
    dict of str to DataFrame
        One frame per table found, keyed by contract table name. Absent tables
        (required or not) are simply not in the dict; :func:`impact.validate.
        validate_tables` decides what that means. Each frame's ``attrs`` carry
        ``source`` (the file name) and ``format``.

    Raises
    ------
    ContractError
        The folder is missing, a table has two files, or a file cannot be read.
    """
    files = find_table_files(Path(path))
    return {
        table: read_table_file(file, table, csv_sep=csv_sep, decimal=decimal, encoding=encoding)
        for table, file in files.items()
    }


def read_table_file(
    file: Path,
    table: str,
    *,
    csv_sep: CsvSep | None = None,
    decimal: Decimal | None = None,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read one contract file; any failure becomes a ContractError naming the file."""
    file = Path(file)
    suffix = file.suffix.lower()
    readers: dict[str, Callable[[], pd.DataFrame]] = {
        ".csv": lambda: _read_csv(file, table, csv_sep, decimal, encoding),
        ".parquet": lambda: _read_parquet(file),
        ".sav": lambda: _read_stat(file, "sav"),
        ".dta": lambda: _read_stat(file, "dta"),
        ".xlsx": lambda: _read_xlsx(file),
    }
    if suffix not in readers:
        raise ContractError(
            f"{file.name}: unsupported file type {suffix!r} (expected one of {', '.join(SUFFIXES)})",
            table=table,
        )
    try:
        df = readers[suffix]()
    except ContractError:
        raise
    except UnicodeDecodeError as exc:
        where, column = _locate_decode_error(file, encoding, csv_sep)
        raise ContractError(
            f"{file.name}: cannot be read as {encoding!r} text: {where}; "
            f"set params.yaml data.encoding to the file's encoding, e.g. 'cp1252' or 'latin-1'",
            table=table, column=column,
        ) from exc
    except Exception as exc:  # noqa: BLE001 - any reader failure is an unreadable file
        raise ContractError(
            f"{file.name}: unreadable {suffix[1:]} file for table '{table}' "
            f"({type(exc).__name__}: {exc})",
            table=table,
        ) from exc
    df.attrs["source"] = file.name
    df.attrs["format"] = suffix[1:]
    return df


def _locate_decode_error(file: Path, encoding: str, sep: str | None) -> tuple[str, str | None]:
    """Line, column and bytes of the first undecodable character (error path only)."""
    data = file.read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        start, end, reason = exc.start, exc.end, exc.reason
    else:  # pragma: no cover - pandas failed where a plain decode does not
        return "a byte sequence is not valid", None
    line_start = data.rfind(b"\n", 0, start) + 1
    line_end = data.find(b"\n", start)
    line = data[line_start:None if line_end < 0 else line_end]
    lineno = data.count(b"\n", 0, start) + 1
    header = data[: data.find(b"\n")].decode(encoding, errors="replace").lstrip("\ufeff")
    sep = sep or _sniff_sep(header)
    names = next(csv.reader([header], delimiter=sep), [])
    field_no = line[: start - line_start].count(sep.encode())
    column = names[field_no].strip().lower() if lineno > 1 and field_no < len(names) else None
    shown = line.decode(encoding, errors="replace").strip()
    text = (f"line {lineno}" + (f", column {column!r}" if column else "")
            + f": bytes {data[start:end]!r} ({reason}) in {shown[:120]!r}")
    return text, column


def _header(file: Path, encoding: str) -> str:
    with open(file, "rb") as fh:
        head = fh.read(65536)
    lines = head.decode(encoding, errors="replace").lstrip("\ufeff").splitlines()
    return lines[0] if lines else ""


def _sniff_sep(header: str) -> str:
    return ";" if header.count(";") > header.count(",") else ","


def _check_header(file: Path, table: str, header: str, sep: str) -> None:
    """pandas renames a repeated column to ``name.1``; a repeat is a fault, say so."""
    names = next(csv.reader([header], delimiter=sep), [])
    seen: dict[str, str] = {}
    for name in names:
        low = name.strip().lower()
        if low and low in seen:
            raise ContractError(
                f"{file.name}: column {low!r} appears twice in the header ({seen[low]!r} and "
                f"{name!r}); column names are case-insensitive, expected each once",
                table=table, column=low,
            )
        seen[low] = name


def _read_csv(
    file: Path, table: str, sep: str | None, decimal: str | None, encoding: str
) -> pd.DataFrame:
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"  # Excel writes a byte-order mark
    if file.stat().st_size == 0:
        raise ContractError(f"{file.name}: the file is empty (expected a header row)", table=table)
    header = _header(file, encoding)
    sep = sep or _sniff_sep(header)
    _check_header(file, table, header, sep)
    decimal = decimal or ("," if sep == ";" else ".")
    df = pd.read_csv(
        file,
        sep=sep,
        dtype=str,
        encoding=encoding,
        keep_default_na=False,
        na_values=list(NA_STRINGS),
        skipinitialspace=True,
    )
    df.columns = [str(c) for c in df.columns]
    if decimal == ",":
        numeric = set(numeric_columns(table))
        for col in df.columns:
            # a plain substring scan first: integer columns (most of them) have no comma
            if col.strip().lower() in numeric and df[col].str.contains(",", regex=False).any():
                df[col] = df[col].str.replace(_DECIMAL_COMMA, r"\1.\2", regex=True)
    df.attrs["csv_sep"] = sep
    df.attrs["decimal"] = decimal
    return df


def _int_as_nullable(dtype: pa.DataType):
    """Arrow integers become pandas Int64 so that an id with nulls does not turn float."""
    if pa.types.is_integer(dtype):
        return pd.Int64Dtype()
    return None


def _read_parquet(file: Path) -> pd.DataFrame:
    table = pq.read_table(file, memory_map=False)
    return table.to_pandas(types_mapper=_int_as_nullable, date_as_object=False)


def _read_stat(file: Path, kind: str) -> pd.DataFrame:
    import pyreadstat

    reader = pyreadstat.read_sav if kind == "sav" else pyreadstat.read_dta
    df, _meta = reader(str(file), dates_as_pandas_datetime=True)
    return df


def _read_xlsx(file: Path) -> pd.DataFrame:
    df = pd.read_excel(file, sheet_name=0, dtype=object, engine="openpyxl")
    df.columns = [str(c) for c in df.columns]
    return df
