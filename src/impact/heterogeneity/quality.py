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
dimension (e.g. an unrecorded ladder step) are left out of its model.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from impact.estimate.frames import EstimationWarning
from impact.estimate.params import EstimateParams
from impact.estimate.pmreg import cell_demean, fe_df, fit_pm, fit_pm_multi
from impact.estimate.quality import quality_frame
from impact.heterogeneity.params import GroupDimension
from impact.heterogeneity.wcr import CellFE, wcr_draws

__all__ = ["GroupEstimates", "quality_by_group"]


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


def _group_counts(codes: np.ndarray, clients: np.ndarray, events: np.ndarray, H: int):
    ok = codes >= 0
    pm = np.bincount(codes[ok], minlength=H)
    ev = np.bincount(codes[ok], weights=events[ok], minlength=H)
    cl = pd.DataFrame({"g": codes[ok], "c": clients[ok]}).drop_duplicates()
    nc = np.bincount(cl["g"].to_numpy(), minlength=H)
    return pm, nc, ev


def quality_by_group(pm: pd.DataFrame, params: EstimateParams, dim: GroupDimension,
                     outcomes: dict[str, str],
                     wcr: tuple[np.ndarray, np.ndarray, bool] | None = None
                     ) -> list[GroupEstimates]:
    """Group quality effects for each outcome (name -> person-month indicator column).

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
    codes = dim.codes(pm[dim.column])
    H = len(dim.labels)
    qa = pm["quality_a"].to_numpy(dtype="float64")
    qb = pm["quality_b"].to_numpy(dtype="float64")
    nan = np.where(codes >= 0, 0.0, np.nan)  # rows in no group drop out of the frame
    extra: dict[str, np.ndarray] = {}
    for h in range(H):
        d = (codes == h).astype("float64") + nan
        extra[f"qa#{h}"], extra[f"qb#{h}"] = qa * d, qb * d
        if h > 0:
            extra[f"D#{h}"] = d
    # bookkeeping columns (read before demeaning; not regressors): the group and the
    # client of each row, so counts are taken on exactly the estimation sample
    extra["#group"] = codes.astype("float64") + nan
    extra["#client"] = pd.factorize(pm["client_id"])[0].astype("float64")
    ys = {f"y#{o}": col for o, col in outcomes.items()}
    with warnings.catch_warnings():  # the rows in no group are dropped on purpose
        warnings.filterwarnings("ignore", message="quality: .* dropped for missing")
        A, names, exog, cells, code, cl = quality_frame(pm, params, outcomes=ys, extra=extra)
    if len(A) == 0:
        return []
    col = {n: i for i, n in enumerate(names)}
    g_codes = A[:, col["#group"]].astype("int64")
    clients = A[:, col["#client"]].astype("int64")
    events = {o: A[:, col[f"y#{o}"]] / 100.0 for o in outcomes}
    counts = {o: _group_counts(g_codes, clients, events[o], H) for o in outcomes}
    fe = (["munimonth"] if params.estimate.quality_fe == "municipality_month"
          else ["municipality", "regmonth"])
    cname = params.estimate.cluster
    cell_cl = (cells["region"] if cname == "region" else cells["municipality"])
    if pd.Series(cl).nunique() > cell_cl.nunique():  # one municipality: caseworker clusters
        cell_cl = pd.Series(np.arange(len(cells)))
    df_fe = fe_df(cells, fe, cell_cl.to_numpy())
    cell_demean(A, cells, code, fe)
    dummies = [f"D#{h}" for h in range(1, H)]
    gram = A.T @ A  # one Gram matrix for every outcome's fits (A is column-major)
    boot = {}
    if wcr is not None:
        W, labels, enumerated = wcr
        draws = wcr_draws(A, names, [f"y#{o}" for o in outcomes], [f"qa#{h}" for h in range(H)],
                          exog + dummies, [f"qb#{h}" for h in range(H)], cl, df_fe, 0.0, W,
                          labels, fe=CellFE(cells, code, tuple(fe)), gram=gram)
        boot = {o: (d.t_stat, d.t_boot) for o, d in zip(outcomes, draws)}
    out = []
    for o in outcomes:
        fit = fit_pm_multi(A, names, f"y#{o}", [f"qa#{h}" for h in range(H)], exog + dummies,
                           [f"qb#{h}" for h in range(H)], cl, df_fe, gram=gram)
        pooled = fit_pm(A, names, f"y#{o}", "quality_a", exog + dummies, "quality_b", cl, df_fe,
                        gram=gram)
        npm, ncl, nev = counts[o]
        out.append(GroupEstimates(
            "quality", o, dim.name, dim.labels, fit.coef, fit.scores, pooled.coef, pooled.se,
            npm, ncl, nev, fit.n_clusters,
            "2SLS, quality_a x group instrumented by quality_b x group; group main effects; "
            "headline controls and fixed effects", fit.cluster_labels,
            *(boot[o] if o in boot else (None, None)), bool(wcr[2]) if wcr else False))
    return out
