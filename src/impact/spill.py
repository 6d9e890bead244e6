"""The DuckDB connection of the passes that read the panel file out of core."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from typing import Iterator

__all__ = ["MEMORY_LIMIT", "ident", "literal", "spilling"]

#: the memory of each pass's DuckDB connection; beyond it DuckDB spills to disk
#: (https://duckdb.org/docs/configuration/overview: ``memory_limit``, ``temp_directory``)
MEMORY_LIMIT = "1GB"


@contextmanager
def spilling(prefix: str, threads: int | None = None) -> Iterator:
    """A DuckDB connection bounded by ``MEMORY_LIMIT`` that spills to a temporary folder
    (named ``prefix``...), closed and removed afterwards; ``threads``: DuckDB's worker
    threads (default: one per core)."""
    import duckdb

    with tempfile.TemporaryDirectory(prefix=prefix) as spill:
        config = {"memory_limit": MEMORY_LIMIT, "temp_directory": spill}
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
