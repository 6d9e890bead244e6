"""The quality effect per client group: the headline 2SLS with group interactions.

Notes
-----
For one dimension with groups h = 1..H (indicators D_h), on the headline's sample
(person-months whose caseworker is measured twice) and with its controls, fixed effects
and clustering (``estimate.quality.quality_frame``; region x month and municipality
effects projected out by cell):

    100 y_it = sum_h beta_h (q^a_it D_h,it) + sum_{h>1} delta_h D_h,it + x_it'g + FE + u,

each ``q^a D_h`` instrumented by ``q^b D_h`` (the other half of the caseworker's
measurements, as in the headline), so beta_h is the errors-in-variables-corrected quality
effect in group h and the group main effects keep groups' different exit rates out of it.
One joint model per dimension gives the (G x H) cluster scores of all beta_h
(``pmreg.fit_pm_multi``), hence their joint covariance: the equality test, the
Romano-Wolf adjustment and the shrinkage all use it. Person-months in no group of the
dimension (e.g. an unrecorded ladder step) form a group of their own, with its own slope
and main effect, which is not reported: every dimension's model then has the headline's
sample, so the matrix is built and demeaned once (``quality_base``) and each dimension
only adds and demeans its interaction columns (with ``pmreg.cell_demean``, which is
linear: demeaning the added columns alone is demeaning the whole matrix).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from impact.estimate.frames import EstimationWarning
from impact.estimate.params import EstimateParams
from impact.estimate.cgram import ClusterGrams, cluster_grams, fit_pm_grams, fit_pm_multi_grams
from impact.estimate.pmreg import cell_demean, cluster_codes, fe_df
from impact.estimate.quality import quality_frame
from impact.heterogeneity.params import GroupDimension
from impact.heterogeneity.wcr import CellFE, wcr_draws

__all__ = ["GroupEstimates", "QualityBase", "group_fits", "quality_base", "quality_by_group",
           "spare_columns"]


@dataclass(frozen=True)
class GroupEstimates:
    """Per-group effects of one block, outcome and dimension.

    ``estimate``, ``scores`` (G x H, ``V = scores.T @ scores``) in the order of
    ``labels``; ``overall``/``overall_se`` the pooled effect on the same sample;
    ``n_person_months``, ``n_clients``, ``n_events`` per group (internal counts, for
    disclosure control); intervals use t(G - 1), G = ``n_clusters``.
    """

    block: str
    outcome: str
    dimension: str
    labels: tuple[str, ...]
    estimate: np.ndarray
    scores: np.ndarray
    overall: float
    overall_se: float
    n_person_months: np.ndarray
    n_clients: np.ndarray
    n_events: np.ndarray
    n_clusters: int
    estimator: str
    #: cluster label of each row of ``scores`` (to stack scores of several models)
    clusters: np.ndarray
    #: observed t of "no effect" and its wild cluster restricted bootstrap draws (B x H,
    #: shared cluster weights across models), when asked for (``heterogeneity.wcr``)
    t_stat: np.ndarray | None = None
    t_boot: np.ndarray | None = None
    enumerated: bool = False

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.einsum("gh,gh->h", self.scores, self.scores))


def _group_counts(codes: np.ndarray, clients: np.ndarray, H: int):
    """Person-months and distinct clients per group (codes 0..H-1; others left out)."""
    ok = (codes >= 0) & (codes < H)
    pm = np.bincount(codes[ok], minlength=H)
    cl = pd.DataFrame({"g": codes[ok], "c": clients[ok]}).drop_duplicates()
    nc = np.bincount(cl["g"].to_numpy(), minlength=H)
    return pm, nc


@dataclass(frozen=True)
class QualityBase:
    """The headline quality matrix with its fixed effects projected out, built once for
    every dimension (``quality_base``).

    ``A`` (n x at least k + spare), column-major: the first k columns (``names``) are the
    outcomes, the quality columns and the controls, already demeaned; the columns after
    them are overwritten by each dimension's interactions. ``gram`` is
    the (k x k) Gram matrix of the first k columns. ``rows`` maps each row of A to its
    row of the person-month frame; ``clients`` codes its client; ``events`` holds the
    0/1 outcomes per outcome name. The rows are sorted by cluster, and ``grams`` holds
    the cluster blocks of the Gram matrix of the first k columns with their cell x
    cluster pair sums (``cgram.cluster_grams``).
    """

    A: np.ndarray
    k: int
    names: list[str]
    exog: list[str]
    gram: np.ndarray
    cells: pd.DataFrame
    code: np.ndarray
    clusters: np.ndarray
    df_fe: int
    fe: tuple[str, ...]
    rows: np.ndarray
    clients: np.ndarray
    events: dict[str, np.ndarray]
    grams: ClusterGrams


def quality_base(pm: pd.DataFrame, params: EstimateParams, outcomes: dict[str, str],
                 spare: int) -> QualityBase | None:
    """Build, demean and take the Gram matrix of the headline quality matrix once, with
    room for ``spare`` interaction columns. None when no person-month is measured twice."""
    extra = {"#row": np.arange(len(pm), dtype="float64"),
             "#client": pd.factorize(pm["client_id"])[0].astype("float64")}
    ys = {f"y#{o}": col for o, col in outcomes.items()}
    A, names, exog, cells, code, cl = quality_frame(pm, params, outcomes=ys, extra=extra,
                                                    spare=spare)
    if len(A) == 0:
        return None
    # rows sorted by cluster (stable): each cluster's rows a contiguous block, so its Gram
    # block is a product of views (``cgram``); the estimates do not depend on row order
    cl_code = cluster_codes(cl)[0]
    order = np.argsort(cl_code, kind="stable")
    col = {n: i for i, n in enumerate(names)}
    rows = A[order, col["#row"]].astype("int64")
    clients = A[order, col["#client"]].astype("int64")
    events = {o: A[order, col[f"y#{o}"]] / 100.0 for o in outcomes}
    keep = [j for j, n in enumerate(names) if not n.startswith("#")]
    k = len(keep)
    # in place, one column at a time (no second n-row matrix: measured on the built-in
    # panel, 1.5 GB less at the stage's peak): each kept column's rows put in cluster
    # order and moved left over the bookkeeping columns (i <= j, and column i was read
    # before), so A[:, :k] is the model and the columns after it are free for the spare
    tmp = np.empty(len(order))
    for i, j in enumerate(keep):
        np.take(A[:, j], order, out=tmp)
        A[:, i] = tmp
    del tmp
    code = np.asarray(code)[order]
    names = [names[j] for j in keep]
    fe = (("munimonth",) if params.estimate.quality_fe == "municipality_month"
          else ("municipality", "regmonth"))
    cell_cl = (cells["region"] if params.estimate.cluster == "region" else cells["municipality"])
    if pd.Series(cl).nunique() > cell_cl.nunique():  # one municipality: caseworker clusters
        cell_cl = pd.Series(np.arange(len(cells)))
    df_fe = fe_df(cells, list(fe), cell_cl.to_numpy())
    cell_demean(A[:, :k], cells, code, list(fe))
    # the cluster labels as Arrow strings: every fit factorises them (in C: 0.05 s for a
    # million rows, where an object array takes 0.6 s), with the same codes and labels
    clusters = pd.array(np.asarray(cl, dtype=object)[order].astype(str), dtype="str")
    grams, resorted = cluster_grams(A[:, :k], clusters, code)
    assert resorted is None, "rows not in cluster order"
    return QualityBase(A, k, names, exog, grams.gram, cells, code, clusters, df_fe, fe, rows,
                       clients, events, grams)


def spare_columns(dims) -> int:
    """Interaction columns of the widest dimension: (H + 1) slopes, their instruments and
    H group dummies, the extra group being the person-months in none of its groups."""
    return max((3 * (len(d.labels) + 1) - 1 for d in dims), default=0)


def quality_by_group(pm: pd.DataFrame, params: EstimateParams, dim: GroupDimension,
                     outcomes: dict[str, str],
                     wcr: tuple[np.ndarray, np.ndarray, bool] | None = None,
                     base: QualityBase | None = None) -> list[GroupEstimates]:
    """Group quality effects for each outcome (name -> person-month indicator column).

    Person-months in none of the dimension's groups (an unrecorded ladder step, say) stay
    in the model as a group of their own, with its own slope and main effect, which is
    not reported: so every dimension's model has the headline's sample and shares its
    demeaned matrix ``base`` (``quality_base``, built here when not given; it must have
    been built with these ``outcomes``).

    ``wcr``: cluster weights ``(W, labels, enumerated)`` of ``wcr.wcr_weights``; with them
    each group's "no effect" hypothesis gets wild cluster restricted bootstrap draws of
    its t statistic (the same weights for every model, so families across dimensions can
    be adjusted jointly). Returns one :class:`GroupEstimates` per outcome; empty when the
    quality model cannot be estimated (no person-month measured twice) or the dimension's
    column is missing.
    """
    if dim.column not in pm:
        warnings.warn(f"heterogeneity: person_months has no column {dim.column!r} "
                      f"(dimension {dim.name}); not estimated", EstimationWarning, stacklevel=2)
        return []
    if base is None:
        base = quality_base(pm, params, outcomes, spare_columns([dim]))
    if base is None:
        return []
    H = len(dim.labels)
    codes = dim.codes(pm[dim.column].to_numpy()[base.rows])
    codes[codes < 0] = H  # in no group: a group of its own, not reported
    Hx = H + 1 if (codes == H).any() else H
    k, A = base.k, base.A
    new: list[str] = []
    # interactions of the raw quality halves (A's own quality columns are demeaned)
    raw_a = pm["quality_a"].to_numpy(dtype="float64")[base.rows]
    raw_b = pm["quality_b"].to_numpy(dtype="float64")[base.rows]
    j = k
    for h in range(Hx):
        d = (codes == h).astype("float64")
        for name, v in ((f"qa#{h}", raw_a * d), (f"qb#{h}", raw_b * d)) + (
                ((f"D#{h}", d),) if h > 0 else ()):
            A[:, j] = v
            new.append(name)
            j += 1
    cell_demean(A[:, k:j], base.cells, base.code, list(base.fe))
    # the cluster blocks of the new columns only; the base's are reused (``cgram``)
    grams = base.grams.extend(A, k, j)
    npm, ncl = _group_counts(codes, base.clients, H)
    nev = {o: np.bincount(codes[codes < H], weights=base.events[o][codes < H], minlength=H)
           for o in outcomes}
    return group_fits(dim, outcomes, grams, base.names + new, base.exog, Hx, base.df_fe, wcr,
                      CellFE(base.cells, base.code, base.fe), npm, ncl, nev)


def group_fits(dim: GroupDimension, outcomes: Mapping[str, str], grams: ClusterGrams,
               names: list[str], base_exog: list[str], Hx: int, df_fe: int,
               wcr: tuple[np.ndarray, np.ndarray, bool] | None, fe: CellFE,
               npm: np.ndarray, ncl: np.ndarray, nev: Mapping[str, np.ndarray]
               ) -> list[GroupEstimates]:
    """One dimension's :class:`GroupEstimates` (one per outcome) from the cluster blocks
    of its demeaned matrix (the headline's columns, then ``qa#h``, ``qb#h`` for h < Hx
    and ``D#h`` for 0 < h < Hx), with the per-group counts ``npm``, ``ncl`` and events
    ``nev`` (per outcome). Shared by the in-memory and the streamed path
    (``heterogeneity.stream``)."""
    H = len(dim.labels)
    xs, zs = [f"qa#{h}" for h in range(Hx)], [f"qb#{h}" for h in range(Hx)]
    exog = list(base_exog) + [f"D#{h}" for h in range(1, Hx)]
    ys = [f"y#{o}" for o in outcomes]
    if wcr is not None:
        # the draws come with the unrestricted fit (estimates and cluster scores equal to
        # fit_pm_multi's, the same formulas; tests/heterogeneity/test_group_effects.py),
        # all from the cluster blocks: no pass over the rows
        W, labels, enumerated = wcr
        fits = wcr_draws(None, names, ys, xs, exog, zs, None, df_fe, 0.0, W, labels, fe=fe,
                         grams=grams)
        boot = [(d.t_stat[:H], d.t_boot[:, :H], bool(enumerated)) for d in fits]
        parts = [(d.estimate[:H], d.scores[:, :H], d.n_clusters, d.cluster_labels)
                 for d in fits]
    else:
        boot = [(None, None, False)] * len(ys)
        parts = []
        for y in ys:  # from the blocks, equal to fit_pm_multi (tests/estimate/test_cgram.py)
            fit = fit_pm_multi_grams(grams, names, y, xs, exog, zs, df_fe)
            parts.append((fit.coef[:H], fit.scores[:, :H], fit.n_clusters, fit.cluster_labels))
    # the pooled effect on the same sample, every outcome from the cluster blocks
    pooled = fit_pm_grams(grams, names, ys, "quality_a", exog, "quality_b", df_fe)
    out = []
    for o, (est, scores, n_cl, cl_labels), pool, bt in zip(outcomes, parts, pooled, boot):
        out.append(GroupEstimates(
            "quality", o, dim.name, dim.labels, est, scores, pool.coef, pool.se, npm, ncl,
            nev[o], n_cl,
            "2SLS, quality_a x group instrumented by quality_b x group; group main effects "
            "(person-months in no group: a group of their own, not reported); headline "
            "controls and fixed effects", cl_labels, *bt))
    return out
