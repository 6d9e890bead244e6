"""Goodman-Bacon (2021) decomposition of the two-way fixed effects DiD coefficient.

>>> from impact.estimate.bacon import bacon_decomposition
>>> res = bacon_decomposition(df, yname="lemp", tname="year", idname="countyreal",
...                           gname="first.treat")                  # doctest: +SKIP
>>> res.summary()   # weight and weighted-average 2x2 estimate per comparison type  # doctest: +SKIP

No maintained Python library implements it, so this is our own code; ``tests/estimate/
test_bacon.py`` checks the exact identity sum(weight * estimate) == TWFE coefficient
against pyfixest ``feols(y ~ D | id + t)`` on ``mpdta`` and random staggered panels,
and every 2x2 estimate against a TWFE regression on its own subsample.

Notes
-----
Balanced panel of N units and T periods, absorbing treatment D_it = 1{t >= g_i}. Units
are grouped by timing g (``gname``; 0 = never treated). Units first treated after the
last period count as never treated (U) in the sample; units treated from the first period
on form a timing group with Dbar = 1 (they only ever act as controls). For timing group k,
n_k is its share of units (of total weight with ``weightsname``) and Dbar_k its share of
treated periods. TWFE: y_it = a_i + l_t + b D_it + e_it. With k treated earlier than l
(Dbar_k > Dbar_l), windows PRE(k) = t < g_k, MID(k,l) = g_k <= t < g_l, POST(l) = t >= g_l,
and ybar_j^W the mean outcome of group j over window W, the 2x2 estimates (eq. 6-8) are::

    b_kU     = (ybar_k^POST(k) - ybar_k^PRE(k))   - (ybar_U^POST(k) - ybar_U^PRE(k))
    b^k_kl   = (ybar_k^MID     - ybar_k^PRE(k))   - (ybar_l^MID     - ybar_l^PRE(k))
    b^l_kl   = (ybar_l^POST(l) - ybar_l^MID)      - (ybar_k^POST(l) - ybar_k^MID)

(types ``treated_vs_never``, ``earlier_vs_later``, ``later_vs_earlier``; the last uses
already-treated units as controls, the "forbidden comparison"). The weights (eq. 10-11),
with n_kU = n_k / (n_k + n_U), n_kl = n_k / (n_k + n_l) and V^D the variance of the
two-way demeaned D (sum of its squares over N T)::

    s_kU   = (n_k + n_U)^2 n_kU (1 - n_kU) Dbar_k (1 - Dbar_k) / V^D
    s^k_kl = ((n_k + n_l)(1 - Dbar_l))^2 n_kl (1 - n_kl)
             (Dbar_k - Dbar_l)/(1 - Dbar_l) (1 - Dbar_k)/(1 - Dbar_l) / V^D
    s^l_kl = ((n_k + n_l) Dbar_k)^2 n_kl (1 - n_kl) Dbar_l/Dbar_k (Dbar_k - Dbar_l)/Dbar_k / V^D

They are non-negative and sum to one, and b_TWFE = sum of s * b over all comparisons
(Theorem 1). With ``weightsname`` (constant within unit), shares and means are weighted,
which is the decomposition of the weighted TWFE (as if each unit were replicated in
proportion to its weight). No standard errors: the decomposition is descriptive.

References
----------
Goodman-Bacon, A. (2021). Difference-in-differences with variation in treatment timing.
*Journal of Econometrics* 225(2), 254-277.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from impact.estimate.did import DidInputError, _check_panel

__all__ = ["bacon_decomposition", "BaconResult", "ComparisonType", "COMPARISON_TYPES"]

ComparisonType = Literal["treated_vs_never", "earlier_vs_later", "later_vs_earlier"]
COMPARISON_TYPES = ("treated_vs_never", "earlier_vs_later", "later_vs_earlier")
NEVER = "never"


@dataclass(frozen=True)
class BaconResult:
    """A Goodman-Bacon decomposition.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per 2x2 comparison: ``type`` (one of ``COMPARISON_TYPES``), ``treated``
        (the timing group whose change is the effect, as the ``gname`` value),
        ``control`` (a timing group's ``gname`` value, or ``"never"``), ``estimate``
        (the 2x2 DiD) and ``weight`` (summing to one over the rows).
    twfe : float
        The TWFE coefficient on D_it with unit and period fixed effects; equals
        ``(table.weight * table.estimate).sum()`` up to rounding.
    meta : dict
        Units, periods, rows and whether weights were used.
    """

    table: pd.DataFrame
    twfe: float
    meta: dict[str, Any] = field(default_factory=dict)

    def tidy(self) -> pd.DataFrame:
        """A copy of the comparison table (one row per 2x2 comparison)."""
        return self.table.copy()

    def summary(self) -> pd.DataFrame:
        """Per comparison type: total ``weight`` and the weight-averaged ``estimate``.

        Columns ``type, weight, estimate, n_comparisons``; types without a comparison are
        left out. ``(weight * estimate).sum()`` is the TWFE coefficient.
        """
        t = self.table.assign(_we=self.table["weight"] * self.table["estimate"])
        g = t.groupby("type", sort=False).agg(weight=("weight", "sum"), _we=("_we", "sum"),
                                             n_comparisons=("estimate", "size"))
        g["estimate"] = np.where(g["weight"] > 0, g["_we"] / g["weight"].where(g["weight"] > 0),
                                 np.nan)
        order = [c for c in COMPARISON_TYPES if c in g.index]
        return g.loc[order, ["weight", "estimate", "n_comparisons"]].reset_index()


def _label(v: Any) -> str:
    """A cohort label: ``"never"``, or the ``gname`` value (``2004``, not ``2004.0``)."""
    if isinstance(v, str):
        return v
    return str(int(v)) if float(v).is_integer() else str(v)


def _balanced(data: pd.DataFrame, tname: str, idname: str) -> None:
    n_t = data[tname].nunique()
    per_unit = data.groupby(idname).size()
    if (per_unit != n_t).any():
        bad = per_unit.index[per_unit != n_t]
        raise DidInputError(f"the panel is not balanced: {len(bad)} unit(s) lack some of the "
                            f"{n_t} periods (e.g. {bad[0]!r}); the decomposition needs every "
                            "unit in every period, so drop incomplete units first")


def _twfe(y: np.ndarray, d: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """TWFE slope and V^D on a balanced (units x periods) array, unit weights ``w``."""
    def demean(a: np.ndarray) -> np.ndarray:
        col = (w[:, None] * a).sum(0) / w.sum()
        return a - a.mean(1, keepdims=True) - col + (w * a.mean(1)).sum() / w.sum()

    dd = demean(d)
    vd = float((w[:, None] * dd ** 2).sum() / (w.sum() * d.shape[1]))
    return float((w[:, None] * dd * y).sum() / (w[:, None] * dd * d).sum()), vd


def _mean(ybar: pd.DataFrame, grp: Any, cols: np.ndarray) -> float:
    """Mean of group ``grp``'s period means over the periods flagged in ``cols``."""
    return float(ybar.loc[grp].to_numpy()[cols].mean())


def _comparisons(ybar: pd.DataFrame, share: pd.Series, dbar: pd.Series, times: np.ndarray,
                 vd: float) -> list[dict[str, Any]]:
    """All 2x2 estimates and weights (eq. 6-8, 10-11 of Goodman-Bacon 2021)."""
    rows: list[dict[str, Any]] = []
    timing = sorted(g for g in share.index if g != NEVER)
    if NEVER in share.index:
        n_u = share[NEVER]
        for k in timing:
            pre, post = times < k, times >= k
            if dbar[k] >= 1:  # always treated: no 2x2 against the never treated
                continue
            est = (_mean(ybar, k, post) - _mean(ybar, k, pre)
                   - _mean(ybar, NEVER, post) + _mean(ybar, NEVER, pre))
            nk = share[k] / (share[k] + n_u)
            s = (share[k] + n_u) ** 2 * nk * (1 - nk) * dbar[k] * (1 - dbar[k]) / vd
            rows.append({"type": "treated_vs_never", "treated": k, "control": NEVER,
                         "estimate": est, "weight": s})
    for i, k in enumerate(timing):          # k earlier
        for l in timing[i + 1:]:            # l later
            dk, dl = dbar[k], dbar[l]
            nkl = share[k] / (share[k] + share[l])
            pre, mid, post = times < k, (times >= k) & (times < l), times >= l
            if dk < 1:                      # earlier vs later (later not yet treated)
                est = (_mean(ybar, k, mid) - _mean(ybar, k, pre)
                       - _mean(ybar, l, mid) + _mean(ybar, l, pre))
                s = (((share[k] + share[l]) * (1 - dl)) ** 2 * nkl * (1 - nkl)
                     * (dk - dl) / (1 - dl) * (1 - dk) / (1 - dl) / vd)
                rows.append({"type": "earlier_vs_later", "treated": k, "control": l,
                             "estimate": est, "weight": s})
            est = (_mean(ybar, l, post) - _mean(ybar, l, mid)
                   - _mean(ybar, k, post) + _mean(ybar, k, mid))
            s = (((share[k] + share[l]) * dk) ** 2 * nkl * (1 - nkl)
                 * dl / dk * (dk - dl) / dk / vd)
            rows.append({"type": "later_vs_earlier", "treated": l, "control": k,
                         "estimate": est, "weight": s})
    return rows


def bacon_decomposition(
    df: pd.DataFrame,
    *,
    yname: str,
    tname: str,
    idname: str,
    gname: str,
    weightsname: str | None = None,
) -> BaconResult:
    """Decompose the TWFE DiD coefficient into 2x2 comparisons (Goodman-Bacon 2021).

    Parameters
    ----------
    df : pandas.DataFrame
        Balanced long panel, one row per unit and period; not modified.
    yname, tname, idname, gname : str
        Outcome, period (numeric), unit id, first treated period (0 = never treated;
        constant within unit). Treatment is absorbing: D_it = 1{g_i > 0 and t >= g_i}.
    weightsname : str, optional
        Unit weights (positive, constant within unit); the decomposition of the weighted
        TWFE regression.

    Returns
    -------
    BaconResult
        ``tidy()``: one row per 2x2 comparison; ``summary()``: weight and average
        estimate per type; ``twfe``: the TWFE coefficient. Formulas under Notes of the
        module docstring.

    Raises
    ------
    DidInputError
        Missing column or values, ``gname`` varying within a unit, duplicate or missing
        unit-periods (unbalanced panel), bad weights, or no treatment variation.
    """
    data = _check_panel(df, yname, tname, idname, gname, [weightsname] if weightsname else [])
    _balanced(data, tname, idname)
    times = np.sort(data[tname].unique())
    if weightsname:
        if not pd.api.types.is_numeric_dtype(data[weightsname]) or (data[weightsname] <= 0).any():
            raise DidInputError(f"weights {weightsname!r} must be numeric and positive")
        if (data.groupby(idname)[weightsname].nunique() > 1).any():
            raise DidInputError(f"weights {weightsname!r} must be constant within {idname!r}")
    # timing group: never treated (0, or first treated after the last period) or g
    g = data.groupby(idname)[gname].first()
    group = g.where((g > 0) & (g <= times.max()), other=np.nan)
    group = group.astype(object).where(group.notna(), NEVER)
    wide = data.pivot(index=idname, columns=tname, values=yname).loc[g.index, times]
    w = (data.groupby(idname)[weightsname].first().loc[g.index].to_numpy(float)
         if weightsname else np.ones(len(g)))
    y = wide.to_numpy(float)
    gnum = np.where(group.to_numpy() == NEVER, np.inf, g.to_numpy(float))
    d = (times[None, :] >= gnum[:, None]).astype(float)
    if d.std() == 0 or np.all(d == d[:, :1]) or np.all(d == d[:1, :]):
        raise DidInputError("D_it has no variation within both units and periods; the TWFE "
                            "coefficient (and its decomposition) is not identified")
    twfe, vd = _twfe(y, d, w)
    wser = pd.Series(w, index=g.index)
    share = wser.groupby(group.to_numpy(), sort=False).sum() / w.sum()
    ybar = (pd.DataFrame(y * w[:, None], columns=times).groupby(group.to_numpy(), sort=False).sum()
            .div(wser.groupby(group.to_numpy(), sort=False).sum(), axis=0))
    dbar = pd.Series({k: float((times >= k).mean()) for k in share.index if k != NEVER})
    rows = _comparisons(ybar, share, dbar, times, vd)
    table = pd.DataFrame(rows, columns=["type", "treated", "control", "estimate", "weight"])
    for c in ("treated", "control"):
        table[c] = [_label(v) for v in table[c]]
    table = table.astype({"type": "string", "treated": "string", "control": "string"})
    meta = {"n_units": len(g), "n_periods": len(times), "n_rows": len(data),
            "weightsname": weightsname, "n_never": int((group == NEVER).sum()),
            "n_always": int((gnum <= times.min()).sum()),
            "weight_sum": float(table["weight"].sum())}
    return BaconResult(table=table, twfe=twfe, meta=meta)
