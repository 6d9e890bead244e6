"""The programme's group cells straight from the panel's Parquet file.

Notes
-----
``adoption.adoption_by_group`` needs, per dimension, the adopting-unit x month x group
cells (``frames.unit_cells``: person-months and exits summed, composition and
labour-market columns averaged) and the distinct clients per group among the adopted
person-months. Both add up over rows, so one pass over the file in batches gives every
dimension's: each batch's rows are made by ``frames.unit_rows`` (the in-memory code) and
summed per cell (a sum and a count of the non-missing values for each averaged column,
so a mean skips missing values as pandas' does); the partial cells of the batches are
added up whenever they grow past a bound, and the adopted clients are counted per
dimension and group on integer keys (``distinct``). The cells are then the in-memory
ones, in the same order. Memory: one batch, the cells (units x months x groups) and the
distinct (client, group) keys; time linear in the person-months.
``tests/heterogeneity/test_adoption_stream.py`` compares the group effects with the
in-memory path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from impact import io
from impact.distinct import ClientCodes, DistinctCounter
from impact.estimate.adoption import with_adoption_month
from impact.estimate.frames import COMPOSITION, adoption_months, unit_rows
from impact.estimate.groups import group_index
from impact.estimate.params import EstimateParams
from impact.estimate.quality_stream import BATCH_ROWS, _Codes, _first_rows
from impact.heterogeneity.adoption import group_cells
from impact.heterogeneity.params import GroupDimension

__all__ = ["group_cells_file"]

#: the person-month columns ``frames.unit_rows`` reads (besides counts and lm_*_muni)
_READS = ("municipality", "region", "t", "age", "sex", "education_level", "household",
          "duration", "left_truncated", "prior_benefit_months", "client_id")
_KEYS = ("unit", "municipality", "region", "t", "group")
_REDUCE_ROWS = 500_000  # per dimension: about 45 columns of 8 bytes a row


class _Cells:
    """One dimension's partial cells: key columns, sums, and sums and counts of the
    averaged columns, added up whenever they pass ``_REDUCE_ROWS`` rows and twice the rows
    the last sum left."""

    def __init__(self, sums: list[str], means: list[str]) -> None:
        self.sums, self.means = sums, means
        self.parts: list[dict[str, np.ndarray]] = []  # the columns of each part
        self.rows = self.reduced = 0

    def columns(self) -> list[str]:
        """The summed columns of the cells: each summed column, and a sum and a count of
        the non-missing values of each averaged one."""
        return [*self.sums, *(f"{c}#{x}" for c in self.means for x in ("sum", "n"))]

    def row_values(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The rows' values of :meth:`columns` from their summed and averaged columns."""
        out = {c: values[c] for c in self.sums}
        for c in self.means:
            v = values[c]
            ok = np.isfinite(v)
            out[f"{c}#sum"], out[f"{c}#n"] = np.where(ok, v, 0.0), ok.astype("float64")
        return out

    def add(self, keys: dict[str, np.ndarray], values: dict[str, np.ndarray],
            keep: np.ndarray | None = None) -> None:
        """Add rows: their key columns and their values of :meth:`columns` (float64).
        ``keep`` (a mask): only these rows count. The others are summed into one bin of
        their own that is left out, which spares a copy of every column of the rows kept
        (nationally 8.6 of the pass's 84 profiled seconds): the same cells in the same
        order, each summed over the same rows in the same order."""
        n = len(next(iter(keys.values())))
        if n == 0 or (keep is not None and not keep.any()):
            return
        # the keys packed into one integer (offsets and radices of this batch's rows)
        cols = [np.asarray(c, dtype="int64") for c in keys.values()]
        low = [int(c.min()) for c in cols]
        radix = [int(c.max()) - lo + 1 for c, lo in zip(cols, low)]
        packed = np.zeros(n, dtype="int64")
        for c, lo, r in zip(cols, low, radix):
            packed = packed * r + (c - lo)
        if keep is not None:
            packed[~keep] = -1  # packed keys are >= 0: the bin of the rows left out
        # numbered as they come by hashing (np.unique's sort took 34 of the pass's 75
        # profiled seconds at national size): the same sums, as each key is once in a
        # part and the parts are added up in their order
        inv, uniq = pd.factorize(packed)
        size = len(uniq)
        if keep is not None and not keep.all():
            out = int(inv[np.argmin(keep)])  # the left-out bin, made last: the others'
            inv = np.where(inv > out, inv - 1, inv)  # order stays
            inv[~keep] = size - 1
            uniq = np.delete(uniq, out)
        part = {}
        rest = uniq.copy()
        for name, lo, r in reversed(list(zip(keys, low, radix))):
            part[name] = rest % r + lo
            rest //= r
        part = {k: part[k] for k in keys}
        for c in self.columns():
            part[c] = np.bincount(inv, weights=values[c], minlength=size)[:len(uniq)]
        self.parts.append(part)  # a frame only when the parts are added up (reduce)
        self.rows += len(uniq)
        # added up when the parts pass the bound and twice what the last sum left: the
        # work stays linear even when the cells themselves outgrow the bound
        if self.rows > max(_REDUCE_ROWS, 2 * self.reduced):
            self.reduce()

    def reduce(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame(columns=list(_KEYS))
        both = pd.DataFrame({c: np.concatenate([p[c] for p in self.parts])
                             for c in self.parts[0]})
        out = both.groupby(list(_KEYS), sort=False).sum().reset_index()
        self.parts = [{c: out[c].to_numpy() for c in out.columns}]
        self.rows = self.reduced = len(out)
        return out


def group_cells_file(path: str | Path, adoption: pd.DataFrame | None, params: EstimateParams,
                     dims: Sequence[GroupDimension], outcomes: dict[str, str],
                     batch_rows: int = BATCH_ROWS
                     ) -> dict[str, tuple[pd.DataFrame, np.ndarray]] | None:
    """Per dimension (name) whose column the file has: its group cells
    (``adoption.group_cells`` of ``adoption_cells(..., by={"group": codes})``) and the
    distinct clients per group among the adopted person-months (module notes). None when
    no unit adopts."""
    muni_t, team_t = adoption_months(adoption, params.adoption.programme)
    if not muni_t and not team_t:
        return None
    path = Path(path)
    schema = pq.ParquetFile(path).schema_arrow.names
    dims = [d for d in dims if d.column in schema]
    counts = tuple(outcomes.values())
    lm = [c for c in schema if c.startswith("lm_") and c.endswith("_muni")]
    reads = list(dict.fromkeys([*_READS, *counts, *lm, *(d.column for d in dims)]
                               + (["team_key"] if team_t else [])))
    sums = ["person_months", *(c.replace("exit_", "exits_", 1) for c in counts)]
    cells = [_Cells(sums, list(COMPOSITION) + lm) for _ in dims]
    codes = {k: _Codes() for k in ("unit", "municipality", "region")}
    g_unit: list[float] = []          # adoption month index per unit code (NaN: never)
    # distinct adopted clients per dimension and group, on integer keys (``distinct``)
    offset = np.cumsum([0] + [len(d.labels) for d in dims])
    client_codes, distinct = ClientCodes(), DistinctCounter(int(offset[-1]))
    for df in io.iter_batches(path, reads, batch_rows):
        rows = unit_rows(df, set(team_t), counts)
        frame = rows.frame
        keys = {k: codes[k](rows.labels[k])[frame[k].to_numpy()]
                for k in ("unit", "municipality", "region")}
        for lab in codes["unit"].values[len(g_unit):]:
            g = team_t.get(lab[5:]) if lab.startswith("team:") else muni_t.get(lab)
            g_unit.append(np.nan if g is None else float(g))
        t = frame["t"].to_numpy(dtype="int64")
        g_row = np.asarray(g_unit)[keys["unit"]]
        adopted = np.isfinite(g_row) & (t >= g_row)
        client = client_codes(pa.array(df["client_id"]))
        if not dims:
            continue
        # rows alike in every key and in every dimension's group are summed once; each
        # dimension then adds up these sums (about half as many as the rows nationally:
        # the six dimensions cross into thousands of groups), not the rows (the pass
        # alone 67.6 -> 59.7 CPU s nationally)
        grps = [d.codes(df[d.column]) for d in dims]
        key_cols = [keys["unit"], keys["municipality"], keys["region"], t]
        combo, m = group_index(key_cols + [g + 1 for g in grps], sort=False)
        first = _first_rows(combo, 0)
        rows_v = cells[0].row_values({c: frame[c].to_numpy(dtype="float64") for c in
                                      dict.fromkeys(cells[0].sums + cells[0].means)})
        pre = {c: np.bincount(combo, weights=v, minlength=m) for c, v in rows_v.items()}
        del rows_v
        at = dict(zip(("unit", "municipality", "region", "t"), (k[first] for k in key_cols)))
        for i, d in enumerate(dims):
            grp = grps[i][first]
            cells[i].add({**at, "group": grp}, pre, keep=grp >= 0)
            sel = adopted & (grps[i] >= 0)
            distinct.add(grps[i][sel] + offset[i], client[sel])
    n_adopted = distinct.counts()
    out = {}
    labels = {k: np.asarray(c.values, dtype=object) for k, c in codes.items()}
    for i, d in enumerate(dims):
        n_clients = n_adopted[offset[i]:offset[i + 1]]
        frame = _finish(cells[i], labels)
        if len(frame) == 0:
            continue
        out[d.name] = (group_cells(with_adoption_month(frame, muni_t, team_t)), n_clients)
    return out


def _finish(acc: _Cells, labels: dict[str, np.ndarray]) -> pd.DataFrame:
    """The summed cells as ``frames.unit_cells`` gives them: labels, means, order."""
    agg = acc.reduce()
    if len(agg) == 0:
        return agg
    out = pd.DataFrame({k: labels[k][agg[k].to_numpy()] for k in ("unit", "municipality",
                                                                  "region")})
    out["t"] = agg["t"].to_numpy(dtype="int64")
    out["group"] = agg["group"].to_numpy(dtype="int64")
    for c in acc.sums:
        out[c] = agg[c].to_numpy()
    for c in acc.means:
        n = agg[f"{c}#n"].to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            out[c] = np.where(n > 0, agg[f"{c}#sum"].to_numpy() / n, np.nan)
    return out.sort_values(list(_KEYS), kind="stable").reset_index(drop=True)
