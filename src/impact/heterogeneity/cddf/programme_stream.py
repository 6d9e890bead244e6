"""The data-driven check of the programme effect straight from the panel's Parquet file.

Notes
-----
``cddf.programme.cddf_programme`` holds [Y, X] of every person-month. What it reports
follows from sums, so two passes over the file in batches give the same numbers with
memory bounded by a batch and the sums:

1. **The untreated-outcome model.** The raw cluster blocks of [Y, X] on the untreated
   rows with their municipality-month sums (``quality_stream.GramSums``), and per cell
   (municipality, month, treated) its person-months and sums of Y and X: the
   ``programme.CellModel`` of the in-memory path, which per half of a split gives b and
   the imputed Y(0) - x'b of every adopted cell. Which labour-market columns are controls
   (complete and varying) and the shock bins are read by DuckDB first.
2. **Effects, summed by type.** tau_i = 100 y_i - x_i'b - fitted(cell) of every adopted
   row for every split and outcome (the row's half decides b and the fit). The proxy's
   regressors and S are functions of the row's group codes (its *type*, ``stream``), and
   the OLS fits of the proxy, BLP and GATES need only, per cluster x type, the
   person-months and the sums of tau (the cluster blocks of [Z, tau],
   ``cgram.fit_pm_multi_grams``). A row enters a fit only where its tau is finite, so the
   sums are kept per cluster x type x *mask* (which splits and outcomes imputed the row),
   and the distinct (client, cluster, type, mask) in DuckDB give every client count.

The fits from the sums: ``cddf.programme_sums``.
``tests/heterogeneity/test_cddf_programme_stream.py`` compares every table and per-split
number with ``cddf_programme`` to 1e-8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from impact import io
from impact.distinct import local_codes
from impact.estimate.cgram import ClusterGrams
from impact.estimate.frames import lm_candidates, lm_usable, month_index
from impact.estimate.params import EstimateParams
from impact.estimate.quality_stream import BATCH_ROWS, GramSums, _Codes, _first_rows
from impact.heterogeneity.cddf.programme import CellModel
from impact.heterogeneity.cddf.programme_sums import tables_from_sums
from impact.heterogeneity.cddf.split import main_halves, present
from impact.heterogeneity.cddf.types import _Types
from impact.heterogeneity.cddf.tables import NONE_LEVEL, CDDFResult, empty_result
from impact.heterogeneity.params import HeterogeneityParams
from impact.spill import insert_distinct, literal, spilling

__all__ = ["cddf_programme_file"]

_T = 1 << 20  # months are keyed as t + _T (any month of a century fits)


def _scan(path: Path, params: EstimateParams, schema: list[str]
          ) -> tuple[list[str], np.ndarray]:
    """By DuckDB, on the whole file: the labour-market controls (``frames.lm_controls``:
    complete and not constant) and the 3-month shock bins present."""
    import duckdb

    con = duckdb.connect()
    try:
        src = f"read_parquet({literal(path)})"
        lm = []
        for c in lm_candidates(schema, params.estimate.lm_controls):
            q = f'TRY_CAST("{c}" AS DOUBLE)'
            n, good, lo, hi = con.execute(
                f"SELECT count(*), count(*) FILTER (WHERE isfinite({q})), min({q}), "
                f"max({q}) FROM {src}").fetchone()
            if lm_usable(n > 0 and good == n and hi is not None and hi > lo, c):
                lm.append(c)
        bins = np.zeros(0)
        if "shock_event_time" in schema:
            q = 'TRY_CAST("shock_event_time" AS DOUBLE)'
            got = con.execute(f"SELECT DISTINCT floor({q} / 3) FROM {src} "
                              f"WHERE isfinite({q})").fetchall()
            bins = np.sort(np.asarray([r[0] for r in got], dtype="float64"))
    finally:
        con.close()
    return lm, bins


class _Rows:
    """One batch's model columns: Y (x 100), X = [every level's dummy (h >= 1, "(none)"
    last), controls], treated and untreated, group codes and type."""

    def __init__(self, df: pd.DataFrame, types: _Types, outcomes: list[str], lm: list[str],
                 bins: np.ndarray, anticipation: int) -> None:
        self.t = df["t"].to_numpy(dtype="int64")
        g = month_index(df["adoption_month"])
        rel = self.t - g
        self.treated = np.isfinite(g) & (rel >= 0)
        self.untreated = ~np.isfinite(g) | (rel < -anticipation)
        self.codes = types.codes(df)
        self.type = types.number(self.codes)
        # column-major: every use takes whole columns (the cells' sums, the Gram sums'
        # columns); a row-major ``column_stack`` and its strided column gathers took about
        # 80 of the check's 219 seconds at national size (cProfile, serial)
        n = len(df)
        k = sum(len(d.labels) for d in types.dims) + len(lm) + len(bins)
        X = np.empty((n, k), order="F")
        j = 0
        for d, c in zip(types.dims, self.codes):
            for h in range(1, len(d.labels) + 1):
                np.equal(c, h, out=X[:, j])
                j += 1
        for c in lm:
            X[:, j] = np.nan_to_num(pd.to_numeric(df[c], errors="coerce")
                                    .to_numpy(dtype="float64"))
            j += 1
        if len(bins):
            e = pd.to_numeric(df["shock_event_time"], errors="coerce").to_numpy(dtype="float64")
            b = np.where(np.isfinite(e), np.floor(np.nan_to_num(e) / 3), np.nan)
            for v in bins:
                np.equal(b, v, out=X[:, j])
                j += 1
        self.X = X
        self.Y = np.empty((n, len(outcomes)), order="F")
        for o, c in enumerate(outcomes):
            self.Y[:, o] = 100.0 * pd.to_numeric(df[c]).to_numpy(dtype="float64")


class _CellSums:
    """Pass 1's per cell (municipality, month, treated) person-months and sums of Y, X,
    with the cell's keys and cluster."""

    def __init__(self) -> None:
        self.codes, self.munis, self.regions = _Codes(), _Codes(), _Codes()
        self.cnt = np.zeros(0)
        self.SY = self.SX = None
        self.info: list[tuple] = []
        self.size = 0

    def key(self, muni: np.ndarray, t: np.ndarray, treated: np.ndarray) -> np.ndarray:
        return (muni * (4 * _T) + (t + _T)) * 2 + treated

    def add(self, r: _Rows, df: pd.DataFrame, cl_pos: np.ndarray) -> None:
        m = r.treated | r.untreated
        muni = self.munis(df["municipality"].astype(str)[m])
        reg = self.regions(df["region"].astype(str)[m])
        t, tr = r.t[m], r.treated[m].astype("int64")
        code = self.codes(self.key(muni, t, tr))
        C = len(self.codes)
        first = _first_rows(code, len(self.info))  # the first row of each new cell
        clm = cl_pos[m]
        self.info += zip(muni[first].tolist(), reg[first].tolist(), t[first].tolist(),
                         tr[first].astype(bool).tolist(), clm[first].tolist())
        k, O = r.X.shape[1], r.Y.shape[1]
        if self.SY is None:
            self.SY, self.SX = np.zeros((0, O)), np.zeros((0, k))
        if C > len(self.cnt):  # room to spare: new cells appear in most batches
            cap = max(C, 2 * len(self.cnt))
            self.cnt = np.concatenate([self.cnt, np.zeros(cap - len(self.cnt))])
            self.SY = np.vstack([self.SY, np.zeros((cap - len(self.SY), O))])
            self.SX = np.vstack([self.SX, np.zeros((cap - len(self.SX), k))])
        self.size = C
        u, inv = local_codes(code)
        self.cnt[u] += np.bincount(inv)
        # the rows' columns as views when every row is kept (most batches), else once
        # gathered by index: a boolean gather per column was most of this method's time
        rows = slice(None) if m.all() else np.flatnonzero(m)
        for o in range(O):
            self.SY[u, o] += np.bincount(inv, weights=r.Y[rows, o])
        for j in range(k):
            self.SX[u, j] += np.bincount(inv, weights=r.X[rows, j])

    def lookup(self, muni_labels: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The adopted cell of each row (its municipality label and month)."""
        muni = self.munis.lookup(muni_labels)
        return self.codes.lookup(self.key(muni, t, np.ones_like(t)))


class _TauSums:
    """Pass 2's sums per cluster x type x mask: person-months and the sums of tau of every
    split and outcome (0 where not imputed), kept sorted by key."""

    def __init__(self, G: int, T: int, n_fits: int) -> None:
        if float(G) * T * 2.0 ** n_fits >= 2.0 ** 62:
            raise ValueError("cddf (programme): too many clusters x group levels x fits")
        self.T, self.M = T, 1 << n_fits
        self.keys = np.zeros(0, dtype="int64")
        self.n = np.zeros(0)
        self.s1 = np.zeros((0, n_fits))

    def add(self, cl: np.ndarray, typ: np.ndarray, mask: np.ndarray, tau: np.ndarray) -> None:
        key = (cl * self.T + typ) * self.M + mask
        keys, inv = np.unique(np.concatenate([self.keys, key]), return_inverse=True)
        m = len(self.keys)
        t0 = np.nan_to_num(tau)
        old, new = inv[:m], inv[m:]
        n = np.zeros(len(keys))
        n[old] = self.n
        n += np.bincount(new, minlength=len(keys))
        s1 = np.zeros((len(keys), tau.shape[1]))
        s1[old] = self.s1                        # the kept keys are distinct
        for j in range(tau.shape[1]):
            s1[:, j] += np.bincount(new, weights=t0[:, j], minlength=len(keys))
        self.keys, self.n, self.s1 = keys, n, s1

    def parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cluster, type, mask) of every key."""
        rest, mask = np.divmod(self.keys, self.M)
        cl, typ = np.divmod(rest, self.T)
        return cl, typ, mask


def cddf_programme_file(path: str | Path, params: EstimateParams, het: HeterogeneityParams,
                        outcomes: Mapping[str, str] | None = None, *, min_cell: int = 10,
                        seed: int | None = None, alpha: float | None = None,
                        main_clusters: Sequence[Sequence] | None = None,
                        batch_rows: int = BATCH_ROWS) -> CDDFResult:
    """``cddf_programme`` (the same tables, arguments alike) on the panel file ``path``
    read in batches, twice (module notes)."""
    path = Path(path)
    alpha = params.estimate.alpha if alpha is None else float(alpha)
    seed = params.seed if seed is None else int(seed)
    K = int(het.cddf_groups)
    empty = empty_result(alpha, min_cell)
    schema = pq.ParquetFile(path).schema_arrow.names
    outcomes, dims = present(schema, het, outcomes, warn_missing=False)
    n_splits = len(main_clusters) if main_clusters is not None else int(het.cddf_splits)
    if not outcomes or not dims or n_splits == 0 or "adoption_month" not in schema:
        return empty
    cname = "region" if params.estimate.cluster == "region" else "municipality"
    lm, bins = _scan(path, params, schema)
    O = len(outcomes)
    types = _Types(dims)
    reads = list(dict.fromkeys(["t", "adoption_month", "municipality", "region", cname,
                                "client_id", *outcomes.values(), *lm,
                                *(["shock_event_time"] if len(bins) else []),
                                *(d.column for d in dims)]))
    antic = params.adoption.anticipation_months
    clusters = _Codes()  # every row's cluster label as text (the in-memory factorize's)

    def rows(df: pd.DataFrame) -> tuple[_Rows, np.ndarray]:
        r = _Rows(df, types, list(outcomes.values()), lm, bins, antic)
        return r, clusters(df[cname].astype(str))

    # ---- pass 1: the untreated-outcome model's sums ------------------------------------
    gs, cs = GramSums(), _CellSums()
    none_seen = np.zeros(len(dims), bool)
    any_tr = any_un = False
    for df in io.iter_batches(path, reads, batch_rows):
        r, cl_pos = rows(df)
        none_seen |= [bool((c == len(d.labels)).any()) for d, c in zip(dims, r.codes)]
        any_tr, any_un = any_tr or bool(r.treated.any()), any_un or bool(r.untreated.any())
        u = r.untreated
        if u.any():
            ui = np.flatnonzero(u)  # gathered by index (one boolean scan, not one a column)
            cols = {f"y{o}": r.Y[ui, o] for o in range(O)}
            cols.update({f"x{j}": r.X[ui, j] for j in range(r.X.shape[1])})
            gs.add(cols, {}, df[cname].astype(str)[u],
                   df["municipality"].astype(str)[u].reset_index(drop=True),
                   df["region"].astype(str)[u].reset_index(drop=True), r.t[u])
        cs.add(r, df, cl_pos)
    if not any_tr or not any_un:
        return empty
    # clusters numbered as the sorted labels (in memory: ``pd.factorize(sort=True)``)
    seen = np.asarray(clusters.values, dtype=object)
    labels = np.sort(seen)
    G, sorted_of = len(labels), pd.Index(labels).get_indexer(seen)
    levels = {d.name: list(d.labels) + ([NONE_LEVEL] if none_seen[i] else [])
              for i, d in enumerate(dims)}
    # the X columns kept: each dimension's levels h >= 1 ("(none)" only when seen), controls
    pos, j = [], 0
    for i, d in enumerate(dims):
        pos += [j + h - 1 for h in range(1, len(levels[d.name]))]
        j += len(d.labels)
    xsel = pos + list(range(j, cs.SX.shape[1]))
    raw = gs.raw([gs.col[("num", f"y{o}")] for o in range(O)]
                 + [gs.col[("num", f"x{c}")] for c in xsel])
    at = sorted_of[clusters.lookup(np.asarray(raw.labels, dtype=object))]
    C = np.zeros((G,) + raw.C.shape[1:])
    C[at] = raw.C
    U = ClusterGrams(C, labels, None, raw.n_obs, None, raw.pair_cell, at[raw.pair_cluster],
                     raw.pair_sums, raw.pair_count)
    info = pd.DataFrame(cs.info, columns=["municipality", "region", "t", "treated", "cl"])
    cf = pd.DataFrame({"municipality": info["municipality"].to_numpy(dtype="int64"),
                       "regmonth": info["region"].to_numpy(dtype="int64") * (4 * _T)
                       + info["t"].to_numpy(dtype="int64") + _T,
                       "t": info["t"].to_numpy(dtype="int64")})
    C2 = cs.size
    model = CellModel(U, gs.cell_table(), cs.cnt[:C2], cs.SY[:C2], cs.SX[:C2, xsel], cf,
                      info["treated"].to_numpy(dtype=bool),
                      sorted_of[info["cl"].to_numpy(dtype="int64")])
    if main_clusters is None:
        mains = main_halves(labels, n_splits, seed)
    else:
        mains = [np.sort(np.asarray([str(c) for c in m], dtype=object)) for m in main_clusters]
    in_main = [np.isin(labels, m) for m in mains]
    halves = [(model.fits(~m), model.fits(m)) for m in in_main]     # (b, fitted) aux, main

    # ---- pass 2: tau of the adopted rows, summed per cluster x type x mask --------------
    S = len(mains)
    tau_sums = _TauSums(G, int(np.prod(types.size)), S * O)
    with spilling("impact-cddfp-") as con:
        con.execute("CREATE TABLE trip (client VARCHAR, cl BIGINT, type BIGINT, "
                    "mask BIGINT)")
        for df in io.iter_batches(path, reads, batch_rows):
            # only the adopted rows are used: taken before their columns are made (the
            # pass's rows cost about as much as pass 1's, most of them never used)
            t = df["t"].to_numpy(dtype="int64")
            g = month_index(df["adoption_month"])
            tr = np.flatnonzero(np.isfinite(g) & (t - g >= 0))
            if not len(tr):
                continue
            if len(tr) < len(df):
                df = df.take(tr).reset_index(drop=True)
            r, cl_pos = rows(df)
            tr = np.flatnonzero(r.treated)   # every row now (the same test as above)
            # row-major, as the products below were made before (the same bits)
            X = np.ascontiguousarray(r.X[np.ix_(tr, xsel)])
            Y, cl = np.ascontiguousarray(r.Y[tr]), sorted_of[cl_pos[tr]]
            cell = cs.lookup(df["municipality"].astype(str).iloc[tr], r.t[tr])
            tau = np.empty((len(tr), S * O))
            for s in range(S):
                main = in_main[s][cl]
                for half, (b, fitted) in enumerate(halves[s]):
                    m = main if half else ~main
                    tau[m, s * O:(s + 1) * O] = (Y[m] - X[m] @ b) - fitted[cell[m]]
            mask = (np.isfinite(tau) * (1 << np.arange(S * O))).sum(axis=1)
            typ = r.type[tr]
            tau_sums.add(cl, typ, mask, tau)
            insert_distinct(con, "trip", {"client": pa.array(df["client_id"]).take(tr),
                                          "cl": cl, "type": typ, "mask": mask})
        got = con.execute(
            "SELECT cl, type, mask, dense_rank() OVER (ORDER BY client) - 1 FROM "
            "(SELECT DISTINCT client, cl, type, mask FROM trip)").fetchnumpy()
    t_cl, t_type, t_mask, t_client = (np.asarray(v, dtype="int64") for v in got.values())
    k_cl, k_type, k_mask = tau_sums.parts()
    return tables_from_sums(tau_sums, (k_cl, k_type, k_mask), (t_cl, t_type, t_mask, t_client),
                   types, levels, in_main, mains, list(outcomes), K, alpha, min_cell)
