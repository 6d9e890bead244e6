"""The fair benchmark straight from the panel's Parquet file, one batch of rows at a time.

Notes
-----
``core.run_benchmark`` holds the person-months and the benchmark model's design in
memory. Everything it reports comes from sums, as the decomposition's does
(``decompose.stream``): the expected-rate model from the raw cluster Gram sums of its
fitted rows, each unit's expected rate from its regressor sums and person-months per
region-month, and the quality shrinkage from each unit's measured-quality sums and, for
the split-half noise, each unit x caseworker's count and sum of ``quality_a -
quality_b`` (``benchmark.stats.split_half_noise`` reads nothing else). One pass over the
file (``decompose.stream.DesignPass``) adds them up for the three sets of units:
municipalities and teams over the compared period, municipality x calendar year over the
whole panel. Distinct clients and caseworkers are counted by DuckDB on the file.

The benchmark model's outcome, ``100 exit_work - theta q - tau'a``, is a linear
combination of columns, so the pass keeps the blocks of ``100 exit_work``, ``q`` and
every regressor and the combination is taken of the blocks afterwards (``T' C_g T``).

``tests/benchmark/test_stream.py`` checks the three tables, the funnel curve and the
facts against ``core.run_benchmark`` on the same data to 1e-8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from impact.benchmark.core import (
    BenchmarkResult, UnitInputs, assemble, theta_tau,
)
from impact.benchmark.params import BenchmarkParams
from impact.decompose.core import decompose_reads
from impact.decompose.model import ModelFit, fit_model_sums
from impact.decompose.passes import (
    DesignPass, UnitSums, _batches, _t_range, design_columns, distinct_counts,
)
from impact.estimate.cgram import ClusterGrams
from impact.estimate.frames import lm_candidates, warn
from impact.estimate.params import EstimateParams
from impact.estimate.quality_stream import BATCH_ROWS, _Codes, _first_rows

__all__ = ["run_benchmark_file"]

_HALVES = ("quality_score", "quality_a", "quality_b", "caseworker_key")


class _Pass(DesignPass):
    """The benchmark's pass (module notes)."""

    def __init__(self, params: EstimateParams, lm: list[str], with_quality: bool, period,
                 halves: bool, teams: bool) -> None:
        super().__init__(params, lm, params.estimate.cluster)
        self.with_quality, self.period, self.halves, self.with_teams = (
            with_quality, period, halves, teams)
        self.muni_sums, self.team_sums, self.year_sums = UnitSums(), UnitSums(), UnitSums()
        self.teams, self.years, self.cws = _Codes(), _Codes(), _Codes()
        self.team_margin: dict[int, int] = {}   # team code -> municipality of its first row

    def sample_lead(self, b):
        q = (pd.to_numeric(b["quality_score"], errors="coerce").to_numpy(dtype="float64")
             if "quality_score" in b else np.full(len(b), np.nan))
        sample = np.isfinite(q) if self.with_quality else np.ones(len(b), bool)
        lead = {"y": 100.0 * pd.to_numeric(b["exit_work"]).to_numpy(dtype="float64"),
                "q": np.nan_to_num(q)}
        return sample, lead

    def rows(self, b, t, muni, key, num, cats, levels) -> None:
        exits = pd.to_numeric(b["exit_work"]).to_numpy(dtype="float64")
        q = (pd.to_numeric(b["quality_score"], errors="coerce").to_numpy(dtype="float64")
             if "quality_score" in b else np.full(len(b), np.nan))
        in_p = (t >= self.period.first) & (t <= self.period.last)
        sub = lambda r: ({c: v[r] for c, v in num.items()},  # noqa: E731
                         {var: c[r] for var, c in cats.items()})
        half = None
        if self.halves:
            a = pd.to_numeric(b["quality_a"], errors="coerce").to_numpy(dtype="float64")
            bb = pd.to_numeric(b["quality_b"], errors="coerce").to_numpy(dtype="float64")
            hok = np.isfinite(a) & np.isfinite(bb)
            cw = np.full(len(b), -1, dtype="int64")
            # the Arrow text itself, filtered: as Python objects (``to_numpy``) a batch's
            # keys cost 10 ms to make and more to hash (about 20 s nationally)
            cw[hok] = self.cws(b["caseworker_key"].astype(str)[hok])
            half = (hok, cw, a - bb)

        def halves_of(r):
            if half is None:
                return None
            ok = np.flatnonzero(half[0][r])
            return ok, half[1][r][ok], half[2][r][ok]

        r = np.flatnonzero(in_p)
        if len(r):
            self.muni_sums.add(len(self.munis), muni[r], exits[r], *sub(r), levels, key[r],
                               q=q[r], half=halves_of(r))
        if self.with_teams:
            has = b["team_key"].notna().to_numpy()
            team = np.full(len(b), -1, dtype="int64")
            team[has] = self.teams(b["team_key"].astype(str)[has])
            r = np.flatnonzero(in_p & has)
            if len(r):
                first = _first_rows(team[r], 0)
                for code, m in zip(team[r][first].tolist(), muni[r][first].tolist()):
                    self.team_margin.setdefault(code, m)
                self.team_sums.add(len(self.teams), team[r], exits[r], *sub(r), levels, key[r],
                                   q=q[r], half=halves_of(r))
        year = self.years(muni * (1 << 32) + (t // 12 + (1 << 31)))
        self.year_sums.add(len(self.years), year, exits, num, cats, levels, key)


def _fit(p: _Pass, theta: float, tau: dict[str, float]):
    """The benchmark model (``core.fit_expected``) from the pass's sums: (design columns
    kept, their sum keys, fit)."""
    design, keys = design_columns(p, p.lm_keep())
    quality = [j for j, c in enumerate(design.columns) if design.factor(c) == "quality"]
    missing = [design.columns[j] for j in quality if design.columns[j] not in tau]
    if missing:
        warn(f"benchmark: no decomposition coefficient for {', '.join(missing)}; "
             "these programme bins stay in the expected rate")
    keep = [j for j in range(len(design.columns)) if j not in quality]
    sel = [p.gs.col[("num", "y")], p.gs.col[("num", "q")]] + [p.gs.col[k] for k in keys]
    raw = p.gs.raw(sel)
    # the adjusted outcome 100 y - theta q - tau'a as a combination of the kept columns
    T = np.zeros((len(sel), 1 + len(keep)))
    T[0, 0] = 1.0
    if np.isfinite(theta):
        T[1, 0] = -theta
    for j in quality:
        T[2 + j, 0] = -tau.get(design.columns[j], 0.0)
    for i, j in enumerate(keep):
        T[2 + j, 1 + i] = 1.0
    C = np.einsum("ak,gab,bl->gkl", T, raw.C, T)
    adj = ClusterGrams(C, raw.labels, None, raw.n_obs, None, raw.pair_cell, raw.pair_cluster,
                       raw.pair_sums @ T, raw.pair_count)
    names = ["y"] + [design.columns[j] for j in keep]
    fit = fit_model_sums(adj, p.gs.cell_table(), names, "y", None, None,
                         municipality_effects=False)
    return [keys[j] for j in keep], fit


def _expected(sums: UnitSums, p: _Pass, keys, fit: ModelFit, U: int, order: np.ndarray):
    """Per unit (in ``order``): person-months, exits, predicted sum (without the
    constant), person-months with a fitted region-month, measured quality sum and count."""
    rank = np.empty(U, dtype="int64")
    rank[order] = np.arange(U)
    n, exits, qsum, qn = sums.counts(U, order)
    cnt, _, _ = sums.fe_counts(*p.key_table(), fit, U, rank)
    pred = sums.regressor_sums(keys, U, order) @ fit.coef + cnt @ fit.lam
    return n, exits, pred, cnt.sum(axis=1).astype("float64"), qsum, qn


def _frame(n, exits, pred, covered, const) -> pd.DataFrame:
    """``core.expected_by``'s frame."""
    den = np.where(n > 0, n, np.nan)
    return pd.DataFrame({"person_months": n, "exits_work": exits,
                         "observed_rate_pp": 100 * exits / den,
                         "expected_rate_pp": np.where(covered == n, pred / den + const,
                                                      np.nan)})


def _inputs(sums: UnitSums, p: _Pass, keys, fit, labels: np.ndarray, order: np.ndarray,
            const: float, counts: dict, margin: np.ndarray | None) -> UnitInputs:
    U = len(labels)
    n, exits, pred, covered, qsum, qn = _expected(sums, p, keys, fit, U, order)
    sl = labels[order]
    halves = None
    if p.halves:
        rank = np.empty(U, dtype="int64")
        rank[order] = np.arange(U)
        w = sums.half_w
        cw = np.asarray(p.cws.values, dtype=object)
        halves = (rank[np.asarray(sums.half_unit, dtype="int64")],
                  cw[np.asarray(sums.half_cw, dtype="int64")] if len(w) else cw[:0],
                  sums.half_wd / np.where(w > 0, w, 1.0), np.zeros(len(w)), w)
    got = [counts.get(x, (0, 0)) for x in sl]
    return UnitInputs(np.asarray(sl, dtype=object), _frame(n, exits, pred, covered, const),
                      np.array([c for c, _ in got], dtype="int64"),
                      np.array([w for _, w in got], dtype="int64"), margin,
                      qsum if p.halves else None, qn if p.halves else None, halves)


def run_benchmark_file(path: str | Path, munis: pd.DataFrame, coefs: pd.DataFrame,
                       theta_psi: np.ndarray, params: EstimateParams, bparams: BenchmarkParams,
                       min_cell: int, batch_rows: int = BATCH_ROWS) -> BenchmarkResult:
    """``core.run_benchmark`` (the same tables) on the panel file ``path`` read in batches
    (module notes)."""
    path = Path(path)
    schema = pq.ParquetFile(path).schema_arrow.names
    theta, tau = theta_tau(coefs)
    t_min, t_max = _t_range(path)
    period = bparams.window(t_min, t_max)
    p = _Pass(params, lm_candidates(schema, params.estimate.lm_controls), np.isfinite(theta),
              period, set(_HALVES) <= set(schema), "team_key" in schema)
    for b in _batches(path, decompose_reads(schema, params), batch_rows):
        p.take(b)
    if not p.muni_sums.n.sum():
        raise ValueError(f"benchmark.period={bparams.period!r}: no person-month of the panel "
                         f"falls in it")
    if p.gs.n_obs < 2:
        raise ValueError("benchmark: fewer than two person-months to fit")
    keys, fit = _fit(p, theta, tau)
    # the calibration constant: expected exits of the period add up to the observed ones
    M = len(p.munis)
    m_labels = np.asarray(p.munis.values, dtype=object).astype(str)
    m_order = np.argsort(m_labels, kind="stable")
    n, exits, pred, *_ = _expected(p.muni_sums, p, keys, fit, M, m_order)
    const = float((100 * exits.sum() - pred.sum()) / n.sum())
    where = "t BETWEEN ? AND ?"
    span = [int(period.first), int(period.last)]
    m_in = _inputs(p.muni_sums, p, keys, fit, m_labels, m_order, const,
                   distinct_counts(path, "CAST(municipality AS VARCHAR)", where, span), None)
    t_in = None
    if len(p.teams):
        t_labels = np.asarray(p.teams.values, dtype=object).astype(str)
        t_order = np.argsort(t_labels, kind="stable")
        margin = np.array([m_labels[p.team_margin[c]] if c in p.team_margin else "nan"
                           for c in t_order], dtype=object)
        t_in = _inputs(p.team_sums, p, keys, fit, t_labels, t_order, const,
                       distinct_counts(path, "CAST(team_key AS VARCHAR)",
                                       where + " AND team_key IS NOT NULL", span), margin)
    # municipality x calendar year, every pair of the grid (empty ones are dropped later)
    Y = len(p.years)
    yk = np.asarray(p.years.values, dtype="int64")
    y_muni, y_year = yk >> 32, (yk & 0xFFFFFFFF) - (1 << 31)
    y0, y1 = int(y_year.min()), int(y_year.max())
    ny = y1 - y0 + 1
    rank_m = np.empty(M, dtype="int64")
    rank_m[m_order] = np.arange(M)
    cell = rank_m[y_muni] * ny + (y_year - y0)             # grid row of each year unit
    n, exits, pred, covered, _, _ = _expected(p.year_sums, p, keys, fit, Y, np.arange(Y))
    grid = np.zeros((4, M * ny))
    for i, v in enumerate((n, exits, pred, covered)):
        grid[i, cell] = v
    by = _frame(*grid, const)
    by["municipality"] = np.repeat(m_labels[m_order].astype(object), ny)
    by["year"] = np.tile(np.arange(y0, y0 + ny), M)
    yc = distinct_counts(path, ("CAST(municipality AS VARCHAR)", "t // 12"))
    by["clients"] = [yc.get((m, int(y)), (0, 0))[0] for m, y in zip(by["municipality"],
                                                                    by["year"])]
    return assemble(m_in, t_in, by, munis, theta, theta_psi, params, bparams, min_cell,
                    period)
