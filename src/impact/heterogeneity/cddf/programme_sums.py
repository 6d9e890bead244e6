"""The programme's data-driven check from pass 2's sums (``cddf.programme_stream``): per
split and outcome the proxy, BLP, GATES and CLAN of ``cddf_programme``'s loop, each OLS
from the cluster blocks of [Z, tau] summed per cluster x type."""

from __future__ import annotations

import numpy as np
import pandas as pd

from impact.distinct import unique
from impact.estimate.cgram import ClusterGrams, fit_pm_multi_grams
from impact.estimate.frames import warn
from impact.estimate.pmreg import _independent
from impact.heterogeneity.cddf.split import split_rows_counts, tally_counts
from impact.heterogeneity.cddf.types import _quantiles, _Types
from impact.heterogeneity.cddf.tables import (
    CDDFResult, empty_result, make_tables, split_inference,
)

__all__ = ["tables_from_sums"]


def _blocks(cl: np.ndarray, Z: np.ndarray, n: np.ndarray, s1: np.ndarray) -> ClusterGrams:
    """The cluster blocks of [Z, tau] from sums per key: Z constant within a key, with its
    person-months n and the sum of tau (clusters numbered as they appear). The OLS fit
    reads no tau'tau entry: it is left NaN, so that nothing can use it unseen."""
    g, labels = pd.factorize(cl)
    G, p = len(labels), Z.shape[1]
    C = np.empty((G, p + 1, p + 1))
    for i in range(p):
        for j in range(i, p):
            C[:, i, j] = C[:, j, i] = np.bincount(g, weights=n * Z[:, i] * Z[:, j],
                                                  minlength=G)
        C[:, i, p] = C[:, p, i] = np.bincount(g, weights=Z[:, i] * s1, minlength=G)
    C[:, p, p] = np.nan
    return ClusterGrams(C, np.asarray(labels), None, int(round(n.sum())))


def _ols(cl, Z, n, s1):
    """``programme._ols_crv1`` from sums (``_blocks``)."""
    names = [f"z{j}" for j in range(Z.shape[1])]
    return fit_pm_multi_grams(_blocks(cl, Z, n, s1), names + ["y"], "y", names, [], None,
                              0)


def _dummies(codes: list[np.ndarray], dims, levels: dict[str, list[str]]) -> np.ndarray:
    """The proxy's characteristics (each dimension's levels h >= 1) of each type."""
    cols = [(c == h).astype("float64") for d, c in zip(dims, codes)
            for h in range(1, len(levels[d.name]))]
    return np.column_stack(cols) if cols else np.zeros((len(codes[0]), 0))


def tables_from_sums(ts, keys, trip, types: _Types, levels, in_main, mains,
            outcomes: list[str], K: int, alpha: float, min_cell: int) -> CDDFResult:
    """``cddf_programme``'s loop over splits and outcomes (its step 3: proxy, BLP, GATES,
    CLAN) from pass 2's sums."""
    k_cl, k_type, k_mask = keys
    t_cl, t_type, t_mask, t_client = trip
    O = len(outcomes)
    k_codes, t_codes = types.decode(k_type), types.decode(t_type)
    D = _dummies(k_codes, types.dims, levels)
    Za = np.column_stack([np.ones(len(D)), D])
    per, proxies = [], []
    for s, main in enumerate(in_main):
        any_s = ((k_mask >> (s * O)) & ((1 << O) - 1)) != 0
        k_main = main[k_cl]
        if not (any_s & ~k_main).any() or not (any_s & k_main).any():
            warn(f"cddf (programme): split {s} has a half without adopted person-months")
            continue
        G_main = len(unique(k_cl[any_s & k_main]))
        for o, oname in enumerate(outcomes):
            f = s * O + o
            bit = ((k_mask >> f) & 1).astype(bool)
            t_bit = ((t_mask >> f) & 1).astype(bool)
            fa, fm = bit & ~k_main, bit & k_main
            b = np.zeros(Za.shape[1])
            if fa.any():
                ZtZ = (Za[fa] * ts.n[fa, None]).T @ Za[fa]
                kp = np.sort(np.asarray(_independent(ZtZ, list(range(Za.shape[1]))), dtype=int))
                if kp.size:  # a level absent from Aux keeps 0: predicted as the reference
                    b[kp] = np.linalg.solve(ZtZ[np.ix_(kp, kp)], Za[fa][:, kp].T @ ts.s1[fa, f])
            proxies.append({"split": s, "outcome": oname, "dimension": "(intercept)",
                            "group": "", "coef": float(b[0]), "status": "estimated"})
            j = 1
            for name, labs in levels.items():
                for lab in labs[1:]:
                    proxies.append({"split": s, "outcome": oname, "dimension": name,
                                    "group": lab, "coef": float(b[j]), "status": "estimated"})
                    j += 1
            n, s1 = ts.n[fm], ts.s1[fm, f]
            tm = t_bit & main[t_cl]
            # S of each type once, for the sums and the triples alike
            u_type, inv = np.unique(np.concatenate([k_type[fm], t_type[tm]]),
                                    return_inverse=True)
            S_u = b[0] + _dummies(types.decode(u_type), types.dims, levels) @ b[1:]
            Sv, t_S = S_u[inv[:int(fm.sum())]], S_u[inv[int(fm.sum()):]]
            Sbar = float(n @ Sv / n.sum())
            cuts = _quantiles(Sv, n, K)
            grp = np.searchsorted(cuts, Sv, side="left")
            blp = _ols(k_cl[fm], np.column_stack([np.ones(len(Sv)), Sv - Sbar]), n, s1)
            gates = _ols(k_cl[fm], np.column_stack([(grp == q).astype("float64")
                                                    for q in range(K)]), n, s1)
            tcodes = [c[tm] for c in t_codes]
            counts = tally_counts(k_cl[fm], [c[fm] for c in k_codes], n, grp, t_client[tm],
                                  tcodes, np.searchsorted(cuts, t_S, side="left"), levels, K)
            per += split_rows_counts(s, oname, blp, gates, counts, levels, K, G_main - 1)
    if not per:
        return empty_result(alpha, min_cell)
    per = pd.DataFrame(per)
    for k, v in split_inference(per["estimate"], per["std_error"], per["df"], alpha).items():
        per[k] = v
    return make_tables(per, pd.DataFrame(proxies), tuple(mains), alpha, min_cell, K)
