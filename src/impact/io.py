"""All file reading and writing of stage outputs.

Package functions take and return frames, DuckDB relations and result objects; only the
stage scripts in ``pipeline/`` touch paths, and they do it through this module so that
every output is written the same deterministic way (sorted JSON keys, no index, no
timestamps, parent folders created, old contents replaced).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "clean_dir",
    "read_json",
    "read_parquet",
    "read_person_months",
    "parquet_columns",
    "present_columns",
    "to_jsonable",
    "write_csv",
    "write_json",
    "write_arrow",
    "write_parquet",
    "write_text",
]


def clean_dir(path: str | Path) -> Path:
    """Empty (or create) an output folder so a stage rewrites it completely."""
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _parent(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def to_jsonable(obj: Any) -> Any:
    """Turn numpy scalars, NaN and nested containers into plain JSON values.

    NaN and infinities become ``null``: JSON has no NaN, and a missing number must read
    as missing, never as zero.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, pd.Timestamp):
        return obj.strftime("%Y-%m-%d")
    return obj


def write_json(obj: Any, path: str | Path) -> None:
    """Write JSON with sorted keys and a trailing newline (byte-stable)."""
    text = json.dumps(to_jsonable(obj), indent=2, sort_keys=True, ensure_ascii=False)
    _parent(path).write_text(text + "\n", encoding="utf-8")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_text(text: str, path: str | Path) -> None:
    _parent(path).write_text(text, encoding="utf-8")


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    """Write a frame as Parquet without the pandas index and without a timestamp."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata(None)
    pq.write_table(table, _parent(path), compression="zstd")


def write_arrow(table: pa.Table, path: str | Path) -> None:
    """Write an Arrow table as Parquet (schema metadata stripped: byte-stable)."""
    pq.write_table(table.replace_schema_metadata(None), _parent(path), compression="zstd")


def system_allocator() -> None:
    """Let Arrow take its buffers from the C library's ``malloc`` (as numpy does), not
    from its default mimalloc pool, unless ``ARROW_DEFAULT_MEMORY_POOL`` says otherwise.

    Every stage calls it (``stage.run_stage``). Measured on the built-in panel (2.9
    million person-months, a 790 MB frame): after ``read_person_months`` the process held
    1,614 MB with mimalloc, whose freed pages stay in Arrow's pool where numpy cannot
    reuse them, and 938 MB with the system allocator and ``release_memory``; reading took
    no longer. Arrow's own tables are the same either way. Then glibc keeps freed blocks
    for the next request (``keep_freed_memory``).
    """
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        pa.set_memory_pool(pa.system_memory_pool())
    keep_freed_memory()


#: glibc ``mallopt`` parameters (``malloc.h``)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: ``keep_freed_memory``'s bound: blocks up to this size come from the heap, and up to
#: this much freed memory at its top stays with the process
MALLOC_KEEP = 256 << 20


def keep_freed_memory(keep: int = MALLOC_KEEP) -> bool:
    """With glibc: blocks of up to ``keep`` bytes from the heap, and up to ``keep`` bytes
    freed at the heap's top kept for the next request (``mallopt`` M_MMAP_THRESHOLD and
    M_TRIM_THRESHOLD). glibc's default gives a block over its threshold (128 KB, raised
    to the largest block freed, at most 32 MB) a mapping of its own and hands back the
    heap's free top beyond twice that threshold. A pass over the panel in batches frees
    and asks again for the same blocks every batch (a batch's design matrix is over 100 MB
    in the data-driven check): by default each is handed back and the kernel zeroes its
    pages again on the next touch (13% of a national run's CPU time was the kernel's).
    ``release_memory`` still hands back everything free where a stage frees a part's
    memory. Measured end to end at national size: docs/performance.md, twenty-fourth
    round. Returns whether it was set: not where the C library is not glibc, nor when the
    environment sets glibc's malloc itself (``MALLOC_..._`` variables or
    ``GLIBC_TUNABLES``), which then decides."""
    if (os.environ.get("GLIBC_TUNABLES")
            or any(k.startswith("MALLOC_") and k.endswith("_") for k in os.environ)):
        return False
    mallopt = glibc_mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, keep) and mallopt(_M_TRIM_THRESHOLD, keep))


def glibc_mallopt():
    """glibc's ``mallopt`` as a ctypes function, or None where the C library is not glibc
    (musl has a ``mallopt`` that does nothing; Windows has no ``CDLL(None)``)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def release_memory() -> None:
    """Hand the memory Arrow's pool holds but no longer uses back to the system (with the
    system allocator: ``malloc_trim``), e.g. the Arrow table a frame was converted from."""
    pa.default_memory_pool().release_unused()


def read_parquet(path: str | Path, columns: list[str] | None = None, *,
                 dates: bool = False) -> pd.DataFrame:
    """A Parquet file as a frame; ``dates``: date columns as datetime64, not as Python
    ``date`` objects (20.6 million progress rows: 0.8 GB of objects less)."""
    if not dates:
        return pd.read_parquet(path, columns=columns)
    df = pd.read_parquet(path, columns=columns, to_pandas_kwargs={"date_as_object": False})
    release_memory()
    return df


def read_person_months(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """The panel's person-months with the month columns as datetime64, not date objects:
    (measured on 2.9 million rows: 16% less memory, reading 12.7 -> 7.8 s, and filters
    and copies of the frame no longer walk Python objects). The memory of the Arrow table
    it came from goes back to the system (``release_memory``)."""
    return read_parquet(path, columns, dates=True)


def whole_file_dtypes(pf: pq.ParquetFile, columns) -> dict[str, str]:
    """The columns (of ``columns``) that pandas converts otherwise when it reads the whole
    file than in a batch without missing values: an integer column with a null anywhere
    becomes float64, a boolean one object. From the row groups' null counts, or, where a
    row group has none, by reading the column once."""
    where = {pf.metadata.row_group(0).column(j).path_in_schema: j
             for j in range(pf.metadata.num_columns)} if pf.metadata.num_row_groups else {}
    out = {}
    for c in columns:
        t = pf.schema_arrow.field(c).type
        kind = ("float64" if pa.types.is_integer(t) else "object" if pa.types.is_boolean(t)
                else None)
        if kind is None:
            continue
        stats = [pf.metadata.row_group(g).column(where[c]).statistics
                 for g in range(pf.metadata.num_row_groups)] if c in where else [None]
        if all(st is not None and st.has_null_count for st in stats):
            nulls = sum(st.null_count for st in stats)
        else:
            nulls = sum(b.column(0).null_count
                        for b in pf.iter_batches(batch_size=1 << 20, columns=[c]))
        if nulls:
            out[c] = kind
    return out


def iter_batches(path: str | Path, columns: list[str], batch_rows: int, keep=None):
    """The person-months of a Parquet file as pandas frames of ``batch_rows`` rows (only
    ``columns``, in file order), each column of the dtype ``read_person_months`` gives it
    for the whole file (``whole_file_dtypes``): so that a value is the same value in every
    batch, e.g. 3.0 and not 3 in a batch where an integer column has no missing value.

    ``keep``: a function of a batch's Arrow record batch or table giving the rows to keep
    (bool array); only those are converted, and a batch with none is skipped: the frames
    of ``df.loc[keep].reset_index(drop=True)``, without pandas' row filter, which copied
    every column again (a national quality pass over 22 columns: 17.1 -> 12.6 CPU s).

    Text columns are read dictionary-encoded and decoded in Arrow (``decoded``): the same
    values and dtypes, about three times faster than Parquet's own decoding to plain text
    (the seven text columns of a national batch of 131,072 rows: 14 -> 5 ms, pandas'
    conversion included; a national pass over 17 columns of the quality model, in four
    pairs: about 13 -> 9 CPU seconds). Read so, a batch also ends where a row group does;
    those pieces are joined again (``_up_to``), so the frames are the plain read's."""
    pf = pq.ParquetFile(path)
    kinds = whole_file_dtypes(pf, columns)
    # the plain read cuts batches at row groups only where the file stores a column as a
    # dictionary (the dictionary read cuts the same); else the pieces are joined again
    stored = any(pa.types.is_dictionary(pf.schema_arrow.field(c).type)
                 for c in columns if c in pf.schema_arrow.names)
    text, batches = stored_batches(path, columns, batch_rows)
    for part in (([b] for b in batches) if stored or not text else _up_to(batches, batch_rows)):
        got = (decoded(part[0], text) if len(part) == 1
               else pa.Table.from_batches([decoded(b, text) for b in part]))
        if keep is not None:
            rows = np.asarray(keep(got), dtype=bool)
            if not rows.any():
                continue
            if not rows.all():
                got = got.filter(pa.array(rows))
        df = got.to_pandas(date_as_object=False)
        for c, kind in kinds.items():
            if str(df[c].dtype) != kind:
                df[c] = df[c].astype(kind)
        yield df


def stored_batches(path: str | Path, columns: list[str], batch_rows: int):
    """``(text columns, Arrow batches of columns)``, text read as stored (dictionaries):
    ``iter_batches`` decodes each batch, ``distinct.aggregated`` only its result."""
    pf = pq.ParquetFile(path)
    text = text_columns(pf, columns)
    if text:
        pf = pq.ParquetFile(path, read_dictionary=text)
    return text, pf.iter_batches(batch_size=batch_rows, columns=columns)


def _up_to(batches, rows: int):
    """Consecutive ``batches`` in lists of at most ``rows`` rows together (one batch alone
    when it has more)."""
    part, n = [], 0
    for b in batches:
        if part and n + b.num_rows > rows:
            yield part
            part, n = [], 0
        part.append(b)
        n += b.num_rows
    if part:
        yield part


def text_columns(pf: pq.ParquetFile, columns) -> list[str]:
    """The text columns of ``columns`` in the file: read them dictionary-encoded
    (``pq.ParquetFile(path, read_dictionary=...)``) and ``decoded`` (``iter_batches``)."""
    schema = pf.schema_arrow
    return [c for c in columns if c in schema.names
            and (pa.types.is_string(schema.field(c).type)
                 or pa.types.is_large_string(schema.field(c).type))]


def decoded(batch: pa.RecordBatch, names: list[str]) -> pa.RecordBatch:
    """``batch`` with its columns ``names`` (read dictionary-encoded) as the plain arrays
    of their values, fields as they were; a column the file itself stores as a
    dictionary stays one."""
    if not names:
        return batch
    arrays = [a.dictionary_decode() if f.name in names and pa.types.is_dictionary(a.type)
              else a for f, a in zip(batch.schema, batch.columns)]
    fields = [pa.field(f.name, a.type, f.nullable, f.metadata)
              for f, a in zip(batch.schema, arrays)]
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields, batch.schema.metadata))


def parquet_columns(path: str | Path) -> list[str]:
    """The column names of the Parquet file ``path`` (its schema; no data read)."""
    return list(pq.ParquetFile(path).schema_arrow.names)


def present_columns(path: str | Path, columns: list[str] | None) -> list[str] | None:
    """``columns`` that the Parquet file ``path`` has, in their order (None: all)."""
    if columns is None:
        return None
    have = set(parquet_columns(path))
    return [c for c in columns if c in have]


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    """Write a CSV the way the data contract reads it: UTF-8, comma, ISO dates.

    The bytes are pandas' ``to_csv`` (no index, ``\\n`` line ends). A frame of plain
    columns (``_plain``) is written by DuckDB's parallel writer instead, which gives the
    same bytes for such columns (tests/test_io.py writes random frames both ways) several
    times faster: the national simulation's 30 million rows of contract tables took
    36 s through pandas."""
    table = _plain(df)
    if table is None:
        df.to_csv(_parent(path), index=False, lineterminator="\n", date_format="%Y-%m-%d")
        return
    import duckdb

    from impact.spill import RELEASE, literal

    con = duckdb.connect(config=RELEASE)
    try:
        con.register("frame", table)
        con.execute(f"COPY frame TO {literal(_parent(path))} (FORMAT csv, HEADER, DELIMITER ',')")
    finally:
        con.close()


#: characters on which DuckDB's and pandas' CSV quoting differ: DuckDB quotes a value with
#: a carriage return or starting with ``#``, and the empty string; pandas (lines ending
#: in a line feed) does not. A text column holding one (``#`` anywhere) or an empty string is
#: written by pandas
_QUOTING_DIFFERS = "\r#"
_SCAN_BYTES = 1 << 26   # the value bytes compared at a time (a bool array of this size)


def _plain(df: pd.DataFrame) -> pa.Table | None:
    """``df`` as an Arrow table when every column is a 64-bit integer, float or nullable
    integer, or text none of whose values is empty or holds a character of
    ``_QUOTING_DIFFERS``, and every column name is a plain identifier; else None."""
    if df.shape[1] == 0 or not all(isinstance(c, str) and c.isidentifier() for c in df.columns):
        return None
    arrays = []
    for name in df.columns:
        col = df[name]
        if col.dtype in (np.int64, np.float64, pd.Int64Dtype()):
            arrays.append(pa.array(col, from_pandas=True))
            continue
        if not pd.api.types.is_string_dtype(col.dtype) or isinstance(
                col.dtype, pd.CategoricalDtype):
            return None
        # an object column only of strings (Arrow would take bytes as text; pandas
        # writes b'...')
        if col.dtype == object and pd.api.types.infer_dtype(col, skipna=True) not in (
                "string", "empty"):
            return None
        a = pa.array(col, type=pa.large_string(), from_pandas=True)
        if _quoting_differs(a):
            return None
        arrays.append(a)
    return pa.Table.from_arrays(arrays, names=list(df.columns))


def _quoting_differs(a: pa.Array) -> bool:
    """Whether the ``large_string`` array ``a`` has an empty value or a byte of
    ``_QUOTING_DIFFERS`` (an ASCII character, so a byte of no other UTF-8 character):
    read from its offsets and value bytes, as a regular expression per value took 2.6 s
    a column of the national simulation's 20 million progress rows. The bytes of null
    values (none, from pandas) are searched too: at worst pandas writes the table."""
    chunks = a.chunks if isinstance(a, pa.ChunkedArray) else [a]
    for c in chunks:
        if len(c) == 0:
            continue
        bufs = c.buffers()
        off = np.frombuffer(bufs[1], dtype=np.int64)[c.offset:c.offset + len(c) + 1]
        empty = np.diff(off) == 0
        if c.null_count:
            empty &= c.is_valid().to_numpy(zero_copy_only=False)
        if empty.any():
            return True
        lo, hi = int(off[0]), int(off[-1])
        if hi > lo:
            data = np.frombuffer(bufs[2], dtype=np.uint8, count=hi - lo, offset=lo)
            for i in range(0, len(data), _SCAN_BYTES):
                part = data[i:i + _SCAN_BYTES]
                if any((part == ord(ch)).any() for ch in _QUOTING_DIFFERS):
                    return True
    return False
