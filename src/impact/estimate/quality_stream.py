"""The quality regression straight from the panel's Parquet file, one batch of rows at a time.

Notes
-----
``quality.estimate_quality`` builds the n x k matrix of the quality model over the whole
panel: at national scale (64 million person-months, k of about 60) that is 30 GB before
the panel itself. Every number it reports is a function of the *cluster blocks* of the
demeaned matrix's Gram matrix (``cgram`` module notes), and those follow from sums that
add up over rows:

- the raw blocks C_g = sum_{i in g} a_i a_i' per cluster g;
- the column sums and row counts of each municipality-month cell x cluster pair, from
  which ``cgram.demean_grams`` projects the cell fixed effects out of the blocks exactly
  (no row is read twice, no iteration).

So this module reads the panel in batches of ``batch_rows`` rows (only the columns the
model uses), builds each batch's rows of A with ``quality.model_columns`` (the function
the in-memory path uses), and adds them to the sums. Memory is one batch's rows plus
G x k x k blocks and P x k pair sums (P = cells for municipality or region clusters);
time is linear in the rows.

Decisions the in-memory path takes on the whole sample are taken after the pass, on the
sums, with the same outcome:

- a categorical control's left-out level is its most frequent one; a dummy's count is its
  diagonal Gram entry, so every level seen gets a column during the pass and the left-out
  one is dropped from the blocks afterwards (a column subset's Gram is the sub-block);
- levels coded in order of first appearance (``quality._codes``) get the same codes,
  because the batches are read in file order; clusters and cells likewise;
- a labour-market column is a control only when complete and not constant on the
  sample (``frames.lm_controls``): each is carried through the pass (missing values as
  0) with its range and completeness, and dropped afterwards when it fails;
- with fewer than two clusters (one municipality's own extract) the pass is repeated
  with caseworker clusters, as ``quality_frame`` falls back to.

``tests/estimate/test_quality_stream.py`` checks estimates, standard errors, first-stage F
and the wild bootstrap's parts against ``estimate_quality`` on the same data to 1e-8,
with batches that split clusters and cells, rows with missing values, and every option.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from impact import io
from impact.estimate.cgram import ClusterGrams, demean_grams, fit_pm_grams
from impact.estimate.frames import inflow_rows, lm_candidates, lm_usable, warn
from impact.estimate.inference import wants_wild
from impact.estimate.params import EstimateParams
from impact.estimate.quality import fixed_effects, model_columns, model_reads, quality_rows
# the accumulators across batches, shared with the other streamed passes (re-exported)
from impact.estimate.sums import GramSums, _Codes, _first_rows  # noqa: F401

__all__ = ["GramSums", "QualityGrams", "quality_grams", "estimate_quality_file", "BATCH_ROWS",
           "finish", "pass_reads", "with_two_clusters", "demeaned"]

#: rows per batch: the stage's peak memory is about 1.5 KB per batch row (the batch's
#: columns, its n x k matrix of about 60 columns); measured on 2.8 million person-months,
#: 2^17 rows peaked at 450 MB, 2^19 at 1,050 MB, in the same time
BATCH_ROWS = 1 << 17


@dataclass(frozen=True)
class QualityGrams:
    """The quality model's demeaned cluster blocks (``grams``, clusters in order of first
    appearance), A's column names and exogenous controls, the cell table, the cluster
    name (municipality, region or caseworker), fixed effects and their K."""

    grams: ClusterGrams
    names: list[str]
    exog: list[str]
    cells: pd.DataFrame
    cluster: str
    fe: list[str]
    df_fe: int
    #: the ``extra`` columns' names (in ``names``, not in ``exog``) and the object that made
    #: them in the final pass (``quality_grams(extra=)``)
    extra: list[str] = field(default_factory=list)
    extra_state: Any = None


class _Screen:
    """What a pass over the batches decides on the whole sample, kept batch by batch: each
    labour-market column's completeness and range (``frames.lm_controls``' verdict, taken
    after the pass), and the rows dropped for a missing value (with the columns that had
    one). Shared by this module's pass and ``hazard_stream``'s."""

    def __init__(self, lm: list[str]) -> None:
        self.lm = lm
        self.dropped = 0
        self.bad: dict[str, None] = {}        # numeric columns with a missing value, in order
        self.lm_ok = {c: True for c in lm}
        self.lm_lo = {c: np.inf for c in lm}
        self.lm_hi = {c: -np.inf for c in lm}

    def screen(self, s: pd.DataFrame, cols: dict, cats: dict, t: np.ndarray):
        """The batch's rows without a missing value: ``(s, cols, cats, t)``; labour-market
        columns are judged first, on every sample row, and their gaps set to 0 (a column
        with a gap is dropped after the pass, ``lm_keep``)."""
        self.judge_lm(cols)
        keep = np.ones(len(s), bool)
        for c, v in cols.items():
            fin = np.isfinite(v)
            if not fin.all():
                self.bad[c] = None
                keep &= fin
        if not keep.all():
            self.dropped += int((~keep).sum())
            s, t = s[keep], t[keep]
            cols = {c: v[keep] for c, v in cols.items()}
            cats = {c: v[keep] for c, v in cats.items()}
        return s, cols, cats, t

    def judge_lm(self, cols: dict) -> None:
        """Judge each labour-market column of ``cols`` on these rows (completeness and
        range, for ``lm_keep``) and set its gaps to 0 in place."""
        for c in self.lm:
            v = cols[c]
            fin = np.isfinite(v)
            self.lm_ok[c] &= bool(fin.all())
            if fin.any():
                self.lm_lo[c] = min(self.lm_lo[c], float(v[fin].min()))
                self.lm_hi[c] = max(self.lm_hi[c], float(v[fin].max()))
            cols[c] = np.where(fin, v, 0.0)

    def lm_keep(self) -> list[str]:
        """The labour-market columns that are controls on the whole sample (with
        ``frames.lm_usable``'s warning for the others)."""
        return [c for c in self.lm
                if lm_usable(self.lm_ok[c] and self.lm_hi[c] > self.lm_lo[c], c)]


class _Pass(_Screen, GramSums):
    """The sums of one pass over the batches (module notes)."""

    def __init__(self, params: EstimateParams, outcomes: Mapping[str, str], lm: list[str],
                 cluster_col: str, extra=None, only=None) -> None:
        _Screen.__init__(self, lm)
        GramSums.__init__(self, None if only is None else (
            lambda name: name in self.extra_names and only(name)))
        self.params, self.outcomes, self.cluster_col = params, outcomes, cluster_col
        self.first = {}                       # categorical -> _Codes (first-appearance kinds)
        self.extra = extra
        if hasattr(extra, "cluster_col"):
            extra.cluster_col = cluster_col
        self.extra_names: dict[str, None] = {}

    def take(self, s: pd.DataFrame) -> None:
        cols, raw, t = model_columns(s, self.params, self.outcomes, {}, self.lm)
        cats = {c: self.first.setdefault(c, _Codes())(v) if first else np.asarray(v)
                for c, (v, first) in raw.items()}
        s, cols, cats, t = self.screen(s, cols, cats, t)
        if len(s) and self.extra is not None:
            more = self.extra(s)
            self.extra_names.update(dict.fromkeys(more))
            cols.update(more)
        if len(s):
            self.add(cols, cats, s[self.cluster_col].astype(str),
                     s["municipality"].astype(str), s["region"].astype(str), t)


def _batches(path: Path | pd.DataFrame, columns: list[str], sample: str, batch_rows: int
             ) -> Iterator[pd.DataFrame]:
    """The sample's rows (both quality halves measured; ``inflow``: spells starting in the
    window) of the panel file, batch by batch, in file order (``io.iter_batches``: each
    column of its whole-file dtype); of a frame, its slices of ``batch_rows`` rows."""
    if not isinstance(path, pd.DataFrame):  # the rows chosen in Arrow (``_in_sample``)
        yield from io.iter_batches(path, columns, batch_rows,
                                   keep=lambda b: _in_sample(b, sample))
        return
    for i in range(0, len(path), batch_rows):
        df = path.iloc[i:i + batch_rows][columns]
        keep = (df["quality_a"].notna() & df["quality_b"].notna()).to_numpy().copy()
        if sample == "inflow":
            keep &= inflow_rows(df)
        if keep.any():
            yield df.loc[keep].reset_index(drop=True)


def _notna(col) -> np.ndarray:
    """pandas' ``notna`` of an Arrow column: not null and, for floats, not NaN."""
    ok = pc.is_valid(col)
    if pa.types.is_floating(col.type):
        ok = pc.and_(ok, pc.invert(pc.is_nan(col)).fill_null(False))
    return np.asarray(ok.to_numpy(zero_copy_only=False), dtype=bool)


def _in_sample(b, sample: str) -> np.ndarray:
    """The rows of an Arrow batch (or table) ``_batches`` keeps of a frame: both quality
    halves present and, for ``inflow``, ``left_truncated == 0`` (as on the frame's
    column: a missing value is not 0; a boolean False is)."""
    keep = _notna(b.column("quality_a")) & _notna(b.column("quality_b"))
    if sample == "inflow":
        lt = b.column("left_truncated")
        if pa.types.is_boolean(lt.type):
            zero = pc.invert(lt)
        elif pa.types.is_integer(lt.type) or pa.types.is_floating(lt.type):
            zero = pc.equal(lt, 0)
        else:  # any other type as pandas compares it
            zero = pa.array(lt.to_pandas().to_numpy() == 0)
        keep &= np.asarray(zero.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
    return keep


def quality_grams(path: str | Path | pd.DataFrame, params: EstimateParams, sample: str = "all",
                  outcomes: Mapping[str, str] | None = None,
                  batch_rows: int = BATCH_ROWS, extra=None,
                  extra_reads: Sequence[str] = (), raw: bool = False,
                  only: Callable[[str], bool] | None = None) -> QualityGrams | None:
    """The quality model's demeaned cluster blocks from the panel file ``path`` (module
    notes); None when no person-month has both quality halves. ``sample``: ``all`` or
    ``inflow`` (``left_truncated == 0``).

    ``extra``: a function of no arguments that makes a callable, called with each batch's
    sample rows (after rows with missing values are dropped) and returning more numeric
    columns (name -> array), whose blocks are kept too (the heterogeneity models'
    interactions; they are demeaned like every column and are not exogenous controls);
    ``extra_reads`` the columns it reads. A fresh one is made for each pass; one with a
    ``cluster_col`` attribute is told the column the pass clusters by. ``raw``: the
    blocks as summed (``grams`` not demeaned, e.g. to demean halves of the clusters
    apart). ``path`` may also be a frame of such rows, read a slice at a time (the
    intermediate results' review rows: no n x k matrix of them is made).

    ``only`` (an ``extra`` column's name -> bool): only the blocks of those columns against
    every column are made, the others' with each other are NaN (a second pass over the
    rows of a first that has them; ``sums.GramSums(only=)``)."""
    if isinstance(path, pd.DataFrame):
        schema = list(path.columns)
    else:
        path = Path(path)
        schema = pq.ParquetFile(path).schema_arrow.names
    if "quality_a" not in schema or "quality_b" not in schema:
        warn("quality: person_months has no quality_a/quality_b columns")
        return None
    outcomes = dict(outcomes or {"y": "exit_work"})
    lm = lm_candidates(schema, params.estimate.lm_controls)
    columns = pass_reads(schema, params, outcomes, sample, extra_reads)
    p = _run(path, params, outcomes, lm, _cluster_col(params), columns, sample, batch_rows,
             extra, only)
    p = with_two_clusters(p, path, params, outcomes, columns, sample, batch_rows, extra, only)
    return finish(p, params, outcomes, raw)


def _cluster_col(params: EstimateParams) -> str:
    return "region" if params.estimate.cluster == "region" else "municipality"


def pass_reads(schema, params: EstimateParams, outcomes: Mapping[str, str], sample: str,
               extra_reads: Sequence[str] = ()) -> list[str]:
    """The columns of the file (``schema``: its names) a pass of ``quality_grams`` reads."""
    columns = list(dict.fromkeys(model_reads(schema, params, outcomes) + (
        ["left_truncated"] if sample == "inflow" else [])))
    return list(dict.fromkeys(columns + [c for c in extra_reads if c in schema]))


def with_two_clusters(p: "_Pass", path, params: EstimateParams, outcomes, columns, sample,
                      batch_rows, extra=None, only=None) -> "_Pass":
    """``p``, or with fewer than two clusters the pass again by caseworker (with the
    warning ``quality_frame`` gives)."""
    if p.n_obs and len(p.clusters) < 2:
        warn(f"quality: one {params.estimate.cluster} only; standard errors clustered by "
             "caseworker instead")
        p = _run(path, params, outcomes, p.lm, "caseworker_key",
                 list(dict.fromkeys(columns + ["caseworker_key"])), sample, batch_rows, extra,
                 only)
    return p


#: categorical controls ``model_columns`` adds only under region x month effects
_REGION_MONTH_ONLY = ("adoption_bin", "shock_bin")


def finish(p: "_Pass", params: EstimateParams, outcomes: Mapping[str, str],
           raw: bool = False) -> QualityGrams | None:
    """The model's blocks from a finished pass ``p`` (``quality_grams``: the decisions taken
    on the whole sample, then the columns chosen and, unless ``raw``, demeaned). A pass
    made with region x month effects also serves ``params`` with municipality x month
    effects: their model is its columns but the two bins' (``model_columns``), on the
    same rows (the bins are never missing), so those columns' blocks are left out."""
    lm_keep = p.lm_keep()
    bad = [c for c in p.bad if c not in p.lm]
    if p.dropped:
        warn(f"quality: {p.dropped} person-months dropped for missing {bad}")
    if p.n_obs == 0:
        return None
    num = [c for c in (list(outcomes) + ["quality_a", "quality_b", "quality_score"]
                       + [c for c in params.estimate.controls if ("num", c) in p.col]
                       + lm_keep)] + list(p.extra_names)
    sel = [p.col[("num", c)] for c in num]
    names = list(num)
    skip = () if params.estimate.quality_fe == "region_month" else _REGION_MONTH_ONLY
    for c in dict.fromkeys(cc for cc, _ in p.col if cc != "num" and cc not in skip):
        lv = sorted(lvl for cc, lvl in p.col if cc == c)
        counts = np.array([p.count((c, x)) for x in lv])
        drop = lv[int(np.argmax(counts))]
        for x in lv:
            if x != drop:
                sel.append(p.col[(c, x)])
                names.append(f"{c}[{x}]")
    cells = p.cell_table()
    raw_grams = p.raw(sel)
    cname, fe, df_fe = fixed_effects(cells, len(p.clusters), params)
    grams = raw_grams if raw else demean_grams(raw_grams, cells, fe)
    not_exog = {*outcomes, "quality_a", "quality_b", "quality_score", *p.extra_names}
    return QualityGrams(grams, names, [n for n in names if n not in not_exog], cells, cname,
                        fe, df_fe, list(p.extra_names), p.extra)


def _run(path, params, outcomes, lm, cluster_col, columns, sample, batch_rows,
         extra=None, only=None) -> _Pass:
    p = _Pass(params, outcomes, lm, cluster_col, extra() if extra is not None else None,
              only)
    for s in _batches(path, columns, sample, batch_rows):
        p.take(s)
    return p


def demeaned(q: QualityGrams, params: EstimateParams) -> QualityGrams:
    """Raw blocks (``quality_grams(raw=True)``) demeaned by ``params``' fixed effects."""
    cname, fe, df_fe = fixed_effects(q.cells, len(q.grams.labels), params)
    return replace(q, grams=demean_grams(q.grams, q.cells, fe), cluster=cname, fe=fe,
                   df_fe=df_fe)


def estimate_quality_file(path: str | Path, params: EstimateParams, estimator: str = "iv",
                          sample: str = "all", batch_rows: int = BATCH_ROWS,
                          shared: Callable[[], QualityGrams | None] | None = None
                          ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """``quality.estimate_quality`` (the same rows and headline block) on the panel file
    ``path`` read in batches (``sample``: ``all`` or ``inflow``). ``shared``: gives this
    specification's raw blocks from the shared pass instead (``quality_sums.load``,
    which also repeats the pass's warnings)."""
    if shared is None:
        q = quality_grams(path, params, sample, batch_rows=batch_rows)
    else:
        q = shared()
        q = None if q is None else demeaned(q, params)
    if q is None:
        warn("quality: no person-month has both quality_a and quality_b; not estimated")
        return [], None
    wild = wants_wild(len(q.grams.labels), params.estimate)
    iv = fit_pm_grams(q.grams, q.names, "y", "quality_a", q.exog, "quality_b", q.df_fe,
                      wild_parts=wild and estimator == "iv")
    ols = fit_pm_grams(q.grams, q.names, "y", "quality_score", q.exog, None, q.df_fe,
                       wild_parts=wild and estimator == "ols")
    return quality_rows(iv, ols, q.cluster, q.fe, params, estimator)
