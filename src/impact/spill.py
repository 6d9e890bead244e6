"""The DuckDB connection of the passes that read the panel file out of core."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from typing import Iterator

__all__ = ["MEMORY_LIMIT", "spilling"]

#: the memory of each pass's DuckDB connection; beyond it DuckDB spills to disk
#: (https://duckdb.org/docs/configuration/overview: ``memory_limit``, ``temp_directory``)
MEMORY_LIMIT = "1GB"


@contextmanager
def spilling(prefix: str) -> Iterator:
    """A DuckDB connection bounded by ``MEMORY_LIMIT`` that spills to a temporary folder
    (named ``prefix``...), closed and removed afterwards."""
    import duckdb

    with tempfile.TemporaryDirectory(prefix=prefix) as spill:
        con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "temp_directory": spill})
        try:
            yield con
        finally:
            con.close()
