"""Binomial GLM (cloglog or logit) with cell-level fixed effects absorbed, by IRLS.

Why: the discrete-time hazard's fixed effects (municipality and region x month, or
municipality x month) as dense dummy columns make the design cells x (levels + regressors)
— about 10^9 numbers on the built-in data, beyond memory. Every one of these effects is a
function of the municipality-month *cell*, so inside each IRLS step the weighted
projection of any column on them is the cell-weighted least-squares fit of its weighted
cell means on the cell-level dummies (Frisch-Waugh-Lovell, as ``pmreg`` for the linear
model): one ``bincount`` per column and one small WLS on the cells. The fit is the same
maximum-likelihood estimate as the GLM with dummy columns (tests/estimate/
test_feglm.py checks coefficients, clustered SEs and the AME against the dense
statsmodels fit of ``hazard.fit_binomial_cells``).

Notes
-----
IRLS for rows i (compressed cells with ``exits`` out of ``trials``), linear index
eta = X b + D a, mean mu = F(eta), f = dmu/deta: working weight w = t f^2 / (mu (1 - mu)),
working response z = eta + (y/t - mu) / f. Each step: b = (X~'W X~)^{-1} X~'W z~ with
v~ = v - P_w v (P_w the w-weighted projection on the fixed effects), then
eta = X b + P_w (z - X b). Converged when the deviance changes by < ``tol`` (relative).

Inference (cluster sandwich, as ``hazard.fit_binomial_cells``): scores s_i = x~_i f
(y_i - t_i mu_i) / (mu_i (1 - mu_i)), bread (X~'W X~)^{-1} = the b-block of the inverse
information, factor G/(G-1) (N-1)/(N-K) with N person-months and K = regressors + rank of
the fixed-effect design. The average marginal effect of +1 on column q,
AME = 100 sum_i t_i (F(eta_i + b_q) - F(eta_i)) / N, has influence
[(g_b - X'W D a)' B x~_i + (D a)_i] r_i per row (g_b, g_a its gradients in b and the
fixed effects, a = (D'WD)^- g_a, r_i = f (y_i - t_i mu_i) / (mu_i (1 - mu_i))): the delta
method over all parameters, fixed effects included, without forming their covariance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from impact.estimate.linalg import build_design, independent_columns, wls_fit

__all__ = ["FEBinomialResult", "fe_binomial", "independent_of_fe"]


@dataclass(frozen=True)
class FEBinomialResult:
    """params (K,), vcov (K, K) of the regressors; ame/ame_se for column ``qcol``;
    n_obs (sum of trials), n_fe (rank of the fixed effects), iterations, deviance."""

    params: np.ndarray
    vcov: np.ndarray
    ame: float
    ame_se: float
    n_obs: int
    n_fe: int
    iterations: int
    deviance: float


class _Projector:
    """w-weighted projection of row-level columns on cell-level fixed effects."""

    def __init__(self, cells: pd.DataFrame, fe: list[str], cell_code: np.ndarray):
        self.design = build_design(cells, fe, [])
        self.code = cell_code
        self.C = len(cells)

    def fit(self, w: np.ndarray):
        self.Wc = np.bincount(self.code, weights=w, minlength=self.C)
        self.w = w
        self.wfit = wls_fit(self.design, np.zeros(self.C), self.Wc, self.Wc > 0)
        self.Zk = self.design.Z[self.wfit.rows][:, self.wfit.keep]
        return self

    def cell_values(self, V: np.ndarray) -> np.ndarray:
        """(C, k) fitted cell values of the projection of the columns of V (n, k)."""
        sums = np.stack([np.bincount(self.code, weights=self.w * V[:, j], minlength=self.C)
                         for j in range(V.shape[1])], axis=1)
        coef = self.wfit.solve(np.asarray(self.Zk.T @ sums[self.wfit.rows]))
        out = np.zeros((self.C, V.shape[1]))
        out[self.wfit.rows] = self.Zk @ coef
        return out

    def project(self, V: np.ndarray) -> np.ndarray:
        return self.cell_values(V)[self.code]

    def solve_fe(self, g_cells: np.ndarray) -> np.ndarray:
        """Cell values D a of a = (D'WD)^- D_c' g for a per-cell vector g (C,)."""
        a = self.wfit.solve(np.asarray(self.Zk.T @ g_cells[self.wfit.rows]))
        out = np.zeros(self.C)
        out[self.wfit.rows] = self.Zk @ a
        return out


def independent_of_fe(X: np.ndarray, trials: np.ndarray, cell_code: np.ndarray,
                      cells: pd.DataFrame, fe: list[str]) -> np.ndarray:
    """Indices of the columns of X that stay linearly independent once the fixed effects
    are partialled out (greedy in column order; e.g. a municipal labour-market indicator
    is dropped under municipality x month effects)."""
    proj = _Projector(cells, fe, np.asarray(cell_code)).fit(np.asarray(trials, float))
    Xt = X - proj.project(X)
    M = Xt.T @ (Xt * trials[:, None])
    d = np.sqrt(np.maximum(np.diag(M), 0))
    ok = np.flatnonzero(d > 1e-9 * max(np.sqrt(np.diag(X.T @ (X * trials[:, None]))).max(), 1e-300))
    if not len(ok):
        return ok
    sub = M[np.ix_(ok, ok)] / np.outer(d[ok], d[ok])
    return ok[independent_columns(sub)]


def _deviance(exits, trials, mu) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(exits > 0, exits * np.log(exits / (trials * mu)), 0.0)
        b = np.where(trials - exits > 0,
                     (trials - exits) * np.log((trials - exits) / (trials * (1 - mu))), 0.0)
    return float(2 * (a + b).sum())


def fe_binomial(X: np.ndarray, exits: np.ndarray, trials: np.ndarray, cell_code: np.ndarray,
                cells: pd.DataFrame, fe: list[str], clusters, link, qcol: int = 0,
                tol: float = 1e-12, maxiter: int = 100) -> FEBinomialResult:
    """Binomial GLM with the ``fe`` columns of ``cells`` absorbed (module notes).

    Parameters
    ----------
    X : array (n, k)
        Regressors of the compressed rows (no constant: the fixed effects carry it).
    exits, trials : array (n,)
    cell_code : array (n,)
        Row -> cell index (0..C-1) into ``cells``, whose ``fe`` columns are the effects.
    clusters : array (n,)
    link : statsmodels link (``hazard._family(link).link``)
    qcol : int
        Column whose +1 average marginal effect is reported.

    Raises
    ------
    ValueError
        Regressors collinear with the fixed effects, or no convergence.
    """
    X = np.asarray(X, dtype="float64")
    y = exits / trials
    mu = np.clip((exits + 0.5) / (trials + 1.0), 1e-10, 1 - 1e-10)
    eta = link(mu)
    proj = _Projector(cells, fe, np.asarray(cell_code))
    dev_old, it = np.inf, 0
    for it in range(1, maxiter + 1):
        f = link.inverse_deriv(eta)
        var = mu * (1 - mu)
        w = trials * f ** 2 / var
        z = eta + (y - mu) / f
        proj.fit(w)
        A = np.column_stack([z, X])
        At = A - proj.project(A)
        Xt, zt = At[:, 1:], At[:, 0]
        XtWX = Xt.T @ (Xt * w[:, None])
        b = np.linalg.solve(XtWX, Xt.T @ (w * zt))
        eta = X @ b + proj.project((z - X @ b)[:, None])[:, 0]
        mu = np.clip(link.inverse(eta), 1e-12, 1 - 1e-12)
        dev = _deviance(exits, trials, mu)
        if abs(dev - dev_old) <= tol * (abs(dev) + 0.1):
            break
        dev_old = dev
    else:
        raise ValueError(f"fe_binomial: no convergence in {maxiter} IRLS steps")
    # sandwich at the converged weights
    f = link.inverse_deriv(eta)
    var = mu * (1 - mu)
    w = trials * f ** 2 / var
    proj.fit(w)
    Xt = X - proj.project(X)
    XtWX = Xt.T @ (Xt * w[:, None])
    d = np.sqrt(np.diag(XtWX))
    if (d <= 1e-12 * max(d.max(initial=0), 1e-300)).any() or len(
            independent_columns(XtWX / np.outer(d, d))) < X.shape[1]:
        raise ValueError("fe_binomial: a regressor is collinear with the fixed effects")
    B = np.linalg.inv(XtWX)
    r = f * (exits - trials * mu) / var
    cl, _ = pd.factorize(np.asarray(clusters))
    G = int(cl.max()) + 1
    S = np.zeros((G, X.shape[1]))
    np.add.at(S, cl, Xt * r[:, None])
    N, K = float(trials.sum()), X.shape[1] + len(proj.wfit.keep)
    factor = G / (G - 1) * (N - 1) / (N - K)
    V = factor * B @ (S.T @ S) @ B
    # AME of +1 on column qcol, delta method through b and the fixed effects
    p1, f1 = link.inverse(eta + b[qcol]), link.inverse_deriv(eta + b[qcol])
    ame = 100 * float(np.sum(trials * (p1 - mu))) / N
    e_q = np.zeros(X.shape[1])
    e_q[qcol] = 1.0
    g_b = 100 * ((trials * f1) @ (X + e_q) - (trials * f) @ X) / N
    g_cells = np.bincount(proj.code, weights=100 * trials * (f1 - f) / N, minlength=proj.C)
    Da = proj.solve_fe(g_cells)[proj.code]
    lead = g_b - X.T @ (w * Da)
    psi = (Xt @ (B @ lead) + Da) * r
    ame_se = float(np.sqrt(factor * (np.bincount(cl, weights=psi, minlength=G) ** 2).sum()))
    return FEBinomialResult(b, V, ame, ame_se, int(N), len(proj.wfit.keep), it, dev)
