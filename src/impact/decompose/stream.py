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
from impact.estimate.frames import lm_candidates, warn
from impact.estimate.params import EstimateParams
from impact.estimate.quality_stream import BATCH_ROWS, GramSums, _Codes, _first_rows, _Screen

__all__ = ["DesignPass", "UnitSums", "decompose_file", "design_columns"]


def _grow(a: np.ndarray, m: int) -> np.ndarray:
    return np.concatenate([a, np.zeros(m - len(a))]) if len(a) < m else a


class UnitSums:
    """Sums per unit (integer codes, growing as units appear) over the rows given: person-
    months, exits, every numeric regressor (a missing value makes its unit's sum missing,
    as the in-memory sums do), every categorical level's count, person-months per unit x
    key (a key is a (municipality, region, month) of ``DesignPass.key_info``), measured
    quality and, with ``half`` rows, each unit x caseworker's count and sum of
    ``quality_a - quality_b`` (what ``benchmark.stats.split_half_noise`` reads)."""

    def __init__(self) -> None:
        self.n, self.exits, self.qsum, self.qn = (np.zeros(0) for _ in range(4))
        self.num: dict[str, np.ndarray] = {}
        self.lev: dict[str, np.ndarray] = {}     # variable -> (units, levels) counts
        self.pairs = _Codes()
        self.pair_unit: list[int] = []
        self.pair_key: list[int] = []
        self.pair_n = np.zeros(0)
        self.halves = _Codes()
        self.half_unit: list[int] = []
        self.half_cw: list[int] = []
        self.half_w = np.zeros(0)
        self.half_wd = np.zeros(0)

    def add(self, U: int, unit, exits, num, cats, levels, key, q=None, half=None) -> None:
        self.n, self.exits = _grow(self.n, U), _grow(self.exits, U)
        self.qsum, self.qn = _grow(self.qsum, U), _grow(self.qn, U)
        self.n += np.bincount(unit, minlength=U)
        self.exits += np.bincount(unit, weights=exits, minlength=U)
        if q is not None:
            qok = np.isfinite(q)
            self.qsum += np.bincount(unit[qok], weights=q[qok], minlength=U)
            self.qn += np.bincount(unit[qok], minlength=U)
        for c, v in num.items():
            self.num[c] = _grow(self.num.get(c, np.zeros(0)), U) + np.bincount(
                unit, weights=v, minlength=U)
        for var, codes in cats.items():
            L = levels[var]
            old = self.lev.get(var, np.zeros((0, 0)))
            new = np.zeros((U, L))
            new[:old.shape[0], :old.shape[1]] = old
            new += np.bincount(unit * L + codes, minlength=U * L).reshape(U, L)
            self.lev[var] = new
        pair = self.pairs(unit * (1 << 32) + key)
        new = _first_rows(pair, len(self.pair_unit))
        self.pair_unit += unit[new].tolist()
        self.pair_key += key[new].tolist()
        self.pair_n = _grow(self.pair_n, len(self.pairs)) + np.bincount(
            pair, minlength=len(self.pairs))
        if half is not None:
            rows, cw, d = half
            hu = unit[rows]
            h = self.halves(hu * (1 << 32) + cw)
            new = _first_rows(h, len(self.half_unit))
            self.half_unit += hu[new].tolist()
            self.half_cw += cw[new].tolist()
            H = len(self.halves)
            self.half_w = _grow(self.half_w, H) + np.bincount(h, minlength=H)
            self.half_wd = _grow(self.half_wd, H) + np.bincount(h, weights=d, minlength=H)

    def regressor_sums(self, design_keys: list[tuple], U: int, order: np.ndarray) -> np.ndarray:
        """(units x columns) sums of the design's columns (keys of ``design_columns``),
        units put in ``order``."""
        S = np.zeros((U, len(design_keys)))
        for j, (kind, v) in enumerate(design_keys):
            if kind == "num":
                if v in self.num:
                    S[:, j] = _grow(self.num[v], U)
            elif kind in self.lev and v < self.lev[kind].shape[1]:
                S[:, j] = _grow(self.lev[kind][:, v], U)
        return S[order]

    def counts(self, U: int, order: np.ndarray) -> tuple[np.ndarray, ...]:
        """Person-months, exits, quality sum and count per unit, in ``order``."""
        return tuple(_grow(a, U)[order] for a in (self.n, self.exits, self.qsum, self.qn))

    def fe_counts(self, key_info: np.ndarray, muni_labels: np.ndarray,
                  region_labels: np.ndarray, fit: ModelFit, U: int, rank: np.ndarray):
        """Person-months per unit x fitted region-month effect (``cnt``), x fitted
        municipality effect where its region-month is fitted too (``mcnt``), and those
        (``covered``); units by ``rank`` (first-appearance code -> row)."""
        pu = rank[np.asarray(self.pair_unit, dtype="int64")]
        info = key_info[np.asarray(self.pair_key, dtype="int64")]
        rm = pd.Index(fit.regmonths).get_indexer(
            [f"{region_labels[r]}:{t}" for r, t in zip(info[:, 1], info[:, 2])])
        m = pd.Index(fit.munis).get_indexer(muni_labels[info[:, 0]])
        w = self.pair_n
        have = rm >= 0
        R, M = len(fit.regmonths), len(fit.munis)
        cnt = np.bincount(pu[have] * R + rm[have], weights=w[have],
                          minlength=U * R).reshape(U, R)
        hm = have & (m >= 0)
        mcnt = np.bincount(pu[hm] * M + m[hm], weights=w[hm], minlength=U * M).reshape(U, M)
        return cnt, mcnt, np.bincount(pu[hm], weights=w[hm], minlength=U)


class DesignPass(_Screen):
    """One pass over the batches: the model's raw Gram sums over the fitted rows
    (``sample``, from :meth:`sample_lead`) and, through :meth:`rows`, whatever sums per
    unit the caller keeps (module notes). The labour-market columns are judged on every
    person-month (``_Screen.judge_lm``), as ``frames.lm_controls`` judges the panel."""

    def __init__(self, params: EstimateParams, lm: list[str], cluster_col: str) -> None:
        super().__init__(lm)
        self.params, self.cluster_col = params, cluster_col
        self.gs = GramSums()
        self.levels: dict[str, _Codes] = {}
        self.factor_of: dict[str, str] = {}
        self.numeric: list[str] = []
        self.munis, self.regions, self.keys = _Codes(), _Codes(), _Codes()
        self.key_info: list[tuple[int, int, int]] = []   # (muni code, region code, t)

    def sample_lead(self, b: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The batch's rows eligible for the fit (before the regressors' own missing values)
        and the model's leading columns (outcome, quality) on every row."""
        raise NotImplementedError

    def rows(self, b, t, muni, key, num, cats, levels) -> None:
        """Add the batch's rows to the caller's sums (``muni`` and ``key`` codes)."""
        raise NotImplementedError

    def take(self, b: pd.DataFrame) -> None:
        d = build_design(b, self.params, lm=self.lm)
        if not self.factor_of:
            self.factor_of, self.numeric = d.factor_of, list(d.numeric)
        cats = {var: self.levels.setdefault(var, _Codes())(
            pd.Index(labels))[codes] for var, (codes, labels) in d.cats.items()}
        num = dict(d.numeric)
        self.judge_lm(num)  # on every person-month; a gap set to 0 (dropped later)
        t = b["t"].to_numpy(dtype="int64")
        sample, lead = self.sample_lead(b)
        for c, v in d.numeric.items():
            if c not in self.lm:
                sample &= np.isfinite(v)
        muni = b["municipality"].astype(str)
        region = b["region"].astype(str)
        s = np.flatnonzero(sample)
        self.gs.add({**{c: v[s] for c, v in lead.items()}, **{c: v[s] for c, v in num.items()}},
                    {var: c[s] for var, c in cats.items()},
                    b[self.cluster_col].astype(str).iloc[s], muni.iloc[s], region.iloc[s], t[s])
        m = self.munis(muni)
        reg = self.regions(region)
        key = self.keys((m * (1 << 24) + reg) * (1 << 24) + (t + (1 << 23)))
        new = _first_rows(key, len(self.key_info))
        self.key_info += zip(m[new].tolist(), reg[new].tolist(), t[new].tolist())
        self.rows(b, t, m, key, num, cats, {var: len(c) for var, c in self.levels.items()})

    def key_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(key_info (K, 3), municipality labels, region labels)."""
        return (np.asarray(self.key_info, dtype="int64").reshape(-1, 3),
                np.asarray(self.munis.values, dtype=object).astype(str),
                np.asarray(self.regions.values, dtype=object).astype(str))


class _Pass(DesignPass):
    """The decomposition's pass: the model on the measured person-months (``measured``),
    each period's sums per municipality over every person-month."""

    def __init__(self, params: EstimateParams, estimator: str, lm: list[str], cluster_col: str,
                 periods: dict, measured_only: bool) -> None:
        super().__init__(params, lm, cluster_col)
        self.estimator, self.measured_only = estimator, measured_only
        self.periods = {label: (p, UnitSums()) for label, p in periods.items()}

    def sample_lead(self, b):
        sample = np.ones(len(b), bool)
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
        return sample, lead

    def rows(self, b, t, muni, key, num, cats, levels) -> None:
        exits = pd.to_numeric(b["exit_work"]).to_numpy(dtype="float64")
        q = (pd.to_numeric(b["quality_score"], errors="coerce").to_numpy(dtype="float64")
             if "quality_score" in b else np.full(len(b), np.nan))
        for p, sums in self.periods.values():
            r = np.flatnonzero((t >= p.first) & (t <= p.last))
            if len(r):
                sums.add(len(self.munis), muni[r], exits[r],
                         {c: v[r] for c, v in num.items()},
                         {var: c[r] for var, c in cats.items()}, levels, key[r], q=q[r])


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


def design_columns(p: DesignPass, lm_keep: list[str]) -> tuple[Design, list[tuple]]:
    """The model's columns as ``Design.choose_levels`` fixes them on the fitted rows, and
    each column's key in the sums (``("num", name)`` or ``(variable, level code)``)."""
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


def _period_sums(p: _Pass, sums: UnitSums, design: Design, keys: list[tuple], fit: ModelFit,
                 order: np.ndarray) -> dict[str, Any]:
    """``core.unit_sums`` of one period from its sums; ``order`` puts the municipalities
    (first-appearance codes) in sorted order."""
    U = len(p.munis)
    rank = np.empty(U, dtype="int64")
    rank[order] = np.arange(U)
    n, exits, qsum, qn = sums.counts(U, order)
    cnt, mcnt, covered = sums.fe_counts(*p.key_table(), fit, U, rank)
    return factor_sums(design, fit, n, exits, sums.regressor_sums(keys, U, order), cnt, mcnt,
                       np.zeros((U, fit.psi.shape[0])), qsum, qn, covered)


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
    design, keys = design_columns(p, p.lm_keep())
    lead = ["y"] + (["quality"] if measured else []) + (
        ["quality_b"] if measured and estimator == "iv" else [])
    sel = [p.gs.col[("num", c)] for c in lead] + [p.gs.col[k] for k in keys]
    fit = fit_model_sums(p.gs.raw(sel), p.gs.cell_table(), lead + design.columns, "y",
                         "quality" if measured else None,
                         "quality_b" if measured and estimator == "iv" else None,
                         jackknife=True)
    labels = np.asarray(p.munis.values, dtype=object).astype(str)
    order = np.argsort(labels, kind="stable")
    munis = labels[order].tolist()
    clients = (_clients(path, periods, munis) if "client_id" in schema
               else {label: None for label in periods})
    per = {label: period_means(_period_sums(p, sums, design, keys, fit, order), fit,
                               clients[label])
           for label, (_, sums) in p.periods.items()}
    return decomposition_table(per, pairs, fit, design, munis, params, dparams, min_cell,
                               estimator, names)
