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

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from impact.decompose.core import (
    Decomposition, decompose, decompose_reads, decomposition_table, factor_sums,
    period_means, period_pairs, periods_of,
)
from impact.decompose.design import Design
from impact.decompose.model import ModelFit, fit_model_sums
from impact.decompose.params import DecomposeParams
from impact.estimate.frames import lm_candidates, warn
from impact.estimate.params import EstimateParams
from impact.decompose.passes import (
    DesignPass, UnitSums, _batches, _t_range, design_columns,
    distinct_counts_by_span,
)
from impact.estimate.quality_stream import BATCH_ROWS

__all__ = ["decompose_file"]


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


def _run(path, columns, params, estimator, lm, cluster_col, periods, measured_only,
         batch_rows) -> _Pass:
    p = _Pass(params, estimator, lm, cluster_col, periods, measured_only)
    for b in _batches(path, columns, batch_rows):
        p.take(b)
    return p


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
    label, counted by DuckDB on the file in one scan (``passes.distinct_counts_by_span``)."""
    counts = distinct_counts_by_span(path, "CAST(municipality AS VARCHAR)",
                                     [(p.first, p.last) for p in periods.values()])
    return {label: np.array([d.get(m, (0, 0))[0] for m in munis] + [d.get(None, (0, 0))[0]],
                            dtype="float64")
            for label, d in zip(periods, counts)}


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
