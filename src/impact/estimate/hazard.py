"""Discrete-time hazard of exit to work on quality, fitted on compressed binomial cells.

Notes
-----
For person-month i at risk in month t (Allison 1982, *Sociological Methodology* 13;
Jenkins 1995, *Oxford Bull. Econ. Stat.* 57(1)):

    P(exit_work_it = 1) = F(beta * q_it + x_it'g + l_mt'h + a_m + d_region(m),t),

F the complementary log-log (``1 - exp(-exp(eta))``, the grouped-time proportional hazard)
or the logistic cdf; x the client covariates of ``estimate.controls`` (``duration_band``
is the duration dependence), l the municipal labour-market indicators, adoption and shock
event-time bins as in ``quality.quality_frame`` (same sample: person-months with both
measurement halves).

Compression: every regressor is discrete or constant within a municipality-month once
quality is rounded, so person-months are grouped by (municipality-month, quality_a
rounded to ``round_to`` = 0.1, every control value) into cells with exits and trials; the
binomial likelihood of the cells equals the Bernoulli likelihood of the person-months,
so the MLE is identical (tests/estimate/test_hazard.py). The rounding error (uniform,
variance 0.1^2/12 ~ 0.0008 against a quality variance of order 0.3) changes the slope
negligibly. Continuous numeric controls (``prior_benefit_months``) enter linearly and
reduce compression. The estimate stage makes the same cells from the panel file in batches
(``hazard_stream``, merged batch by batch, the design sparse from level codes) and fits
them with ``fit_cells``, as ``quality_hazard`` does.

Fixed effects: municipality and region x month (or municipality x month, ``estimate.
quality_fe``) absorbed by IRLS with cell-level projections (``feglm.fe_binomial``); with
``absorb=False`` as dummy columns of a statsmodels GLM Binomial (IRLS, tol 1e-12), the same
estimate (tests/estimate/test_feglm.py) at a far higher cost: statsmodels solves each IRLS
step by SVD of the dense cells x columns design (on a 315k-person-month panel, whose cells
barely compress, 50 s against 5 s absorbed). pyfixest 0.60
``feglm`` absorbs fixed effects but offers only logit/probit/gaussian and no weights, so it
cannot fit cloglog nor compressed cells; it is not used here.

Quality is ``quality_a``, one noisy measurement: the slope is attenuated like the
uncorrected OLS (no measurement-error correction here).

Average marginal effect (the contract's estimand as a finite difference): AME = 100 *
mean over person-months of F(eta_i + beta) - F(eta_i), in pp per quality point.
Inference: cluster-robust sandwich with the expected information as bread and cluster
sums of the cell scores (= person-month scores summed), factor G/(G-1) (N-1)/(N-K), N =
person-months (statsmodels' ``cov_type="cluster"`` convention); the AME's SE by the
delta method; Wald intervals with t(G-1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from impact.estimate.groups import group_index
from impact.estimate.linalg import independent_columns
from impact.estimate.params import EstimateParams
from impact.estimate.quality import quality_frame

__all__ = ["HazardResult", "compress_cells", "quality_hazard", "fit_binomial_cells"]

HazardLink = Literal["cloglog", "logit"]


@dataclass(frozen=True)
class HazardResult:
    """Hazard model of exit to work on quality.

    coef/std_error: quality coefficient (log-odds or log-hazard scale); ame_pp/ame_se:
    average +1-point finite difference in pp; ci_* its t(G-1) interval; params (K,) and
    vcov (K, K) of all columns ``names``; n_obs person-months, n_cells compressed cells.
    """

    link: str
    coef: float
    std_error: float
    ame_pp: float
    ame_se: float
    ame_ci_low: float
    ame_ci_high: float
    params: np.ndarray
    vcov: np.ndarray
    names: tuple[str, ...]
    n_obs: int
    n_cells: int
    n_clusters: int
    #: how the fixed effects entered: "dummies" (statsmodels GLM) or "absorbed" (feglm)
    fixed_effects: str = "dummies"


def _family(link: str) -> sm.families.Family:
    if link == "cloglog":
        return sm.families.Binomial(sm.families.links.CLogLog())
    if link == "logit":
        return sm.families.Binomial(sm.families.links.Logit())
    raise ValueError(f"link={link!r} is not allowed (allowed: cloglog, logit)")


def compress_cells(keys: pd.DataFrame, y: np.ndarray) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Group rows by all columns of ``keys``: (distinct key rows, exits, trials)."""
    gb = keys.assign(_y=y, _n=1.0).groupby(list(keys.columns), sort=True, observed=True)
    agg = gb[["_y", "_n"]].sum().reset_index()
    return agg[list(keys.columns)], agg["_y"].to_numpy(float), agg["_n"].to_numpy(float)


def fit_binomial_cells(X: np.ndarray, exits: np.ndarray, trials: np.ndarray, clusters,
                       link: str, qcol: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """GLM Binomial on cells and its cluster sandwich; returns (params, V, AME, AME se)."""
    fam = _family(link)
    endog = np.column_stack([exits, trials - exits])
    res = sm.GLM(endog, X, family=fam).fit(tol=1e-12, maxiter=200)
    b = np.asarray(res.params)
    eta = X @ b
    p = fam.link.inverse(eta)
    f = fam.link.inverse_deriv(eta)
    info = (X * (trials * f ** 2 / (p * (1 - p)))[:, None]).T @ X
    bread = np.linalg.inv(info)
    score = X * (f * (exits - trials * p) / (p * (1 - p)))[:, None]
    cl, _ = pd.factorize(np.asarray(clusters))
    G = int(cl.max()) + 1
    S = np.zeros((G, X.shape[1]))
    np.add.at(S, cl, score)
    N, K = trials.sum(), X.shape[1]
    V = G / (G - 1) * (N - 1) / (N - K) * bread @ (S.T @ S) @ bread
    p1 = fam.link.inverse(eta + b[qcol])
    f1 = fam.link.inverse_deriv(eta + b[qcol])
    ame = 100 * np.sum(trials * (p1 - p)) / N
    e_q = np.zeros(K)
    e_q[qcol] = 1.0
    grad = 100 * ((trials * f1) @ (X + e_q) - (trials * f) @ X) / N
    return b, V, float(ame), float(np.sqrt(grad @ V @ grad))


def _compress(A: np.ndarray, names: list[str], exog: list[str], q: np.ndarray,
              cell_code: np.ndarray, clusters, y: np.ndarray
              ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Binomial cells of the person-months, grouped on integer keys (memory: one code per
    categorical control instead of its dummy columns): cluster, cell, rounded quality,
    the code of each dummy block (``name[level]`` columns of one ``name``), the numeric
    controls. Returns (one row per cell with the regressor columns, exits, trials)."""
    keycols: dict[str, np.ndarray] = {"cluster": pd.factorize(np.asarray(clusters))[0],
                                      "cell": np.asarray(cell_code), "quality": q}
    for j, n in enumerate(exog):
        col = A[:, names.index(n)]
        if "[" in n:  # at most one dummy of a block is 1: j + 1 identifies it
            key = "_code_" + n.split("[")[0]
            keycols.setdefault(key, np.zeros(len(col), np.int64))
            keycols[key] += (col != 0).astype(np.int64) * (j + 1)
        else:
            keycols[n] = col
    # cells numbered in order of first appearance (hashing instead of a sorted
    # multi-column groupby), so the gather of each cell's first row below is sequential:
    # with continuous controls nearly every person-month is a cell of its own
    gid, n_g = group_index(list(keycols.values()), sort=False)
    exits = np.bincount(gid, weights=y, minlength=n_g)
    trials = np.bincount(gid, minlength=n_g).astype("float64")
    first = np.empty(n_g, np.int64)
    first[gid[::-1]] = np.arange(len(gid) - 1, -1, -1)  # first person-month of each cell
    # gathered column by column into a column-major matrix, which the frame takes
    # without a copy, every column contiguous (a row-major gather and the frame's own
    # copy of it cost 4 s at a million cells)
    X = np.empty((n_g, len(exog)), order="F")
    for k, n in enumerate(exog):
        np.take(A[:, names.index(n)], first, out=X[:, k])
    ck = pd.DataFrame(X, columns=exog, copy=False)
    ck.insert(0, "quality", q[first])
    ck.insert(0, "cell", keycols["cell"][first])
    ck.insert(0, "cluster", keycols["cluster"][first])
    return ck, exits, trials


def quality_hazard(person_months: pd.DataFrame, params: EstimateParams,
                   link: HazardLink = "cloglog", *, round_to: float = 0.1,
                   max_cells_x_cols: float = 4e7, absorb: bool = True) -> HazardResult:
    """Discrete-time hazard of exit to work on (rounded) ``quality_a``, compressed cells.

    Parameters
    ----------
    person_months : DataFrame
        The panel's person-months (``quality.quality_frame`` columns).
    params : EstimateParams
        Controls, fixed effects (``estimate.quality_fe``), cluster and alpha.
    link : {"cloglog", "logit"}
    round_to : float
        Quality is rounded to this grid before compression (0 = no rounding).
    max_cells_x_cols : float
        Size guard on the dense dummy design (cells x columns), with ``absorb=False``.
    absorb : bool
        Absorb the fixed effects by IRLS with cell-level projections (``feglm``; default);
        ``params``/``vcov``/``names`` then hold the regressors only. False: dummy columns
        in a statsmodels GLM (the reference the absorbed fit is tested against).

    Raises
    ------
    ValueError
        Unknown link, no usable person-month, or a dummy design above the size guard.
    """
    _family(link)
    A, names, exog, cells, cell_code, cl = quality_frame(person_months, params)
    if len(A) == 0:
        raise ValueError("quality_hazard: no person-month has quality_a and quality_b")
    q = A[:, names.index("quality_a")]
    if round_to > 0:
        q = np.round(q / round_to) * round_to
    y = A[:, names.index("y")] / 100.0
    ck, exits, trials = _compress(A, names, exog, q, cell_code, cl, y)
    del A  # the person-month matrix is not needed past compression
    fe = _fe_names(params)
    xnames = ["quality"] + exog
    if absorb:
        return fit_cells(_sparse_columns(ck, xnames), xnames, exits, trials,
                         ck["cell"].to_numpy(), ck["cluster"].to_numpy(), cells, fe, link,
                         params.estimate.alpha)
    n_all = float(trials.sum())
    keep = _separated(ck["cell"].to_numpy(), exits, trials, cells, fe)
    ck, exits, trials = ck.loc[keep].reset_index(drop=True), exits[keep], trials[keep]
    share = float(trials.sum()) / n_all  # AME over all person-months: dropped ones add 0
    cc = ck["cell"].to_numpy()
    # size of the dense dummy design, known before any dummy is built
    n_levels = sum(pd.unique(cells[name].to_numpy()[np.unique(cc)]).size for name in fe)
    size = len(ck) * (n_levels + len(xnames))
    blocks, fe_names = [], []
    for name in fe:
        d = pd.get_dummies(cells[name].to_numpy()[cc], dtype=float)
        blocks.append(d.to_numpy())
        fe_names += [f"{name}[{c}]" for c in d.columns]
    if size > max_cells_x_cols:
        raise ValueError(
            f"quality_hazard: {len(ck)} compressed cells x "
            f"{sum(b.shape[1] for b in blocks) + len(xnames)} columns = {size:.3g} exceeds "
            f"max_cells_x_cols={max_cells_x_cols:.3g}; coarsen round_to, drop continuous "
            "controls, or fit a smaller sample")
    # regressors first, then every FE level; dependent columns (one FE level per region
    # and region x month block, any control constant within the FE) dropped greedily
    X = np.column_stack([ck[xnames].to_numpy(float)] + blocks)
    allnames = xnames + fe_names
    XtX = X.T @ X
    d = np.sqrt(np.diag(XtX))
    keep = independent_columns(XtX / np.outer(d, d)) if (d > 0).all() else np.flatnonzero(d > 0)
    if 0 not in keep:
        raise ValueError("quality_hazard: quality is collinear with the fixed effects")
    X, allnames = X[:, keep], [allnames[k] for k in keep]
    b, V, ame, ame_se = fit_binomial_cells(X, exits, trials, ck["cluster"].to_numpy(), link, 0)
    ame, ame_se = ame * share, ame_se * share
    qcol = 0
    G = int(ck["cluster"].nunique())
    crit = stats.t.ppf(1 - params.estimate.alpha / 2, G - 1)
    return HazardResult(link, float(b[qcol]), float(np.sqrt(V[qcol, qcol])), ame, ame_se,
                        ame - crit * ame_se, ame + crit * ame_se, b, V,
                        tuple(allnames), int(n_all), int(len(ck)), G)


def _fe_names(params: EstimateParams) -> list[str]:
    return (["munimonth"] if params.estimate.quality_fe == "municipality_month"
            else ["municipality", "regmonth"])


def fit_cells(X, xnames: list[str], exits: np.ndarray, trials: np.ndarray,
              cell_code: np.ndarray, cluster: np.ndarray, cells: pd.DataFrame, fe: list[str],
              link: str, alpha: float, consume: bool = False) -> HazardResult:
    """The hazard on binomial cells with fixed effects absorbed (``feglm.fe_binomial``):
    ``X`` the cells' design (quality first; a sparse matrix or a ``rowsource`` row
    source), ``cell_code`` each cell's row of ``cells``, ``cluster`` its cluster code.
    Cells of fixed-effect levels with no exit (or only exits) are dropped first
    (``_separated``); the AME counts them as zero. ``consume``: the caller gives up the
    arrays (and a ``CodedRows`` design's), so the kept cells are moved to their fronts
    instead of copied (``coded_rows.compact``; the national hazard's cells are 3 GB).
    Shared by ``quality_hazard`` and ``hazard_stream``."""
    from impact.estimate.feglm import ReportedColumnCollinear, fe_binomial

    from impact.estimate.rowsource import as_rows

    X = as_rows(X)  # read a chunk of rows at a time (``rowsource``)
    n_all = float(trials.sum())
    keep = _separated(cell_code, exits, trials, cells, fe)
    if not keep.all():
        if consume and hasattr(X, "compact"):
            X = X.compact(keep)
        else:
            X = X.take(keep)
        from impact.estimate.coded_rows import compact

        cut = compact if consume else (lambda v, k: v[k])
        exits, trials = cut(exits, keep), cut(trials, keep)
        cell_code, cluster = cut(cell_code, keep), cut(cluster, keep)
    share = float(trials.sum()) / n_all  # AME over all person-months: dropped ones add 0
    # mostly dummy columns: sparse, so every IRLS step costs O(non-zeros + cells x k^2);
    # the columns collinear with the fixed effects (and those before them) left out
    try:
        res = fe_binomial(X, exits, trials, cell_code, cells, fe, cluster,
                          _family(link).link, qcol=0, select=True)
    except ReportedColumnCollinear:
        raise ValueError("quality_hazard: quality is collinear with the fixed effects") from None
    cols = res.columns
    G = int(pd.unique(cluster).size)
    crit = stats.t.ppf(1 - alpha / 2, G - 1)
    ame, se = res.ame * share, res.ame_se * share
    return HazardResult(link, float(res.params[0]), float(np.sqrt(res.vcov[0, 0])), ame, se,
                        ame - crit * se, ame + crit * se, res.params, res.vcov,
                        tuple(xnames[k] for k in cols), int(n_all), int(len(exits)), G,
                        "absorbed")


def _sparse_columns(ck: pd.DataFrame, cols: list[str]):
    """``scipy.sparse.csc_matrix(ck[cols].to_numpy(float))``, the same matrix, built
    column by column: no dense copy of the frame and no two-dimensional ``nonzero``
    (7 s at a million cells and sixty columns)."""
    import scipy.sparse as sp

    rows, vals, ptr = [], [], [0]
    for c in cols:
        v = ck[c].to_numpy(dtype="float64")
        nz = np.flatnonzero(v)
        rows.append(nz)
        vals.append(v[nz])
        ptr.append(ptr[-1] + len(nz))
    return sp.csc_matrix((np.concatenate(vals), np.concatenate(rows), np.asarray(ptr)),
                         shape=(len(ck), len(cols)))


def _separated(cell_code: np.ndarray, exits: np.ndarray, trials: np.ndarray,
               cells: pd.DataFrame, fe: list[str], quiet: bool = False) -> np.ndarray:
    """The cells kept: those of fixed-effect levels with no exit (or only exits) are
    dropped, repeatedly.

    Such a level's effect is -inf (+inf) at the maximum (separation): its person-months
    have a fitted probability of 0 (1) whatever the quality, contribute nothing to the
    likelihood of the other parameters, and make the information matrix singular
    (R fixest drops them the same way). The caller rescales the AME to all person-months.
    ``quiet``: no warning (a sample's, ``feglm_irls.warm_start``).
    """
    # a row's levels are its cell's, so whether it is kept is its cell's: the sums are
    # taken per cell once and the dropping repeated on cells (exits and trials are counts,
    # so the sums are exact in any order); per row it held several row-sized temporaries
    # (about 2 GB for the 62 million cells of the national hazard)
    cc = np.asarray(cell_code)
    C = len(cells)
    e_cell = np.bincount(cc, weights=exits, minlength=C)
    n_cell = np.bincount(cc, weights=trials, minlength=C)
    levels = [pd.factorize(cells[name].to_numpy())[0] for name in fe]
    keep_cell = np.ones(C, bool)
    while True:
        bad = np.zeros(C, bool)
        for lv in levels:
            e = np.bincount(lv, weights=np.where(keep_cell, e_cell, 0.0))
            n = np.bincount(lv, weights=np.where(keep_cell, n_cell, 0.0))
            sep = (n > 0) & ((e <= 0) | (e >= n))
            bad |= keep_cell & sep[lv]
        if not bad.any():
            break
        keep_cell &= ~bad
    keep = keep_cell[cc]
    if not keep.all() and not quiet:
        from impact.estimate.frames import warn

        warn(f"quality hazard: {int(trials[~keep].sum())} person-months in fixed-effect "
             "levels with no exit (or only exits) dropped from the fit (separation); the AME "
             "counts them as zero effects")
    return keep
