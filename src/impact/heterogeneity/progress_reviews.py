"""One measure's reviews, one per spell and month (``spell_months``), for
``progress.review_frame``: integer codes and Arrow hash lookups where pandas made a
Python string of every review and sorted and grouped them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from impact.estimate.frames import month_index

__all__ = ["spell_months", "text_array"]


def spell_months(p: pd.DataFrame, trajectories: pd.DataFrame) -> pd.DataFrame:
    """One measure's reviews ``p`` (progress rows), one per spell and month: the last
    value of the month, in (spell, month) order, with the client of the spell, its month,
    the spell's previous review's month and value (``prev_t``, ``prev_v``: NaN for its
    first) and whether it is the first (``first``). Every review as recorded counts, those
    before the study window included (they have no person-month but are the previous
    review of the first ones inside it); rows without client, month or value are dropped.

    Columns ``t``, ``value``, ``client_id``, ``prev_t``, ``prev_v``, ``first``: what
    ``sort_values(["spell_id", "t"], kind="stable")``, ``groupby(...).last()`` and a shift
    per spell gave, on integer codes (the pandas way made 20 million Python strings at
    national size and sorted and grouped them: about 20 of the part's 160 CPU seconds).
    Spells are ordered as text, as Python orders strings (factorised sorted)."""
    spell = text_array(p["spell_id"])
    traj = text_array(trajectories["spell_id"])
    t_all = month_index(p["date"])
    value = pd.to_numeric(p["value"], errors="coerce").to_numpy(dtype="float64")
    # the client of each review's spell: a hash lookup among the trajectories' spells
    # (``Series.map`` through an object index took 5.7 s for 20 million reviews)
    if len(pc.unique(traj)) != len(traj):
        raise ValueError("trajectories: a spell_id appears more than once")
    client = text_array(trajectories["client_id"]).take(
        pc.index_in(spell, value_set=traj, skip_nulls=True))
    rows = np.flatnonzero(np.asarray(client.is_valid(), dtype=bool) & ~np.isnan(t_all)
                          & ~np.isnan(value))
    code, _ = pd.factorize(pd.array(spell.take(pa.array(rows)), dtype=pd.StringDtype("pyarrow")),
                           sort=True)
    t = t_all[rows].astype("int64")
    t0 = int(t.min()) if len(t) else 0
    span = int(t.max()) - t0 + 1 if len(t) else 1
    key = code.astype("int64") * span + (t - t0)
    order = np.argsort(key, kind="stable")
    ks = key[order]
    sel = order[np.r_[ks[1:] != ks[:-1], True]] if len(ks) else order  # a month's last
    c, ts, v = code[sel], t[sel], value[rows][sel]
    first = np.r_[True, c[1:] != c[:-1]] if len(c) else np.zeros(0, dtype=bool)
    return pd.DataFrame({
        "t": ts, "value": v,
        "client_id": pd.array(client.take(pa.array(rows[sel])), dtype="string"),
        "prev_t": np.where(first, np.nan, np.r_[np.nan, ts[:-1]]),
        "prev_v": np.where(first, np.nan, np.r_[np.nan, v[:-1]]), "first": first})


def text_array(values) -> pa.Array:
    """A column of text (ids; numbers as their text) as one Arrow array of type
    ``string`` (no Python object per value)."""
    arr = pa.array(pd.Series(values).astype("string"), from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr if arr.type == pa.string() else arr.cast(pa.string())
