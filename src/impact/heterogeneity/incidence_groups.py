"""Cumulative incidence of the competing exits by client group, for every dimension
whose column is fixed over a spell: from the person-months in memory, or counted by
DuckDB straight from the panel file (the group labels of the column's distinct values
joined to it), out of core. The estimator is ``heterogeneity.incidence``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from impact import io
from impact.estimate.quality_stream import BATCH_ROWS
from impact.heterogeneity.params import GroupDimension, HeterogeneityParams
from impact.spill import ident as _ident, literal as _literal, spilling

__all__ = ["INCIDENCE_COLUMNS", "SPELL_CONSTANT", "incidence_by_group", "incidence_counts_file"]

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
    dimension, disclosure-controlled (``INCIDENCE_COLUMNS``). ``panel``: counted by DuckDB
    straight from the panel file (``incidence_counts_file``; ``pm`` not read)."""
    from impact.heterogeneity.incidence import (
        cumulative_incidence, incidence_counts, suppress_incidence)

    columns = io.parquet_columns(panel) if panel is not None else list(pm.columns)
    edu = "exit_education" if "exit_education" in columns else None
    dims = [d for d in het.groups if d.column in SPELL_CONSTANT and d.column in columns]
    inc = []
    if panel is not None and dims:
        with spilling("impact-incidence-") as con:
            counts = [incidence_counts_file(panel, d, edu is not None, con) for d in dims]
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


def _distinct_values(path: Path, column: str) -> pd.Series:
    """The distinct values of one column of the Parquet file (read a batch at a time),
    converted to pandas as ``io.read_person_months`` converts the column."""
    import pyarrow.compute as pc

    seen = None
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=[column]):
        u = pc.unique(batch.column(0))
        seen = u if seen is None else pc.unique(pa.concat_arrays([seen, u]))
    if seen is None:
        return pd.Series([], dtype=object)
    return pa.table({column: seen}).to_pandas(date_as_object=False)[column]


def incidence_counts_file(path: str | Path, dim: GroupDimension, education: bool,
                          con) -> pd.DataFrame:
    """``incidence.incidence_counts`` of the person-months by the groups of ``dim``
    (rows in no group left out) straight from the panel file: the column's distinct values
    get their group label in pandas (``GroupDimension.codes``, a value at a time), and
    DuckDB joins that small table to the file and counts, out of core."""
    from impact.heterogeneity.incidence_counts import incidence_counts

    values = _distinct_values(Path(path), dim.column)
    codes = dim.codes(values)
    keep = codes >= 0
    values = values[keep].reset_index(drop=True)  # a missing value is in no group
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(values.cat.categories.dtype)
    labels = pd.DataFrame({"v": values,
                           "label": np.asarray(dim.labels, dtype=object)[codes[keep]]})
    con.register("impact_group_labels", pa.Table.from_pandas(labels, preserve_index=False))
    edu = ", p.exit_education" if education else ""
    rel = con.sql(f"""SELECT p.client_id, p.duration, p.exit_work, p.exit_any{edu},
                      m.label AS "group"
                      FROM read_parquet({_literal(path)}) p LEFT JOIN impact_group_labels m
                      ON p.{_ident(dim.column)} IS NOT DISTINCT FROM m.v""")
    try:
        return incidence_counts(rel, "group", missing_group="drop",
                                education_col="exit_education" if education else None)
    finally:
        con.unregister("impact_group_labels")
