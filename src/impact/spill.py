"""The DuckDB connection of the passes that read the panel file out of core."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from typing import Iterator

__all__ = ["MEMORY_LIMIT", "RELEASE", "ident", "insert_distinct", "literal", "spilling"]

#: the memory of each pass's DuckDB connection; beyond it DuckDB spills to disk
#: (https://duckdb.org/docs/configuration/overview: ``memory_limit``, ``temp_directory``)
MEMORY_LIMIT = "1GB"

#: DuckDB's allocator (jemalloc, on Linux) keeps what it freed unless its background
#: threads give it back (https://duckdb.org/docs/current/internals/jemalloc,
#: ``allocator_background_threads``, off by default). Without them the memory of a query
#: result converted to Arrow and dropped stays with the process: 1.4 GB of the 1.7 GB of
#: the review months at national size, still held 12 s later; with them, back in 3 s.
RELEASE = {"allocator_background_threads": True}


@contextmanager
def spilling(prefix: str, threads: int | None = None) -> Iterator:
    """A DuckDB connection bounded by ``MEMORY_LIMIT`` that spills to a temporary folder
    (named ``prefix``...), closed and removed afterwards; ``threads``: DuckDB's worker
    threads (default: one per core)."""
    import duckdb

    with tempfile.TemporaryDirectory(prefix=prefix) as spill:
        config = {"memory_limit": MEMORY_LIMIT, "temp_directory": spill, **RELEASE}
        if threads:
            config["threads"] = int(threads)
        con = duckdb.connect(config=config)
        try:
            yield con
        finally:
            con.close()


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier (a user's column name may hold anything)."""
    return '"' + name.replace('"', '""') + '"'


def literal(value) -> str:
    """``value`` (a path, say) as a quoted SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def insert_distinct(con, table: str, columns: dict, text: tuple[str, ...] = ("client",)
                    ) -> None:
    """Add the distinct rows of ``columns`` (name -> NumPy or Arrow array, in ``table``'s
    column order) to the DuckDB table ``table``, the columns ``text`` as VARCHAR: a batch's
    (group, client) pairs deduplicated by DuckDB from Arrow arrays, with no Python string
    per row (the streamed passes' distinct-client counts)."""
    import pyarrow as pa

    impact_distinct = pa.table(columns)  # noqa: F841 (read by DuckDB by name)
    sel = ", ".join(f"CAST({ident(c)} AS VARCHAR)" if c in text else ident(c)
                    for c in columns)
    con.execute(f"INSERT INTO {ident(table)} SELECT DISTINCT {sel} FROM impact_distinct")
