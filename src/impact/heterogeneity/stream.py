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
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from impact.distinct import ClientCodes, DistinctCounter
from impact.estimate.cgram import ClusterGrams, demean_grams
from impact.estimate.frames import EstimationWarning
from impact.estimate.params import EstimateParams
from impact.estimate.quality_stream import BATCH_ROWS, QualityGrams, quality_grams
from impact.estimate.sums import Indicator
from impact.heterogeneity.cddf.tables import NONE_LEVEL
from impact.heterogeneity.params import GroupDimension
from impact.heterogeneity.quality import GroupEstimates, group_fits
from impact.heterogeneity.wcr import CellFE

__all__ = ["GroupSums", "quality_groups_file", "shared_group_sums", "cluster_labels_file"]


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

    def __call__(self, s: pd.DataFrame) -> dict[str, Indicator]:
        qa = s["quality_a"].to_numpy(dtype="float64")
        qb = s["quality_b"].to_numpy(dtype="float64")
        out: dict[str, Indicator] = {}   # by their structure: three groups a dimension
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
                out[f"qa#{i}#{h}"] = Indicator(codes, h, qa)
                out[f"qb#{i}#{h}"] = Indicator(codes, h, qb)
                if h > 0:
                    out[f"D#{i}#{h}"] = Indicator(codes, h)
            grps.append(codes + self.offset[i])
        if grps:
            client = self.client_codes(pa.array(s["client_id"]))
            self.distinct.add(np.concatenate(grps), np.tile(client, len(grps)))
        return out

    def clients(self) -> list[np.ndarray]:
        n = self.distinct.counts()
        return [n[self.offset[i]:self.offset[i + 1]] for i in range(len(self.dims))]


@dataclass(frozen=True)
class GroupSums:
    """What the group quality models need from a pass over the panel: the demeaned
    blocks of the headline's and every dimension's interaction columns (``q``: names
    ``qa#i#h``, ``qb#i#h``, ``D#i#h`` as ``_Groups`` makes them), and per dimension and
    group the person-months ``npm``, events per outcome ``nev`` and distinct clients
    ``ncl`` (h = 0..H, H the person-months in none of its groups)."""

    q: QualityGrams
    npm: list[np.ndarray]
    nev: dict[str, list[np.ndarray]]
    ncl: list[np.ndarray]
    dims: tuple[str, ...] = ()


def present_dims(schema, dims: Sequence[GroupDimension], warn: bool = True
                 ) -> list[GroupDimension]:
    """The dimensions whose column the panel has (a warning for each other one)."""
    out = []
    for d in dims:
        if d.column in schema:
            out.append(d)
        elif warn:
            warnings.warn(f"heterogeneity: person_months has no column {d.column!r} "
                          f"(dimension {d.name}); not estimated", EstimationWarning,
                          stacklevel=3)
    return out


def quality_groups_file(path: str | Path, params: EstimateParams,
                        dims: Sequence[GroupDimension], outcomes: Mapping[str, str],
                        wcr: tuple[np.ndarray, np.ndarray, bool] | None = None,
                        batch_rows: int = BATCH_ROWS,
                        sums: GroupSums | None = None) -> list[GroupEstimates]:
    """``quality.quality_by_group`` of every dimension in ``dims`` (in order) on the panel
    file ``path`` read in batches (module notes); the same list of
    :class:`GroupEstimates` (one per dimension and outcome). ``sums``: the pass's sums
    made already (``shared_group_sums``: the data-driven check's first pass carries
    them), so the file is not read again."""
    path = Path(path)
    present = present_dims(pq.ParquetFile(path).schema_arrow.names, dims)
    if not present:
        return []
    if sums is not None and (sums.dims != tuple(d.name for d in present)
                             or set(sums.nev) != set(outcomes)):
        sums = None   # made for other dimensions or outcomes: not these models' sums
    if sums is None:
        ys = {f"y#{o}": col for o, col in outcomes.items()}
        q = quality_grams(path, params, "all", outcomes=ys, batch_rows=batch_rows,
                          extra=lambda: _Groups(present, outcomes),
                          extra_reads=["client_id", *(d.column for d in present)])
        if q is None:
            return []
        st = q.extra_state
        sums = GroupSums(q, st.npm, st.nev, st.clients(), tuple(d.name for d in present))
    q = sums.q
    col = {n: j for j, n in enumerate(q.names)}
    base = [j for j, n in enumerate(q.names) if n not in set(q.extra)]
    base_names = [q.names[j] for j in base]
    base_exog = list(q.exog)
    fe = CellFE(q.cells, np.empty(0, dtype="int64"), tuple(q.fe))
    out = []
    for i, dim in enumerate(present):
        H = len(dim.labels)
        Hx = H + 1 if sums.npm[i][H] > 0 else H
        new, sel = [], list(base)
        for h in range(Hx):
            for name in (f"qa#{h}", f"qb#{h}") + ((f"D#{h}",) if h > 0 else ()):
                kind = name.split("#")[0]
                sel.append(col[f"{kind}#{i}#{h}"])
                new.append(name)
        out += group_fits(dim, outcomes, q.grams.columns(sel), base_names + new, base_exog,
                          Hx, q.df_fe, wcr, fe, sums.npm[i][:H].astype("int64"),
                          sums.ncl[i][:H], {o: sums.nev[o][i][:H] for o in outcomes})
    return out


def shared_group_sums(q1: QualityGrams, tally, outcomes: Mapping[str, str],
                      column_of: Mapping[str, str]) -> GroupSums:
    """:class:`GroupSums` from the raw blocks ``q1`` and the tallies ``tally`` of the
    data-driven check's first pass (``cddf.stream._Tally``), which holds every column the
    group models need in another basis: ``x:<dim>=<label>`` (the group dummies, h = 1..H
    with "(none)" last), ``qa*x:...``, ``qb*x:...``. So ``D#i#h`` is ``x:...`` of the same
    group, ``qa#i#h`` is ``qa*x:...`` for h > 0 and ``quality_a`` minus their sum for
    h = 0 (the same for ``qb``): each block is ``M'C_gM`` and the pair sums ``S M`` for a
    0/±1 matrix M, then demeaned as the pass does. Person-months per group come from the
    tally's cluster x type cells, distinct clients from its table of them
    (``_Tally.group_clients``); ``column_of`` maps each outcome's column to its name among
    ``q1.names``. The events are blocks too: y 1[h] summed over the clusters (y in pp, 0
    or 100: sums of integers, exact, and so is their division by 100)."""
    types = tally.types
    dims = types.dims
    names = list(q1.names)
    at = {n: j for j, n in enumerate(names)}
    ys = [f"y#{o}" for o in outcomes]
    rest = [n for n in names if n not in set(q1.extra) and not n.startswith("y#")]
    extra = []
    for i, d in enumerate(dims):
        for h in range(len(d.labels) + 1):
            extra += [f"qa#{i}#{h}", f"qb#{i}#{h}"] + ([f"D#{i}#{h}"] if h > 0 else [])
    out_names = ys + rest + extra
    M = np.zeros((len(names), len(out_names)))
    for j, y in enumerate(ys):
        M[at[column_of[outcomes[y[2:]]]], j] = 1.0
    for j, n in enumerate(rest, start=len(ys)):
        M[at[n], j] = 1.0
    j = len(ys) + len(rest)
    for i, d in enumerate(dims):
        labels = list(d.labels) + [NONE_LEVEL]
        x = [at[f"x:{d.name}={lab}"] for lab in labels[1:]]
        for h in range(len(labels)):
            for q, kind in (("quality_a", "qa"), ("quality_b", "qb")):
                if h == 0:
                    M[at[q], j] = 1.0
                    M[[at[f"{kind}*x:{d.name}={lab}"] for lab in labels[1:]], j] = -1.0
                else:
                    M[at[f"{kind}*x:{d.name}={labels[h]}"], j] = 1.0
                j += 1
            if h > 0:
                M[x[h - 1], j] = 1.0
                j += 1
    raw = q1.grams
    C = np.einsum("ki,gkl,lj->gij", M, raw.C, M, optimize=True)
    grams = demean_grams(ClusterGrams(C, raw.labels, None, raw.n_obs, None, raw.pair_cell,
                                      raw.pair_cluster, raw.pair_sums @ M, raw.pair_count),
                         q1.cells, q1.fe)
    exog = [n for n in q1.exog if n in set(rest)]
    q = QualityGrams(grams, out_names, exog, q1.cells, q1.cluster, list(q1.fe), q1.df_fe,
                     extra)
    # per dimension and group: person-months from the type cells, events from the blocks
    gram = raw.C.sum(axis=0)
    total = raw.pair_sums.sum(axis=0)
    npm, ncl = [], []
    nev: dict[str, list[np.ndarray]] = {o: [] for o in outcomes}
    _, type_of, n_type = tally.cells()
    codes = types.decode(type_of)
    for i, d in enumerate(dims):
        H = len(d.labels)
        npm.append(np.bincount(codes[i], weights=n_type, minlength=H + 1))
        labels = list(d.labels) + [NONE_LEVEL]
        for o in outcomes:   # the outcome columns are in pp (x 100): integers / 100
            y = at[column_of[outcomes[o]]]
            ev = np.array([0.0] + [gram[y, at[f"x:{d.name}={lab}"]] for lab in labels[1:]])
            ev[0] = total[y] - ev[1:].sum()
            nev[o].append(ev / 100.0)
        ncl.append(tally.group_clients(int(types.radix[i]), int(types.size[i]), H))
    return GroupSums(q, npm, nev, ncl, tuple(d.name for d in dims))


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
