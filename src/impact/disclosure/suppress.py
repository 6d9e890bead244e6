"""Primary and secondary suppression of small cells.

Primary: a cell (a count of persons, or a statistic resting on them) is hidden when fewer
than ``min_cell`` distinct persons stand behind it. Secondary: when a group's total is
published, one hidden cell in that group can be recovered by subtraction, so whenever a
group holds exactly one hidden cell the smallest published cell of the group is hidden
too (the classic rule of CBS and Eurostat tabular protection for additive tables; it
leaves at least two hidden cells, or none, in every group).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["secondary", "suppress_counts"]


def secondary(hidden: np.ndarray, group: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Extend ``hidden`` so that no group holds exactly one hidden unit.

    Parameters
    ----------
    hidden
        Boolean (n,), the primary suppressions.
    group
        (n,) labels of the groups whose totals are published (one label for a single
        national total).
    size
        (n,) the units' sizes; the smallest published unit of a group is hidden next.
        Ties go to the earlier unit, so the result does not depend on chance.

    Returns
    -------
    A new boolean array; a group of a single unit that is hidden stays as it is (its total
    is its own cell, hidden with it).
    """
    out = np.asarray(hidden, dtype=bool).copy()
    codes = pd.factorize(pd.Series(group, dtype="object"), sort=True)[0]
    size = np.asarray(size, dtype="float64")
    for g in np.unique(codes):
        idx = np.flatnonzero(codes == g)
        if out[idx].sum() != 1 or len(idx) < 2:
            continue
        shown = idx[~out[idx]]
        order = np.lexsort((shown, np.nan_to_num(size[shown], nan=np.inf)))
        out[shown[order[0]]] = True
    return out


def suppress_counts(table: pd.DataFrame, count_cols: Sequence[str], min_cell: int,
                    margins: Sequence[str] | None = None) -> pd.DataFrame:
    """Hide counts under ``min_cell`` (primary) and what would give them away (secondary).

    Each column of ``count_cols`` is an additive table whose totals are published along
    each column of ``margins`` (rows sharing a value of that column add up to a published
    total; none: one grand total over all rows). Cells under ``min_cell`` (zero included)
    become NA; then, margin after margin and until nothing changes, :func:`secondary`
    hides the smallest published cell of every group left with exactly one hidden cell
    (for a two-way table pass both ways, e.g. ``["municipality", "category"]``).
    Returns a copy with nullable integer count columns.
    """
    if min_cell < 1:
        raise ValueError(f"min_cell must be at least 1, got {min_cell}")
    out = table.copy()
    keys = ([out[c].to_numpy() for c in margins] if margins
            else [np.zeros(len(out), dtype="int64")])
    for col in count_cols:
        values = pd.to_numeric(out[col], errors="raise").astype("Float64")
        size = values.to_numpy(dtype="float64", na_value=np.nan)
        hide = (values < min_cell).fillna(True).to_numpy(dtype=bool)
        while True:  # each pass only adds hidden cells, so this ends
            before = hide.copy()
            for key in keys:
                hide = secondary(hide, key, size)
            if (hide == before).all():
                break
        values[hide] = pd.NA
        out[col] = values.round().astype("Int64")
    return out
