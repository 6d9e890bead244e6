"""Validate raw contract tables: typing, code normalisation, merger mapping, rejects.

``validate_tables`` is the stage's one function; ``DataParams`` its params section.
Modules, in the order a table passes through them: ``parse`` (column kinds), ``check``
(shared machinery: columns, typing, rejects), ``lineage`` (CBS merger mapping), one
module per group of tables (``municipalities``, ``spells``, ``units``,
``labour_market``), ``schemas`` (what the output guarantees), ``result`` (the report).
"""

from impact.ingest.errors import ContractError
from impact.validate.core import validate_tables
from impact.validate.lineage import CodeMap, build_code_map
from impact.validate.params import DataParams
from impact.validate.result import ValidationResult
from impact.validate.schemas import SCHEMAS, to_arrow

__all__ = [
    "CodeMap",
    "ContractError",
    "DataParams",
    "SCHEMAS",
    "ValidationResult",
    "build_code_map",
    "to_arrow",
    "validate_tables",
]
