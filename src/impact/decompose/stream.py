"""The decomposition straight from the panel's Parquet file, one batch of rows at a time.

Notes
-----
``core.decompose`` builds the decomposition model's design for every person-month in
memory: at national scale (64 million person-months, about 70 columns) that is tens of
gigabytes. Everything it reports is a function of sums that add up over rows:

- the model (``model.fit_model_sums``): the raw cluster blocks of the fitted rows' Gram
  matrix and their column sums per municipality-month cell x cluster pair
  (``quality_stream.GramSums``); the fixed effects, the influence rows and the exact
  leave-one-cluster-out refits all follow from them;
- each period's terms (``core.factor_sums``): per municipality, the sums of every
  regressor, the person-months per region-month, exits and measured quality.

So one pass reads the file in batches (only the columns the model reads), builds each
batch's regressors with ``design.build_design`` (the in-memory path's function) and adds
them to those sums. Memory is one batch plus G x k x k blocks and cell sums, whatever the
panel's size; time is linear in the person-months. Distinct clients per municipality
and period are counted by DuckDB on the file (out of core).

Decisions the in-memory path takes on the whole panel are taken after the pass, with the
same outcome: a labour-market column is a control only when complete and not constant
over every person-month (judged batch by batch); each categorical's labels are sorted
and its most frequent level on the fitted rows is left out (a dummy's count is its
diagonal Gram entry); without two measured person-months the pass is repeated on every
row (no quality effect), and with one cluster with caseworker clusters. A fit that ends
with one cluster has no jackknife, and its bootstrap needs the per-row residuals: such
an extract (one municipality and one caseworker) is read whole and decomposed in memory.

``tests/decompose/test_stream.py`` checks the table, the coefficients, influence rows and
jackknife against ``core.decompose`` on the same data to 1e-8, with batches that cut
cells and clusters.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from impact.decompose.core import (
    Decomposition, decompose, decompose_reads, decomposition_table, factor_sums,
    period_means, period_pairs, periods_of,
)
from impact.decompose.design import INT_CODED, Design, build_design
from impact.decompose.model import ModelFit, fit_model_sums
from impact.decompose.params import DecomposeParams
from impact.estimate.frames import lm_candidates, lm_usable, warn
from impact.estimate.params import EstimateParams
from impact.estimate.quality_stream import BATCH_ROWS, GramSums, _Codes

__all__ = ["decompose_file"]


class _Period:
    """One period's sums per municipality (in order of first appearance), growing as
    municipalities, levels and (municipality, region, month) keys appear."""

    def __init__(self) -> None:
        self.n = np.zeros(0)
        self.exits = np.zeros(0)
        self.qsum = np.zeros(0)
        self.qn = np.zeros(0)
        self.num: dict[str, np.ndarray] = {}
        self.lev: dict[str, np.ndarray] = {}     # variable -> (units, levels) counts
        self.keys = np.zeros(0)                  # person-months per key

    def add(self, U: int, unit, exits, q, num, cats, levels, key, K: int) -> None:
        grow = lambda a, m: np.concatenate([a, np.zeros(m - len(a))])  # noqa: E731
        self.n, self.exits = grow(self.n, U), grow(self.exits, U)
        self.qsum, self.qn = grow(self.qsum, U), grow(self.qn, U)
        self.n += np.bincount(unit, minlength=U)
        self.exits += np.bincount(unit, weights=exits, minlength=U)
        qok = np.isfinite(q)
        self.qsum += np.bincount(unit[qok], weights=q[qok], minlength=U)
        self.qn += np.bincount(unit[qok], minlength=U)
        for c, v in num.items():
            # a missing value makes its municipality's sum missing, as in the in-memory sums
            self.num[c] = grow(self.num.get(c, np.zeros(0)), U) + np.bincount(
                unit, weights=v, minlength=U)
        for var, codes in cats.items():
            L = levels[var]
            old = self.lev.get(var, np.zeros((0, 0)))
            new = np.zeros((U, L))
            new[:old.shape[0], :old.shape[1]] = old
            new += np.bincount(unit * L + codes, minlength=U * L).reshape(U, L)
            self.lev[var] = new
        self.keys = grow(self.keys, K) + np.bincount(key, minlength=K)


class _Pass:
    """The sums of one pass over the batches (module notes)."""

    def __init__(self, params: EstimateParams, estimator: str, lm: list[str], cluster_col: str,
                 periods: dict, measured_only: bool) -> None:
        self.params, self.estimator, self.lm = params, estimator, lm
        self.cluster_col, self.measured_only = cluster_col, measured_only
        self.gs = GramSums()
        self.levels: dict[str, _Codes] = {}
        self.factor_of: dict[str, str] = {}
        self.numeric: list[str] = []
        self.units, self.regions, self.keys = _Codes(), _Codes(), _Codes()
        self.key_info: list[tuple[int, int, int]] = []   # (unit, region code, t) per key
        self.lm_ok = {c: True for c in lm}
        self.lm_lo = {c: np.inf for c in lm}
        self.lm_hi = {c: -np.inf for c in lm}
        self.t_min, self.t_max = np.inf, -np.inf
        self.periods = {label: (p, _Period()) for label, p in periods.items()}

    def take(self, b: pd.DataFrame) -> None:
        d = build_design(b, self.params, lm=self.lm)
        if not self.factor_of:
            self.factor_of, self.numeric = d.factor_of, list(d.numeric)
        cats = {var: self.levels.setdefault(var, _Codes())(
            pd.Index(labels))[codes] for var, (codes, labels) in d.cats.items()}
        num = dict(d.numeric)
        for c in self.lm:  # judged on every person-month; a gap set to 0 (dropped later)
            v = num[c]
            fin = np.isfinite(v)
            self.lm_ok[c] &= bool(fin.all())
            if fin.any():
                self.lm_lo[c] = min(self.lm_lo[c], float(v[fin].min()))
                self.lm_hi[c] = max(self.lm_hi[c], float(v[fin].max()))
            num[c] = np.where(fin, v, 0.0)
        t = b["t"].to_numpy(dtype="int64")
        if len(t):
            self.t_min, self.t_max = min(self.t_min, int(t.min())), max(self.t_max, int(t.max()))
        sample = np.ones(len(b), bool)
        for c, v in d.numeric.items():
            if c not in self.lm:
                sample &= np.isfinite(v)
        lead = {"y": 100.0 * pd.to_numeric(b["exit_work"]).to_numpy(dtype="float64")}
        if self.measured_only:
            need = (["quality_a", "quality_b"] if self.estimator == "iv"
                    else ["quality_score"])
            for c in need:
                sample &= np.isfinite(pd.to_numeric(b[c], errors="coerce")
                                      .to_numpy(dtype="float64"))
            if self.estimator == "iv":
                lead["quality"] = b["quality_a"].to_numpy(dtype="float64")
                lead["quality_b"] = b["quality_b"].to_numpy(dtype="float64")
            else:
                lead["quality"] = b["quality_score"].to_numpy(dtype="float64")
        muni = b["municipality"].astype(str)
        region = b["region"].astype(str)
        s = np.flatnonzero(sample)
        self.gs.add({**{c: v[s] for c, v in lead.items()}, **{c: v[s] for c, v in num.items()}},
                    {var: c[s] for var, c in cats.items()},
                    b[self.cluster_col].astype(str).iloc[s], muni.iloc[s], region.iloc[s], t[s])
        # the periods' sums over every person-month
        unit = self.units(muni)
        reg = self.regions(region)
        key = self.keys((unit * (1 << 24) + reg) * (1 << 24) + (t + (1 << 23)))
        first = np.unique(key, return_index=True)
        new = first[1][first[0] >= len(self.key_info)]
        self.key_info += zip(unit[new].tolist(), reg[new].tolist(), t[new].tolist())
        exits = lead["y"] / 100.0
        q = (pd.to_numeric(b["quality_score"], errors="coerce").to_numpy(dtype="float64")
             if "quality_score" in b else np.full(len(b), np.nan))
        levels = {var: len(c) for var, c in self.levels.items()}
        for p, sums in self.periods.values():
            r = np.flatnonzero((t >= p.first) & (t <= p.last))
            if len(r):
                sums.add(len(self.units), unit[r], exits[r], q[r],
                         {c: v[r] for c, v in num.items()},
                         {var: c[r] for var, c in cats.items()}, levels, key[r],
                         len(self.keys))

    def lm_keep(self) -> list[str]:
        return [c for c in self.lm
                if lm_usable(self.lm_ok[c] and self.lm_hi[c] > self.lm_lo[c], c)]


def _batches(path: Path, columns: list[str], batch_rows: int):
    f = pq.ParquetFile(path)
    for batch in f.iter_batches(batch_size=batch_rows, columns=columns):
        yield batch.to_pandas(date_as_object=False)


def _t_range(path: Path) -> tuple[int, int]:
    """The panel's first and last month, from the row groups' statistics (no data read)
    when every row group has them, else from the ``t`` column read in batches."""
    f = pq.ParquetFile(path)
    j = f.schema_arrow.get_field_index("t")
    stats = [f.metadata.row_group(i).column(j).statistics for i in range(f.num_row_groups)]
    if stats and all(s is not None and s.has_min_max for s in stats):
        return int(min(s.min for s in stats)), int(max(s.max for s in stats))
    import pyarrow.compute as pc

    lo, hi = None, None
    for batch in f.iter_batches(columns=["t"]):
        mm = pc.min_max(batch.column(0)).as_py()
        if mm["min"] is not None:
            lo = mm["min"] if lo is None else min(lo, mm["min"])
            hi = mm["max"] if hi is None else max(hi, mm["max"])
    if lo is None:
        raise ValueError("decompose: fewer than two person-months to fit")
    return int(lo), int(hi)


def _run(path, columns, params, estimator, lm, cluster_col, periods, measured_only,
         batch_rows) -> _Pass:
    p = _Pass(params, estimator, lm, cluster_col, periods, measured_only)
    for b in _batches(path, columns, batch_rows):
        p.take(b)
    return p


def _level_order(var: str, labels: np.ndarray) -> np.ndarray:
    """Global level codes in the in-memory design's label order (``design._label_codes``
    sorts labels as text, ``design._int_codes`` as integers)."""
    key = [int(v) for v in labels] if var in INT_CODED else [str(v) for v in labels]
    return np.asarray(sorted(range(len(labels)), key=lambda i: key[i]), dtype="int64")


def _design(p: _Pass, lm_keep: list[str]) -> tuple[Design, list[tuple]]:
    """The model's columns as ``Design.choose_levels`` fixes them on the fitted rows, and
    each column's key in the sums."""
    numeric = [c for c in p.numeric if c not in p.lm or c in lm_keep]
    cols, keys, dummy = list(numeric), [("num", c) for c in numeric], {}
    for var, codes in p.levels.items():
        labels = codes.values
        order = _level_order(var, labels)
        counts = np.array([p.gs.count((var, int(lv))) if (var, int(lv)) in p.gs.col else 0.0
                           for lv in order])
        present = order[counts > 0]
        if len(present) == 0:
            continue
        ref = present[int(np.argmax(counts[counts > 0]))]
        for lv in present[present != ref]:
            name = f"{var}[{labels[lv]}]"
            cols.append(name)
            keys.append((var, int(lv)))
            dummy[name] = (var, int(lv))
    factor_of = {c: f for c, f in p.factor_of.items() if c not in p.lm or c in lm_keep}
    return Design({}, {}, factor_of, cols, dummy), keys


def _period_sums(p: _Pass, sums: _Period, design: Design, keys: list[tuple], fit: ModelFit,
                 order: np.ndarray) -> dict[str, Any]:
    """``core.unit_sums`` of one period from its sums; ``order`` puts the municipalities
    (first-appearance codes) in sorted order."""
    U = len(p.units)
    pad = lambda a: np.concatenate([a, np.zeros(U - len(a))])[order]  # noqa: E731
    S = np.zeros((U, len(design.columns)))
    for j, (kind, v) in enumerate(keys):
        if kind == "num":
            S[:, j] = pad(sums.num[v]) if v in sums.num else 0.0
        elif kind in sums.lev and v < sums.lev[kind].shape[1]:
            S[:, j] = pad(sums.lev[kind][:, v])
    info = np.asarray(p.key_info, dtype="int64").reshape(-1, 3)
    kc = np.concatenate([sums.keys, np.zeros(len(info) - len(sums.keys))])
    rank = np.empty(U, dtype="int64")
    rank[order] = np.arange(U)
    unit = rank[info[:, 0]]
    regions = np.asarray(p.regions.values, dtype=object)
    rm = pd.Index(fit.regmonths).get_indexer(
        [f"{regions[r]}:{t}" for r, t in zip(info[:, 1], info[:, 2])])
    m = pd.Index(fit.munis).get_indexer(np.asarray(p.units.values, dtype=object)[info[:, 0]])
    have = rm >= 0
    R, M = len(fit.regmonths), len(fit.munis)
    cnt = np.bincount(unit[have] * R + rm[have], weights=kc[have],
                      minlength=U * R).reshape(U, R)
    hm = have & (m >= 0)
    mcnt = np.bincount(unit[hm] * M + m[hm], weights=kc[hm], minlength=U * M).reshape(U, M)
    covered = np.bincount(unit[hm], weights=kc[hm], minlength=U)
    G = fit.psi.shape[0]
    return factor_sums(design, fit, pad(sums.n), pad(sums.exits), S, cnt, mcnt,
                       np.zeros((U, G)), pad(sums.qsum), pad(sums.qn), covered)


def _clients(path: Path, periods: dict, munis: list[str]) -> dict[str, np.ndarray]:
    """Distinct clients per municipality (in ``munis`` order) and in all, per period
    label, counted by DuckDB on the file (a missing client id counts once, as the
    in-memory count of the ids as text does)."""
    import duckdb

    out = {}
    with tempfile.TemporaryDirectory(prefix="impact-decompose-") as spill:
        con = duckdb.connect(config={"memory_limit": "1GB", "temp_directory": spill})
        try:
            for label, p in periods.items():
                rows = con.execute(
                    "SELECT CAST(municipality AS VARCHAR) AS m, count(DISTINCT client_id) "
                    "+ max(CASE WHEN client_id IS NULL THEN 1 ELSE 0 END) AS n "
                    "FROM read_parquet(?) WHERE t BETWEEN ? AND ? "
                    "GROUP BY GROUPING SETS ((CAST(municipality AS VARCHAR)), ())",
                    [str(path), int(p.first), int(p.last)]).fetchall()
                by = {m: n for m, n in rows if m is not None}
                total = next((n for m, n in rows if m is None), 0)
                out[label] = np.array([by.get(m, 0) for m in munis] + [total], dtype="float64")
        finally:
            con.close()
    return out


def decompose_file(path: str | Path, params: EstimateParams, dparams: DecomposeParams,
                   min_cell: int = 10, estimator: str = "iv",
                   names: dict[str, str] | None = None,
                   batch_rows: int = BATCH_ROWS) -> Decomposition:
    """``core.decompose`` (the same table, model and intervals) on the panel file ``path``
    read in batches (module notes)."""
    if estimator not in ("iv", "ols"):
        raise ValueError(f"decompose: estimator {estimator!r} is not linear (use iv or ols)")
    path = Path(path)
    schema = pq.ParquetFile(path).schema_arrow.names
    columns = decompose_reads(schema, params)
    t_min, t_max = _t_range(path)
    pairs = period_pairs(dparams, t_min, t_max)
    periods = periods_of(pairs)
    lm = lm_candidates(schema, params.estimate.lm_controls)
    cluster_col = params.estimate.cluster
    need = ["quality_a", "quality_b"] if estimator == "iv" else ["quality_score"]
    measured = all(c in schema for c in need)
    run = lambda cl, meas: _run(path, columns + ([cl] if cl not in columns else []),  # noqa
                                params, estimator, lm, cl, periods, meas, batch_rows)
    p = run(cluster_col, measured)
    if p.gs.n_obs < 2 and measured:
        measured = False
        p = run(cluster_col, False)
    if not measured:
        warn("decompose: no quality measurements (no quality table, or no caseworker "
             "measured twice): the quality component holds the programme bins only")
    if p.gs.n_obs < 2:
        raise ValueError("decompose: fewer than two person-months to fit")
    if len(p.gs.clusters) < 2 and "caseworker_key" in schema:
        warn(f"decompose: one {cluster_col} only; intervals clustered by "
             "caseworker instead (an approximate jackknife: caseworkers do not nest in "
             "the municipality-month cells)")
        p = run("caseworker_key", measured)
    if len(p.gs.clusters) < 2:
        # no jackknife: the bootstrap needs per-row residuals (a one-caseworker extract)
        from impact import io

        pm = io.read_person_months(path, columns=columns)
        return decompose(pm, params, dparams, min_cell, estimator, names)
    design, keys = _design(p, p.lm_keep())
    lead = ["y"] + (["quality"] if measured else []) + (
        ["quality_b"] if measured and estimator == "iv" else [])
    sel = [p.gs.col[("num", c)] for c in lead] + [p.gs.col[k] for k in keys]
    fit = fit_model_sums(p.gs.raw(sel), p.gs.cell_table(), lead + design.columns, "y",
                         "quality" if measured else None,
                         "quality_b" if measured and estimator == "iv" else None,
                         jackknife=True)
    labels = np.asarray(p.units.values, dtype=object).astype(str)
    order = np.argsort(labels, kind="stable")
    munis = labels[order].tolist()
    clients = (_clients(path, periods, munis) if "client_id" in schema
               else {label: None for label in periods})
    per = {label: period_means(_period_sums(p, sums, design, keys, fit, order), fit,
                               clients[label])
           for label, (_, sums) in p.periods.items()}
    return decomposition_table(per, pairs, fit, design, munis, params, dparams, min_cell,
                               estimator, names)
