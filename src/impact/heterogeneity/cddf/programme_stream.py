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
from impact.estimate.cgram import ClusterGrams, fit_pm_multi_grams
from impact.estimate.frames import lm_candidates, lm_usable, month_index, warn
from impact.estimate.params import EstimateParams
from impact.estimate.pmreg import _independent
from impact.estimate.quality_stream import BATCH_ROWS, GramSums, _Codes
from impact.heterogeneity.cddf.programme import CellModel
from impact.heterogeneity.cddf.split import (
    main_halves, present, split_rows_counts, tally_counts,
)
from impact.heterogeneity.cddf.stream import _quantiles, _Types
from impact.heterogeneity.cddf.tables import (
    NONE_LEVEL, CDDFResult, empty_result, make_tables, split_inference,
)
from impact.heterogeneity.params import HeterogeneityParams
from impact.spill import spilling

__all__ = ["cddf_programme_file"]

_T = 1 << 20  # months are keyed as t + _T (any month of a century fits)


def _scan(path: Path, params: EstimateParams, schema: list[str], cname: str
          ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """By DuckDB, on the whole file: the labour-market controls (``frames.lm_controls``:
    complete and not constant), the 3-month shock bins present, and the cluster labels
    (sorted, as text)."""
    import duckdb

    con = duckdb.connect()
    try:
        src = "read_parquet('" + str(path).replace("'", "''") + "')"
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
        got = con.execute(f'SELECT DISTINCT CAST("{cname}" AS VARCHAR) FROM {src}').fetchall()
    finally:
        con.close()
    return lm, bins, np.sort(np.asarray([r[0] for r in got], dtype=object))


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
        cols = [(c == h).astype("float64") for d, c in zip(types.dims, self.codes)
                for h in range(1, len(d.labels) + 1)]
        cols += [np.nan_to_num(pd.to_numeric(df[c], errors="coerce").to_numpy(dtype="float64"))
                 for c in lm]
        if len(bins):
            e = pd.to_numeric(df["shock_event_time"], errors="coerce").to_numpy(dtype="float64")
            b = np.where(np.isfinite(e), np.floor(np.nan_to_num(e) / 3), np.nan)
            cols += [(b == v).astype("float64") for v in bins]
        self.X = np.column_stack(cols) if cols else np.zeros((len(df), 0))
        self.Y = np.column_stack([100.0 * pd.to_numeric(df[c]).to_numpy(dtype="float64")
                                  for c in outcomes])


class _CellSums:
    """Pass 1's per cell (municipality, month, treated) person-months and sums of Y, X,
    with the cell's keys and cluster."""

    def __init__(self) -> None:
        self.codes, self.munis, self.regions = _Codes(), _Codes(), _Codes()
        self.cnt = np.zeros(0)
        self.SY = self.SX = None
        self.info: list[tuple] = []

    def key(self, muni: np.ndarray, t: np.ndarray, treated: np.ndarray) -> np.ndarray:
        return (muni * (4 * _T) + (t + _T)) * 2 + treated

    def add(self, r: _Rows, df: pd.DataFrame, cl_pos: np.ndarray) -> None:
        m = r.treated | r.untreated
        muni = self.munis(df["municipality"].astype(str).to_numpy()[m])
        reg = self.regions(df["region"].astype(str).to_numpy()[m])
        t, tr = r.t[m], r.treated[m].astype("int64")
        code = self.codes(self.key(muni, t, tr))
        C = len(self.codes)
        new = np.unique(code, return_index=True)
        for c, i in zip(*new):
            if c >= len(self.info):
                self.info.append((muni[i], reg[i], t[i], bool(tr[i]), cl_pos[m][i]))
        grow = C - len(self.cnt)
        k, O = r.X.shape[1], r.Y.shape[1]
        if self.SY is None:
            self.SY, self.SX = np.zeros((0, O)), np.zeros((0, k))
        if grow:
            self.cnt = np.concatenate([self.cnt, np.zeros(grow)])
            self.SY = np.vstack([self.SY, np.zeros((grow, O))])
            self.SX = np.vstack([self.SX, np.zeros((grow, k))])
        self.cnt += np.bincount(code, minlength=C)
        for o in range(O):
            self.SY[:, o] += np.bincount(code, weights=r.Y[m, o], minlength=C)
        for j in range(k):
            self.SX[:, j] += np.bincount(code, weights=r.X[m, j], minlength=C)

    def lookup(self, muni_labels: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The adopted cell of each row (its municipality label and month)."""
        muni = self.munis.index.get_indexer(pd.Index(muni_labels))
        return self.codes.index.get_indexer(pd.Index(self.key(muni, t, np.ones_like(t))))


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


def _blocks(cl: np.ndarray, Z: np.ndarray, n: np.ndarray, s1: np.ndarray) -> ClusterGrams:
    """The cluster blocks of [Z, tau] from sums per key: Z constant within a key, with its
    person-months n and the sum of tau (clusters numbered as they appear). The OLS fit
    reads no tau'tau entry: it is left NaN, so that nothing can use it unseen."""
    g, labels = pd.factorize(cl)
    G, p = len(labels), Z.shape[1]
    C = np.empty((G, p + 1, p + 1))
    for i in range(p):
        for j in range(i, p):
            C[:, i, j] = C[:, j, i] = np.bincount(g, weights=n * Z[:, i] * Z[:, j],
                                                  minlength=G)
        C[:, i, p] = C[:, p, i] = np.bincount(g, weights=Z[:, i] * s1, minlength=G)
    C[:, p, p] = np.nan
    return ClusterGrams(C, np.asarray(labels), None, int(round(n.sum())))


def _ols(cl, Z, n, s1):
    """``programme._ols_crv1`` from sums (``_blocks``)."""
    names = [f"z{j}" for j in range(Z.shape[1])]
    return fit_pm_multi_grams(_blocks(cl, Z, n, s1), names + ["y"], "y", names, [], None,
                              0)


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
    lm, bins, labels = _scan(path, params, schema, cname)
    G, O = len(labels), len(outcomes)
    types = _Types(dims)
    reads = list(dict.fromkeys(["t", "adoption_month", "municipality", "region", cname,
                                "client_id", *outcomes.values(), *lm,
                                *(["shock_event_time"] if len(bins) else []),
                                *(d.column for d in dims)]))
    label_index = pd.Index(labels)
    antic = params.adoption.anticipation_months

    def rows(df: pd.DataFrame) -> tuple[_Rows, np.ndarray]:
        r = _Rows(df, types, list(outcomes.values()), lm, bins, antic)
        return r, label_index.get_indexer(df[cname].astype(str).to_numpy())

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
            cols = {f"y{o}": r.Y[u, o] for o in range(O)}
            cols.update({f"x{j}": r.X[u, j] for j in range(r.X.shape[1])})
            gs.add(cols, {}, df[cname].astype(str).to_numpy()[u],
                   df["municipality"].astype(str)[u].reset_index(drop=True),
                   df["region"].astype(str)[u].reset_index(drop=True), r.t[u])
        cs.add(r, df, cl_pos)
    if not any_tr or not any_un:
        return empty
    levels = {d.name: list(d.labels) + ([NONE_LEVEL] if none_seen[i] else [])
              for i, d in enumerate(dims)}
    # the X columns kept: each dimension's levels h >= 1 ("(none)" only when seen), controls
    pos, j = [], 0
    for i, d in enumerate(dims):
        pos += [j + h - 1 for h in range(1, len(levels[d.name]))]
        j += len(d.labels)
    kx = len(pos)
    xsel = pos + list(range(j, cs.SX.shape[1]))
    raw = gs.raw([gs.col[("num", f"y{o}")] for o in range(O)]
                 + [gs.col[("num", f"x{c}")] for c in xsel])
    at = label_index.get_indexer(pd.Index(raw.labels))
    C = np.zeros((G,) + raw.C.shape[1:])
    C[at] = raw.C
    U = ClusterGrams(C, labels, None, raw.n_obs, None, raw.pair_cell, at[raw.pair_cluster],
                     raw.pair_sums, raw.pair_count)
    info = pd.DataFrame(cs.info, columns=["municipality", "region", "t", "treated", "cl"])
    cf = pd.DataFrame({"municipality": info["municipality"].to_numpy(dtype="int64"),
                       "regmonth": info["region"].to_numpy(dtype="int64") * (4 * _T)
                       + info["t"].to_numpy(dtype="int64") + _T,
                       "t": info["t"].to_numpy(dtype="int64")})
    model = CellModel(U, gs.cell_table(), cs.cnt, cs.SY, cs.SX[:, xsel], cf,
                      info["treated"].to_numpy(dtype=bool), info["cl"].to_numpy(dtype="int64"))
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
            r, cl_pos = rows(df)
            tr = np.flatnonzero(r.treated)
            if not len(tr):
                continue
            X, Y, cl = r.X[tr][:, xsel], r.Y[tr], cl_pos[tr]
            cell = cs.lookup(df["municipality"].astype(str).to_numpy()[tr], r.t[tr])
            tau = np.empty((len(tr), S * O))
            for s in range(S):
                main = in_main[s][cl]
                for half, (b, fitted) in enumerate(halves[s]):
                    m = main if half else ~main
                    tau[m, s * O:(s + 1) * O] = (Y[m] - X[m] @ b) - fitted[cell[m]]
            mask = (np.isfinite(tau) * (1 << np.arange(S * O))).sum(axis=1)
            typ = r.type[tr]
            tau_sums.add(cl, typ, mask, tau)
            trip = pd.DataFrame({"client": df["client_id"].astype(str).to_numpy()[tr],
                                 "cl": cl, "type": typ, "mask": mask}).drop_duplicates()
            batch = pa.Table.from_pandas(trip, preserve_index=False)  # noqa: F841
            con.execute("INSERT INTO trip SELECT * FROM batch")
        got = con.execute(
            "SELECT cl, type, mask, dense_rank() OVER (ORDER BY client) - 1 FROM "
            "(SELECT DISTINCT client, cl, type, mask FROM trip)").fetchnumpy()
    t_cl, t_type, t_mask, t_client = (np.asarray(v, dtype="int64") for v in got.values())
    k_cl, k_type, k_mask = tau_sums.parts()
    return _tables(tau_sums, (k_cl, k_type, k_mask), (t_cl, t_type, t_mask, t_client),
                   types, levels, kx, in_main, mains, list(outcomes), K, alpha, min_cell)


def _dummies(codes: list[np.ndarray], dims, levels: dict[str, list[str]]) -> np.ndarray:
    """The proxy's characteristics (each dimension's levels h >= 1) of each type."""
    cols = [(c == h).astype("float64") for d, c in zip(dims, codes)
            for h in range(1, len(levels[d.name]))]
    return np.column_stack(cols) if cols else np.zeros((len(codes[0]), 0))


def _tables(ts: _TauSums, keys, trip, types: _Types, levels, kx: int, in_main, mains,
            outcomes: list[str], K: int, alpha: float, min_cell: int) -> CDDFResult:
    """Steps 3 of the module notes (``cddf_programme``'s loop) from the sums."""
    k_cl, k_type, k_mask = keys
    t_cl, t_type, t_mask, t_client = trip
    O = len(outcomes)
    k_codes, t_codes = types.decode(k_type), types.decode(t_type)
    D = _dummies(k_codes, types.dims, levels)
    Za = np.column_stack([np.ones(len(D)), D])
    per, proxies = [], []
    for s, main in enumerate(in_main):
        any_s = ((k_mask >> (s * O)) & ((1 << O) - 1)) != 0
        k_main = main[k_cl]
        if not (any_s & ~k_main).any() or not (any_s & k_main).any():
            warn(f"cddf (programme): split {s} has a half without adopted person-months")
            continue
        G_main = len(np.unique(k_cl[any_s & k_main]))
        for o, oname in enumerate(outcomes):
            f = s * O + o
            bit = ((k_mask >> f) & 1).astype(bool)
            t_bit = ((t_mask >> f) & 1).astype(bool)
            fa, fm = bit & ~k_main, bit & k_main
            b = np.zeros(Za.shape[1])
            if fa.any():
                ZtZ = (Za[fa] * ts.n[fa, None]).T @ Za[fa]
                kp = np.sort(np.asarray(_independent(ZtZ, list(range(Za.shape[1]))), dtype=int))
                if kp.size:  # a level absent from Aux keeps 0: predicted as the reference
                    b[kp] = np.linalg.solve(ZtZ[np.ix_(kp, kp)], Za[fa][:, kp].T @ ts.s1[fa, f])
            proxies.append({"split": s, "outcome": oname, "dimension": "(intercept)",
                            "group": "", "coef": float(b[0]), "status": "estimated"})
            j = 1
            for name, labs in levels.items():
                for lab in labs[1:]:
                    proxies.append({"split": s, "outcome": oname, "dimension": name,
                                    "group": lab, "coef": float(b[j]), "status": "estimated"})
                    j += 1
            n, s1 = ts.n[fm], ts.s1[fm, f]
            tm = t_bit & main[t_cl]
            # S of each type once, for the sums and the triples alike
            u_type, inv = np.unique(np.concatenate([k_type[fm], t_type[tm]]),
                                    return_inverse=True)
            S_u = b[0] + _dummies(types.decode(u_type), types.dims, levels) @ b[1:]
            Sv, t_S = S_u[inv[:int(fm.sum())]], S_u[inv[int(fm.sum()):]]
            Sbar = float(n @ Sv / n.sum())
            cuts = _quantiles(Sv, n, K)
            grp = np.searchsorted(cuts, Sv, side="left")
            blp = _ols(k_cl[fm], np.column_stack([np.ones(len(Sv)), Sv - Sbar]), n, s1)
            gates = _ols(k_cl[fm], np.column_stack([(grp == q).astype("float64")
                                                    for q in range(K)]), n, s1)
            tcodes = [c[tm] for c in t_codes]
            counts = tally_counts(k_cl[fm], [c[fm] for c in k_codes], n, grp, t_client[tm],
                                  tcodes, np.searchsorted(cuts, t_S, side="left"), levels, K)
            per += split_rows_counts(s, oname, blp, gates, counts, levels, K, G_main - 1)
    if not per:
        return empty_result(alpha, min_cell)
    per = pd.DataFrame(per)
    for k, v in split_inference(per["estimate"], per["std_error"], per["df"], alpha).items():
        per[k] = v
    return make_tables(per, pd.DataFrame(proxies), tuple(mains), alpha, min_cell, K)
