"""Sun and Abraham (2021) interaction-weighted event study, public API.

>>> from impact.estimate.sunab import sun_abraham
>>> res = sun_abraham(df, yname="lemp", tname="year", idname="countyreal",
...                   gname="first.treat")                           # doctest: +SKIP
>>> res.tidy()   # "ATT(e)" rows by rel_time, and the overall "ATT"  # doctest: +SKIP

pyfixest 0.60 has no ``sunab``; its ``SaturatedEventStudy`` (beta, warns on use) fits the
same saturated regression and aggregates by relative time, but gives no overall ATT, no
last-treated control and no choice of reference period. So the regression is run here,
by the project's sparse weighted least squares (``linalg.wls_fit``: cohort x
relative-time dummies, unit and period dummies, all sparse, one sparse LU; a national
panel has ~10,000 such cells, whose dense dummy matrix took 18 GB through pyfixest), and
the interaction weights are applied here. ``tests/estimate/test_sunab.py`` checks the
result against R ``did``'s published mpdta numbers, against pyfixest's
``SaturatedEventStudy.aggregate()``, and an exact identity for one treated cohort.

Notes
-----
Cohort g = first treated period (``gname``; 0 = never treated), relative time
e = t - g. The control cohort C is the never treated; without never-treated units it is
the last-treated cohort, and periods from its treatment on are dropped (Sun & Abraham
2021, section 4). Units treated in or before the first period are dropped (no pre-period).
The saturated regression, omitting e = ``ref_period`` for every cohort::

    y_it = a_i + l_t + sum_{g != C} sum_{e != ref} d_ge 1{G_i = g, t - g = e} + u_it

gives the cohort-specific effects CATT(g,e) = d_ge. The interaction-weighted estimator::

    ATT(e) = sum_g w_ge d_ge,   w_ge = n_ge / sum_g' n_g'e

with n_ge the observations in cell (g, e) (in a balanced panel: cohort shares among the
cohorts observed at e), and the overall ``ATT`` = sum_{g, e >= 0} n_ge d_ge / sum n_ge
(fixest's ``aggregate(att = TRUE)``: each post cell weighted by its treated
observations, i.e. cohort shares x post periods). Assumptions: parallel trends between
each cohort and C, no anticipation before ``ref_period + 1``.

Inference: CRV1 clustered by ``idname`` (or ``cluster``) with pyfixest's / fixest's
small-sample factors (``linalg.crv1_parts``; the cells' covariance is never formed), t(G - 1) critical values; aggregates by the delta method
R V R' with the weights held fixed (as fixest; Sun & Abraham's Proposition 6 adds a term
for estimated weights, omitted here).

References
----------
Sun, L. and Abraham, S. (2021). Estimating dynamic treatment effects in event studies
with heterogeneous treatment effects. *Journal of Econometrics* 225(2), 175-199.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from impact.estimate.did import DidInputError, _check_panel
from impact.estimate.linalg import Design, crv1_parts, wls_fit
from impact.estimate.results import OverallATTResult, row, tidy_frame

__all__ = ["sun_abraham", "SunAbrahamResult"]

MODEL = "sun_abraham"


@dataclass(frozen=True)
class SunAbrahamResult(OverallATTResult):
    """One Sun-Abraham fit.

    Attributes
    ----------
    table : pandas.DataFrame
        ``impact.estimate.results.TIDY_COLUMNS``; first row ``term == "ATT"`` (overall
        post-treatment effect), then ``ATT(e)`` rows with ``rel_time`` = e, sorted by e
        (the reference period has no row).
    catt : pandas.DataFrame
        Columns ``cohort, rel_time, estimate, std_error, n_obs, weight``: every
        cohort-specific CATT(g, e) and its interaction weight in ATT(e).
    meta : dict
        Library and version, control cohort, reference period, clusters, rows used.
    """

    table: pd.DataFrame
    catt: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    #: joint covariance of the ATT(e) rows (rel_time on both axes; delta method, fixed
    #: weights), for sensitivity analysis (``honest.sensitivity_from_event_study``)
    event_vcov: pd.DataFrame | None = None

    def summary(self) -> str:
        """Options and the tidy rows, for a console."""
        m = self.meta
        head = (f"Sun-Abraham ({m['library']} {m['library_version']}): control={m['control']}, "
                f"ref_period={m['ref_period']}, cluster={m['cluster']}, units={m['n_units']}")
        cols = ["term", "estimate", "std_error", "ci_low", "ci_high", "rel_time"]
        with pd.option_context("display.width", 160):
            return head + "\n" + self.table[cols].to_string(index=False)


def _sample(data: pd.DataFrame, tname: str, gname: str) -> tuple[pd.DataFrame, str, Any]:
    """Drop always-treated units; pick the control cohort (never or last treated)."""
    first = data[tname].min()
    data = data[(data[gname] == 0) | (data[gname] > first)]
    if (data[gname] == 0).any():
        return data, "never treated", 0
    last = data[gname].max()
    data = data[data[tname] < last]
    if data.loc[data[gname] != last, gname].nunique() == 0:
        raise DidInputError("no never-treated units and only one treated cohort: there is no "
                            "control cohort for Sun-Abraham")
    return data, f"last treated ({last})", last


def _cells(data: pd.DataFrame, tname: str, gname: str, control: Any,
           ref_period: int) -> pd.DataFrame:
    """The (cohort, rel_time) cells that get a dummy, with their observation counts."""
    treated = data[data[gname] != control]
    rel = treated[tname] - treated[gname]
    cells = (pd.DataFrame({"cohort": treated[gname], "rel_time": rel})
             .value_counts().rename("n_obs").reset_index())
    cells = cells[cells["rel_time"] != ref_period]
    return cells.sort_values(["rel_time", "cohort"]).reset_index(drop=True)


def sun_abraham(
    df: pd.DataFrame,
    *,
    yname: str,
    tname: str,
    idname: str,
    gname: str,
    ref_period: int = -1,
    cluster: str | None = None,
    alpha: float = 0.05,
) -> SunAbrahamResult:
    """Sun-Abraham interaction-weighted event study and overall ATT.

    Parameters
    ----------
    df : pandas.DataFrame
        Long panel, one row per unit and period; not modified. Balance is not required
        (weights then count observations per cell, as fixest).
    yname, tname, idname, gname : str
        Outcome, period (numeric, integer steps), unit id, first treated period
        (0 = never treated; constant within unit).
    ref_period : int
        Relative period omitted for every cohort (default -1).
    cluster : str, optional
        Cluster variable for CRV1 standard errors; default ``idname``.
    alpha : float
        1 - confidence level of the pointwise intervals.

    Returns
    -------
    SunAbrahamResult

    Raises
    ------
    DidInputError
        Missing column or values, ``gname`` varying within a unit, duplicate
        unit-periods, no treated units or no control cohort, bad ``alpha``, or a
        ``ref_period`` that no cohort is observed in.
    """
    if not 0 < alpha < 1:
        raise DidInputError(f"alpha={alpha!r} must lie strictly between 0 and 1")
    cluster = cluster or idname
    data = _check_panel(df, yname, tname, idname, gname, [cluster])
    data, control_label, control = _sample(data, tname, gname)
    if not (data[gname] != control).any():
        raise DidInputError(f"no treated units observed before treatment in {gname!r}")
    treated = data[gname] != control
    if not ((data[tname] - data[gname])[treated] == ref_period).any():
        raise DidInputError(f"ref_period={ref_period!r}: no treated unit is observed at that "
                            "relative period; choose one inside the panel (e.g. -1)")
    cells = _cells(data, tname, gname, control, ref_period)
    names = [f"_sa{i}" for i in range(len(cells))]
    # the saturated regression with the cohort x relative-time dummies as sparse columns
    # beside sparse unit and period dummies, solved by a sparse LU: the dense (n x cells)
    # dummy matrix of a national panel (~10,000 cells) would need tens of GB
    rel = (data[tname] - data[gname]).to_numpy()
    code = pd.MultiIndex.from_frame(cells[["cohort", "rel_time"]]).get_indexer(
        pd.MultiIndex.from_arrays([data[gname].to_numpy(), rel]))
    code[~treated.to_numpy()] = -1
    on = np.flatnonzero(code >= 0)
    n = len(data)
    X = sp.csr_matrix((np.ones(len(on)), (on, code[on])), shape=(n, len(cells)))
    fe_codes, blocks = [], []
    for col in (idname, tname):
        c, uniq = pd.factorize(data[col], sort=True)
        fe_codes.append(c)
        blocks.append(sp.csr_matrix((np.ones(n), (np.arange(n), c)), shape=(n, len(uniq))))
    design = Design(sp.hstack(blocks + [X], format="csr"), ("_id", "_t"), tuple(fe_codes),
                    tuple(b.shape[1] for b in blocks), tuple(names))
    y, ones = data[yname].to_numpy(dtype="float64"), np.ones(n)
    try:
        fit = wls_fit(design, y, ones, method="sparse", drop_collinear=False)
    except np.linalg.LinAlgError:
        raise DidInputError("some cohort x relative-time cells are collinear with the fixed "
                            "effects; the saturated regression is not identified") from None
    xcols = [design.x_index(nm) for nm in names]
    beta = fit.coef[xcols]
    SB, factor, n_cl, _ = crv1_parts(design, fit, ones, data[cluster].to_numpy(), xcols)
    SB *= np.sqrt(factor)  # V = SB' SB, never formed (cells x cells)

    def lincomb(w: np.ndarray) -> tuple[float, float]:
        return float(w @ beta), float(np.linalg.norm(SB @ w))

    common = {"n_obs": n, "n_clusters": n_cl,
              "estimator": f"Sun-Abraham interaction-weighted, control {control_label} "
                           "(sparse WLS)",
              "vcov": f"CRV1 by {cluster} (fixest small-sample factors), delta method with "
                      "fixed weights, t(G-1) critical values"}
    cells["weight"] = cells["n_obs"] / cells.groupby("rel_time")["n_obs"].transform("sum")
    post = (cells["rel_time"] >= 0).to_numpy()
    w_att = np.where(post, cells["n_obs"], 0.0) / cells.loc[post, "n_obs"].sum()
    rows = [row(MODEL, "ATT", *lincomb(w_att), df=n_cl - 1, alpha=alpha,
                **common)]
    for e in sorted(cells["rel_time"].unique()):
        w = np.where(cells["rel_time"] == e, cells["weight"], 0.0)
        rows.append(row(MODEL, "ATT(e)", *lincomb(w), df=n_cl - 1, alpha=alpha,
                        rel_time=int(e), **common))
    catt = cells.assign(estimate=beta, std_error=np.sqrt((SB ** 2).sum(axis=0)))[
        ["cohort", "rel_time", "estimate", "std_error", "n_obs", "weight"]]
    meta = {"library": "impact", "library_version": version("impact"),
            "control": control_label, "ref_period": ref_period, "cluster": cluster,
            "alpha": alpha, "n_units": int(data[idname].nunique()), "n_rows": len(data),
            "n_rows_dropped": len(df) - len(data)}
    times = sorted(cells["rel_time"].unique())
    W = np.vstack([np.where(cells["rel_time"] == e, cells["weight"], 0.0) for e in times])
    SW = SB @ W.T
    event_vcov = pd.DataFrame(SW.T @ SW, index=[int(e) for e in times],
                              columns=[int(e) for e in times])
    return SunAbrahamResult(table=tidy_frame(rows), catt=catt.reset_index(drop=True),
                            meta=meta, event_vcov=event_vcov)
