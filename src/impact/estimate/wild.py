"""Wild cluster bootstrap for one WLS coefficient, for inference with few clusters.

Notes
-----
Cameron, Gelbach and Miller (2008, *REStat* 90(3)) and the fast algebra of Roodman,
MacKinnon, Nielsen and Webb (2019, *Stata Journal* 19(1), "Fast and wild"). For the fit
``y = Z b + u`` with weights w (``linalg.wls_fit``) and the coefficient b_k:

* **WCR p-value** (``impose_null=True``): fit the model without column k (H0: b_k = 0),
  keep its fitted values yhat_r and residuals u_r, draw one weight v_g per cluster and set
  ``y*_b = yhat_r + v_g u_r``; refit, and form t*_b = b*_k / se*(b*_k) with the same CRV1
  formula as the data's t (``linalg.crv1_vcov``; its small-sample factor cancels).
  p = share of draws with |t*_b| >= |t| (symmetric two-sided test).
* **Interval**: WCU percentile-t (not test inversion): draws ``y* = yhat + v_g u`` from the
  *unrestricted* fit, t*_b = (b*_k - b_k)/se*, and
  ``[b_k - c se, b_k + c se]`` with c the (1 - alpha) quantile of |t*_b|. With
  ``impose_null=False`` the p-value is also from these draws (|t*_b| >= |t|).

Because Z is fixed, every draw is linear in v: with a = row k of (Z'WZ)^{-1} Z'W,
b*_k = sum_g v_g c_g (c_g = sum_{i in g} a_i u_i) and the cluster score of the refit is
s*_g = sum_h K_gh v_h, K = diag(c) - A B S' (A_g = sum_{i in g} a_i z_i,
S_h = sum_{i in h} w_i u_i z_i, B = (Z'WZ)^{-1}, applied by ``fit.solve``). So B draws cost O(B G^2) after one fit.

Weights: Rademacher (+-1) or Webb's six-point (+-sqrt(1/2), +-1, +-sqrt(3/2)), the latter
for G below about 10 (Webb 2023, *Canadian J. Econ.*). Rademacher with G <= 10 clusters
enumerates all 2^G sign vectors instead of sampling (exact, deterministic); so does Webb
when 6^G <= B. The identity draw v = 1 is then among the draws, as in ``boottest``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from impact.estimate.linalg import Design, crv1_vcov, group_sums, wls_fit

__all__ = ["WildResult", "wild_cluster_bootstrap", "draw_weights"]

WildWeights = Literal["rademacher", "webb"]
_WEBB = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])


@dataclass(frozen=True)
class WildResult:
    """Wild cluster bootstrap of one coefficient.

    estimate, std_error (CRV1), t_stat: the data's; p_value: bootstrap two-sided p;
    ci_low/ci_high: WCU percentile-t interval; t_boot (B,): the bootstrap t's behind the
    p-value; n_boot: draws used; enumerated: whether all sign vectors were used.
    """

    estimate: float
    std_error: float
    t_stat: float
    p_value: float
    ci_low: float
    ci_high: float
    t_boot: np.ndarray
    n_clusters: int
    n_boot: int
    weights: str
    impose_null: bool
    enumerated: bool


def draw_weights(G: int, B: int, weights: str, rng: np.random.Generator
                 ) -> tuple[np.ndarray, bool]:
    """(B', G) cluster weights and whether they are the full enumeration."""
    if weights == "rademacher":
        if G <= 10:
            return np.array(list(itertools.product((1.0, -1.0), repeat=G))), True
        return rng.choice(np.array([-1.0, 1.0]), size=(B, G)), False
    if weights == "webb":
        if 6 ** G <= B:
            return np.array(list(itertools.product(_WEBB, repeat=G))), True
        return rng.choice(_WEBB, size=(B, G)), False
    raise ValueError(f"weights={weights!r} is not allowed (allowed: rademacher, webb)")


def _restricted_design(design: Design, col: int) -> Design:
    keep = np.setdiff1d(np.arange(design.Z.shape[1]), [col])
    j = col - design.n_fe_cols
    return Design(design.Z[:, keep].tocsr(), design.fe_names, design.fe_codes,
                  design.fe_levels, design.x_names[:j] + design.x_names[j + 1:])


def _boot_t(Zk, fit, a, w, resid, cl, G, V):
    """t-numerators b*_k - (value under the DGP) and CRV1 sums for draws V (B x G)."""
    c = group_sums(cl, a * resid, G)                                  # (G,)
    A = group_sums(cl, Zk.multiply(a[:, None]).tocsc(), G)           # (G, r)
    S = group_sums(cl, Zk.multiply((w * resid)[:, None]).tocsc(), G)  # (G, r)
    K = np.diag(c) - A @ fit.solve(S.T)                               # (G, G)
    num = V @ c
    scores = V @ K.T                                                  # (B, G)
    return num, np.sqrt((scores ** 2).sum(axis=1))


def wild_cluster_bootstrap(design: Design, y, w, clusters, col: int | str, *,
                           weights: WildWeights = "rademacher", B: int = 999,
                           seed: int = 0, impose_null: bool = True,
                           alpha: float = 0.05) -> WildResult:
    """Wild cluster bootstrap t test (WCR or WCU) and WCU percentile-t interval of b_col.

    Parameters
    ----------
    design : linalg.Design
        The regression design (FE dummies and regressors); all rows are used.
    y, w : array (n,)
        Outcome and analytic weights.
    clusters : array (n,)
        Cluster labels (bootstrap weights are drawn per cluster).
    col : int or str
        Design column index, or the name of a regressor in ``design.x_names``.
    weights : {"rademacher", "webb"}
    B : int
        Draws when not enumerating.
    seed : int
        Seed of ``np.random.default_rng``.
    impose_null : bool
        True: WCR p-value for H0 b_col = 0 (recommended); False: WCU p-value.

    Raises
    ------
    ValueError
        Unknown weights, fewer than two clusters, or column dropped as collinear.
    """
    y = np.asarray(y, dtype="float64")
    w = np.asarray(w, dtype="float64")
    col = design.x_index(col) if isinstance(col, str) else int(col)
    cl, _ = pd.factorize(np.asarray(clusters))
    G = int(cl.max()) + 1
    if G < 2:
        raise ValueError(f"wild cluster bootstrap needs at least 2 clusters, got {G}")
    fit = wls_fit(design, y, w)
    if col not in set(fit.keep):
        raise ValueError(f"column {col} was dropped as collinear; nothing to bootstrap")
    V0, _, _ = crv1_vcov(design, fit, w, clusters, [col])
    factor_se = float(np.sqrt(V0[0, 0]))
    est = float(fit.coef[col])
    t_obs = est / factor_se
    Zk = design.Z[:, fit.keep]
    k = int(np.flatnonzero(fit.keep == col)[0])
    a = np.asarray(Zk @ fit.bread_columns([k])[:, 0]).ravel() * w        # b_k = a'y
    # CRV1 factor: crv1 V = factor * (sum_g (sum a u)^2); recover it from the data's fit
    raw = float(np.sqrt(((group_sums(cl, a * fit.resid, G)) ** 2).sum()))
    factor = factor_se / raw if raw > 0 else np.nan

    rng = np.random.default_rng(seed)
    V, enumerated = draw_weights(G, B, weights, rng)
    # WCU draws: interval (and p-value when not imposing the null)
    num_u, den_u = _boot_t(Zk, fit, a, w, fit.resid, cl, G, V)
    t_u = num_u / (factor * den_u)
    crit = float(np.quantile(np.abs(t_u), 1 - alpha))
    ci = (est - crit * factor_se, est + crit * factor_se)
    if impose_null:
        rfit = wls_fit(_restricted_design(design, col), y, w)
        num, den = _boot_t(Zk, fit, a, w, rfit.resid, cl, G, V)
        t_boot = num / (factor * den)
    else:
        t_boot = t_u
    p = float(np.mean(np.abs(t_boot) >= abs(t_obs) * (1 - 1e-10)))
    return WildResult(est, factor_se, float(t_obs), p, ci[0], ci[1], t_boot, G, len(V),
                      weights, impose_null, enumerated)
