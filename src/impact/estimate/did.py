"""Staggered difference-in-differences (Callaway & Sant'Anna 2021), public API.

>>> from impact.estimate.did import staggered_att
>>> res = staggered_att(df, yname="lemp", tname="year", idname="countyreal",
...                     gname="first.treat", control_group="nevertreated",
...                     aggregation="simple")                       # doctest: +SKIP
>>> res.tidy()          # the overall effect is the row term == "ATT"  # doctest: +SKIP

Wraps ``moderndid`` (``moderndid.att_gt`` + ``moderndid.aggte``), a Python port of R
``did`` that its authors validate against R on ``mpdta``; ``tests/estimate/
test_did_reference.py`` checks the wrapper against R ``did``'s published numbers and a
brute-force computation. Nothing here re-implements the estimator.

Notes
-----
Group-time effects, for cohort g (first treated in period g; ``gname == 0`` never
treated, as in R ``did``) and period t, with base period b = g - 1 - anticipation for
t >= g ("varying" base period: b = t - 1 for pre-periods, R ``did``'s default)::

    ATT(g,t) = E[Y_t - Y_b | G = g] - E[Y_t - Y_b | C]

where C is the never-treated (``control_group="nevertreated"``) or the not-yet-treated
by max(t, b) + anticipation (``"notyettreated"``). Without covariates the doubly robust,
IPW and regression estimators coincide; with ``xformla`` the default is the doubly robust
estimator (Sant'Anna & Zhao 2020), ``est_method="dr"`` in both R ``did`` and moderndid
(moderndid ``att_gt`` docstring: ``est_method ... default="dr"``, ``base_period ...
default="varying"``). Aggregations (``aggte``): "simple" weights ATT(g,t), t >= g, by
cohort size; "group" averages each cohort's post-periods, then across cohorts by size;
"dynamic" averages by event time e = t - g (overall: mean over e >= 0); "calendar"
averages by period t (overall: mean over periods).

Inference: by default **analytic**, from the influence function
(se = sqrt(mean(psi^2) / n), R ``did`` ``bstrap=FALSE``; moderndid ``boot=False`` is
its default), pointwise normal intervals, clustered at ``idname``. With
``bootstrap=True`` the multiplier bootstrap (Mammen weights, ``biters`` draws) seeded by
``seed``; clustering above ``idname`` (``cluster=``) needs it, as in moderndid/R
(``att_gt`` docstring: "If standard errors are clustered, then one must set boot=True").
R ``did``'s own default is the bootstrap with simultaneous bands; intervals here are
pointwise (``cband=False``).

References
----------
Callaway, B. and Sant'Anna, P. H. C. (2021). Difference-in-differences with multiple
time periods. *Journal of Econometrics* 225(2), 200-230.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from impact.estimate.results import OverallATTResult, row, tidy_frame
from impact.stage import UserError

__all__ = ["staggered_att", "StaggeredATTResult", "DidInputError", "Aggregation",
           "ControlGroup"]

Aggregation = Literal["simple", "group", "dynamic", "calendar"]
ControlGroup = Literal["nevertreated", "notyettreated"]
EstMethod = Literal["dr", "ipw", "reg"]
BasePeriod = Literal["varying", "universal"]
MODEL = "callaway_santanna"


class DidInputError(UserError, ValueError):
    """The panel or an option passed to ``staggered_att`` cannot be used as given."""


@dataclass(frozen=True)
class StaggeredATTResult(OverallATTResult):
    """One Callaway-Sant'Anna fit and one aggregation of it.

    Attributes
    ----------
    table : pandas.DataFrame
        ``impact.estimate.results.TIDY_COLUMNS``; first row ``term == "ATT"`` (the
        aggregation's overall effect), then ``ATT(g)`` rows (``cohort`` = g),
        ``ATT(e)`` rows (``rel_time`` = e) or ``ATT(t=<period>)`` rows.
    att_gt : pandas.DataFrame
        Columns ``group, time, estimate, std_error``: every ATT(g,t), pre-periods too.
    meta : dict
        Library and version, options, inference, units and rows used.
    """

    table: pd.DataFrame
    att_gt: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """Options and the tidy rows, for a console."""
        m = self.meta
        head = (f"Callaway-Sant'Anna ({m['library']} {m['library_version']}): "
                f"aggregation={m['aggregation']}, control_group={m['control_group']}, "
                f"est_method={m['est_method']}, base_period={m['base_period']}, "
                f"inference={m['inference']}, units={m['n_units']}")
        cols = ["term", "estimate", "std_error", "ci_low", "ci_high", "rel_time", "cohort"]
        with pd.option_context("display.width", 160):
            return head + "\n" + self.table[cols].to_string(index=False)


def _choice(name: str, value: Any, alias: Any) -> None:
    allowed = get_args(alias)
    if value not in allowed:
        raise DidInputError(f"{name}={value!r} is not supported; use one of "
                            f"{', '.join(repr(a) for a in allowed)}")


def _check_panel(df: Any, yname: str, tname: str, idname: str, gname: str,
                 extra: list[str]) -> pd.DataFrame:
    """The columns the estimator needs, copied and checked; raises ``DidInputError``."""
    if not isinstance(df, pd.DataFrame):
        raise DidInputError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    cols = list(dict.fromkeys([yname, tname, idname, gname, *extra]))
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DidInputError(f"column(s) {missing} not in df; columns are {list(df.columns)}")
    data = df[cols].copy()
    na = data.isna().any(axis=1)
    if na.any():
        bad = [c for c in cols if data[c].isna().any()]
        raise DidInputError(f"{int(na.sum())} row(s) have missing values in {bad}; drop or "
                            "impute them before calling staggered_att")
    for c in (yname, tname, gname):
        if not pd.api.types.is_numeric_dtype(data[c]):
            raise DidInputError(f"column {c!r} must be numeric, got dtype {data[c].dtype}")
    if (data[gname] < 0).any():
        raise DidInputError(f"{gname!r} has negative values; use the first treated period, "
                            "or 0 for never treated")
    n_g = data.groupby(idname)[gname].nunique()
    if (n_g > 1).any():
        ids = n_g.index[n_g > 1]
        raise DidInputError(f"{gname!r} must be constant within {idname!r} (the period a unit "
                            f"is first treated, 0 if never); it varies for {len(ids)} unit(s), "
                            f"e.g. {ids.tolist()[0]!r}")
    dup = data.duplicated([idname, tname])
    if dup.any():
        raise DidInputError(f"{int(dup.sum())} duplicate ({idname}, {tname}) row(s); the panel "
                            "needs one row per unit and period")
    if not (data[gname] > 0).any():
        raise DidInputError(f"no treated units: {gname!r} is 0 for every row")
    return data


def _gt_frame(mp: Any) -> pd.DataFrame:
    return pd.DataFrame({"group": np.asarray(mp.groups, dtype=float).astype(int),
                         "time": np.asarray(mp.times, dtype=float).astype(int),
                         "estimate": np.asarray(mp.att_gt, dtype=float),
                         "std_error": np.asarray(mp.se_gt, dtype=float)})


def _rows(agg: Any, aggregation: str, alpha: float, common: dict[str, Any]) -> list[dict]:
    """moderndid ``AGGTEResult`` -> tidy rows (overall first); normal critical values."""
    rows = [row(MODEL, "ATT", agg.overall_att, agg.overall_se, alpha=alpha, **common)]
    if aggregation == "simple":
        return rows
    for key, est, se in zip(agg.event_times, agg.att_by_event, agg.se_by_event):
        key = int(key)
        if aggregation == "group":
            rows.append(row(MODEL, "ATT(g)", est, se, alpha=alpha, cohort=str(key), **common))
        elif aggregation == "dynamic":
            rows.append(row(MODEL, "ATT(e)", est, se, alpha=alpha, rel_time=key, **common))
        else:
            rows.append(row(MODEL, f"ATT(t={key})", est, se, alpha=alpha, **common))
    return rows


def staggered_att(
    df: pd.DataFrame,
    *,
    yname: str,
    tname: str,
    idname: str,
    gname: str,
    control_group: ControlGroup = "nevertreated",
    aggregation: Aggregation = "simple",
    xformla: str | None = None,
    est_method: EstMethod = "dr",
    base_period: BasePeriod = "varying",
    anticipation: int = 0,
    weightsname: str | None = None,
    alpha: float = 0.05,
    bootstrap: bool = False,
    biters: int = 999,
    seed: int = 0,
    cluster: str | None = None,
) -> StaggeredATTResult:
    """Callaway-Sant'Anna ATT on a long panel, aggregated one way (R ``did`` semantics).

    Parameters
    ----------
    df : pandas.DataFrame
        Long panel, one row per unit and period; not modified.
    yname, tname, idname, gname : str
        Outcome, period (numeric), unit id, and first treated period (0 = never treated;
        constant within unit).
    control_group : {"nevertreated", "notyettreated"}
    aggregation : {"simple", "group", "dynamic", "calendar"}
    xformla : str, optional
        Covariates for conditional parallel trends, e.g. ``"~ lpop"``.
    est_method : {"dr", "ipw", "reg"}
        Doubly robust (default), inverse probability weighting, outcome regression.
    base_period : {"varying", "universal"}
    anticipation : int
        Periods before g in which units may already react.
    weightsname : str, optional
        Sampling weights column (constant within unit).
    alpha : float
        1 - confidence level of the pointwise intervals.
    bootstrap, biters, seed :
        Multiplier bootstrap instead of analytic standard errors, seeded.
    cluster : str, optional
        Cluster variable above ``idname`` (requires ``bootstrap=True``).

    Returns
    -------
    StaggeredATTResult

    Raises
    ------
    DidInputError
        Unknown option, missing column, missing values, ``gname`` varying within a unit,
        duplicate unit-periods, no treated or (with never-treated controls) no
        never-treated units.
    """
    _choice("aggregation", aggregation, Aggregation)
    _choice("control_group", control_group, ControlGroup)
    _choice("est_method", est_method, EstMethod)
    _choice("base_period", base_period, BasePeriod)
    if not 0 < alpha < 1:
        raise DidInputError(f"alpha={alpha!r} must lie strictly between 0 and 1")
    if cluster is not None and not bootstrap:
        raise DidInputError(f"cluster={cluster!r} needs the multiplier bootstrap: pass "
                            "bootstrap=True (analytic errors cluster at idname only)")
    extra = [c for c in (weightsname, cluster) if c]
    if xformla:
        extra += [v.strip() for v in xformla.replace("~", "").split("+")
                  if v.strip() and v.strip() != "1" and v.strip().isidentifier()]
    data = _check_panel(df, yname, tname, idname, gname, extra)
    if control_group == "nevertreated" and not (data[gname] == 0).any():
        raise DidInputError(f"no never-treated units ({gname} == 0); use "
                            "control_group='notyettreated'")

    import moderndid  # heavy import (polars, scipy) only when called

    with warnings.catch_warnings():
        # moderndid warns about its own defaults (e.g. bootstrap bands); ours are explicit
        warnings.simplefilter("ignore", UserWarning)
        mp = moderndid.att_gt(
            data, yname=yname, tname=tname, idname=idname, gname=gname, xformla=xformla,
            weightsname=weightsname, alp=alpha, cband=False, boot=bootstrap, biters=biters,
            clustervars=[cluster] if cluster else None, est_method=est_method,
            control_group=control_group, anticipation=anticipation,
            base_period=base_period, random_state=seed)
        agg = moderndid.aggte(mp, type=aggregation, cband=False, alp=alpha,
                              random_state=seed)
    inference = (f"multiplier bootstrap ({biters} draws, seed {seed})" if bootstrap
                 else "analytic (influence function)")
    common = {"n_obs": len(data), "n_clusters": data[cluster or idname].nunique(),
              "estimator": f"Callaway-Sant'Anna {est_method}, {control_group} (moderndid)",
              "vcov": f"{inference}, clustered by {cluster or idname}, normal critical values"}
    table = tidy_frame(_rows(agg, aggregation, alpha, common))
    meta = {"library": "moderndid", "library_version": version("moderndid"),
            "aggregation": aggregation, "control_group": control_group,
            "est_method": est_method, "base_period": base_period,
            "anticipation": anticipation, "xformla": xformla, "alpha": alpha,
            "inference": inference, "n_units": int(mp.n_units), "n_rows": len(data)}
    return StaggeredATTResult(table=table, att_gt=_gt_frame(mp), meta=meta)
