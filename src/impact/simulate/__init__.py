"""The built-in synthetic country: a real subset of Dutch municipalities with simulated
bijstand clients, caseworkers, quality audits, programme adoption and labour-market luck,
written as the data contract's tables, with the planted truth.

>>> from impact.simulate import SimulateParams, simulate_country, load_reference
>>> country = simulate_country(SimulateParams.from_dict({"preset": "small"}), frames, seed=1)

``frames`` are the CBS files of :data:`REFERENCE_FILES` (under ``data/reference/``) read
with pandas and keyed by file stem; or pass ``load_reference(frames)``.
"""

from .country import SimulatedCountry, simulate_country, write_country
from .params import DEFAULT_PARAMS_YAML, PRESETS, SimulateParams
from .reference import REFERENCE_FILES, Reference, load_reference

__all__ = ["SimulateParams", "SimulatedCountry", "simulate_country", "write_country",
           "load_reference", "Reference",
           "REFERENCE_FILES", "DEFAULT_PARAMS_YAML", "PRESETS"]
