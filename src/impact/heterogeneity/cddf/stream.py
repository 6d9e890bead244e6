"""The data-driven check of the quality effect straight from the panel's Parquet file.

Notes
-----
``cddf.quality.cddf_quality`` holds the quality model's matrix of every sample
person-month (with the group codes and client of each row) and, per split, makes the
GATES columns of each Main cluster's rows. Everything it reports follows from sums that
add up over rows, so two passes over the file in batches (``quality_stream.quality_grams``
with its ``extra`` columns) give the same numbers with memory bounded by a batch:

1. **Aux columns and tallies.** The raw cluster blocks and cell x cluster pair sums of
   the outcomes, quality, controls, every dimension's group dummies ``x:dim=level``
   (first level left out, "(none)" for rows in no group) and their products with
   ``quality_a`` and ``quality_b``. Each split's proxy is the 2SLS on the blocks of its
   Aux clusters, demeaned apart (``cgram.demean_grams``). The proxy s(x) is a function of
   a row's group codes only, its *type* (the codes of every dimension as one number). So
   the pass also counts person-months per cluster x type, and keeps the distinct
   (client, cluster, type) triples in DuckDB (out of core): from these come the Main
   half's quantile cut points of S (the person-month quantiles, interpolated as
   ``numpy.quantile``), its mean, each quantile group's person-months and distinct
   clients, and CLAN, which are functions of the type and the cluster.
2. **GATES columns.** With each split's proxy and cut points known, a second pass adds the
   blocks of ``quality_a 1{G_k}``, ``quality_b 1{G_k}`` and ``1{G_k}`` for every split and
   outcome, against every column only (``quality_grams(only=)``: the other columns' blocks
   with each other are pass 1's, O(n k_G k) instead of O(n k^2)). A split's columns are
   made on its Main clusters' rows only (0 elsewhere), so in a cluster about half of
   them are 0 and their products are not made (``cgram.cluster_grams``). The BLP columns
   ``quality_a (S - mean S)`` are combinations of pass-1 columns, so their blocks are
   ``M'C_gM``, as in the in-memory path.

Memory: G x k x k blocks (k about 60 + 3 per group level + 11 per split and outcome with
four groups), P x k pair sums, one batch of rows, the counts per cluster x type and the
distinct triples; time linear in the person-months (two passes).
``tests/heterogeneity/test_cddf_stream.py`` compares every table and the per-split numbers
with ``cddf_quality`` on the same rows to 1e-8.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from impact.distinct import unique
from impact.estimate.cgram import ClusterGrams, demean_grams, fit_pm_multi_grams
from impact.estimate.params import EstimateParams
from impact.estimate.pmreg import fe_df
from impact.estimate.quality_stream import BATCH_ROWS, QualityGrams, _Codes, quality_grams
from impact.estimate.sums import Indicator
from impact.heterogeneity.cddf.quality import blp_gates
from impact.heterogeneity.cddf.split import (
    SplitCounts, main_halves, present, split_rows_counts, tally_counts,
)
from impact.heterogeneity.cddf.tables import (
    NONE_LEVEL, CDDFResult, empty_result, make_tables, split_inference,
)
from impact.heterogeneity.cddf.types import _proxy, _quantiles, _Types  # noqa: F401
from impact.heterogeneity.params import HeterogeneityParams
from impact.spill import insert_distinct, spilling

__all__ = ["cddf_quality_file"]


def _level_columns(types: _Types, codes: list[np.ndarray], qa: np.ndarray, qb: np.ndarray
                   ) -> dict[str, Indicator]:
    """Every dimension's dummies h = 1..H ("(none)" last) and their products with the
    quality measurements (the Aux model's columns beyond the headline's), by their
    structure (``sums.Indicator``: three groups a dimension)."""
    out: dict[str, Indicator] = {}
    for d, c in zip(types.dims, codes):
        labels = list(d.labels) + [NONE_LEVEL]
        for h in range(1, len(labels)):
            name = f"x:{d.name}={labels[h]}"
            out[name] = Indicator(c, h)
            out[f"qa*{name}"] = Indicator(c, h, qa)
            out[f"qb*{name}"] = Indicator(c, h, qb)
    return out


class _Tally:
    """Pass 1's ``extra``: the level columns, person-months per cluster x type and the
    distinct (client, cluster, type) triples (in DuckDB)."""

    cluster_col: str | None = None      # set by the pass

    def __init__(self, types: _Types, client_col: str, con,
                 carry: Mapping[str, str] | None = None) -> None:
        self.types, self.client_col, self.con = types, client_col, con
        self.clusters = _Codes()
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []   # (keys, counts) per batch
        con.execute("CREATE OR REPLACE TABLE trip (client VARCHAR, cl BIGINT, type BIGINT)")
        # columns carried for another user of the pass (``share``), not in the check's
        # models: name -> panel column (outcomes, x 100); a missing value is set to 0
        # and noted
        self.carry = dict(carry or {})
        self.carry_missing = False

    def __call__(self, s: pd.DataFrame) -> dict[str, np.ndarray | Indicator]:
        codes = self.types.codes(s)
        typ = self.types.number(codes)
        cl = self.clusters(s[self.cluster_col].astype(str))
        T = int(np.prod(self.types.size))
        if float(len(self.clusters)) * T >= 2.0 ** 62:
            raise ValueError("cddf: too many clusters x combinations of group levels")
        # the batch's own distinct keys (hashed, linear); added up once, in ``cells``
        inv, keys = pd.factorize(cl * T + typ)
        self.parts.append((np.asarray(keys, dtype="int64"),
                           np.bincount(inv, minlength=len(keys)).astype("float64")))
        insert_distinct(self.con, "trip",
                        {"client": pa.array(s[self.client_col]), "cl": cl, "type": typ})
        out = _level_columns(self.types, codes, s["quality_a"].to_numpy(dtype="float64"),
                             s["quality_b"].to_numpy(dtype="float64"))
        for name, col in self.carry.items():   # in pp, as ``model_columns``' outcomes
            v = 100.0 * pd.to_numeric(s[col]).to_numpy(dtype="float64")
            fin = np.isfinite(v)
            if not fin.all():
                self.carry_missing = True
                v = np.where(fin, v, 0.0)
            out[name] = v
        return out

    def group_clients(self, radix: int, size: int, H: int) -> np.ndarray:
        """Distinct clients (a missing id left out) per code 0..H of the dimension at
        ``radix`` (``size`` codes) of the type."""
        rows = self.con.execute(
            f"SELECT (type // {int(radix)}) % {int(size)} AS h, count(DISTINCT client) "
            "FROM trip WHERE client IS NOT NULL GROUP BY h").fetchall()
        out = np.zeros(H + 1, dtype="int64")
        for h, n in rows:
            out[int(h)] = int(n)
        return out

    def cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cluster code, type, person-months) of every cluster x type seen (in key
        order)."""
        T = int(np.prod(self.types.size))
        if not self.parts:
            return (np.zeros(0, dtype="int64"),) * 2 + (np.zeros(0),)
        keys, inv = np.unique(np.concatenate([k for k, _ in self.parts]), return_inverse=True)
        n = np.bincount(inv, weights=np.concatenate([c for _, c in self.parts]),
                        minlength=len(keys))
        return keys // T, keys % T, n

    def triples(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cluster code, type, client code) of every distinct triple."""
        got = self.con.execute(
            "SELECT cl, type, dense_rank() OVER (ORDER BY client) - 1 FROM "
            "(SELECT DISTINCT client, cl, type FROM trip)").fetchnumpy()
        cl, typ, c = (np.asarray(v, dtype="int64") for v in got.values())
        return cl, typ, c


class _Gates:
    """Pass 2's ``extra``: the level columns again and, for every split and outcome, the
    GATES columns of its proxy's quantile groups, on the rows of the split's Main
    clusters (``mains``, labels as text; a split's columns are used there only, so
    elsewhere they are 0 and their blocks are not made: ``cgram.cluster_grams``)."""

    cluster_col: str | None = None      # set by the pass

    def __init__(self, types: _Types, proxies: dict[tuple[int, str], tuple], K: int,
                 mains: Sequence[np.ndarray]) -> None:
        self.types, self.proxies, self.K = types, proxies, K
        self.mains = [np.asarray(m, dtype=object).astype(str) for m in mains]

    def __call__(self, s: pd.DataFrame) -> dict[str, Indicator]:
        codes = self.types.codes(s)
        qa = s["quality_a"].to_numpy(dtype="float64")
        qb = s["quality_b"].to_numpy(dtype="float64")
        out = _level_columns(self.types, codes, qa, qb)
        # (a missing label is one of its own, in no Main half, as the pass codes it)
        cl, labels = pd.factorize(s[self.cluster_col].astype(str), use_na_sentinel=False)
        labels = np.asarray(labels, dtype=object).astype(str)
        in_main = [np.isin(labels, m)[cl] for m in self.mains]
        for (sp, y), (tables, b0, cuts) in self.proxies.items():
            grp = np.searchsorted(cuts, _proxy(codes, tables, b0), side="left")
            grp[~in_main[sp]] = -1      # an Aux cluster's row: in none of the groups
            for g in range(self.K):
                out[_gname("qa", g, sp, y)] = Indicator(grp, g, qa)
                out[_gname("qb", g, sp, y)] = Indicator(grp, g, qb)
                if g > 0:
                    out[_gname("G", g, sp, y)] = Indicator(grp, g)
        return out


def _gname(kind: str, g: int, split: int, y: str) -> str:
    return f"{kind}#G{g + 1}|{split}|{y}"


def cddf_quality_file(path: str | Path, params: EstimateParams, het: HeterogeneityParams,
                      outcomes: Mapping[str, str] | None = None, *, min_cell: int = 10,
                      seed: int | None = None, alpha: float | None = None,
                      main_clusters: Sequence[Sequence] | None = None,
                      batch_rows: int = BATCH_ROWS,
                      share: Callable[[QualityGrams, "_Tally"], None] | None = None,
                      carry: Mapping[str, str] | None = None) -> CDDFResult:
    """``cddf_quality`` (the same tables, arguments alike) on the panel file ``path`` read
    in batches, twice (module notes).

    ``share``: called once after the first pass with its raw blocks and tallies (the
    group quality models take theirs from them, ``heterogeneity.stream.
    shared_group_sums``, instead of a pass of their own); ``carry`` (name -> panel
    column): more outcome columns kept in that pass for it, never in the check's models
    (``_Tally.carry``)."""
    path = Path(path)
    alpha = params.estimate.alpha if alpha is None else float(alpha)
    seed = params.seed if seed is None else int(seed)
    K = int(het.cddf_groups)
    schema = pq.ParquetFile(path).schema_arrow.names
    outcomes, dims = present(schema, het, outcomes, warn_missing=True)
    empty = empty_result(alpha, min_cell)
    n_splits = len(main_clusters) if main_clusters is not None else int(het.cddf_splits)
    if not outcomes or not dims or n_splits == 0:
        return empty
    types = _Types(dims)
    client_col = "client_id" if "client_id" in schema else "spell_id"
    reads = [client_col, *(d.column for d in dims)]
    ys = {f"y#{o}": col for o, col in outcomes.items()}
    with spilling("impact-cddf-") as con:
        carry = {n: c for n, c in (carry or {}).items() if c in schema}
        q1 = quality_grams(path, params, "all", outcomes=ys, batch_rows=batch_rows,
                           extra=lambda: _Tally(types, client_col, con, carry),
                           extra_reads=reads + list(carry.values()), raw=True)
        if q1 is None:
            return empty
        tally = q1.extra_state
        if share is not None:
            share(q1, tally)
        if carry:
            q1 = _without(q1, set(carry))
        cells_t = tally.cells()
        trip = tally.triples()
    cl_labels = np.asarray(tally.clusters.values, dtype=object)   # the tallies' codes
    cells, fe = q1.cells, list(q1.fe)
    cell_cl = (cells[q1.cluster].to_numpy() if q1.cluster in ("region", "municipality")
               else np.arange(len(cells)))

    def fe_dof(raw: ClusterGrams, keep: np.ndarray) -> int:
        used = unique(raw.pair_cell[keep[raw.pair_cluster]])
        return fe_df(cells.iloc[used].reset_index(drop=True), fe, cell_cl[used])

    # levels: every label, "(none)" only where a row is in no group (``dimension_levels``)
    n_type = cells_t[2]
    tcodes = types.decode(cells_t[1])
    levels = {d.name: list(d.labels) + ([NONE_LEVEL] if n_type[c == len(d.labels)].sum() > 0
                                        else []) for d, c in zip(dims, tcodes)}
    dnames = [f"x:{n}={lab}" for n, labs in levels.items() for lab in labs[1:]]
    qa_n, qb_n = [f"qa*{d}" for d in dnames], [f"qb*{d}" for d in dnames]
    nd, exog0 = len(dnames), list(q1.exog)
    labels = np.sort(np.asarray(q1.grams.labels, dtype=object))
    if main_clusters is None:
        mains = main_halves(labels, n_splits, seed)
    else:
        mains = [np.sort(np.asarray([str(c) for c in m], dtype=object))
                 for m in main_clusters]

    # ---- the proxies (Aux), their Main cut points and counts ---------------------------
    proxies, fitted = [], {}
    for s, main in enumerate(mains):
        in_main = np.isin(np.asarray(q1.grams.labels, dtype=object), main)
        if in_main.all() or not in_main.any():
            raise ValueError(f"cddf: split {s} leaves a half without clusters")
        grams = demean_grams(q1.grams.subset(~in_main), cells, fe)
        df_aux = fe_dof(q1.grams, ~in_main)
        main_t = np.isin(cl_labels, main)
        for y in ys:
            fit = fit_pm_multi_grams(grams, q1.names, y, ["quality_a", *qa_n], exog0 + dnames,
                                     ["quality_b", *qb_n], df_aux)
            b = np.nan_to_num(fit.coef)
            proxies += _proxy_rows(s, y[2:], levels, fit.coef, b)
            tables, j = [], 1
            for n, labs in levels.items():
                tables.append(np.concatenate([[0.0], b[j:j + len(labs) - 1], [0.0]]))
                j += len(labs) - 1
            on = main_t[cells_t[0]]
            S = _proxy([c[on] for c in tcodes], tables, b[0])
            cuts = _quantiles(S, n_type[on], K)
            Sbar = float(n_type[on] @ S / n_type[on].sum())
            fitted[(s, y)] = (tables, float(b[0]), cuts, Sbar, b)
        del grams

    # ---- pass 2: the GATES columns; BLP and GATES on Main --------------------------------
    gates = {_gname(kind, g, sp, y) for sp in range(len(mains)) for y in ys
             for kind in ("qa", "qb", "G") for g in range(K)}
    q2 = quality_grams(path, params, "all", outcomes=ys, batch_rows=batch_rows,
                       extra=lambda: _Gates(types, {k: v[:3] for k, v in fitted.items()}, K,
                                            mains),
                       extra_reads=reads, raw=True, only=gates.__contains__)
    _blocks_from(q2, q1)
    del q1
    col = {n: i for i, n in enumerate(q2.names)}
    first = list(ys) + ["quality_a", "quality_b", *exog0] + dnames
    k0 = len(first)
    spec = (["qa*S", "qb*S"] + [f"qa#G{g}" for g in range(1, K + 1)]
            + [f"qb#G{g}" for g in range(1, K + 1)] + [f"G{g}" for g in range(2, K + 1)])
    names_m = first + spec
    exog = exog0 + dnames
    trip_t = types.decode(trip[1])
    per_split = []
    for s, main in enumerate(mains):
        in_main = np.isin(np.asarray(q2.grams.labels, dtype=object), main)
        raw_m = q2.grams.subset(in_main)
        df_main = fe_dof(q2.grams, in_main)
        G_main = int(in_main.sum())
        for y in ys:
            tables, b0, cuts, Sbar, b = fitted[(s, y)]
            M = np.zeros((len(q2.names), len(names_m)))
            M[[col[n] for n in first], np.arange(k0)] = 1.0
            for c, (qn, inter) in enumerate((("quality_a", qa_n), ("quality_b", qb_n))):
                M[col[qn], k0 + c] = b0 - Sbar
                M[[col[v] for v in inter], k0 + c] = b[1:1 + nd]
            gates_cols = ([_gname("qa", g, s, y) for g in range(K)]
                          + [_gname("qb", g, s, y) for g in range(K)]
                          + [_gname("G", g, s, y) for g in range(1, K)])
            M[[col[n] for n in gates_cols], k0 + 2 + np.arange(len(gates_cols))] = 1.0
            used = np.flatnonzero(M.any(axis=1))
            Mu = M[used]
            C = np.einsum("ki,gkl,lj->gij", Mu, raw_m.C[:, used][:, :, used], Mu,
                          optimize=True)
            grams = demean_grams(ClusterGrams(C, raw_m.labels, None, raw_m.n_obs, None,
                                              raw_m.pair_cell, raw_m.pair_cluster,
                                              raw_m.pair_sums[:, used] @ Mu,
                                              raw_m.pair_count), cells, fe)
            blp, gates = blp_gates(grams, names_m, y, exog, K, df_main)
            counts = _split_counts(np.isin(cl_labels, main), cells_t, tcodes, trip, trip_t,
                                   tables, b0, cuts, levels, K)
            per_split += split_rows_counts(s, y[2:], blp, gates, counts, levels, K,
                                           G_main - 1)
    per = pd.DataFrame(per_split)
    for k, v in split_inference(per["estimate"], per["std_error"], per["df"], alpha).items():
        per[k] = v
    return make_tables(per, pd.DataFrame(proxies), tuple(mains), alpha, min_cell, K)


def _without(q: QualityGrams, drop: set[str]) -> QualityGrams:
    """``q`` without the columns ``drop`` (of its ``extra``)."""
    keep = [j for j, n in enumerate(q.names) if n not in drop]
    return replace(q, grams=q.grams.columns(keep), names=[q.names[j] for j in keep],
                   extra=[n for n in q.extra if n not in drop])


def _blocks_from(q2, q1) -> None:
    """Pass 2 made only its GATES columns' blocks: the others' are pass 1's (the same rows,
    clusters and pairs, as both read the file alike), put in place."""
    a, b = q2.grams, q1.grams
    if not (a.n_obs == b.n_obs and np.array_equal(a.labels, b.labels)
            and np.array_equal(a.pair_cell, b.pair_cell)
            and np.array_equal(a.pair_cluster, b.pair_cluster)):
        raise RuntimeError("cddf: the second pass over the panel read other rows")
    at = [q2.names.index(n) for n in q1.names]
    a.C[np.ix_(np.arange(len(a.labels)), at, at)] = b.C
    if np.isnan(a.C).any():
        raise RuntimeError("cddf: a block of the second pass was not made")


def _proxy_rows(s: int, outcome: str, levels: dict[str, list[str]], coef: np.ndarray,
                b: np.ndarray) -> list[dict]:
    """The proxy's coefficients of one split and outcome (``CDDFResult.proxies``)."""
    ok = np.isfinite(coef)
    rows = [{"split": s, "outcome": outcome, "dimension": "(intercept)", "group": "",
             "coef": float(b[0]), "status": "estimated" if ok[0] else "not estimable"}]
    j = 1
    for n, labs in levels.items():
        rows.append({"split": s, "outcome": outcome, "dimension": n, "group": labs[0],
                     "coef": 0.0, "status": "reference"})
        for lab in labs[1:]:
            rows.append({"split": s, "outcome": outcome, "dimension": n, "group": lab,
                         "coef": float(b[j]),
                         "status": "estimated" if ok[j] else "not estimable"})
            j += 1
    return rows


def _split_counts(main_cl: np.ndarray, cells_t, tcodes, trip, trip_t, tables, b0: float,
                  cuts: np.ndarray, levels: dict[str, list[str]], K: int) -> SplitCounts:
    """Person-months and distinct clients per quantile group and CLAN of one split's Main
    half, from the counts per cluster x type and the distinct (client, cluster, type)."""
    on = main_cl[cells_t[0]]
    codes = [c[on] for c in tcodes]
    grp = np.searchsorted(cuts, _proxy(codes, tables, b0), side="left")
    ton = main_cl[trip[0]]
    t_codes = [c[ton] for c in trip_t]
    tgrp = np.searchsorted(cuts, _proxy(t_codes, tables, b0), side="left")
    return tally_counts(cells_t[0][on], codes, cells_t[2][on], grp, trip[2][ton], t_codes,
                        tgrp, levels, K)
