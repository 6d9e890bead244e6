"""The imputation estimator on cells (Borusyak, Jaravel and Spiess 2024), shared by the
adoption and shock estimators.

Notes
-----
Borusyak, Jaravel and Spiess (2024), "Revisiting event-study designs: robust and
efficient estimation", *Review of Economic Studies* 91(6), 3253-3285.

1. Fit the untreated-outcome model on the untreated cells Omega_0 by WLS (person-month
   weights p): ``Y = FE + X'b + u`` (``linalg.wls_fit``, collinear columns dropped).
2. Impute Yhat(0) = Z theta on the cells to evaluate, tau_it = Y_it - Yhat_it(0). A cell
   is imputable when each of its fixed-effect levels occurs in Omega_0; others are
   imputed by a fallback model with coarser effects (fitted on the same Omega_0, its
   implied weights added to v_0) or, failing that, dropped with a warning.
3. Any target is a weighted mean sum_it w_it tau_it (w >= 0, summing to one), e.g.
   person-month weights over treated cells. It is linear in Y: untreated cells carry the
   implied weights v_0 = -P0 Z0 (Z0'P0 Z0)^- Z1'w.

Variance (Theorem 3, conservative, clustered): sum_c (sum_{it in c} v_it e_it)^2 with e the
Y(0)-model residual on Omega_0 and, on evaluated cells, e_it = tau_it - taubar_it, taubar
the eq. (8) cluster-weighted average of tau within the cell's group (event time), leaving
out the cell's own cluster (as did_imputation's ``leaveout`` option; a group with one
cluster falls back to all evaluated cells). The per-cluster scores are returned, so joint
tests use their cross-product. Small-sample factors as CRV1 (BJS use none): the Y(0)
residuals are scaled by sqrt((N0-1)/(N0-K0)) (the region x month effects are many for a
cell table, and fitted residuals understate errors), the sum by G/(G-1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from impact.distinct import unique
from impact.estimate.frames import warn
from impact.estimate.linalg import Design, WLSFit, build_design, group_sums, wls_fit

__all__ = ["Imputation", "impute", "aggregate", "bjs_scores", "wild_parts"]


@dataclass(frozen=True)
class Imputation:
    """An imputed set of cells: ``idx1`` rows evaluated, ``tau`` their effects.

    ``models`` holds (design, fit, positions in idx1) per Y(0) model: the primary one and,
    for cells whose primary fixed-effect levels never occur untreated, the fallback.
    """

    models: tuple[tuple[Design, WLSFit, np.ndarray], ...]
    y: np.ndarray
    p: np.ndarray
    cl: np.ndarray
    idx1: np.ndarray
    tau: np.ndarray
    n_lost: int
    n_fallback: int
    n_clusters: int

    @property
    def fit(self) -> WLSFit:
        """The primary Y(0) model's fit (its residuals enter the variance)."""
        return self.models[0][1]


def _identified(design: Design, untreated: np.ndarray) -> np.ndarray:
    ok = np.ones(design.Z.shape[0], bool)
    for codes, levels in zip(design.fe_codes, design.fe_levels):
        seen = np.zeros(levels, bool)
        seen[codes[untreated]] = True
        ok &= seen[codes]
    return ok


def impute(frame: pd.DataFrame, y: np.ndarray, p: np.ndarray, fe: list[str], x: list[str],
           untreated: np.ndarray, evaluate: np.ndarray, cluster: np.ndarray, what: str,
           fallback_fe: list[str] | None = None) -> Imputation | None:
    """Fit Y(0) on ``untreated`` rows and impute it on ``evaluate`` rows (see module notes).

    Cells whose ``fe`` levels never occur untreated (e.g. a region-month in which every
    unit has adopted) are imputed with ``fallback_fe`` (e.g. unit + calendar month), fitted
    on the same untreated cells, when given; cells neither model identifies are dropped.
    """
    y = np.asarray(y, dtype="float64")
    models, tau, idx = [], [], []
    todo = evaluate.copy()
    n_fb = 0
    for k, fes in enumerate([fe] + ([fallback_fe] if fallback_fe else [])):
        if k and not todo.any():   # every cell imputed: no fallback design to build
            break              # (robustness's 342 refits built one each for nothing)
        design = build_design(frame, fes, x)
        rows = np.flatnonzero(todo & _identified(design, untreated))
        if len(rows) == 0:
            continue
        fit = wls_fit(design, y, p, untreated)
        models.append((design, fit, np.arange(len(rows)) + sum(len(i) for i in idx)))
        tau.append(y[rows] - design.Z[rows][:, fit.keep] @ fit.coef[fit.keep])
        idx.append(rows)
        todo[rows] = False
        n_fb += len(rows) if k > 0 else 0
    if n_fb:
        warn(f"{what}: {n_fb} cells imputed with {' + '.join(fallback_fe or [])} effects: their "
             f"{' + '.join(fe)} level never occurs untreated")
    if todo.any():
        warn(f"{what}: {int(todo.sum())} cells ({p[todo].sum() / p[evaluate].sum():.1%} of their "
             "person-months) cannot be imputed: a fixed-effect level is never untreated")
    if not models:
        return None
    idx1 = np.concatenate(idx)
    cl = pd.factorize(np.asarray(cluster))[0]
    G = len(unique(cl[np.concatenate([models[0][1].rows, idx1])]))
    return Imputation(tuple(models), y, np.asarray(p, float), cl, idx1, np.concatenate(tau),
                      int(todo.sum()), n_fb, G)


def bjs_scores(v0: np.ndarray, resid0: np.ndarray, cl0: np.ndarray, w1: np.ndarray,
               tau1: np.ndarray, p1: np.ndarray, cl1: np.ndarray, groups1: np.ndarray,
               leave_out: bool = True, eq8: bool = True) -> np.ndarray:
    """Per-cluster scores (G x H) of BJS Theorem 3 for targets with weights ``w1`` (n1 x H).

    taubar within ``groups1`` with weights p1: eq. (8) cluster-level form when ``eq8``, else
    the observation-weighted mean; leaving out the own cluster when ``leave_out``.
    Variance of target h = sum over clusters of scores[:, h]**2.
    """
    G = int(max(cl0.max(initial=-1), cl1.max(initial=-1))) + 1
    gi = pd.factorize(groups1)[0]
    n_g = int(gi.max()) + 1 if len(gi) else 0
    key = gi * G + cl1
    V = np.bincount(key, weights=p1, minlength=n_g * G).reshape(n_g, G)
    T = np.bincount(key, weights=p1 * tau1, minlength=n_g * G).reshape(n_g, G)

    def parts(Vm, Tm, rows, cols):
        tot = ((Vm * Tm).sum(-1), (Vm * Vm).sum(-1)) if eq8 else (Tm.sum(-1), Vm.sum(-1))
        own = ((Vm[rows, cols] * Tm[rows, cols], Vm[rows, cols] ** 2) if eq8
               else (Tm[rows, cols], Vm[rows, cols]))
        return tot, own

    (num_g, den_g), (num_o, den_o) = parts(V, T, gi, cl1)
    num, den = num_g[gi], den_g[gi]
    if leave_out:
        num, den = num - num_o, den - den_o
        alone = den <= 1e-12 * np.maximum(den_g[gi], 1e-300)
        if alone.any():
            Va, Ta = V.sum(0, keepdims=True), T.sum(0, keepdims=True)
            (na, da), (no, do) = parts(Va, Ta, np.zeros_like(cl1), cl1)
            num = np.where(alone, na[0] - no, num)
            den = np.where(alone, da[0] - do, den)
    taubar = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    eps1 = tau1 - taubar
    return group_sums(cl0, v0 * resid0[:, None], G) + group_sums(cl1, w1 * eps1[:, None], G)


def aggregate(imp: Imputation, weights: np.ndarray, groups: np.ndarray, *,
              leave_out: bool = True, eq8: bool = True, small_sample: bool = True
              ) -> tuple[np.ndarray, np.ndarray]:
    """Targets ``weights`` (n1 x H, columns normalised here) -> (estimates, scores G x H).

    ``leave_out``/``eq8`` as in ``bjs_scores``; ``small_sample`` applies the CRV1-style
    factors of the module notes (off: BJS's formula as published).
    """
    W1 = np.asarray(weights, dtype="float64")
    W1 = W1 / W1.sum(axis=0, keepdims=True)
    est = W1.T @ imp.tau
    fit, idx0 = imp.fit, imp.fit.rows
    v0 = _implied_v0(imp, W1)
    n0, k0, G = len(idx0), len(fit.keep), imp.n_clusters
    dof = np.sqrt((n0 - 1) / max(n0 - k0, 1)) if small_sample else 1.0
    S = bjs_scores(v0, dof * fit.resid, imp.cl[idx0], W1, imp.tau, imp.p[imp.idx1],
                   imp.cl[imp.idx1], groups, leave_out=leave_out, eq8=eq8)
    return est, S * (np.sqrt(G / max(G - 1, 1)) if small_sample else 1.0)


def _implied_v0(imp: Imputation, W1: np.ndarray) -> np.ndarray:
    """Implied weights of the untreated rows (n0 x H): v_0 = -P0 Z0 (Z0'P0 Z0)^- Z1'w."""
    idx0 = imp.fit.rows
    v0 = np.zeros((len(idx0), W1.shape[1]))
    for design, mfit, pos in imp.models:  # all models are fitted on the same untreated rows
        Z1 = design.Z[imp.idx1[pos]][:, mfit.keep]
        Z0 = design.Z[idx0][:, mfit.keep]
        v0 -= imp.p[idx0][:, None] * (Z0 @ mfit.solve(np.asarray(Z1.T @ W1[pos])))
    return v0


def wild_parts(imp: Imputation, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster score parts (a, c) of one target for ``scorewild.score_wild``.

    Under H0 that every evaluated cell's effect equals theta0 the target's deviation is
    sum_g (a_g - theta0 c_g) with a_g = sum_{g, untreated} v_0 e_0 + sum_{g, evaluated}
    w tau and c_g = sum_{g, evaluated} w (``weights`` (n1,) normalised to sum to one);
    the Y(0) residuals carry the same small-sample factor as ``aggregate``.
    """
    w1 = np.asarray(weights, dtype="float64").ravel()
    w1 = w1 / w1.sum()
    fit, idx0 = imp.fit, imp.fit.rows
    v0 = _implied_v0(imp, w1[:, None])[:, 0]
    n0, k0 = len(idx0), len(fit.keep)
    dof = np.sqrt((n0 - 1) / max(n0 - k0, 1))
    G = int(imp.cl.max()) + 1
    cl0, cl1 = imp.cl[idx0], imp.cl[imp.idx1]
    a = (np.bincount(cl0, weights=v0 * dof * fit.resid, minlength=G)
         + np.bincount(cl1, weights=w1 * imp.tau, minlength=G))
    c = np.bincount(cl1, weights=w1, minlength=G)
    present = np.zeros(G, bool)
    present[cl0] = present[cl1] = True
    return a[present], c[present]
