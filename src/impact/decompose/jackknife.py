"""Leave-one-cluster-out refits of the decomposition model without refitting (``model``
module notes: the WCU3 bootstrap's jackknife deviations): the coefficients from the cross
products without each cluster, the fixed effects of the regions holding its cells."""

from __future__ import annotations

import numpy as np

from impact.decompose.cellfe import _fe_one_region, _fe_projection
from impact.estimate.pmreg import _independent

__all__: list[str] = []


def _cluster_grams(A: np.ndarray, cl_codes: np.ndarray, G: int) -> np.ndarray:
    """(G, k, k) cross products A_g' A_g of each cluster's rows."""
    order = np.argsort(cl_codes, kind="stable")
    bounds = np.searchsorted(cl_codes[order], np.arange(G + 1))
    out = np.empty((G, A.shape[1], A.shape[1]))
    for g in range(G):
        Ag = A[order[bounds[g]:bounds[g + 1]]]
        out[g] = Ag.T @ Ag
    return out


def _loo_exact(raw_gram, raw_sums, n_c, cells, cell_cl, X, Zc, y, lead) -> np.ndarray:
    """(G, kept) coefficients refitted without each cluster (clusters nested in cells,
    municipality + region x month effects): the demeaned cross products without cluster
    g are its raw ones minus the fixed-effect projection, recomputed for the regions that
    hold g's cells (Frisch-Waugh-Lovell at the cell level). Equal to refits."""
    G = raw_gram.shape[0]
    regions = cells["region"].to_numpy()
    reg_idx = {r: np.flatnonzero(regions == r) for r in np.unique(regions)}
    proj = {r: _fe_projection(cells, i, n_c, raw_sums) for r, i in reg_idx.items()}
    total_raw, total_proj = raw_gram.sum(axis=0), sum(proj.values())
    out = np.empty((G, len(X)))
    for g in range(G):
        mine = cell_cl == g
        gram = total_raw - raw_gram[g] - total_proj
        for r in np.unique(regions[mine]):
            rest = reg_idx[r][~mine[reg_idx[r]]]
            gram += proj[r] - (_fe_projection(cells, rest, n_c, raw_sums) if len(rest) else 0)
        out[g] = _solve(gram, X, Zc, y, lead)
    return out


def _loo_coefficients(grams, X, Zc, y, G_all, lead) -> np.ndarray:
    """(G, kept) coefficients with each cluster left out, for clusters that do not nest in
    the cells (caseworkers): the demeaned cross products minus the cluster's own
    (``grams`` (G, k, k), the demeaned matrix's cluster blocks). An approximation (the
    fixed-effect projection stays as fitted on all data)."""
    return np.stack([_solve(G_all - grams[g], X, Zc, y, lead) for g in range(len(grams))])


def _solve(gram: np.ndarray, X, Zc, y, lead: int) -> np.ndarray:
    """Just-identified IV (OLS when Zc = X) from a cross-product matrix, as a refit on the
    rows it sums would give: the first ``lead`` regressors (quality) always kept, the
    exogenous ones (``X[lead:]``, instruments of themselves) that are collinear with the
    earlier ones dropped by the main fit's rule (``pmreg._independent``), their
    coefficient 0. A term that only the left-out cluster identifies (a shock bin of the
    only shocked municipality of its region, say) is such a column: its demeaned cross
    products are zero up to rounding, and solving with them anyway returns whatever the
    rounding decides."""
    ex = X[lead:]
    kept = _independent(gram, list(ex))
    Xk, Zk = list(X[:lead]) + kept, list(Zc[:lead]) + kept
    M, v = gram[np.ix_(Zk, Xk)], gram[Zk, y]
    try:
        bk = np.linalg.solve(M, v)
    except np.linalg.LinAlgError:  # the lead regressor itself not identified
        bk = np.linalg.lstsq(M, v, rcond=None)[0]
    out = np.zeros(len(X))
    pos = {c: i for i, c in enumerate(X)}
    out[[pos[c] for c in Xk]] = bk
    return out


def _loo_fixed_effects(cells, n_c, cell_cl, ybar, xbar, coef, db, regmonths, munis, lam,
                       alpha, lam_j, alpha_j, with_muni) -> None:
    """Leave-one-cluster-out fixed effects (in place, deviations from lam/alpha): the
    regions holding the cluster's cells are refitted without them; elsewhere only the
    coefficients move (already in lam_j, alpha_j). Effects the cluster alone identifies
    (its own municipality; months only it covers) move with the coefficients only."""
    rm_pos = {k: i for i, k in enumerate(regmonths)}
    m_pos = {k: i for i, k in enumerate(munis)}
    regions = cells["region"].to_numpy()
    for g in range(db.shape[0]):
        mine = cell_cl == g
        for reg in np.unique(regions[mine]):
            idx = np.flatnonzero((regions == reg) & ~mine)
            if len(idx) == 0:
                continue
            r = ybar[idx] - xbar[idx] @ (coef + db[g])
            m_lab, t_lab, a, lm = _fe_one_region(cells, idx, n_c, r[:, None], with_muni)
            for t, v in zip(t_lab, lm[:, 0]):
                i = rm_pos[f"{reg}:{t}"]
                lam_j[i, g] = v - lam[i]
            for m, v in zip(m_lab, a[:, 0]):
                i = m_pos[m]
                alpha_j[i, g] = v - alpha[i]
