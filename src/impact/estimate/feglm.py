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
eta = X b + P_w (z - X b). Converged when the deviance changed by < ``tol`` (relative)
and the next step would move the reported coefficient (``qcol``) by < 1e-8 (1 + |b|); b
is then kept with the sums of its own pass, which the sandwich needs anyway (a pass fewer
than taking the step and comparing after it). With a non-canonical link
(cloglog) IRLS is Fisher scoring, not Newton, and a step can leave the deviance within
``tol`` while the coefficient still moves by 1e-8 (seen in tests/estimate/test_hazard.py's
cloglog case, started from the cells' rates). ``tol`` is 1e-8, the default of R's
``glm.control`` (``epsilon``) and of alpaca's ``feglmControl`` (``dev.tol``) for the same
relative change |dev - dev_old| / (|dev| + 0.1); the second criterion bounds the reported
coefficient's error, not the AME's, which moves with every coefficient and effect (by
2.8e-8 relative on the national hazard against a fit at 1e-12). On the national hazard
(62 million rows, 9 passes of about 17 s at 1e-12) the steps moved the coefficients by at
most 0.45, 0.26, 0.088, 6.9e-3, 3.8e-5, 1.1e-7, 6.6e-10: at 1e-8 the fit keeps the sixth
iterate (deviance change 7e-3 of 6.5e6; the next step would move the reported coefficient
by 2e-9, the others by at most 1.1e-7), two passes fewer than at 1e-12.

Memory: every per-row quantity but the linear index is made a chunk of rows at a time
(``Blocks``), each IRLS step one pass that updates eta and accumulates the next step's
X'WX, cell sums and X'Wz; the regressors are read through ``rows(lo, hi)`` (a CSR matrix, or the
compact coded design of ``hazard_stream``), so what is held whole is the design, the
exits, trials, cell and cluster codes and eta. (Held whole, the hazard on 16 million
person-months took 10 GB: the dense part of X and its weighted copy, a dozen per-row
vectors and several copies of X.)

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

import logging
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from impact.distinct import first_codes
from impact.estimate.linalg import build_design, independent_columns, wls_fit
from impact.estimate.rowsource import Acc, Blocks, t_times

__all__ = ["FEBinomialResult", "ReportedColumnCollinear", "fe_binomial"]


class ReportedColumnCollinear(ValueError):
    """``fe_binomial(select=True)``: the reported column (``qcol``) is collinear with the
    fixed effects."""


@dataclass(frozen=True)
class FEBinomialResult:
    """params (K,), vcov (K, K) of the regressors; ame/ame_se for column ``qcol``;
    n_obs (sum of trials), n_fe (rank of the fixed effects), iterations, deviance;
    ``passes`` of IRLS over all rows (the start's and the step halvings' included)."""

    params: np.ndarray
    vcov: np.ndarray
    ame: float
    ame_se: float
    n_obs: int
    n_fe: int
    iterations: int
    deviance: float
    columns: np.ndarray | None = None  # of X, those fitted (all without ``select``)
    passes: int = 0


class _Projector:
    """w-weighted projection on cell-level fixed effects, computed on cell sums.

    For regressors X and weights w, the cell sums S = Ind'(w X) (C x k) and the fitted cell
    values F of the cell-level WLS of S/W_c on the fixed-effect dummies (weights W_c, the
    cell sums of w) give every quantity of the partialled-out regression without an n x k
    temporary: X~'W X~ = X'W X - S'F, X~'W z~ = X'W z - F'S_z, P_w X = F[cell].
    """

    def __init__(self, cells: pd.DataFrame, fe: list[str], cell_code: np.ndarray):
        self.cells, self.fe = cells, fe
        self.design = build_design(cells, fe, [])
        self.code = np.asarray(cell_code)
        self.C = len(cells)

    def fit(self, w: np.ndarray):
        """The projection at row weights w (kept for ``sums``)."""
        self.w = np.asarray(w, dtype="float64")
        return self.fit_cells(np.bincount(self.code, weights=self.w, minlength=self.C))

    def fit_cells(self, Wc: np.ndarray):
        """The projection at cell weights Wc (the cell sums of the row weights)."""
        self.Wc = Wc
        self.wfit = wls_fit(self.design, np.zeros(self.C), self.Wc, self.Wc > 0)
        self.Zk = self.design.Z[self.wfit.rows][:, self.wfit.keep]
        return self

    def sums(self, V) -> np.ndarray:
        """(C, k) cell sums of w * V for V (n, k): dense, sparse or ``Blocks``."""
        if sp.issparse(V):
            V = Blocks(V)
        if isinstance(V, Blocks):
            return V.cell_sums(self.code, self.w, self.C)
        V = np.asarray(V).reshape(len(self.code), -1)
        return np.column_stack([np.bincount(self.code, weights=self.w * V[:, j],
                                            minlength=self.C) for j in range(V.shape[1])])

    def fitted(self, S: np.ndarray) -> np.ndarray:
        """(C, k) fitted cell values of the projection, from cell sums S (C, k)."""
        coef = self.wfit.solve(np.asarray(self.Zk.T @ S[self.wfit.rows]))
        out = np.zeros((self.C, S.shape[1]))
        out[self.wfit.rows] = self.Zk @ coef
        return out

    def solve_fe(self, g_cells: np.ndarray) -> np.ndarray:
        """Cell values D a of a = (D'WD)^- D_c' g for a per-cell vector g (C,)."""
        return self.fitted(g_cells[:, None])[:, 0]


def _gram(X, w: np.ndarray) -> np.ndarray:
    """X' diag(w) X for dense, sparse or ``Blocks`` X (k x k dense)."""
    if isinstance(X, Blocks):
        return X.gram(w)
    if sp.issparse(X):
        return np.asarray((X.T @ (sp.diags(w) @ X)).todense())
    return X.T @ (X * w[:, None])


def _sym(M: np.ndarray) -> np.ndarray:
    return 0.5 * (M + M.T)


def _independent(raw_gram: np.ndarray, Sx: np.ndarray, proj: _Projector) -> np.ndarray:
    """Indices of the columns that stay linearly independent once the fixed effects are
    partialled out (greedy in column order; e.g. a municipal indicator is dropped under
    municipality x month effects), from X'WX, the cell sums of wX and ``proj`` fitted at
    the same positive weights w. Whether a column lies in the span of the fixed effects
    and the others does not depend on w; each column's residual norm is judged relative
    to its own raw norm at the same w."""
    M = _sym(raw_gram - Sx.T @ proj.fitted(Sx))
    d = np.sqrt(np.maximum(np.diag(M), 0))
    raw = np.sqrt(np.maximum(np.diag(raw_gram), 0))
    # the cell-sum Gram carries rounding of order 1e-7 of a column's raw norm (a municipal
    # indicator under municipality x month effects, on the built-in data at the first
    # step's weights: 4.6e-8 with cloglog, exactly 0 with logit); real regressors keep 6%
    # or more of their norm there (region x month effects: 6.3%), so 1e-5 separates them
    ok = np.flatnonzero(d > 1e-5 * np.maximum(raw, 1e-300))
    if not len(ok):
        return ok
    sub = M[np.ix_(ok, ok)] / np.outer(d[ok], d[ok])
    return ok[independent_columns(sub)]


def _start(link, cells: pd.DataFrame, fe: list[str], e_cell: np.ndarray,
           n_cell: np.ndarray) -> np.ndarray:
    """IRLS's start: each cell's rate from the smoothed rates of its fixed-effect levels
    (glm's (y + 1/2) / (n + 1) per level), added on the link scale around the overall
    rate. One effect: the cell's own smoothed rate when it is the cell (municipality x
    month effects).

    Not per row: with nearly a row per person-month a row's own rate is 1/4 or 3/4, far
    from a monthly exit rate (the built-in hazard took 9 steps from there, 7 from the
    cells'). Not per cell under two effects: a municipality-month with 5 person-months and
    no exit starts at 1/12, where its municipality's few exits over ten years put the
    optimum near exp(-7.6); IRLS came down by about 0.9 a step, and on a quarter of the
    national hazard's cells it made a seventh pass for a few such cells alone (the full
    national hazard and the built-in one take six from either start: docs/performance.md,
    twenty-sixth round). The same optimum from either start (tests/estimate/test_feglm.py).
    A missing level is a level of its own."""
    total = link(np.array([(e_cell.sum() + 0.5) / (n_cell.sum() + 1.0)]))[0]
    eta = np.full(len(cells), total)
    for name in fe:
        lv = pd.factorize(cells[name].to_numpy(), use_na_sentinel=False)[0]
        rate = (np.bincount(lv, weights=e_cell) + 0.5) / (np.bincount(lv, weights=n_cell) + 1.0)
        eta += link(np.clip(rate, 1e-10, 1 - 1e-10))[lv] - total
    return np.clip(link.inverse(eta), 1e-10, 1 - 1e-10)


def _deviance(exits, trials, mu) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(exits > 0, exits * np.log(exits / (trials * mu)), 0.0)
        b = np.where(trials - exits > 0,
                     (trials - exits) * np.log((trials - exits) / (trials * (1 - mu))), 0.0)
    return float(2 * (a + b).sum())


def _mu(link, eta: np.ndarray) -> np.ndarray:
    return np.clip(link.inverse(eta), 1e-12, 1 - 1e-12)


def fe_binomial(X, exits: np.ndarray, trials: np.ndarray, cell_code: np.ndarray,
                cells: pd.DataFrame, fe: list[str], clusters, link, qcol: int = 0,
                tol: float = 1e-8, maxiter: int = 100, chunk: int = 1 << 18,
                select: bool = False, warm: bool = True) -> FEBinomialResult:
    """Binomial GLM with the ``fe`` columns of ``cells`` absorbed (module notes).

    Parameters
    ----------
    X : array (n, k), sparse matrix or row source (``as_rows``)
        Regressors of the compressed rows (no constant: the fixed effects carry it).
    exits, trials : array (n,)
    cell_code : array (n,)
        Row -> cell index (0..C-1) into ``cells``, whose ``fe`` columns are the effects.
    clusters : array (n,)
    link : statsmodels link (``hazard._family(link).link``)
    qcol : int
        Column whose +1 average marginal effect is reported.
    chunk : int
        Rows per chunk of every pass (memory, not results).
    select : bool
        Fit only the columns that stay independent of the fixed effects and of the
        columns before them (``_independent``), judged on the first pass's sums (at the
        start's weights), which that pass makes for IRLS anyway: no pass of its own (a
        separate pass at the trials' weights was 19 of the national hazard's 244 CPU s).
        Else every column must be independent. ``columns`` of the result: those fitted.
    warm : bool
        With ``feglm_irls.WARM_ROWS`` rows or more, IRLS starts from the same fit on a
        systematic sample of the rows (``feglm_irls.warm_start``): fewer passes over all
        of them, to the same optimum (the same convergence test). Should IRLS fail from
        there (no convergence in ``feglm_irls.WARM_MAXITER`` steps, a deviance that rose
        through every step halving, a singular matrix), the fit starts again from the
        usual start, which alone decides errors (logged).

    Raises
    ------
    ReportedColumnCollinear
        With ``select``: column ``qcol`` is collinear with the fixed effects.
    feglm_irls.IRLSFailed
        No convergence in ``maxiter`` steps, or the deviance rose through every step
        halving (``feglm_irls.MAX_HALVINGS``) of a step, or coefficients not finite.
    ValueError
        Regressors collinear with the fixed effects.
    """
    blocks = Blocks(X, chunk=chunk)
    exits = np.asarray(exits, dtype="float64")
    trials = np.asarray(trials, dtype="float64")
    proj = _Projector(cells, fe, np.asarray(cell_code))
    from impact.estimate.feglm_irls import (
        WARM_MAXITER, WARM_ROWS, IRLSFailed, irls, warm_start)

    fit = None
    if warm and blocks.shape[0] >= WARM_ROWS:
        first = warm_start(blocks.src, exits, trials, proj.code, cells, fe, link, qcol, chunk)
        if first is not None:
            try:
                fit = irls(blocks, exits, trials, proj, link, qcol, tol,
                           min(maxiter, WARM_MAXITER), select, first)
            except (IRLSFailed, ReportedColumnCollinear, np.linalg.LinAlgError) as exc:
                # the usual start decides (and raises what it raises)
                logging.info("fe_binomial: IRLS from the warm start failed (%s); "
                             "fitting from the usual start", exc)
    if fit is None:
        fit = irls(blocks, exits, trials, proj, link, qcol, tol, maxiter, select)
    # ``proj`` is fitted at the last pass's weights, Sx and Fx are that pass's
    res = _inference(fit.blocks, fit.acc, fit.Sx, fit.Fx, exits, trials, fit.eta, proj,
                     clusters, link, fit.b, fit.qcol, fit.it, fit.dev)
    return replace(res, columns=fit.cols, passes=fit.passes)


def _inference(blocks: Blocks, acc: Acc, Sx: np.ndarray, Fx: np.ndarray, exits, trials,
               eta, proj: _Projector, clusters, link, b: np.ndarray, qcol: int, it: int,
               dev: float) -> FEBinomialResult:
    """Cluster sandwich and the AME's delta-method SE at the converged eta (module notes),
    from ``acc`` (X'WX and the cell sums at the converged weights), the cell sums ``Sx``
    and their projection ``Fx`` there (``proj`` fitted at those weights) and one pass."""
    n, k = blocks.shape
    code, C = proj.code, proj.C
    cluster_of, G = first_codes(clusters)
    N = float(trials.sum())

    def parts(lo, hi):
        e, t = eta[lo:hi], trials[lo:hi]
        mu, f = _mu(link, e), link.inverse_deriv(e)
        var = mu * (1 - mu)
        return t, mu, f, var, f * (exits[lo:hi] - t * mu) / var

    XtWX = _sym(acc.gram() - Sx.T @ Fx)
    d = np.sqrt(np.diag(XtWX))
    if (d <= 1e-12 * max(d.max(initial=0), 1e-300)).any() or len(
            independent_columns(XtWX / np.outer(d, d))) < k:
        raise ValueError("fe_binomial: a regressor is collinear with the fixed effects")
    B = np.linalg.inv(XtWX)
    # one pass: the cluster sums XR of x_i r_i, the (cluster, cell) pair sums R of r_i
    # (the scores' sums x~_i r_i = XR - R F_x, so no chunk x k temporary), and the AME
    # with its gradients in b and in the cells' effects
    XR, g_b, g_cells = np.zeros((G, k)), np.zeros(k), np.zeros(C)
    pair_keys, pair_r = [], []
    ame_sum = tf1_sum = 0.0
    bq = b[qcol]
    for lo, hi, D, S in blocks.chunks():
        t, mu, f, _, r = parts(lo, hi)
        c = cluster_of(lo, hi)
        ind = sp.csr_matrix((r, (c, np.arange(hi - lo))), shape=(G, hi - lo))
        XR[:, blocks.dense] += ind @ D
        XR[:, blocks.sparse] += (ind @ S).toarray()
        # a chunk's pairs (a few hundred with municipality or region clusters), joined
        # after the pass
        pair, uniq = pd.factorize(c.astype(np.int64) * C + code[lo:hi])
        pair_keys.append(uniq)
        pair_r.append(np.bincount(pair, weights=r, minlength=len(uniq)))
        e1 = eta[lo:hi] + bq
        p1, tf1, tf = link.inverse(e1), t * link.inverse_deriv(e1), t * f
        ame_sum += float(np.sum(t * (p1 - mu)))
        tf1_sum += float(tf1.sum())
        t_times(D, S, 100 * (tf1 - tf) / N, blocks, g_b)
        g_cells += np.bincount(code[lo:hi], weights=100 * (tf1 - tf) / N, minlength=C)
    keys, inv = np.unique(np.concatenate(pair_keys), return_inverse=True)
    R = sp.csr_matrix((np.bincount(inv, weights=np.concatenate(pair_r)), (keys // C, keys % C)),
                      shape=(G, C))
    Sc = XR - R @ Fx
    N_fe = len(proj.wfit.keep)
    factor = G / (G - 1) * (N - 1) / (N - k - N_fe)
    V = factor * B @ (Sc.T @ Sc) @ B
    g_b[qcol] += 100 * tf1_sum / N
    # AME of +1 on column qcol, delta method through b and the fixed effects: X'W D a is
    # Sx' (D a), the cells' sums of w x at these weights being acc's
    Da = proj.solve_fe(g_cells)
    v = B @ (g_b - Sx.T @ Da)
    # the influence's cluster sums of (x_i'v - F_v[cell] + (D a)[cell]) r_i
    psi = XR @ v - R @ (Fx @ v - Da)
    ame_se = float(np.sqrt(factor * (psi ** 2).sum()))
    return FEBinomialResult(b, V, 100 * ame_sum / N, ame_se, int(N), N_fe, it, dev)
