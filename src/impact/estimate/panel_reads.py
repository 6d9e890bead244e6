"""Which person-month columns an estimate or robustness stage reads, and how it loads them.

The quality specifications read the panel file in batches (``quality_stream``,
``hazard_stream``, ``value_added_stream``, ``panel_summary``) and hold none of it; the
adoption and shock models on municipality-month cells read three columns, loaded as one
weighted row per distinct value triple (``shock.cell_model_rows``); team-level adoption
needs every column. ``run.run_specification`` gives the same results either way
(tests/estimate/test_panel_columns.py).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from impact.estimate.params import EstimateParams
from impact.estimate.specs import Specification

__all__ = ["CELL_MODEL_COLUMNS", "cell_model_columns", "load_person_months", "panel_columns",
           "streams_panel"]


def streams_panel(spec: Specification) -> bool:
    """Whether ``run_specification`` given the panel file reads ``spec``'s regression (and
    value-added) from it in batches: the quality 2SLS, OLS and hazard. It then needs no
    person-month frame at all (``panel_summary`` reads the rest from the file too)."""
    return spec.block == "quality"


def panel_columns(spec: Specification, base: EstimateParams,
                  adoption: pd.DataFrame | None, available=None) -> list[str] | None:
    """The person-month columns ``run_specification(spec, ..., panel=...)`` reads from its
    ``person_months`` frame (None: all of them), so a stage loads no more of the panel
    (``available``, the panel file's columns, is no longer needed: kept for callers):

    - quality 2SLS / OLS / hazard: none (``[]``: pass ``person_months=None``); the
      regression, value-added and ``panel_summary`` read the file in batches;
    - adoption and shocks: ``cell_model_columns`` (the panel's municipality-month cells
      carry the outcome).
    """
    params = spec.apply(base)
    if spec.block != "quality":
        return cell_model_columns(adoption, params.adoption.programme)
    return []


def load_person_months(panel: Path, columns: list[str] | None) -> pd.DataFrame | None:
    """What a stage hands ``run_specification`` (or the robustness checks) as
    ``person_months``, given ``panel_columns`` or ``cell_model_columns``: None for no
    column; for the cell models' columns, ``shock.cell_model_rows`` (one row per distinct
    municipality, month and adoption month, weighted: the only use of those columns is
    ``shock.adoption_shares``); otherwise the columns themselves (None: all)."""
    from impact import io
    from impact.estimate.shock import cell_model_rows

    if columns == []:
        return None
    if columns is not None and list(columns) == CELL_MODEL_COLUMNS:
        return cell_model_rows(panel)
    return io.read_person_months(panel, columns=io.present_columns(panel, columns))


#: the person-month columns of the adoption and shock models on cells
CELL_MODEL_COLUMNS = ["municipality", "t", "adoption_month"]


def cell_model_columns(adoption: pd.DataFrame | None, programme: str) -> list[str] | None:
    """The person-month columns the adoption and shock models on municipality-month cells
    read (``adoption_cells``, ``estimate_shock``): the adoption-bin shares of the shock
    model (municipality, t, adoption_month), or every column (None) when ``programme``
    has team-level adoption rows, whose unit cells are built from the person-months."""
    from impact.estimate.frames import adoption_months

    if adoption_months(adoption, programme)[1]:
        return None
    return list(CELL_MODEL_COLUMNS)
