"""Read raw contract files (CSV with ',' or ';' and decimal comma, Parquet, SPSS, Stata,
Excel) into untyped frames; the first layer of the pipeline.

``contract`` describes the input tables; ``readers`` finds and reads their files;
``ContractError`` is the structural-fault exception shared with :mod:`impact.validate`.
"""

from impact.ingest.contract import REQUIRED_TABLES, TABLE_NAMES, TABLES, ColumnSpec, TableSpec
from impact.ingest.errors import ContractError
from impact.ingest.readers import RawFolder, find_table_files, read_raw_folder, read_table_file

__all__ = [
    "ContractError",
    "ColumnSpec",
    "REQUIRED_TABLES",
    "RawFolder",
    "TABLES",
    "TABLE_NAMES",
    "TableSpec",
    "find_table_files",
    "read_raw_folder",
    "read_table_file",
]
