"""The cumulative incidence's counts by group for every dimension at once, in one pass
over the panel's Parquet file.

Notes
-----
``incidence_counts`` per dimension is a DuckDB aggregation whose inner step groups the
person-months by (group, duration, client) on the string client id: about as many rows
as person-months, once per dimension (four at national scale: 264 s of 63 million
person-months). Here one pass in batches reads the columns once and keeps, per
person-month with ``duration <= max_duration``, small integers: the client's code
(``distinct.ClientCodes``), the duration and each dimension's group code.
Person-months, exits and the checks are then ``np.bincount`` sums per (group,
duration); distinct clients per (group, duration) and per group come from the sorted
distinct integer keys ``(client, group, duration)``, a dimension at a time.

The same counts as ``incidence_counts`` (``missing_group="drop"``) of the file with the
groups' labels: a person-month in no group (or with a missing value) is left out; a
missing duration is dropped (as ``WHERE duration <= max`` drops it) and a negative one
refused; an exit flag that is not 0/1 (a missing one included) or exits to work plus
education above any exit is refused (``IncidenceInputError``, before any group is
dropped, as there); a missing client id counts as a person-month but not as a client
(``count(DISTINCT)`` skips NULL).

Memory: 4 + 2 bytes per kept person-month plus 1 per dimension (about 0.6 GB at 63
million with four dimensions), and a dimension's keys while they are sorted (8 bytes a
row, twice); time linear in the person-months apart from that sort.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from impact.distinct import ClientCodes, unique
from impact.estimate.quality_stream import BATCH_ROWS
from impact.heterogeneity.incidence_counts import IncidenceInputError, _finish_counts
from impact.heterogeneity.params import GroupDimension

__all__ = ["incidence_counts_stream"]

_FLAGS = ("exit_work", "exit_education", "exit_any")


def _flag(batch: pa.RecordBatch, name: str | None, n: int) -> np.ndarray:
    """An exit flag as float64 (NaN: missing); zeros when the panel has no such column."""
    if name is None:
        return np.zeros(n)
    col = batch.column(name)
    return np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype="float64")


def incidence_counts_stream(path: str | Path, dims: Sequence[GroupDimension],
                            education: bool, max_duration: int = 120,
                            batch_rows: int = BATCH_ROWS) -> list[pd.DataFrame]:
    """``incidence_counts(..., "group", missing_group="drop")`` of the panel file by the
    groups of each of ``dims`` (module notes): one table per dimension, in order."""
    if not dims:
        return []
    D = int(max_duration) + 1
    f = pq.ParquetFile(path)
    flags = ("exit_work", "exit_education" if education else None, "exit_any")
    cols = ["client_id", "duration", *dict.fromkeys(d.column for d in dims),
            *(c for c in flags if c)]
    client_codes = ClientCodes()
    clients, durations = [], []
    groups: list[list[np.ndarray]] = [[] for _ in dims]
    sums = [np.zeros((4, (len(d.labels)) * D)) for d in dims]  # at risk, work, edu, any
    bad = negative = 0
    for batch in f.iter_batches(batch_size=batch_rows, columns=cols):
        n = batch.num_rows
        dur = batch.column("duration")
        d = np.asarray(dur.fill_null(max_duration + 1).to_numpy(zero_copy_only=False),
                       dtype="int64")
        keep = d <= max_duration  # a missing duration is dropped, as in the SQL
        negative += int(np.count_nonzero(keep & (d < 0)))
        w, e, a = (_flag(batch, c, n) for c in flags)
        ok = np.isin(w, (0, 1)) & np.isin(e, (0, 1)) & np.isin(a, (0, 1)) & (w + e <= a)
        bad += int(np.count_nonzero(keep & ~ok))
        if negative or bad:
            continue  # refused below, after counting every offending person-month
        idx = np.flatnonzero(keep)
        code = client_codes(batch.column("client_id"))[idx]
        d = d[idx]
        clients.append(code.astype("int32" if len(client_codes) < 2**31 else "int64"))
        durations.append(d.astype("int16" if D < 2**15 else "int32"))
        values = batch.select(list(dict.fromkeys(x.column for x in dims))).to_pandas()
        wk = np.stack([np.ones(len(idx)), w[idx], e[idx], a[idx]])
        for i, dim in enumerate(dims):
            g = dim.codes(values[dim.column].iloc[idx])
            groups[i].append(g.astype("int8" if len(dim.labels) < 127 else "int32"))
            m = g >= 0
            cell = g[m] * D + d[m]
            for j in range(4):
                sums[i][j] += np.bincount(cell, wk[j][m], minlength=len(dim.labels) * D)
    if bad:
        raise IncidenceInputError(
            f"{bad} person-month(s) have exit flags that are not 0/1 or with "
            "exit_work + exit_education > exit_any")
    if negative:
        raise IncidenceInputError("negative durations in the person-months")
    client = np.concatenate(clients) if clients else np.zeros(0, dtype="int32")
    dur = np.concatenate(durations) if durations else np.zeros(0, dtype="int16")
    del clients, durations
    return [_counts(dim, client, dur, np.concatenate(groups[i]) if groups[i] else
                    np.zeros(0, dtype="int8"), sums[i], D, education)
            for i, dim in enumerate(dims)]


def _counts(dim: GroupDimension, client: np.ndarray, dur: np.ndarray, g: np.ndarray,
            sums: np.ndarray, D: int, education: bool) -> pd.DataFrame:
    """One dimension's table from the kept person-months' codes and its sums."""
    H = len(dim.labels)
    m = (g >= 0) & (client >= 0)  # a missing client is no client
    key = (client[m].astype("int64") * H + g[m]) * D + dur[m]
    key = unique(key)  # distinct (client, group, duration), sorted
    cell = key % (H * D)
    n_clients = np.bincount(cell, minlength=H * D)
    cg = key // D  # (client, group), sorted: distinct pairs where it changes
    firsts = np.r_[True, cg[1:] != cg[:-1]] if len(cg) else np.zeros(0, dtype=bool)
    group_clients = np.bincount(cg[firsts] % H, minlength=H)
    del key, cg, cell
    nz = np.flatnonzero(sums[0] > 0)
    h, d = nz // D, nz % D
    labels = np.asarray(dim.labels, dtype=object)
    cells = pd.DataFrame({
        "g": labels[h], "d": d, "at_risk": sums[0][nz], "clients": n_clients[nz],
        "exits_work": sums[1][nz], "exits_education": sums[2][nz], "exits_any": sums[3][nz],
        "bad": 0, "group_clients": group_clients[h]})
    return _finish_counts(cells, "group", "drop", "missing", education)
