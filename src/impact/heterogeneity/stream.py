"""The quality effect per client group straight from the panel's Parquet file.

Notes
-----
``quality.quality_by_group`` fits, per dimension, the headline 2SLS with group
interactions on a matrix of every sample person-month (``quality.quality_base``), whose
rows and demeaned columns it holds. Everything it reports is a function of the cluster
blocks of the demeaned matrix's Gram matrix and their cell x cluster pair sums
(``cgram``; ``wcr.wcr_draws(grams=)``), which add up over rows. So one pass over the file
(``estimate.quality_stream.quality_grams``, the headline's own pass) keeps the blocks of
the headline's columns and of every dimension's interaction columns at once: for
dimension i with groups h = 0..H (H: the person-months in none of its groups)
``qa#i#h = quality_a 1[h]``, ``qb#i#h = quality_b 1[h]`` and ``D#i#h = 1[h]`` for h > 0.
Each dimension's model is then the sub-blocks of the headline's columns and its own, with
the in-memory path's names. Per group the pass also adds up person-months and events,
and counts distinct clients on integer keys (``distinct``).

Memory: G x k x k blocks for k of about 60 + 16 per dimension, one batch of rows, and
the distinct (client, group) keys; time linear in the person-months.
``tests/heterogeneity/test_stream.py`` compares every dimension's estimates, scores, pooled
effect, counts and bootstrap draws with ``quality_by_group`` to 1e-8.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from impact.distinct import ClientCodes, DistinctCounter
from impact.estimate.cgram import ClusterGrams
from impact.estimate.frames import EstimationWarning
from impact.estimate.params import EstimateParams
from impact.estimate.quality_stream import BATCH_ROWS, quality_grams
from impact.heterogeneity.params import GroupDimension
from impact.heterogeneity.quality import GroupEstimates, group_fits
from impact.heterogeneity.wcr import CellFE

__all__ = ["quality_groups_file", "cluster_labels_file"]


class _Groups:
    """Made once per pass (``quality_grams(extra=)``): each batch's interaction columns,
    with the person-months and events per dimension and group and the distinct clients
    per dimension and group (``distinct``)."""

    def __init__(self, dims: Sequence[GroupDimension], outcomes: Mapping[str, str]) -> None:
        self.dims, self.outcomes = list(dims), dict(outcomes)
        self.npm = [np.zeros(len(d.labels) + 1) for d in self.dims]
        self.nev = {o: [np.zeros(len(d.labels) + 1) for d in self.dims] for o in outcomes}
        # every dimension's groups (and its slot for none) one after the other
        self.offset = np.cumsum([0] + [len(d.labels) + 1 for d in self.dims])
        self.client_codes = ClientCodes()
        self.distinct = DistinctCounter(int(self.offset[-1]))

    def __call__(self, s: pd.DataFrame) -> dict[str, np.ndarray]:
        qa = s["quality_a"].to_numpy(dtype="float64")
        qb = s["quality_b"].to_numpy(dtype="float64")
        out: dict[str, np.ndarray] = {}
        grps = []
        for i, d in enumerate(self.dims):
            H = len(d.labels)
            codes = d.codes(s[d.column])
            codes[codes < 0] = H  # in no group: a group of its own, not reported
            self.npm[i] += np.bincount(codes, minlength=H + 1)
            for o, c in self.outcomes.items():
                ev = pd.to_numeric(s[c]).to_numpy(dtype="float64")
                self.nev[o][i] += np.bincount(codes, weights=ev, minlength=H + 1)
            for h in range(H + 1):
                ind = (codes == h).astype("float64")
                out[f"qa#{i}#{h}"] = qa * ind
                out[f"qb#{i}#{h}"] = qb * ind
                if h > 0:
                    out[f"D#{i}#{h}"] = ind
            grps.append(codes + self.offset[i])
        if grps:
            client = self.client_codes(pa.array(s["client_id"]))
            self.distinct.add(np.concatenate(grps), np.tile(client, len(grps)))
        return out

    def clients(self) -> list[np.ndarray]:
        n = self.distinct.counts()
        return [n[self.offset[i]:self.offset[i + 1]] for i in range(len(self.dims))]


def _sub(grams: ClusterGrams, sel: list[int]) -> ClusterGrams:
    return ClusterGrams(grams.C[:, sel][:, :, sel], grams.labels, None, grams.n_obs, None,
                        grams.pair_cell, grams.pair_cluster, grams.pair_sums[:, sel],
                        grams.pair_count)


def quality_groups_file(path: str | Path, params: EstimateParams,
                        dims: Sequence[GroupDimension], outcomes: Mapping[str, str],
                        wcr: tuple[np.ndarray, np.ndarray, bool] | None = None,
                        batch_rows: int = BATCH_ROWS) -> list[GroupEstimates]:
    """``quality.quality_by_group`` of every dimension in ``dims`` (in order) on the panel
    file ``path`` read in batches (module notes); the same list of
    :class:`GroupEstimates` (one per dimension and outcome)."""
    path = Path(path)
    schema = pq.ParquetFile(path).schema_arrow.names
    present = []
    for d in dims:
        if d.column in schema:
            present.append(d)
        else:
            warnings.warn(f"heterogeneity: person_months has no column {d.column!r} "
                          f"(dimension {d.name}); not estimated", EstimationWarning,
                          stacklevel=2)
    if not present:
        return []
    ys = {f"y#{o}": col for o, col in outcomes.items()}
    q = quality_grams(path, params, "all", outcomes=ys, batch_rows=batch_rows,
                      extra=lambda: _Groups(present, outcomes),
                      extra_reads=["client_id", *(d.column for d in present)])
    if q is None:
        return []
    ncl_all = q.extra_state.clients()
    st = q.extra_state
    col = {n: j for j, n in enumerate(q.names)}
    base = [j for j, n in enumerate(q.names) if n not in set(q.extra)]
    base_names = [q.names[j] for j in base]
    base_exog = list(q.exog)
    fe = CellFE(q.cells, np.empty(0, dtype="int64"), tuple(q.fe))
    out = []
    for i, dim in enumerate(present):
        H = len(dim.labels)
        Hx = H + 1 if st.npm[i][H] > 0 else H
        new, sel = [], list(base)
        for h in range(Hx):
            for name in (f"qa#{h}", f"qb#{h}") + ((f"D#{h}",) if h > 0 else ()):
                kind = name.split("#")[0]
                sel.append(col[f"{kind}#{i}#{h}"])
                new.append(name)
        out += group_fits(dim, outcomes, _sub(q.grams, sel), base_names + new, base_exog,
                          Hx, q.df_fe, wcr, fe, st.npm[i][:H].astype("int64"), ncl_all[i][:H],
                          {o: st.nev[o][i][:H] for o in outcomes})
    return out


def cluster_labels_file(path: str | Path, params: EstimateParams) -> np.ndarray:
    """``run._cluster_labels`` of the panel file: every cluster label the quality models
    can use (sorted), caseworkers when the file holds one municipality (or region)."""
    import duckdb

    col = "region" if params.estimate.cluster == "region" else "municipality"
    con = duckdb.connect()
    try:
        rows = con.execute(f"SELECT DISTINCT CAST({col} AS VARCHAR) FROM read_parquet(?)",
                           [str(path)]).fetchall()
        labels = [r[0] for r in rows]
        if len(labels) < 2:
            rows = con.execute("SELECT DISTINCT CAST(caseworker_key AS VARCHAR) FROM "
                               "read_parquet(?) WHERE caseworker_key IS NOT NULL",
                               [str(path)]).fetchall()
            labels = [r[0] for r in rows]
    finally:
        con.close()
    return np.sort(np.asarray(labels, dtype=object))
