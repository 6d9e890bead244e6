"""What works for whom: group effects of quality and of the programme, with their tests.

For every block (quality, adoption), outcome (exit to work, to education, any exit) and
pre-specified dimension the group effects come from one interaction model
(``heterogeneity.quality``, ``heterogeneity.adoption``). Then, per block and outcome:

- **Disclosure**: a group is published only when at least ``privacy.min_cell`` distinct
  clients and ``min_cell`` events (exits of that outcome) stand behind it; unpublished
  groups are left out of everything below.
- **Do effects differ at all?** Per dimension, the cluster-robust Wald test that all
  its group effects are equal, with Hotelling's T² reference distribution
  (``multiplicity.equality_test(..., hotelling=True)``), which holds its size with few
  clusters where F(H-1, G-1) does not.
- **Multiple testing**: adjusted p-values of "no effect in this group", the family being
  every published group of every dimension of that block and outcome. Quality:
  Romano-Wolf step-down on wild cluster restricted bootstrap draws, re-studentised, with
  the same cluster weights in every dimension's model (``heterogeneity.wcr``; the plain
  multiplier bootstrap of the scores over-rejects with few clusters). Programme:
  Romano-Wolf step-down on multiplier draws of the BJS cluster scores with the same
  cluster weights, the observed statistics calibrated to t(G-1)
  (``heterogeneity.adoption.multiplier_draws``, where its Monte Carlo is quoted). Without
  joint draws (a model cluster with no weight), Holm's step-down on the t(G-1) p-values.
- **Shrinkage**: per dimension, empirical-Bayes shrinkage of the group effects towards
  the pooled effect of the same model (``multiplicity.shrink_to_overall``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from impact import io
from impact.estimate.multiplicity import equality_test, max_t_adjust, shrink_to_overall
from impact.estimate.params import EstimateParams
from impact.estimate.results import t_inference
from impact.heterogeneity.incidence_groups import (  # noqa: F401 (re-exported)
    INCIDENCE_COLUMNS, SPELL_CONSTANT, incidence_by_group)
from impact.heterogeneity.adoption import (
    adoption_by_group, group_fits_adoption, unit_rows_for)
from impact.heterogeneity.params import OUTCOMES, HeterogeneityParams
from impact.heterogeneity.quality import (
    GroupEstimates, spare_columns, quality_base, quality_by_group)
from impact.heterogeneity.wcr import wcr_weights

__all__ = ["GROUP_COLUMNS", "TEST_COLUMNS", "HeterogeneityResult", "analyse", "estimate_groups",
           "group_tables", "publication_view"]

#: columns of the group-effects table
GROUP_COLUMNS = (
    "block", "outcome", "dimension", "group", "estimate", "std_error", "ci_low", "ci_high",
    "p_value", "p_adjusted", "adjustment", "shrunk", "shrunk_sd", "reliability", "overall",
    "overall_std_error", "n_clients", "n_person_months", "n_events", "published",
    "n_clusters", "estimator",
)
#: columns of the heterogeneity-test table
TEST_COLUMNS = (
    "block", "outcome", "dimension", "n_groups", "statistic", "df_num", "df_den", "p_value",
    "tau2", "overall", "overall_std_error",
)


def estimate_groups(pm: pd.DataFrame | None, adoption: pd.DataFrame | None,
                    shocks: pd.DataFrame | None, params: EstimateParams,
                    het: HeterogeneityParams,
                    progress: Callable[[str], None] | None = None,
                    panel: str | Path | None = None,
                    quality_sums: Callable[[], object] | None = None
                    ) -> list[GroupEstimates]:
    """Every block x outcome x dimension's group estimates (outcomes absent from the
    panel, e.g. ``exit_education`` in an old panel, are skipped). ``panel``: the panel's
    Parquet file (of ``pm``'s rows, which are then not read and may be None): the quality
    models come from one pass over it in batches (``heterogeneity.stream``) and the
    programme's group cells from another (``heterogeneity.adoption_stream``), the same
    numbers, instead of from matrices and frames of every sample person-month.
    ``quality_sums``: returns the quality models' sums made by another pass
    (``stream.GroupSums``: the data-driven check's first pass shares them, ``analyse``),
    or None, when they were not made: then the models' own pass runs. Called after the
    programme's pass, so the other pass has had that long."""
    outcomes = _outcomes(het, io.parquet_columns(panel) if panel is not None else pm.columns)
    out: list[GroupEstimates] = []
    # one set of cluster weights for every quality model: the family of a block and
    # outcome is adjusted jointly across dimensions (``_romano_wolf``)
    if panel is not None:
        from impact.heterogeneity.stream import cluster_labels_file

        labels = cluster_labels_file(panel, params)
    else:
        labels = _cluster_labels(pm, params)
    wcr = wcr_weights(labels, B=het.draws, weights=het.weights, seed=params.seed)
    streamed: dict[str, list[GroupEstimates]] | None = None
    base = None
    if "quality" in het.blocks and panel is not None:
        streamed = {}
    elif "quality" in het.blocks:
        # the headline quality matrix, demeaned once for every dimension's model
        base = quality_base(pm, params, outcomes, spare_columns(het.groups))
    rows = cells = None
    if "adoption" in het.blocks and adoption is not None and panel is not None:
        from impact.heterogeneity.adoption_stream import group_cells_file

        if progress:
            progress("the programme's group cells of every dimension, one pass over the file")
        cells = group_cells_file(panel, adoption, params, het.groups, outcomes) or {}
    elif "adoption" in het.blocks:
        # the person-month frame of the programme's group cells, once for every dimension
        rows = unit_rows_for(pm, adoption, params, outcomes)
    if streamed is not None:
        from impact.heterogeneity.stream import quality_groups_file

        sums = quality_sums() if quality_sums is not None else None
        if progress:
            progress("quality models of every dimension, " + (
                "one pass over the panel file" if sums is None
                else "from the data-driven check's first pass"))
        for ge in quality_groups_file(panel, params, het.groups, outcomes, wcr=wcr,
                                      sums=sums):
            streamed.setdefault(ge.dimension, []).append(ge)
    for dim in het.groups:
        if progress:
            progress(dim.name)
        if streamed is not None:
            out += streamed.get(dim.name, [])
        elif base is not None:
            out += quality_by_group(pm, params, dim, outcomes, wcr=wcr, base=base)
        if cells is not None:
            if dim.name in cells:
                out += group_fits_adoption(*cells[dim.name], shocks, params, dim, outcomes,
                                           wcr=wcr)
        elif "adoption" in het.blocks:
            out += adoption_by_group(pm, adoption, shocks, params, dim, outcomes, wcr=wcr,
                                     rows=rows)
    return out


def _outcomes(het: HeterogeneityParams, columns) -> dict[str, str]:
    """The outcomes asked for whose column the panel has (name -> column)."""
    return {o: OUTCOMES[o] for o in het.outcomes if OUTCOMES[o] in set(columns)}


def _cluster_labels(pm: pd.DataFrame, params: EstimateParams) -> np.ndarray:
    """Every cluster label the quality models can use (``estimate.cluster``; caseworkers
    when the data hold one municipality, as ``quality.quality_frame`` falls back to)."""
    col = "region" if params.estimate.cluster == "region" else "municipality"
    labels = pd.unique(pm[col].astype(str))
    if len(labels) < 2:
        labels = pd.unique(pm["caseworker_key"].dropna().astype(str))
    return np.sort(np.asarray(labels, dtype=object))


def _published(ge: GroupEstimates, min_cell: int) -> np.ndarray:
    return (np.isfinite(ge.estimate) & np.isfinite(ge.se) & (ge.n_clients >= min_cell)
            & (ge.n_events >= min_cell))


def group_tables(results: list[GroupEstimates], *, min_cell: int, alpha: float
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(group effects, heterogeneity tests) from the estimates: see the module notes.

    The group table holds every group with its internal counts and a ``published`` flag;
    the publication copy (``publication_view``) blanks what is not published.
    """
    rows, tests = [], []
    families: dict[tuple[str, str], list[tuple[GroupEstimates, np.ndarray]]] = {}
    for ge in results:
        pub = _published(ge, min_cell)
        families.setdefault((ge.block, ge.outcome), []).append((ge, pub))
    for (block, outcome), members in families.items():
        if all(ge.t_boot is not None for ge, _ in members):
            rw, method = _romano_wolf(members), "romano_wolf"
        else:  # no joint draws (a model's cluster without weights): Holm, valid always
            rw, method = _holm(members, lambda ge: ge.n_clusters - 1), "holm"
        for ge, pub in members:
            df = ge.n_clusters - 1
            est, se = ge.estimate[pub], ge.se[pub]
            V = ge.scores[:, pub].T @ ge.scores[:, pub]
            wt = equality_test(est, V, df, hotelling=True)
            shr = (shrink_to_overall(est, se, ge.overall, ge.overall_se)
                   if pub.sum() >= 2 else None)
            tests.append({
                "block": block, "outcome": outcome, "dimension": ge.dimension,
                "n_groups": int(pub.sum()), "statistic": wt.statistic, "df_num": wt.df_num,
                "df_den": wt.df_den, "p_value": wt.p_value,
                "tau2": shr.tau2 if shr else np.nan, "overall": ge.overall,
                "overall_std_error": ge.overall_se})
            k = 0
            for h, label in enumerate(ge.labels):
                inf = t_inference(float(ge.estimate[h]), float(ge.se[h]), df, alpha)
                r = {"block": block, "outcome": outcome, "dimension": ge.dimension,
                     "group": label, "estimate": ge.estimate[h], "std_error": ge.se[h],
                     "ci_low": inf["ci_low"], "ci_high": inf["ci_high"],
                     "p_value": inf["p_value"],
                     "p_adjusted": rw.get((ge.dimension, label), np.nan),
                     "adjustment": method,
                     "shrunk": np.nan, "shrunk_sd": np.nan, "reliability": np.nan,
                     "overall": ge.overall, "overall_std_error": ge.overall_se,
                     "n_clients": int(ge.n_clients[h]),
                     "n_person_months": int(ge.n_person_months[h]),
                     "n_events": int(ge.n_events[h]), "published": bool(pub[h]),
                     "n_clusters": ge.n_clusters, "estimator": ge.estimator}
                if pub[h]:
                    if shr is not None:
                        r.update(shrunk=shr.shrunk[k], shrunk_sd=shr.posterior_sd[k],
                                 reliability=shr.reliability[k])
                    k += 1
                rows.append(r)
    groups = pd.DataFrame(rows, columns=list(GROUP_COLUMNS))
    return groups, pd.DataFrame(tests, columns=list(TEST_COLUMNS))


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's (1979) step-down adjusted p-values: valid family-wise error control under
    any dependence between the tests."""
    p = np.asarray(p, dtype="float64")
    order = np.argsort(p, kind="stable")
    m = len(p)
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def _holm(members, df_of) -> dict[tuple[str, str], float]:
    keys, pv = [], []
    for ge, pub in members:
        for h in np.flatnonzero(pub):
            inf = t_inference(float(ge.estimate[h]), float(ge.se[h]), df_of(ge), 0.05)
            keys.append((ge.dimension, ge.labels[h]))
            pv.append(inf["p_value"])
    return dict(zip(keys, holm(np.asarray(pv)))) if keys else {}


def _romano_wolf(members) -> dict[tuple[str, str], float]:
    """Romano-Wolf step-down adjusted p-values over every published group of a family,
    from the wild cluster restricted bootstrap draws of each model (the same cluster
    weights in every model, so the columns are joint draws; ``multiplicity.max_t_adjust``)."""
    t, T, keys, enumerated = [], [], [], False
    for ge, pub in members:
        if ge.t_boot is None:
            continue
        enumerated = ge.enumerated
        for h in np.flatnonzero(pub):
            t.append(ge.t_stat[h])
            T.append(ge.t_boot[:, h])
            keys.append((ge.dimension, ge.labels[h]))
    if not keys:
        return {}
    Tm = np.column_stack(T)
    ok = np.isfinite(Tm).all(axis=1)  # a draw with a zero bootstrap SE has no t
    p = max_t_adjust(np.asarray(t), Tm[ok], stepdown=True, plus_one=not enumerated)
    return dict(zip(keys, p))


def publication_view(groups: pd.DataFrame) -> pd.DataFrame:
    """The group table as published: unpublished groups keep their label and 'not
    published' but no statistic and no count."""
    out = groups.drop(columns=["n_person_months", "n_events"]).copy()
    stats = [c for c in out.columns if c not in ("block", "outcome", "dimension", "group",
                                                 "published", "estimator", "adjustment", "overall",
                                                 "overall_std_error", "n_clusters")]
    out.loc[~out["published"], stats] = np.nan
    out["n_clients"] = out["n_clients"].astype("Float64")
    return out


def _progress_part(progress_table, trajectories, adoption, shocks, params: EstimateParams,
                   t_start: int, min_cell: int, blocks: tuple[str, ...], panel,
                   pm: pd.DataFrame | None = None,
                   say: Callable[[str], None] = lambda msg: None) -> pd.DataFrame:
    """Effects on intermediate results (``progress.progress_effects``; empty without a
    ``progress`` table or trajectories). The two tables may be given as the Parquet files
    of the validated tables: they are then read here and freed after, not held through
    the stage's other parts (20 million reviews at national scale)."""
    from impact.heterogeneity.progress import PROGRESS_COLUMNS, progress_effects

    if progress_table is None or trajectories is None:
        return pd.DataFrame(columns=list(PROGRESS_COLUMNS))
    if isinstance(progress_table, (str, Path)):
        progress_table = io.read_parquet(progress_table, dates=True)
    if isinstance(trajectories, (str, Path)):
        trajectories = io.read_parquet(trajectories)
    say("intermediate results (progress)")
    return progress_effects(progress_table, trajectories, pm, adoption, shocks, params,
                            t_start, min_cell, blocks, panel=panel)


@dataclass(frozen=True)
class HeterogeneityResult:
    """Tables of the ``heterogeneity`` stage.

    ``groups`` every group with internal counts and the ``published`` flag (internal);
    ``groups_published`` the publication view; ``tests`` the equality tests;
    ``incidence`` cumulative incidence by group, disclosure-controlled; ``progress``
    effects on intermediate results (empty without a ``progress`` table); ``cddf`` the
    data-driven check's tables (empty dict when off); ``meta`` counts and settings.
    """

    groups: pd.DataFrame
    groups_published: pd.DataFrame
    tests: pd.DataFrame
    incidence: pd.DataFrame
    progress: pd.DataFrame
    cddf: dict
    meta: dict


def analyse(pm: pd.DataFrame | None, *, trajectories: pd.DataFrame | Path | None,
            adoption: pd.DataFrame | None, shocks: pd.DataFrame | None,
            progress_table: pd.DataFrame | Path | None, params: EstimateParams,
            het: HeterogeneityParams, min_cell: int, t_start: int,
            log: Callable[[str], None] | None = None,
            panel: str | Path | None = None, workers: int = 1) -> HeterogeneityResult:
    """The whole heterogeneity analysis (module notes): group effects and their tests,
    cumulative incidence of the competing exits by group, effects on intermediate
    results, and the data-driven check. ``panel``: the panel's Parquet file (of ``pm``'s
    rows), read in batches and by DuckDB by every part; ``pm`` is then not read and may be
    None (the stage's way: memory bounded by a batch, not the panel). ``trajectories`` and
    ``progress_table``: frames, or the validated tables' Parquet files, read where the
    intermediate results are made (``_progress_part``). ``workers`` > 1 with ``panel``: a
    second process makes the quality check (without a quality block, the programme's)
    and the cumulative incidence meanwhile (``check_process``); the same tables, as every
    part is deterministic and reads only files."""
    from concurrent.futures import ProcessPoolExecutor

    from impact.heterogeneity.check_process import (
        CHECK_BLOCKS, _cddf_in_worker, _cddf_views, _receiver, _share_init)

    say = log or (lambda msg: None)
    with_adoption = adoption is not None
    pool = job = sums = None
    mine: tuple[str, ...] = CHECK_BLOCKS      # the check's blocks made in this process
    # from the file when there is one (``pm`` then stays here, not pickled for the worker)
    incidence_args = (None if panel is not None else pm, het, params.estimate.alpha,
                      min_cell, panel)
    if het.cddf_splits > 0 and panel is not None and workers > 1:
        import multiprocessing

        outcomes = _outcomes(het, io.parquet_columns(panel))
        # the group quality models' sums come from the check's first pass (one pass over
        # the file fewer): a pipe to the worker, read by a thread here (``_receiver``)
        recv_end = send_end = None
        if "quality" in het.blocks:
            recv_end, send_end = multiprocessing.Pipe(duplex=False)
        pool = ProcessPoolExecutor(max_workers=1, initializer=_share_init,
                                   initargs=(send_end,))
        theirs = ("quality",) if "quality" in het.blocks else ("adoption",)
        mine = tuple(b for b in CHECK_BLOCKS if b not in theirs)
        job = pool.submit(_cddf_in_worker,
                          (panel, params, het, min_cell, with_adoption, outcomes, theirs,
                           (incidence_by_group, incidence_args)))
        # the worker exits as soon as its parts are done: its memory is not held while
        # this process goes on
        pool.shutdown(wait=False)
        if send_end is not None:
            send_end.close()   # the worker's copy is the only one left: EOF if it dies
            sums = _receiver(recv_end)
        say("data-driven check started in a second process")
    try:
        views = []
        if job is not None:   # meanwhile the quality check's first pass makes the sums
            views = _cddf_views(pm, panel, params, het, min_cell, with_adoption, say, mine)
        prog = _progress_part(progress_table, trajectories, adoption, shocks, params,
                              t_start, min_cell, het.blocks, panel, pm=pm, say=say)
        if job is None:
            say("cumulative incidence")
            incidence = incidence_by_group(*incidence_args)
        results = estimate_groups(pm, adoption, shocks, params, het,
                                  progress=lambda d: say(f"group effects: {d}"), panel=panel,
                                  quality_sums=sums)
        groups, tests = group_tables(results, min_cell=min_cell, alpha=params.estimate.alpha)
        if job is not None:
            say("waiting for the data-driven check and the cumulative incidence")
            theirs_views, incidence = job.result()
            views += theirs_views
        elif het.cddf_splits > 0:
            views = _cddf_views(pm, panel, params, het, min_cell, with_adoption, say)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    views.sort(key=lambda v: CHECK_BLOCKS.index(v[0]))
    cddf: dict = {}
    for name in ("blp", "gates", "clan"):
        parts = ([v[name].assign(block=b) for b, v in views if len(v[name])]
                 or [v[name].assign(block=b) for b, v in views[:1]])
        if parts:  # empty tables keep their columns
            t = pd.concat(parts, ignore_index=True)
            cddf[name] = t[["block"] + [c for c in t.columns if c != "block"]]
    n_pm = len(pm) if pm is not None else pq.ParquetFile(panel).metadata.num_rows
    meta = {"n_person_months": int(n_pm), "min_cell": min_cell,
            "dimensions": [d.name for d in het.groups], "outcomes": list(het.outcomes),
            "blocks": list(het.blocks), "draws": het.draws, "weights": het.weights,
            "n_group_rows": int(len(groups)), "n_published": int(groups["published"].sum())
            if len(groups) else 0}
    return HeterogeneityResult(groups, publication_view(groups), tests, incidence, prog,
                               cddf, meta)
