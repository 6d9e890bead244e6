"""Cumulative incidence of the competing exits by client group, for every dimension
whose column is fixed over a spell: from the person-months in memory (DuckDB per
dimension), or counted straight from the panel file in one pass for every dimension
(``heterogeneity.incidence_stream``). The estimator is ``heterogeneity.incidence``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from impact import io
from impact.heterogeneity.incidence_stream import incidence_counts_stream
from impact.heterogeneity.params import HeterogeneityParams

__all__ = ["INCIDENCE_COLUMNS", "SPELL_CONSTANT", "incidence_by_group"]

#: columns of the published cumulative-incidence table (``incidence.suppress_incidence``)
INCIDENCE_COLUMNS = ("dimension", "group", "duration", "outcome", "cif", "std_error",
                     "ci_low", "ci_high", "at_risk", "clients", "cum_exits", "group_clients",
                     "suppressed")

#: dimensions whose column is fixed over a spell: cumulative incidence by group makes sense
SPELL_CONSTANT = frozenset({"ladder_step", "education_level", "household",
                            "prior_benefit_months", "sex"})


def incidence_by_group(pm: pd.DataFrame | None, het: HeterogeneityParams, alpha: float,
                       min_cell: int, panel: str | Path | None = None) -> pd.DataFrame:
    """Cumulative incidence of the competing exits by the groups of every spell-constant
    dimension, disclosure-controlled (``INCIDENCE_COLUMNS``). ``panel``: counted straight
    from the panel file in one pass (``incidence_stream``; ``pm`` not read)."""
    from impact.heterogeneity.incidence import (
        cumulative_incidence, incidence_counts, suppress_incidence)

    columns = io.parquet_columns(panel) if panel is not None else list(pm.columns)
    edu = "exit_education" if "exit_education" in columns else None
    dims = [d for d in het.groups if d.column in SPELL_CONSTANT and d.column in columns]
    inc = []
    if panel is not None:
        # every dimension's counts in one pass over the file (``incidence_stream``)
        counts = incidence_counts_stream(panel, dims, edu is not None)
    else:
        # distinct clients are counted on integer codes (the same counts): DuckDB reads an
        # Arrow string column as Python objects from pandas, once per dimension
        client = pd.factorize(pm["client_id"])[0] if dims else None
        counts = []
        for dim in dims:
            codes = dim.codes(pm[dim.column])
            labels = np.asarray(dim.labels + ("",), dtype=object)[codes]  # -1 -> ""
            frame = pd.DataFrame({
                "client_id": client, "duration": pm["duration"].to_numpy(),
                "exit_work": pm["exit_work"].to_numpy(), "exit_any": pm["exit_any"].to_numpy(),
                "group": pd.array(np.where(codes >= 0, labels, None), dtype="string")})
            if edu:
                frame["exit_education"] = pm[edu].to_numpy()
            counts.append(incidence_counts(frame, "group", missing_group="drop",
                                           education_col=edu))
    for dim, c in zip(dims, counts):
        ci = suppress_incidence(cumulative_incidence(c, alpha), min_cell)
        ci.insert(0, "dimension", dim.name)
        inc.append(ci)
    return (pd.concat(inc, ignore_index=True) if inc
            else pd.DataFrame(columns=list(INCIDENCE_COLUMNS)))
