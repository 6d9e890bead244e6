"""Intermediate results as outcomes: reviews in the optional ``progress`` table.

Notes
-----
A *review* is a ``progress`` row: a measure of a client's spell taken on a date (e.g. the
participation-ladder step, ``goal_reached``). Its month must be a month the spell is at
risk in the panel; the row is matched to the panel by client and month (so reviews of
spells the panel joined, ``panel.merge_gap_days``, land on the joined spell).

Per measure, a review is an *outcome review* when it lies in the study window and has a
baseline: the spell's previous review of that measure or, for its first review, the start
of a spell that began inside the window (for ``ladder_step`` the intake step from
``trajectories`` is the baseline value and must be recorded). Its *interval* is the
spell's months after the baseline review's month (or from the start month) up to and
including the review month. Outcomes:

- ``ladder_step_up`` (measure ``ladder_step``): 1 when the step rose since the baseline,
  for reviews whose baseline step is below the top (6);
- any other measure: its value (``goal_reached``: 0/1).

For ``ladder_step_up`` the step at the baseline is a control (dummies): past quality
raised it, and a higher step is harder to leave. Quality enters as the mean of the two
independent measurement halves over the interval's person-months (``quality_a``
instrumented by ``quality_b``, as in the headline; months without both halves are left
out of the means), so the effect is that of one point more quality in every month since
the last review. The model, fixed effects, controls and clustering are the headline's, on
review rows carrying the covariates of the review month (``quality.quality_frame``; from
the panel file, ``quality_stream.quality_grams`` of the reviews, the same fit from Gram
sums). The programme effect is the imputation ATT on
adopting-unit x month cells of outcome reviews (``estimate.adoption.impute_adoption``).
Effects are in percentage points for 0/1 outcomes (column ``unit`` = ``pp``) and in the
measure's own units otherwise (``value``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from impact.estimate.adoption import adoption_cells, impute_adoption
from impact.estimate.frames import shock_events, warn
from impact.estimate.imputation import aggregate
from impact.estimate.params import EstimateParams
from impact.estimate.pmreg import cell_demean, fit_pm
from impact.estimate.quality import fixed_effects, quality_frame
from impact.estimate.results import t_inference
from impact.heterogeneity.progress_reviews import spell_months, text_array
from impact.io import release_memory

__all__ = ["PROGRESS_COLUMNS", "review_frame", "progress_effects"]

TOP_STEP = 6
#: columns of the progress-effects table
PROGRESS_COLUMNS = ("measure", "outcome", "block", "unit", "estimate", "std_error",
                    "ci_low", "ci_high", "p_value", "n_reviews", "n_clients", "n_events",
                    "n_clusters", "mean_outcome", "published", "estimator")
_PM_COLS = ("spell_id", "client_id", "municipality", "region", "t", "month", "duration", "age",
            "sex", "education_level", "household", "prior_benefit_months", "ladder_step",
            "left_truncated", "caseworker_key", "team_key", "adoption_month",
            "shock_event_time", "quality_a", "quality_b", "quality_score")


def _isin(s: pd.Series, values: pd.Series) -> np.ndarray:
    """``s.isin(values)`` through Arrow's hash set: pandas turns every value of an Arrow
    string column into a Python object first (190,000 spell ids: 2.2 s -> 0.07 s)."""
    a, v = pa.array(s, from_pandas=True), pa.array(values, from_pandas=True)
    if v.type != a.type:
        v = v.cast(a.type)
    return np.asarray(pc.is_in(a, value_set=v).fill_null(False), dtype=bool)


def review_frame(progress: pd.DataFrame, trajectories: pd.DataFrame,
                 pm: pd.DataFrame | None, measure: str, t_start: int,
                 panel: str | Path | None = None, con=None,
                 threads: int | None = None) -> pd.DataFrame:
    """Outcome reviews of ``measure`` with the covariates of their month and the interval
    means of quality (module notes). Column ``exit_progress`` is the outcome (0/1 for
    ``ladder_step`` and 0/1 measures; the value otherwise).

    ``panel``: the path of the panel's Parquet file (``progress_stream``; ``con`` a DuckDB
    connection to use, else one of ``threads`` threads) so that the panel is never held
    whole: the interval means come from a pass over it, and so do the reviews'
    person-months when ``pm`` is None (else ``pm`` need hold only those, as
    ``progress_stream.review_months`` gives them). The same frame."""
    p = progress[progress["measure"].astype(str) == measure]
    if p.empty:
        return pd.DataFrame()
    r = spell_months(p, trajectories)
    own = pm is None  # the review months read here: their columns freed once gathered
    if own:
        from impact.heterogeneity.progress_stream import review_months

        # (on a connection of its own unless ``con`` is given: closed, with what DuckDB
        # keeps of the result, before the reviews are made)
        pm = review_months(panel, r["client_id"], r["t"], con=con, threads=threads)
        release_memory()
    # each review's person-month (by client and month); the reviews in (spell, month)
    # order, those with an interval kept, and only then every person-month column
    # gathered, once (sorting and filtering the wide frame copied it twice: 2.4 GB at
    # national size)
    pos = _person_month_rows(r, pm)
    hit = pos >= 0
    r, pos = r[hit].reset_index(drop=True), pos[hit]
    if r.empty:
        return _gather(r, pm, pos)
    spell, _ = pd.factorize(pm["spell_id"].array.take(pos), sort=True)
    spell = np.where(spell < 0, spell.max(initial=-1) + 1, spell)  # a missing id last
    t = r["t"].to_numpy(dtype="int64")
    t0 = int(t.min()) if len(t) else 0
    order = np.argsort(spell.astype("int64") * (int(t.max(initial=0)) - t0 + 1) + (t - t0),
                       kind="stable")  # = sort_values(["spell_id", "t"], kind="stable")
    at = pos[order]
    first = r["first"].to_numpy()[order]
    start = t[order] - pm["duration"].to_numpy(dtype="int64")[at]
    new_spell = pm["left_truncated"].array.take(at).astype(int) == 0
    prev_v = r["prev_v"].to_numpy(dtype="float64")[order]
    value = r["value"].to_numpy(dtype="float64")[order]
    if measure == "ladder_step":
        intake = pd.to_numeric(pd.Series(pm["ladder_step"].array.take(at)),
                               errors="coerce").to_numpy(dtype="float64")
        base_v = np.where(first, np.where(new_spell, intake, np.nan), prev_v)
    else:
        base_v = np.where(first, np.where(new_spell, 0.0, np.nan), prev_v)
    base_t = np.where(first, start - 1, r["prev_t"].to_numpy(dtype="float64")[order])
    ok = np.isfinite(base_v) & (t[order] >= t_start)
    if measure == "ladder_step":
        ok &= base_v < TOP_STEP
        y = (value > base_v).astype("float64")
    else:
        y = value
    keep = order[ok]
    r = _gather(r.drop(columns=["prev_t", "prev_v", "first"]).iloc[keep]
                .reset_index(drop=True), pm, pos[keep], consume=own)
    if panel is not None:  # the review months (read here when pm is None): freed
        del pm, pos, at      # before the pass over the file for the means
        release_memory()
    r["base_t"] = base_t[ok]
    r["base_value"] = base_v[ok]
    r["exit_progress"] = y[ok]
    # interval means of quality: each person-month goes to the first review of its spell
    # at or after it; it counts when it lies after that review's baseline month
    rk = r[["spell_id", "t", "base_t"]].rename(columns={"t": "t_review"})
    if panel is not None:  # the means of each review, in r's order: no merge copies r
        from impact.heterogeneity.progress_stream import interval_means

        means = interval_means(panel, rk)
        # (the review months from the file come without quality columns)
        r = r.drop(columns=["quality_a", "quality_b", "quality_score"], errors="ignore")
        for c in ("quality_a", "quality_b", "quality_score"):
            r[c] = means[c].to_numpy()
        return r
    else:
        q = pm[["spell_id", "t", "quality_a", "quality_b", "quality_score"]].copy()
        q = q[q["quality_a"].notna() & q["quality_b"].notna()]
        q = q[_isin(q["spell_id"], r["spell_id"])]
        q["t"] = q["t"].astype("int64")
        q = pd.merge_asof(q.sort_values("t"), rk.sort_values("t_review"), left_on="t",
                          right_on="t_review", by="spell_id", direction="forward")
        q = q[q["t_review"].notna() & (q["t"] > q["base_t"])]
        means = q.groupby(["spell_id", "t_review"])[["quality_a", "quality_b",
                                                      "quality_score"]].mean()
    r = r.drop(columns=["quality_a", "quality_b", "quality_score"]).merge(
        means, left_on=["spell_id", "t"], right_index=True, how="left")
    return r


def _review_frame(progress, trajectories, pm, measure, t_start, panel, threads):
    """``review_frame`` (DuckDB with ``threads`` threads for the file), then what it
    freed given back to the system."""
    r = review_frame(progress, trajectories, pm, measure, t_start, panel, threads=threads)
    if panel is not None:
        release_memory()
    return r


def _person_month_rows(r: pd.DataFrame, pm: pd.DataFrame) -> np.ndarray:
    """Row of ``pm`` holding each review's (client, month); -1 for none. Found by a lookup
    on integer keys (a merge on the string keys copied every person-month first: about
    2 s per measure at 2.9 million)."""
    pm_client, uniq = pd.factorize(pm["client_id"].astype("string"))
    t_pm = pm["t"].to_numpy(dtype="int64")
    t0 = int(t_pm.min()) if len(t_pm) else 0
    span = int(t_pm.max()) - t0 + 1 if len(t_pm) else 1
    keys = pd.Index(pm_client.astype("int64") * span + (t_pm - t0))
    if not keys.is_unique:
        raise ValueError("person_months has two rows of one client in one month")
    # an Arrow hash lookup (pandas' get_indexer on text: 4 times slower for millions)
    rc = np.asarray(pc.index_in(text_array(r["client_id"]), value_set=text_array(uniq),
                                skip_nulls=True).fill_null(-1), dtype=np.int64)
    rt = r["t"].to_numpy(dtype="int64")
    inside = (rc >= 0) & (rt >= t0) & (rt < t0 + span)
    pos = np.full(len(r), -1)
    pos[inside] = keys.get_indexer(rc[inside].astype("int64") * span + (rt[inside] - t0))
    return pos


def _gather(out: pd.DataFrame, pm: pd.DataFrame, idx: np.ndarray,
            consume: bool = False) -> pd.DataFrame:
    """``out`` (rows aligned with ``idx``) with the columns of the person-months ``idx``
    of ``pm`` that ``review_frame`` uses, gathered column by column into it (``pm[cols]``
    copied every review month's columns first and ``concat`` the result again).
    ``consume``: each column is taken out of ``pm`` as it is gathered, so that the two
    frames are not held whole at once (with ``review_months``' frame, whose columns are
    blocks of their own, 3.4 GB at national size)."""
    cols = [c for c in _PM_COLS if c in pm and c not in ("client_id", "t")]
    cols += [c for c in pm.columns if c.startswith("lm_")]
    for c in cols:
        out[c] = (pm.pop(c) if consume else pm[c]).array.take(idx)
    return out


def _with_person_month(r: pd.DataFrame, pm: pd.DataFrame) -> pd.DataFrame:
    """The reviews ``r`` that fall in a person-month of their client, with that
    person-month's columns: the inner join on (client, month), ``r``'s order kept."""
    pos = _person_month_rows(r, pm)
    hit = pos >= 0
    return _gather(r[hit].reset_index(drop=True), pm, pos[hit])


def progress_effects(progress: pd.DataFrame | None, trajectories: pd.DataFrame,
                     pm: pd.DataFrame | None, adoption: pd.DataFrame | None,
                     shocks: pd.DataFrame | None, params: EstimateParams, t_start: int,
                     min_cell: int, blocks: tuple[str, ...] = ("quality", "adoption"),
                     panel: str | Path | None = None, threads: int | None = None
                     ) -> pd.DataFrame:
    """Quality and programme effects on every measure of ``progress`` (module notes).

    ``panel``: the path of the panel's Parquet file, read so that ``pm`` may be None
    (``progress_stream``, ``threads`` DuckDB threads): per measure, one DuckDB query for
    the person-months of its reviews (when ``pm`` is None; freed once gathered) and one
    pass in batches for the interval means. The same table, in memory the size of the
    largest measure's reviews."""
    rows: list[dict] = []
    if progress is None or progress.empty:
        return pd.DataFrame(columns=list(PROGRESS_COLUMNS))
    # with the file, each measure's review months are read by its review_frame and freed
    # once gathered, so that the months of every measure (3.4 GB in memory at national
    # size) are not held beside the largest measure's reviews (2.6 GB) and its means: the
    # part's peak 10.5 -> 7.6 GB, its time 192 -> 182 s (one query per measure, but the
    # queries read two columns, `review_months`)
    for measure in sorted(progress["measure"].astype(str).unique()):
        r = _review_frame(progress, trajectories, pm, measure, t_start, panel, threads)
        if r.empty:
            warn(f"progress: no outcome review of {measure!r} (reviews must fall in months "
                 "the spell is at risk, with a baseline)")
            continue
        outcome = "ladder_step_up" if measure == "ladder_step" else measure
        binary = bool(np.isin(r["exit_progress"].unique(), [0.0, 1.0]).all())
        if not binary:  # quality_frame scales outcomes by 100 (pp): undo for levels
            r["exit_progress"] = r["exit_progress"] / 100.0
        scale = 1.0 if binary else 100.0
        common = dict(measure=measure, outcome=outcome, unit="pp" if binary else "value",
                      n_reviews=len(r),
                      n_clients=int(r["client_id"].nunique()),
                      n_events=float(r["exit_progress"].sum() * scale) if binary else np.nan,
                      mean_outcome=float(r["exit_progress"].mean() * (100.0 if binary else scale)))
        if "quality" in blocks:
            rows.append({**common, **_quality(r, params, measure, sums=panel is not None)})
        if "adoption" in blocks and adoption is not None:
            rows.append({**common, **_adoption(r, adoption, shocks, params)})
        # freed before the next measure's frame is made, not when it replaces this one
        # (at national size one measure's reviews are about 3 GB)
        del r
        release_memory()
    out = pd.DataFrame(rows, columns=list(PROGRESS_COLUMNS))
    small = (out["n_clients"] < min_cell) | (out["n_events"].fillna(min_cell) < min_cell)
    out["published"] = ~small & out["estimate"].notna()
    # the table is published as it is: what rests on too few clients or events is blanked
    blank = ["estimate", "std_error", "ci_low", "ci_high", "p_value", "n_reviews",
             "n_clients", "n_events", "mean_outcome"]
    out[blank] = out[blank].astype("float64")
    out.loc[~out["published"], blank] = np.nan
    return out


class _BaseSteps:
    """The dummies of the step at the baseline (all but the lowest of ``steps``), made per
    slice of the reviews (``quality_grams(extra=)``)."""

    def __init__(self, steps: np.ndarray) -> None:
        self.steps = steps

    def __call__(self, s: pd.DataFrame) -> dict[str, np.ndarray]:
        b = s["base_value"].to_numpy(dtype="float64")
        return {f"base_step#{int(v)}": (b == v).astype("float64") for v in self.steps[1:]}


def _quality(r: pd.DataFrame, params: EstimateParams, measure: str,
             sums: bool = False, batch_rows: int | None = None) -> dict:
    """The 2SLS on the outcome reviews ``r``; ``sums``: from the cluster Gram blocks summed
    over slices of the reviews (``quality_stream.quality_grams`` of the frame), so that the
    reviews' n x k matrix is never made (9.9 million reviews at national scale: about
    5 GB; ``batch_rows`` reviews a slice); else from that matrix, as
    ``quality.estimate_quality`` does. The same fit."""
    # the step a client starts the interval from is a control for the step up: past
    # quality raised it, and a higher step is harder to leave (an omitted lagged level
    # would bias the effect of the persistent quality of a caseworker downwards)
    steps = (np.unique(r["base_value"].to_numpy()) if measure == "ladder_step"
             else np.empty(0))
    outcomes = {"y": "exit_progress"}
    if sums:
        from impact.estimate.cgram import fit_pm_grams
        from impact.estimate.quality_stream import BATCH_ROWS, quality_grams

        q = quality_grams(r, params, "all", outcomes=outcomes, extra_reads=["base_value"],
                          extra=(lambda: _BaseSteps(steps)) if len(steps) > 1 else None,
                          batch_rows=batch_rows or BATCH_ROWS)
        if q is None:
            return {"block": "quality", "estimate": np.nan}
        fit = fit_pm_grams(q.grams, q.names, "y", "quality_a", q.exog + q.extra,
                           "quality_b", q.df_fe)
    else:
        extra = _BaseSteps(steps)(r) if len(steps) > 1 else {}
        A, names, exog, cells, code, cl = quality_frame(r, params, extra=extra,
                                                        outcomes=outcomes)
        if len(A) == 0:
            return {"block": "quality", "estimate": np.nan}
        _, fe, df_fe = fixed_effects(cells, int(pd.Series(cl).nunique()), params)
        cell_demean(A, cells, code, fe)
        fit = fit_pm(A, names, "y", "quality_a", exog + list(extra), "quality_b", cl, df_fe)
    inf = t_inference(fit.coef, fit.se, fit.n_clusters - 1, params.estimate.alpha)
    return {"block": "quality", "estimate": fit.coef, "std_error": fit.se,
            "ci_low": inf["ci_low"], "ci_high": inf["ci_high"], "p_value": inf["p_value"],
            "n_clusters": fit.n_clusters,
            "estimator": "2SLS on outcome reviews: interval-mean quality_a ~ quality_b; "
                         "headline controls and fixed effects"}


def _adoption(r: pd.DataFrame, adoption: pd.DataFrame, shocks: pd.DataFrame | None,
              params: EstimateParams) -> dict:
    r = r.assign(exit_progress=r["exit_progress"] * 1.0)
    cells = adoption_cells(None, r, adoption, params.adoption.programme, by={},
                           counts=("exit_progress",))
    if cells is None:
        return {"block": "adoption", "estimate": np.nan}
    prep = impute_adoption(cells, shock_events(shocks, params.shock.type), params,
                           events_col="exits_progress")
    imp = prep.imputation
    if imp is None or not prep.treated[imp.idx1].any():
        return {"block": "adoption", "estimate": np.nan}
    tr1, p1 = prep.treated[imp.idx1], prep.p[imp.idx1]
    est, S = aggregate(imp, np.where(tr1, p1, 0.0)[:, None], prep.rel[imp.idx1].astype(int))
    se = float(np.sqrt((S[:, 0] ** 2).sum()))
    G = imp.n_clusters
    inf = t_inference(float(est[0]), se, G - 1, params.estimate.alpha)
    return {"block": "adoption", "estimate": float(est[0]), "std_error": se,
            "ci_low": inf["ci_low"], "ci_high": inf["ci_high"], "p_value": inf["p_value"],
            "n_clusters": G,
            "estimator": "imputation (BJS 2024) on unit x month cells of outcome reviews; "
                         "review-weighted ATT"}
