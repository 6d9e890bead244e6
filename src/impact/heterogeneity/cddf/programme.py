"""CDDF's BLP, GATES and CLAN of the programme effect, from person-month imputation.

Notes
-----
The programme's pre-specified group ATTs (``heterogeneity.adoption``) come from the
imputation estimator on unit x month x group cells. The data-driven view needs the
effect as a function of the whole characteristic vector x (the group dummies of every
dimension, "(none)" a level of its own, as in the quality check), so the imputation is
done per person-month (Borusyak, Jaravel and Spiess 2024, eq. (4)-(6)), within each half
of a cluster split so that the proxy learnt on Aux never sees Main's outcomes:

1. On the half's untreated person-months (never adopted, or before the anticipation
   window ``adoption.anticipation_months``), the untreated-outcome model
   ``100 y = a_municipality + d_region,month + x'b + c'g + u``, c the headline's
   labour-market indicators and shock event-time bins. b, g by Frisch-Waugh-Lovell (x and y
   with both fixed effects projected out, here from the half's cluster blocks of the Gram
   matrix, ``_Imputer``); the fixed effects by the cell-level WLS of the
   municipality-month means of ``100 y - x'b`` (``imputation.impute`` on those cells):
   exactly the person-month WLS. The row aggregates are computed once for all splits;
   per half only the adopted rows are read (8 s for 5 splits on the default data, where
   demeaning each half's rows took 18 s; the same numbers to 1e-11).
2. On the half's adopted person-months (month >= adoption month), tau_i = 100 y_i -
   Yhat_i(0); a person-month whose municipality or region-month never occurs untreated
   in the half is imputed with municipality + calendar-month effects, else dropped.
3. Aux: the proxy s(x) = OLS of tau on x (one level per dimension left out). Main:
   S = s(x), BLP = OLS of tau on (1, S - mean S); GATES = the mean of tau per K quantile
   group of S; CLAN as for quality (``split.clan``); all person-month weighted, CRV1 by
   the headline's clusters, t(G_Main - 1); aggregation over splits, disclosure and the
   publication view as for quality (``tables``).

The estimands are those of CDDF with the treatment effect of the programme for the
adopted person-months: beta2 the BLP slope of tau(x) on S(x), gamma_k the ATT of the
k-th group by S. Inference treats the imputed tau as data: it leaves out the estimation
error of the Y(0) model, which is common to the adopted person-months of a
region-month and so mostly moves beta1 and all gamma_k together, not beta2 or the
top-bottom difference (read beta1 with the headline ATT's interval). Rows carry
``block = adoption`` when concatenated with the quality tables (``run.analyse``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from impact.distinct import unique
from impact.estimate.frames import lm_controls, month_index, warn
from impact.estimate.imputation import impute
from impact.estimate.params import EstimateParams
from impact.estimate.cgram import cluster_grams_by, demean_grams
from impact.estimate.pmreg import _independent, fit_pm_multi
from impact.heterogeneity.cddf.split import (
    dimension_levels, main_halves, present, quantile_groups, split_rows,
)
from impact.heterogeneity.cddf.tables import (
    CDDFResult, empty_result, make_tables, split_inference,
)
from impact.heterogeneity.params import HeterogeneityParams

__all__ = ["cddf_programme", "impute_person_months"]

_FE = ["municipality", "regmonth"]


@dataclass(frozen=True)
class _Fit:
    """What ``split.split_rows`` reads of a fit: coefficients and their covariance."""

    coef: np.ndarray
    V: np.ndarray


class CellModel:
    """Steps 1-2 of the module notes at the cell level, for any set of clusters (a half of
    a split): from the raw cluster blocks ``U`` of [Y, X] on the untreated rows with their
    municipality-month pair sums (``cells``: their ``municipality`` and ``regmonth``), and
    per cell (municipality, month, treated) its person-months ``cnt``, sums ``SY`` (C x O)
    and ``SX`` (C x k), keys ``cf`` (``municipality``, ``regmonth``, ``t``), ``c_treated``
    and cluster ``c_cluster`` (0..G-1, ``U``'s clusters).

    Per half the fixed effects are projected out of the blocks at the cell level
    (``cgram.demean_grams``) for b (Frisch-Waugh-Lovell), and the untreated cells' means
    of 100 y - x'b give the fixed effects, imputed on the adopted cells (``fits``). The
    same numbers as demeaning the half's rows, to rounding (tests: pyfixest)."""

    def __init__(self, U, cells: pd.DataFrame, cnt: np.ndarray, SY: np.ndarray,
                 SX: np.ndarray, cf: pd.DataFrame, c_treated: np.ndarray,
                 c_cluster: np.ndarray) -> None:
        self.U, self.cells, self.cnt, self.SY, self.SX = U, cells, cnt, SY, SX
        self.cf, self.c_treated, self.c_cluster = cf, c_treated, c_cluster
        self.O, self.k = SY.shape[1], SX.shape[1]

    def fits(self, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(b (k x O), the fitted Y(0) - x'b of every cell (C x O): NaN outside the
        clusters ``keep`` (bool per cluster) and where a cell cannot be imputed)."""
        O, k = self.O, self.k
        grams = demean_grams(self.U.subset(keep), self.cells, _FE)
        Gm = grams.gram
        xk = np.asarray(sorted(_independent(Gm, list(range(O, O + k)))), dtype=int)
        b = np.zeros((k, O))
        if xk.size:
            b[xk - O] = np.linalg.solve(Gm[np.ix_(xk, xk)], Gm[np.ix_(xk, np.arange(O))])
        # fixed effects on the half's cells: WLS of the untreated cells' means of
        # 100 y - x'b with their counts, imputed on the adopted cells
        cells = np.flatnonzero(keep[self.c_cluster])
        cnt = self.cnt[cells]
        means = (self.SY[cells] - self.SX[cells] @ b) / np.maximum(cnt, 1)[:, None]
        cf = self.cf.iloc[cells].reset_index(drop=True)
        c_tr = self.c_treated[cells]
        fitted = np.full((len(self.cnt), O), np.nan)
        for o in range(O):
            imp = impute(cf, means[:, o], cnt, _FE, [], ~c_tr, c_tr,
                         cf["municipality"].to_numpy(), "cddf (programme)",
                         fallback_fe=["municipality", "t"])
            if imp is None:
                continue
            fitted[cells[imp.idx1], o] = means[imp.idx1, o] - imp.tau
        return b, fitted


class _Imputer:
    """Steps 1-2 of the module notes for the person-months of any set of clusters (a half
    of a split), from aggregates computed once (``CellModel``): the raw cluster blocks of
    the Gram matrix of [Y, X] on the untreated rows with their sums per
    municipality-month cell (``cgram.cluster_grams_by``), and the sums of Y and X per
    cell x treated status; per half only the adopted rows are read again (tau_i)."""

    def __init__(self, frame: pd.DataFrame, Y: np.ndarray, X: np.ndarray,
                 untreated: np.ndarray, treated: np.ndarray, clusters: np.ndarray):
        """``frame``: per row integer codes ``municipality`` and ``regmonth`` and the month
        ``t``; ``Y`` (n x O); ``X`` (n x k), column-major; ``clusters`` (n,) integer
        codes 0..G-1 of a partition that nests the municipality-months."""
        O, k = Y.shape[1], X.shape[1]
        muni = frame["municipality"].to_numpy(dtype="int64")
        t = frame["t"].to_numpy(dtype="int64")
        t0, span = int(t.min()), int(t.max() - t.min()) + 1
        mt = muni * span + (t - t0)  # municipality-month, one integer key
        cl = np.asarray(clusters, dtype="int64")
        G = int(cl.max()) + 1
        # step 1: untreated rows in cluster order, the blocks of [Y, X] and cell sums
        u = np.flatnonzero(untreated)
        u = u[np.argsort(cl[u], kind="stable")]
        _, first, code = np.unique(mt[u], return_index=True, return_inverse=True)
        cells = frame.iloc[u[first]][["municipality", "regmonth"]].reset_index(drop=True)
        bounds = np.searchsorted(cl[u], np.arange(G + 1))

        def rows(s: int, e: int) -> np.ndarray:
            A = np.empty((e - s, O + k), order="F")
            idx = u[s:e]
            A[:, :O] = Y[idx]
            for j in range(k):
                np.take(X[:, j], idx, out=A[:, O + j])
            return A

        U = cluster_grams_by(rows, bounds, np.arange(G), code)
        # step 2: cells (municipality, month, treated) of the untreated and adopted rows
        r = np.flatnonzero(untreated | treated)
        uniq, ck = np.unique(mt[r] * 2 + treated[r], return_inverse=True)
        C2 = len(uniq)
        SY = np.stack([np.bincount(ck, weights=Y[r, o], minlength=C2) for o in range(O)],
                      axis=1)
        SX = np.empty((C2, k))
        for j in range(k):
            SX[:, j] = np.bincount(ck, weights=X[r, j], minlength=C2)
        rep = np.zeros(C2, dtype="int64")
        rep[ck] = r  # one row of each cell
        self.model = CellModel(
            U, cells, np.bincount(ck, minlength=C2).astype("float64"), SY, SX,
            frame.iloc[rep][["municipality", "regmonth", "t"]].reset_index(drop=True),
            (uniq % 2).astype(bool), cl[rep])
        # the adopted rows, once: their cell, cluster, outcomes and characteristics
        self.tr = np.flatnonzero(treated)
        pos = np.full(len(Y), -1)
        pos[r] = ck
        self.tr_cell, self.tr_cluster = pos[self.tr], cl[self.tr]
        self.YT = Y[self.tr]
        self.XT = np.empty((len(self.tr), k), order="F")
        for j in range(k):
            np.take(X[:, j], self.tr, out=self.XT[:, j])

    def tau(self, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(adopted rows of the clusters ``keep`` (bool per cluster) in row order, their tau
        (n x O), which were imputed)."""
        b, fitted = self.model.fits(keep)
        sel = keep[self.tr_cluster]
        tau = self.YT[sel] - self.XT[sel] @ b - fitted[self.tr_cell[sel]]
        return self.tr[sel], tau, np.isfinite(tau).any(axis=1)


def impute_person_months(frame: pd.DataFrame, Y: np.ndarray, X: np.ndarray,
                         untreated: np.ndarray, treated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """tau (n_treated x outcomes) of the adopted rows and which of them were imputed.

    ``frame``: per row integer codes ``municipality`` and ``regmonth`` and the month
    ``t`` (int); ``Y`` (n x O) outcomes; ``X`` (n x k) characteristics and controls.
    Steps 1-2 of the module notes, on all rows (``_Imputer`` with one cluster).
    """
    imp = _Imputer(frame, Y, np.asfortranarray(X), untreated, treated,
                   np.zeros(len(Y), dtype="int64"))
    _, tau, ok = imp.tau(np.ones(1, bool))
    return tau, ok


def _independent_cols(X: np.ndarray) -> np.ndarray:
    """Columns of X that are linearly independent (``pmreg``'s greedy rule), sorted."""
    return np.sort(np.asarray(_independent(X.T @ X, list(range(X.shape[1]))), dtype=int))


def _controls(pm: pd.DataFrame, params: EstimateParams) -> np.ndarray:
    """Controls of the untreated-outcome model besides x, as the headline's: the municipal
    labour-market indicators and dummies of the 3-month bins of ``shock_event_time`` (a
    shock is not credited to the programme)."""
    cols = [pd.to_numeric(pm[c], errors="coerce").to_numpy(dtype="float64")
            for c in lm_controls(pm, params.estimate.lm_controls)]
    cols = [np.nan_to_num(c) for c in cols]
    if "shock_event_time" in pm:
        e = pd.to_numeric(pm["shock_event_time"], errors="coerce").to_numpy(dtype="float64")
        bins = np.where(np.isfinite(e), np.floor(np.nan_to_num(e) / 3), np.nan)
        cols += [(bins == v).astype("float64") for v in np.unique(bins[np.isfinite(bins)])]
    return np.column_stack(cols) if cols else np.zeros((len(pm), 0))


def _ols_crv1(Z: np.ndarray, y: np.ndarray, cl: np.ndarray) -> _Fit:
    """OLS of y on Z with CRV1 covariance, factor G/(G-1) (N-1)/(N-k) (``fit_pm_multi``
    with every column a regressor); NaN for columns without variation."""
    names = [f"z{j}" for j in range(Z.shape[1])]
    fit = fit_pm_multi(np.asfortranarray(np.column_stack([Z, y])), names + ["y"], "y", names,
                       [], None, cl, 0)
    return _Fit(fit.coef, fit.V)


def cddf_programme(pm: pd.DataFrame, params: EstimateParams, het: HeterogeneityParams,
                   outcomes: Mapping[str, str] | None = None, *, min_cell: int = 10,
                   seed: int | None = None, alpha: float | None = None,
                   main_clusters: Sequence[Sequence] | None = None) -> CDDFResult:
    """BLP, GATES and CLAN of the programme effect over ``het.cddf_splits`` cluster splits
    (module notes); arguments as ``cddf_quality``. Empty without adopted person-months
    (the person-month column ``adoption_month``)."""
    alpha = params.estimate.alpha if alpha is None else float(alpha)
    seed = params.seed if seed is None else int(seed)
    K = int(het.cddf_groups)
    empty = empty_result(alpha, min_cell)
    outcomes, dims = present(pm.columns, het, outcomes, warn_missing=False)
    n_splits = len(main_clusters) if main_clusters is not None else int(het.cddf_splits)
    if not outcomes or not dims or n_splits == 0 or "adoption_month" not in pm:
        return empty
    t = pm["t"].to_numpy(dtype="int64")
    g = month_index(pm["adoption_month"])
    rel = t - g
    treated = np.isfinite(g) & (rel >= 0)
    untreated = ~np.isfinite(g) | (rel < -params.adoption.anticipation_months)
    if not treated.any() or not untreated.any():
        return empty
    codes = {}
    for d in dims:
        c = d.codes(pm[d.column])
        codes[d.name] = np.where(c >= 0, c, len(d.labels))
    levels = dimension_levels(dims, codes)
    dummies = [(n, h) for n, labs in levels.items() for h in range(1, len(labs))]
    # the Y(0) model's regressors: the characteristics' dummies (the proxy's columns
    # 0..kx-1), then the controls (not in the proxy)
    kx = len(dummies)
    ctrl = _controls(pm, params)
    XC = np.empty((len(pm), kx + ctrl.shape[1]), order="F")  # filled in place: no temporary
    for j, (n, h) in enumerate(dummies):
        np.equal(codes[n], h, out=XC[:, j], casting="unsafe")
    XC[:, kx:] = ctrl
    del ctrl
    Y = np.column_stack([100.0 * pd.to_numeric(pm[c]).to_numpy(dtype="float64")
                         for c in outcomes.values()])
    region = pd.factorize(pm["region"])[0].astype("int64")
    frame = pd.DataFrame({"municipality": pd.factorize(pm["municipality"])[0],
                          "regmonth": region * (int(t.max()) + 1) + t, "t": t})
    cname = "region" if params.estimate.cluster == "region" else "municipality"
    cl_codes, cl_labels = pd.factorize(pm[cname].astype(str), sort=True)
    client = pd.factorize(pm["client_id"])[0]
    if main_clusters is None:
        mains = main_halves(np.asarray(cl_labels), n_splits, seed)
    else:
        mains = [np.sort(np.asarray([str(c) for c in m], dtype=object)) for m in main_clusters]
    per, proxies = [], []
    imputer = _Imputer(frame, Y, XC, untreated, treated, cl_codes)
    for s, main in enumerate(mains):
        in_main = np.isin(np.asarray(cl_labels), main)                # per cluster
        halves = {}
        for name, keep in (("aux", ~in_main), ("main", in_main)):
            tr, tau, ok = imputer.tau(keep)
            halves[name] = (tr[ok], tau[ok])
        (ra, ta), (rm, tm) = halves["aux"], halves["main"]
        if len(ra) == 0 or len(rm) == 0:
            warn(f"cddf (programme): split {s} has a half without adopted person-months")
            continue
        Za = np.column_stack([np.ones(len(ra)), XC[ra, :kx]])
        G_main = len(unique(cl_codes[rm]))
        cm = pd.factorize(cl_codes[rm])[0]
        xm = {n: codes[n][rm] for n in levels}
        for o, oname in enumerate(outcomes):
            ya, ym = ta[:, o], tm[:, o]
            fa, fm = np.isfinite(ya), np.isfinite(ym)
            b = np.zeros(Za.shape[1])
            kp = _independent_cols(Za[fa]) if fa.any() else np.zeros(0, int)
            if kp.size:  # a level absent from Aux keeps 0: predicted as the reference
                Zk = Za[fa][:, kp]
                b[kp] = np.linalg.solve(Zk.T @ Zk, Zk.T @ ya[fa])
            proxies.append({"split": s, "outcome": oname, "dimension": "(intercept)",
                            "group": "", "coef": float(b[0]), "status": "estimated"})
            for j, (n, h) in enumerate(dummies):
                proxies.append({"split": s, "outcome": oname, "dimension": n,
                                "group": levels[n][h], "coef": float(b[1 + j]),
                                "status": "estimated"})
            S = b[0] + XC[rm[fm], :kx] @ b[1:]
            Sc = S - S.mean()
            grp = quantile_groups(S, K)
            clm = pd.factorize(cm[fm])[0]
            blp = _ols_crv1(np.column_stack([np.ones(fm.sum()), Sc]), ym[fm], clm)
            gates = _ols_crv1(np.column_stack([(grp == k).astype("float64") for k in range(K)]),
                              ym[fm], clm)
            per += split_rows(s, oname, blp, gates, grp, client[rm][fm],
                              {n: v[fm] for n, v in xm.items()}, levels, cm[fm], K, G_main - 1)
    if not per:
        return empty
    per = pd.DataFrame(per)
    for k, v in split_inference(per["estimate"], per["std_error"], per["df"], alpha).items():
        per[k] = v
    return make_tables(per, pd.DataFrame(proxies), tuple(mains), alpha, min_cell, K)
