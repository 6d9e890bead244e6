"""Validate raw contract tables: typing, code normalisation, merger mapping, rejects.

``validate_tables`` is the stage's one function; ``DataParams`` its params section.
Modules, in the order a table passes through them: ``parse`` (column kinds), ``check``
(shared machinery: columns, typing, rejects), ``lineage`` (CBS merger mapping), one
module per group of tables (``municipalities``, ``spells``, ``units``,
``labour_market``), ``schemas`` (what the output guarantees), ``result`` (the report).
"""

from importlib import import_module

#: where each public name lives: imported on first use (PEP 562), so that reading
#: ``params.yaml`` (``impact.config`` needs ``DataParams``) does not load the schemas and
#: pandera, about 0.4 s at the start of every stage
_HOME = {
    "ContractError": "impact.ingest.errors",
    "validate_tables": "impact.validate.core",
    "CodeMap": "impact.validate.lineage",
    "build_code_map": "impact.validate.lineage",
    "DataParams": "impact.validate.params",
    "ValidationResult": "impact.validate.result",
    "SCHEMAS": "impact.validate.schemas",
    "to_arrow": "impact.validate.schemas",
}


def __getattr__(name: str):
    if name in _HOME:
        return getattr(import_module(_HOME[name]), name)
    raise AttributeError(f"module 'impact.validate' has no attribute {name!r}")


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
