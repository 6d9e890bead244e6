"""Fit the decomposition model: every coefficient, the fixed effects, and their bootstrap.

Notes
-----
The model (``impact.decompose.design``) is fitted on the person-months whose caseworker
was measured twice (as the headline quality model): 2SLS of 100 * exit_work on
``quality_a`` instrumented by ``quality_b`` (``estimator="iv"``, correcting the
attenuation of measurement error) or OLS on ``quality_score``, with municipality and
region x month effects projected out by cell (``impact.estimate.pmreg``).

The fixed effects are then recovered from the cell means of ``y - X b``: a weighted
least-squares fit of municipality + region x month effects, separately per region (both
sets nest in regions). They are identified up to one constant per region; the region x
month effects are normalised to a person-month-weighted mean of zero over the fitted
sample, so the municipality effect carries the level.

Bootstrap. Everything above is linear in y, so the wild cluster bootstrap (y* = X b +
FE + w_g u, one weight per cluster, unrestricted residuals) moves the coefficients by
``Psi' w`` and the fixed effects by ``(Lambda_X Psi' + Lambda_U) w``: one matrix product
per draw instead of a refit. ``Psi`` holds the clusters' influence rows
inv(Z~'X~) Z~_g' u_g, scaled by the CRV1 small-sample factor, so ``Psi' Psi`` is the
CRV1 covariance of the fit (checked against pyfixest in tests/decompose/test_model.py).

With few clusters per term (a region's months rest on its handful of municipalities; a
shock bin on the few municipalities that had one) the unrestricted residuals of those
clusters are shrunk by their leverage and the CRV1-sized bootstrap is too narrow
(measured: 62-79% coverage of nominal 95%). ``jackknife=True`` therefore also gives the
leave-one-cluster-out deviations: for OLS, b - b_(-g) = inv(X'X) X_g' (I - H_gg)^-1 u_g,
the influence of cluster g with jackknife-transformed residuals, so a wild bootstrap of
these deviations, scaled by sqrt((G-1)/G), is the WCU3 bootstrap of MacKinnon, Nielsen
and Webb (2023, "Fast and reliable jackknife and bootstrap methods for cluster-robust
inference", J. Appl. Econometrics 38:671), and its variance is CV3. b_(-g) is exact
without refitting: the demeaned cross products without cluster g are its raw cross
products minus the fixed-effect projection, recomputed at the cell level for the regions
holding g's cells (``_loo_exact``); the fixed effects of those regions are refitted
without its cells. (Downdating the *demeaned* cross products instead, the projection
fitted on all data, was off by up to a factor 3 for region-level terms.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from impact.estimate.cgram import ClusterGrams, demean_grams
from impact.decompose.cellfe import _fe_by_region
from impact.decompose.jackknife import (
    _cluster_grams, _loo_coefficients, _loo_exact, _loo_fixed_effects,
)
from impact.estimate.pmreg import _independent, _matvec, cell_demean, fe_df

__all__ = ["ModelFit", "fit_model", "fit_model_sums"]


@dataclass
class ModelFit:
    """The fitted decomposition model.

    Attributes
    ----------
    names : regressor names, ``quality`` first (the instrumented or measured quality)
    coef : (K,) coefficients (0 for a column dropped as collinear)
    vcov : (K, K) CRV1 covariance
    psi : (G, K) cluster influence rows, psi' psi = vcov
    regmonths, munis : labels of the fixed effects (``region:t`` and municipality code)
    lam, alpha : fixed-effect values
    lam_dw, alpha_dw : (levels, G) derivative of the fixed effects with respect to the
        bootstrap weights w (coefficient movement included)
    clusters : cluster labels in the order of the rows of ``psi``
    n_obs : person-months fitted
    resid : (n_obs,) residuals of the fitted person-months (fixed effects included),
        times the CRV1 factor sqrt(G/(G-1) (N-1)/(N-K)) as in ``psi``
    jack, lam_jack, alpha_jack : (G, K), (levels, G), (levels, G) leave-one-cluster-out
        deviations sqrt((G-1)/G) (theta_(-g) - theta) of the coefficients and fixed
        effects (``jackknife=True``); jack' jack is the CV3 covariance
    cluster_code : (n_obs,) each fitted person-month's row of ``psi``
    """

    names: list[str]
    coef: np.ndarray
    vcov: np.ndarray
    psi: np.ndarray
    regmonths: np.ndarray
    munis: np.ndarray
    lam: np.ndarray
    alpha: np.ndarray
    lam_dw: np.ndarray
    alpha_dw: np.ndarray
    clusters: np.ndarray
    n_obs: int
    resid: np.ndarray
    cluster_code: np.ndarray
    jack: np.ndarray | None = None
    lam_jack: np.ndarray | None = None
    alpha_jack: np.ndarray | None = None

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.vcov))

    def coef_dw(self) -> np.ndarray:
        """(K, G) derivative of the coefficients with respect to the bootstrap weights."""
        return self.psi.T

    def perturbation(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """(K, G), (levels, G), (levels, G) movement of coefficients, region x month and
        municipality effects per unit of each cluster's bootstrap weight, and whether
        they are the jackknife's (True) or the residual wild bootstrap's (False)."""
        if self.jack is not None:
            return self.jack.T, self.lam_jack, self.alpha_jack, True
        return self.psi.T, self.lam_dw, self.alpha_dw, False


def fit_model(A: np.ndarray, names: list[str], y: str, x: str | None, instrument: str | None,
              muni: np.ndarray, region: np.ndarray, t: np.ndarray,
              clusters: np.ndarray, municipality_effects: bool = True,
              jackknife: bool = False) -> ModelFit:
    """Fit on the column-major matrix ``A`` (rows = fitted person-months; modified in place).

    ``names`` name the columns of A: ``y``, ``x`` (the regressor reported first; None: none),
    the ``instrument`` (None for OLS) and every other column is an exogenous regressor.
    ``muni``, ``region``, ``t`` and ``clusters`` are per row. ``municipality_effects=False``
    leaves only the region x month effects (the municipality effects are then zero).
    ``jackknife=True`` adds the leave-one-cluster-out deviations (module notes).
    """
    muni, region = np.asarray(muni).astype(str), np.asarray(region).astype(str)
    m_codes = pd.factorize(muni)[0].astype("int64")
    t = np.asarray(t, dtype="int64")
    cell_code = pd.factorize(m_codes * (int(t.max() - t.min()) + 1) + (t - t.min()))[0]
    first = pd.Series(np.arange(len(muni))).groupby(cell_code).first().to_numpy()
    cells = pd.DataFrame({"municipality": muni[first], "region": region[first], "t": t[first]})
    cells["regmonth"] = cells["region"] + ":" + cells["t"].astype(str)
    C = len(cells)
    n_c = np.bincount(cell_code, minlength=C).astype("float64")
    raw_sums = np.stack([np.bincount(cell_code, weights=A[:, j], minlength=C)
                         for j in range(A.shape[1])], axis=1)
    cl_codes, cl_labels = pd.factorize(pd.Series(clusters).astype(str))
    G = len(cl_labels)
    cell_cl = cl_codes[first]
    nested = bool((pd.Series(cl_codes).groupby(cell_code).nunique() == 1).all())
    fe = ["municipality", "regmonth"] if municipality_effects else ["regmonth"]
    df_fe = fe_df(cells, fe, cell_cl if nested else np.arange(C))
    # raw cross products per cluster, before demeaning (exact leave-one-cluster-out)
    raw_gram = (_cluster_grams(A, cl_codes, G)
                if jackknife and nested and municipality_effects and G > 1 else None)
    cell_demean(A, cells, cell_code, fe)

    col = {n: i for i, n in enumerate(names)}
    G_all = A.T @ A
    X, Zc, Szx, b_kept = _solve_all(G_all, col, names, y, x, instrument)
    u = A[:, col[y]] - _matvec(A, X, b_kept)
    scores = np.stack([np.bincount(cl_codes, weights=A[:, j] * u, minlength=G) for j in Zc],
                      axis=1)
    N = A.shape[0]
    ssc = G / max(G - 1, 1) * (N - 1) / max(N - len(X) - df_fe, 1)
    # the wild perturbation of y: residuals scaled by the same CRV1 factor as psi
    u *= np.sqrt(ssc)
    U = np.bincount(cell_code * G + cl_codes, weights=u, minlength=C * G).reshape(C, G)

    lead = int(x is not None)

    def loo() -> np.ndarray:
        if raw_gram is not None:
            return _loo_exact(raw_gram, raw_sums, n_c, cells, cell_cl, X, Zc, col[y], lead)
        # clusters not nested in cells: downdate the demeaned cross products
        return _loo_coefficients(_cluster_grams(A, cl_codes, G), X, Zc, col[y], G_all, lead)

    return _assemble(names, col, y, x, instrument, X, Zc, Szx, b_kept, scores, ssc, N, cells,
                     n_c, raw_sums, U, cell_cl, nested, municipality_effects,
                     loo if jackknife and G > 1 else None, cl_labels, u,
                     cl_codes.astype("int64"))


def fit_model_sums(raw: ClusterGrams, cells: pd.DataFrame, names: list[str], y: str,
                   x: str | None, instrument: str | None, municipality_effects: bool = True,
                   jackknife: bool = False) -> ModelFit:
    """:func:`fit_model` from sums instead of rows: ``raw`` holds the cluster blocks of
    the *raw* (not demeaned) matrix's Gram matrix and its column sums per cell x cluster
    pair (``cgram.ClusterGrams``; rows added batch by batch by
    ``quality_stream.GramSums``), ``cells`` the municipality x month cells its pair cell
    codes index (columns municipality, region, t, regmonth).

    Everything ``fit_model`` computes is a function of these: the demeaned blocks by
    ``cgram.demean_grams`` (exact), the cluster scores Z_g'u_g = C~_g[Z, y] - C~_g[Z, X] b,
    the cell-mean residual of each cell x cluster pair from the demeaned pair sums, and the
    exact leave-one-cluster-out refits from the raw blocks (``_loo_exact``). Only the
    per-row residuals are not kept: ``resid`` and ``cluster_code`` are empty (the
    decomposition reads them only without the jackknife)."""
    C = len(cells)
    n_c = np.bincount(raw.pair_cell, weights=raw.pair_count, minlength=C)
    k = raw.C.shape[1]
    raw_sums = np.zeros((C, k))
    np.add.at(raw_sums, raw.pair_cell, raw.pair_sums)
    G = len(raw.labels)
    per_cell = np.bincount(raw.pair_cell, minlength=C)
    nested = bool((per_cell == 1).all())
    cell_cl = np.full(C, -1, dtype="int64")
    cell_cl[raw.pair_cell] = raw.pair_cluster
    fe = ["municipality", "regmonth"] if municipality_effects else ["regmonth"]
    df_fe = fe_df(cells, fe, cell_cl if nested else np.arange(C))
    dem = demean_grams(raw, cells, fe)
    col = {n: i for i, n in enumerate(names)}
    G_all = dem.gram
    X, Zc, Szx, b_kept = _solve_all(G_all, col, names, y, x, instrument)
    CZ = dem.C[:, Zc, :]
    scores = CZ[:, :, col[y]] - CZ[:, :, X] @ b_kept                    # (G, |Zc|)
    N = raw.n_obs
    ssc = G / max(G - 1, 1) * (N - 1) / max(N - len(X) - df_fe, 1)
    # cell x cluster sums of the residual (scaled as in fit_model) from the demeaned sums
    up = (dem.pair_sums[:, col[y]] - dem.pair_sums[:, X] @ b_kept) * np.sqrt(ssc)
    U = np.zeros((C, G))
    U[raw.pair_cell, raw.pair_cluster] = up

    lead = int(x is not None)

    def loo() -> np.ndarray:
        if nested and municipality_effects:
            return _loo_exact(raw.C, raw_sums, n_c, cells, cell_cl, X, Zc, col[y], lead)
        return _loo_coefficients(dem.C, X, Zc, col[y], G_all, lead)

    return _assemble(names, col, y, x, instrument, X, Zc, Szx, b_kept, scores, ssc, N, cells,
                     n_c, raw_sums, U, cell_cl, nested, municipality_effects,
                     loo if jackknife and G > 1 else None, np.asarray(raw.labels),
                     np.empty(0), np.empty(0, dtype="int64"))


def _solve_all(G_all: np.ndarray, col: dict[str, int], names: list[str], y: str,
               x: str | None, instrument: str | None):
    """The kept regressors X, the instruments Zc, Z'X and the coefficients from the
    demeaned Gram matrix (exogenous columns collinear with earlier ones dropped)."""
    exog = [n for n in names if n not in (y, x, instrument)]
    ex = _independent(G_all, [col[e] for e in exog])
    lead = [] if x is None else [col[x]]
    X = lead + ex
    Zc = ([col[instrument]] if instrument else lead) + ex
    Szx = G_all[np.ix_(Zc, X)]
    return X, Zc, Szx, np.linalg.solve(Szx, G_all[Zc, col[y]])


def _assemble(names, col, y, x, instrument, X, Zc, Szx, b_kept, scores, ssc, N, cells, n_c,
              raw_sums, U, cell_cl, nested, municipality_effects, loo, cl_labels, resid,
              cluster_code) -> ModelFit:
    """The fit from its coefficients and cluster scores (``scores`` (G, |Zc|) = Z_g'u_g):
    influence rows, fixed effects from the cell means, their bootstrap derivatives, and
    with ``loo`` (a function giving the leave-one-cluster-out coefficients) the
    jackknife. ``U`` (C, G): the CRV1-scaled residual summed per cell x cluster."""
    G = scores.shape[0]
    exog = [n for n in names if n not in (y, x, instrument)]
    psi_kept = scores @ np.linalg.inv(Szx).T * np.sqrt(ssc)  # (G, kept)
    reg_names = ([] if x is None else [x]) + exog  # the model's regressors, x first
    K = len(reg_names)
    pos = {n: k for k, n in enumerate(reg_names)}
    kept_pos = [pos[names[j]] for j in X]
    coef = np.zeros(K)
    coef[kept_pos] = b_kept
    psi = np.zeros((G, K))
    psi[:, kept_pos] = psi_kept

    # fixed effects from cell means of y - X b, and their derivative in w
    Xcols = [col[n] for n in reg_names]
    xbar = raw_sums[:, Xcols] / n_c[:, None]
    r = raw_sums[:, col[y]] / n_c - xbar @ coef
    U = U / n_c[:, None]  # cell-mean residual by cluster
    rhs = np.column_stack([r, -xbar, U])  # (C, 1 + K + G)
    munis, regmonths, alpha_all, lam_all = _fe_by_region(cells, n_c, rhs,
                                                         municipality_effects)
    lam, alpha = lam_all[:, 0], alpha_all[:, 0]
    lam_dw = lam_all[:, 1:1 + K] @ psi.T + lam_all[:, 1 + K:]
    alpha_dw = alpha_all[:, 1:1 + K] @ psi.T + alpha_all[:, 1 + K:]
    fit = ModelFit(reg_names, coef, psi.T @ psi, psi, regmonths, munis, lam, alpha,
                   lam_dw, alpha_dw, np.asarray(cl_labels, dtype=object), N, resid,
                   cluster_code)
    if loo is not None:
        db = np.zeros((G, K))
        db[:, kept_pos] = loo() - b_kept[None, :]
        ybar = raw_sums[:, col[y]] / n_c
        lam_j = lam_all[:, 1:1 + K] @ db.T  # through b alone: (levels, G)
        alpha_j = alpha_all[:, 1:1 + K] @ db.T
        if nested:
            _loo_fixed_effects(cells, n_c, cell_cl, ybar, xbar, coef, db, regmonths, munis,
                               lam, alpha, lam_j, alpha_j, municipality_effects)
        scale = np.sqrt((G - 1) / G)
        fit.jack, fit.lam_jack, fit.alpha_jack = db * scale, lam_j * scale, alpha_j * scale
    return fit
