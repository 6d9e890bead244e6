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
import scipy.sparse as sp

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


def _row_major_times(D: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``D * w[:, None]`` in row-major order. A sparse matrix times a dense block reads
    the block row by row: scipy copies a column-major one to row-major first (``ravel``;
    6 s of a 43 s hazard fit). The product's values, and BLAS's ``D.T @ Dw`` on it, are
    the same bits either way."""
    return np.multiply(D, w[:, None], order="C")


class _Projector:
    """w-weighted projection on cell-level fixed effects, computed on cell sums.

    For a (sparse or dense) regressor matrix X and weights w, the cell sums S = Ind'(w X)
    (C x k) and the fitted cell values F of the cell-level WLS of S/W_c on the fixed-effect
    dummies (weights W_c) give every quantity of the partialled-out regression without an
    n x k temporary: X~'W X~ = X'W X - S'F, X~'W z~ = X'W z - F'S_z, P_w X = F[cell].
    """

    def __init__(self, cells: pd.DataFrame, fe: list[str], cell_code: np.ndarray):
        self.design = build_design(cells, fe, [])
        self.code = np.asarray(cell_code)
        self.C = len(cells)
        n = len(self.code)
        self.ind = sp.csr_matrix((np.ones(n), (np.arange(n), self.code)), shape=(n, self.C))

    def fit(self, w: np.ndarray):
        self.w = np.asarray(w, dtype="float64")
        self.Wc = np.bincount(self.code, weights=self.w, minlength=self.C)
        self.wfit = wls_fit(self.design, np.zeros(self.C), self.Wc, self.Wc > 0)
        self.Zk = self.design.Z[self.wfit.rows][:, self.wfit.keep]
        return self

    def sums(self, V) -> np.ndarray:
        """(C, k) cell sums of w * V for V (n, k): dense, sparse or ``_Blocks``."""
        if isinstance(V, _Blocks):
            out = np.empty((self.C, V.shape[1]))
            out[:, V.dense] = self.ind.T @ _row_major_times(V.D, self.w)
            out[:, V.sparse] = (self.ind.T @ (sp.diags(self.w) @ V.S)).toarray()
            return out
        WV = sp.diags(self.w) @ V if sp.issparse(V) else _row_major_times(V, self.w)
        out = self.ind.T @ WV
        return np.asarray(out.todense() if sp.issparse(out) else out)

    def fitted(self, S: np.ndarray) -> np.ndarray:
        """(C, k) fitted cell values of the projection, from cell sums S (C, k)."""
        coef = self.wfit.solve(np.asarray(self.Zk.T @ S[self.wfit.rows]))
        out = np.zeros((self.C, S.shape[1]))
        out[self.wfit.rows] = self.Zk @ coef
        return out

    def solve_fe(self, g_cells: np.ndarray) -> np.ndarray:
        """Cell values D a of a = (D'WD)^- D_c' g for a per-cell vector g (C,)."""
        a = self.wfit.solve(np.asarray(self.Zk.T @ g_cells[self.wfit.rows]))
        out = np.zeros(self.C)
        out[self.wfit.rows] = self.Zk @ a
        return out


class _Blocks:
    """A sparse regressor matrix split into its dense columns (``D``, n x d: quality, the
    numeric controls, dummies of common levels) and its sparse rest (``S``: dummies of
    rare levels). A sparse x sparse product costs O(n k^2) when some columns are dense;
    on the blocks the dense part goes through BLAS and the sparse products see only the
    sparse columns (the hazard on the built-in data: its Gram matrices 17.9 -> 3 s)."""

    def __init__(self, X, share: float = 0.125):
        Xc = sp.csc_matrix(X)
        nnz = np.diff(Xc.indptr)
        self.shape = Xc.shape
        self.dense = np.flatnonzero(nnz > share * Xc.shape[0])
        self.sparse = np.flatnonzero(nnz <= share * Xc.shape[0])
        self.D = np.asfortranarray(Xc[:, self.dense].toarray())
        self.S = Xc[:, self.sparse].tocsr()

    def gram(self, w: np.ndarray) -> np.ndarray:
        out = np.empty((self.shape[1], self.shape[1]))
        d, s = self.dense, self.sparse
        Dw = _row_major_times(self.D, w)
        out[np.ix_(d, d)] = self.D.T @ Dw
        SD = np.asarray(self.S.T @ Dw)
        out[np.ix_(s, d)] = SD
        out[np.ix_(d, s)] = SD.T
        out[np.ix_(s, s)] = (self.S.T @ (sp.diags(w) @ self.S)).toarray()
        return out


def _gram(X, w: np.ndarray) -> np.ndarray:
    """X' diag(w) X for dense, sparse or ``_Blocks`` X (k x k dense)."""
    if isinstance(X, _Blocks):
        return X.gram(w)
    if sp.issparse(X):
        return np.asarray((X.T @ (sp.diags(w) @ X)).todense())
    return X.T @ (X * w[:, None])


def _partialled(X, proj: _Projector) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X~'W X~, S_X, F_X) at the projector's current weights."""
    S = proj.sums(X)
    F = proj.fitted(S)
    M = _gram(X, proj.w) - S.T @ F
    return 0.5 * (M + M.T), S, F


def independent_of_fe(X, trials: np.ndarray, cell_code: np.ndarray,
                      cells: pd.DataFrame, fe: list[str]) -> np.ndarray:
    """Indices of the columns of X that stay linearly independent once the fixed effects
    are partialled out (greedy in column order; e.g. a municipal labour-market indicator
    is dropped under municipality x month effects)."""
    t = np.asarray(trials, float)
    if sp.issparse(X):
        X = _Blocks(X)
    proj = _Projector(cells, fe, np.asarray(cell_code)).fit(t)
    M, _, _ = _partialled(X, proj)
    d = np.sqrt(np.maximum(np.diag(M), 0))
    raw = np.sqrt(np.maximum(np.diag(_gram(X, t)), 0))
    # the cell-sum Gram carries rounding of order 1e-7 of a column's raw norm (a municipal
    # indicator under municipality x month effects: 4e-7, exactly 0); real regressors keep
    # 10% or more of their norm, so 1e-5 separates the two
    ok = np.flatnonzero(d > 1e-5 * np.maximum(raw, 1e-300))
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
    X = X.tocsr() if sp.issparse(X) else np.asarray(X, dtype="float64")
    exits = np.asarray(exits, dtype="float64")
    trials = np.asarray(trials, dtype="float64")
    y = exits / trials
    mu = np.clip((exits + 0.5) / (trials + 1.0), 1e-10, 1 - 1e-10)
    eta = link(mu)
    proj = _Projector(cells, fe, np.asarray(cell_code))
    code = proj.code
    Xg = _Blocks(X) if sp.issparse(X) else X  # for the Gram matrices and cell sums
    dev_old, it = np.inf, 0
    for it in range(1, maxiter + 1):
        f = link.inverse_deriv(eta)
        w = trials * f ** 2 / (mu * (1 - mu))
        z = eta + (y - mu) / f
        proj.fit(w)
        XtWX, S_x, F_x = _partialled(Xg, proj)
        S_z = proj.sums(z[:, None])
        F_z = proj.fitted(S_z)
        XtWz = np.asarray(X.T @ (w * z)).ravel() - F_x.T @ S_z[:, 0]
        b = np.linalg.solve(XtWX, XtWz)
        eta = np.asarray(X @ b).ravel() + (F_z[:, 0] - F_x @ b)[code]
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
    XtWX, _, F_x = _partialled(Xg, proj)
    d = np.sqrt(np.diag(XtWX))
    k = XtWX.shape[0]
    if (d <= 1e-12 * max(d.max(initial=0), 1e-300)).any() or len(
            independent_columns(XtWX / np.outer(d, d))) < k:
        raise ValueError("fe_binomial: a regressor is collinear with the fixed effects")
    B = np.linalg.inv(XtWX)
    r = f * (exits - trials * mu) / var
    cl, _ = pd.factorize(np.asarray(clusters))
    G = int(cl.max()) + 1
    n = len(r)
    # cluster sums of x~_i r_i = sum x_i r_i - sum_cells (r sums by cluster x cell) F_x
    clus = sp.csr_matrix((r, (cl, np.arange(n))), shape=(G, n))
    by_cell = sp.csr_matrix((r, (cl, code)), shape=(G, proj.C))
    S = np.asarray((clus @ X).todense() if sp.issparse(X) else clus @ X) - by_cell @ F_x
    N, K = float(trials.sum()), k + len(proj.wfit.keep)
    factor = G / (G - 1) * (N - 1) / (N - K)
    V = factor * B @ (S.T @ S) @ B
    # AME of +1 on column qcol, delta method through b and the fixed effects
    p1, f1 = link.inverse(eta + b[qcol]), link.inverse_deriv(eta + b[qcol])
    ame = 100 * float(np.sum(trials * (p1 - mu))) / N
    e_q = np.zeros(k)
    e_q[qcol] = 1.0
    tf1, tf = trials * f1, trials * f
    g_b = 100 * (np.asarray(X.T @ (tf1 - tf)).ravel() + tf1.sum() * e_q) / N
    g_cells = np.bincount(code, weights=100 * (tf1 - tf) / N, minlength=proj.C)
    Da = proj.solve_fe(g_cells)[code]
    lead = g_b - np.asarray(X.T @ (w * Da)).ravel()
    v = B @ lead
    xt_v = np.asarray(X @ v).ravel() - (F_x @ v)[code]
    psi = (xt_v + Da) * r
    ame_se = float(np.sqrt(factor * (np.bincount(cl, weights=psi, minlength=G) ** 2).sum()))
    return FEBinomialResult(b, V, ame, ame_se, int(N), len(proj.wfit.keep), it, dev)
