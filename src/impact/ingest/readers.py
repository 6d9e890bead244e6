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
from typing import Callable, Iterator, Literal, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from impact.ingest.contract import TABLE_NAMES, numeric_columns
from impact.ingest.errors import ContractError
from impact.io import release_memory

__all__ = ["read_raw_folder", "RawFolder", "find_table_files", "read_table_file", "SUFFIXES",
           "NA_STRINGS"]

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
    folder = RawFolder(path, csv_sep=csv_sep, decimal=decimal, encoding=encoding)
    return {table: folder[table] for table in folder}


class RawFolder(Mapping[str, pd.DataFrame]):
    """The contract tables of a raw folder, each read when it is asked for and not kept:
    :func:`read_raw_folder`'s frames, one at a time. ``validate`` takes one table after
    another from it, so that a table's text is held only while it is validated (the
    national raw tables are 2.0 GB as text, 1.35 of it ``progress``).

    The folder is looked at when this is made (a missing folder or a table with two files
    raises then); a file is read, and fails, when its table is asked for. Membership,
    keys and ``len`` read nothing."""

    def __init__(self, path: Path, *, csv_sep: CsvSep | None = None,
                 decimal: Decimal | None = None, encoding: str = "utf-8") -> None:
        self.files = find_table_files(Path(path))
        self._options = dict(csv_sep=csv_sep, decimal=decimal, encoding=encoding)

    def __getitem__(self, table: str) -> pd.DataFrame:
        return read_table_file(self.files[table], table, **self._options)

    def __contains__(self, table: object) -> bool:
        return table in self.files

    def __iter__(self) -> Iterator[str]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)


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
    df = _read_csv_arrow(file, header, sep, encoding)
    if df is None:  # a file Arrow's rules might read otherwise: pandas' rules decide
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


def _read_csv_arrow(file: Path, header: str, sep: str, encoding: str) -> pd.DataFrame | None:
    """The frame ``pd.read_csv`` gives in ``_read_csv``, read by Arrow's reader (on all
    cores, without a Python string per cell), or None wherever Arrow's rules and pandas'
    could part, and pandas reads the file: an encoding other than UTF-8 or bytes that
    are not UTF-8, a quote anywhere (Arrow takes a quote left open to the end of the
    file as a field, pandas raises), a line ended by a carriage return alone (CRLF line
    ends are read alike), a tab, an empty or space-led name in the header, a row of
    another length than the header (pandas fills a short one), or a field that begins
    with a space (pandas skips the space: ``skipinitialspace``). Otherwise the rules
    are the same: empty lines skipped, every cell text, exactly ``NA_STRINGS`` missing
    (``tests/ingest/test_ingest_csv_arrow.py``, on random files of the characters where
    they could part). The national simulation's eight files (1.08 GB, 20.6 million rows
    of ``progress``): 13.2-14.1 -> 4.9-5.1 s to read, at the same peak (2.5 GB); the
    ``validate`` stage 42-44 -> 29-32 s by this alone, its tables the same."""
    if (getattr(_TEXT, "storage", None) != "pyarrow"
            or codecs.lookup(encoding).name not in ("utf-8", "utf-8-sig") or not _plain(file)):
        return None
    names = next(csv.reader([header], delimiter=sep), [])
    if not names or any(not n or n[0] == " " for n in names):
        return None
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    try:
        table = pa_csv.read_csv(
            file,
            read_options=pa_csv.ReadOptions(block_size=16 << 20),
            parse_options=pa_csv.ParseOptions(delimiter=sep, quote_char=False),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.large_string()),
                null_values=list(NA_STRINGS), strings_can_be_null=True),
        )
    except pa.ArrowException:  # a parse or UTF-8 error: pandas reads it, or says what
        return None
    if table.column_names != names or any(
            pc.any(pc.starts_with(col, " ")).as_py() for col in table.columns):
        return None
    # pandas' text dtype holds Arrow's large strings: the columns are taken as they are
    df = table.to_pandas(types_mapper={pa.large_string(): _TEXT}.get)
    del table
    # the parse's blocks, freed in the reader's threads' heaps (glibc's, under run_stage's
    # system allocator) where this thread's next requests would not find them: handed
    # back before the next file (the eight national files: a peak of 2.98 -> 2.5 GB)
    release_memory()
    return df


def _plain(file: Path) -> bool:
    """Whether ``file`` holds no quote, no tab (pandas skips a line of tabs) and no
    carriage return but in a CRLF line end: where pandas' rules and Arrow's part (read
    in blocks: about 0.3 s a GB)."""
    with open(file, "rb") as fh:
        while block := fh.read(16 << 20):
            if block.endswith(b"\r"):
                block += fh.read(1)
            if b'"' in block or b"\t" in block or block.count(b"\r") != block.count(b"\r\n"):
                return False
    return True


#: what ``pd.read_csv(dtype=str)`` gives a column (pandas 3: Arrow's large strings)
_TEXT = pd.Series(dtype=str).dtype


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
