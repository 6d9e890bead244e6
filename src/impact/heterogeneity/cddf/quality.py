"""CDDF's BLP, GATES and CLAN of the quality effect: cluster splits, the linear proxy
fitted on Aux and the fits on Main (see the package notes)."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from impact.distinct import unique
from impact.estimate.params import EstimateParams
from impact.estimate.cgram import (
    ClusterGrams, _pair_sums, cluster_grams_by, demean_grams, fit_pm_multi_grams,
)
from impact.estimate.pmreg import fe_df
from impact.estimate.quality import quality_frame
from impact.heterogeneity.cddf.split import (
    dimension_levels, main_halves, present, quantile_groups, split_rows,
)
from impact.heterogeneity.cddf.tables import (
    CDDFResult, empty_result, make_tables, split_inference,
)
from impact.heterogeneity.params import HeterogeneityParams

__all__ = ["blp_gates", "cddf_quality"]


def cddf_quality(pm: pd.DataFrame, params: EstimateParams, het: HeterogeneityParams,
                 outcomes: Mapping[str, str] | None = None, *, min_cell: int = 10,
                 seed: int | None = None, alpha: float | None = None,
                 main_clusters: Sequence[Sequence] | None = None) -> CDDFResult:
    """BLP, GATES and CLAN of the quality effect, aggregated over ``het.cddf_splits``
    splits into ``het.cddf_groups`` groups (see the module notes).

    ``outcomes``: name -> person-month indicator column (default: ``het.outcomes``
    present in ``pm``); ``seed`` (default ``params.seed``) fixes the splits;
    ``alpha`` (default ``params.estimate.alpha``); ``main_clusters``: fixed Main halves
    (one sequence of cluster labels per split) instead of random ones.
    """
    alpha = params.estimate.alpha if alpha is None else float(alpha)
    seed = params.seed if seed is None else int(seed)
    K = int(het.cddf_groups)
    outcomes, dims = present(pm.columns, het, outcomes, warn_missing=True)
    empty = empty_result(alpha, min_cell)
    n_splits = len(main_clusters) if main_clusters is not None else int(het.cddf_splits)
    if not outcomes or not dims or n_splits == 0:
        return empty

    # --- the full matrix, once: outcomes, quality, controls, group codes, client -------
    codes = {}
    for d in dims:
        c = d.codes(pm[d.column])
        codes[d.name] = np.where(c >= 0, c, len(d.labels))  # in no group: "(none)"
    extra = {f"#x:{n}": c.astype("float64") for n, c in codes.items()}
    client_col = "client_id" if "client_id" in pm else "spell_id"
    extra["#client"] = pd.factorize(pm[client_col])[0].astype("float64")
    ys = {f"y#{o}": col for o, col in outcomes.items()}
    A0, names0, exog0, cells, code, cl = quality_frame(pm, params, outcomes=ys, extra=extra)
    if len(A0) == 0:
        return empty
    del extra  # per-row copies of pm's length: not needed any more
    # rows in cluster order, permuted in place one column at a time (no second copy of
    # A0): each cluster's rows are then one slice, from which its block of the Gram
    # matrix is made (``cgram.cluster_grams_by``), and a half is a set of clusters
    cl_codes, cl_labels = pd.factorize(cl, sort=True)
    order = np.argsort(cl_codes, kind="stable")
    tmp = np.empty(len(order))
    for j in range(A0.shape[1]):
        np.take(A0[:, j], order, out=tmp)
        A0[:, j] = tmp
    del tmp
    code, cl_codes = np.asarray(code)[order], cl_codes[order]
    cl = np.asarray(cl)[order]
    col0 = {n: i for i, n in enumerate(names0)}
    xcode = {n: A0[:, col0[f"#x:{n}"]].astype("int32") for n in codes}
    del codes
    levels = dimension_levels(dims, xcode)
    client = A0[:, col0["#client"]].astype("int64")
    fe = (["munimonth"] if params.estimate.quality_fe == "municipality_month"
          else ["municipality", "regmonth"])
    cname = params.estimate.cluster
    cell_cl_all = cells["region"] if cname == "region" else cells["municipality"]
    if pd.Series(cl).nunique() > cell_cl_all.nunique():  # one municipality: caseworkers
        cell_cl_all = pd.Series(np.arange(len(cells)))
    cell_cl_all = cell_cl_all.to_numpy()
    if main_clusters is None:
        mains = main_halves(np.asarray(cl_labels), n_splits, seed)
    else:
        mains = [np.sort(np.asarray([str(c) for c in m], dtype=object))
                 for m in main_clusters]

    G = len(cl_labels)
    bounds = np.searchsorted(cl_codes, np.arange(G + 1))
    # dummies of every dimension (first level left out) and their names
    dummies = [(n, h, f"x:{n}={lab}") for n, labs in levels.items()
               for h, lab in enumerate(labs) if h > 0]
    dnames = [d for _, _, d in dummies]
    nd = len(dummies)
    base = ["quality_a", "quality_b", *exog0]
    first = [*(col0[y] for y in ys), *(col0[b] for b in base)]  # columns taken from A0
    iqa, iqb = col0["quality_a"], col0["quality_b"]
    qa_n, qb_n = [f"qa*{d}" for d in dnames], [f"qb*{d}" for d in dnames]
    # the Aux model's columns; Main's first k0 are the same
    names_u = list(ys) + base + dnames + qa_n + qb_n
    k0 = len(first) + nd

    def leading(s: int, e: int, width: int) -> np.ndarray:
        """Rows s..e-1 (one cluster) of [outcomes, quality, controls, dummies], room for
        ``width`` columns in all."""
        H = np.empty((e - s, width), order="F")
        for j, c in enumerate(first):
            H[:, j] = A0[s:e, c]
        for j, (n, h, _) in enumerate(dummies):
            H[:, len(first) + j] = xcode[n][s:e] == h
        return H

    def universal(s: int, e: int) -> np.ndarray:
        H = leading(s, e, len(names_u))
        qa, qb = A0[s:e, iqa], A0[s:e, iqb]
        for j in range(nd):
            np.multiply(qa, H[:, len(first) + j], out=H[:, k0 + j])
            np.multiply(qb, H[:, len(first) + j], out=H[:, k0 + nd + j])
        return H

    # the raw cluster blocks and cell x cluster pair sums of the Aux columns, once for all
    # splits (one pass over the rows); each half's model is then the blocks of its
    # clusters with its own fixed-effect projection taken out (``cgram.demean_grams``)
    U = cluster_grams_by(universal, bounds, cl_labels, code)
    pstart = np.searchsorted(U.pair_cluster, np.arange(G + 1))  # each cluster's pairs

    def fe_dof(keep: np.ndarray) -> int:
        used = unique(U.pair_cell[keep[U.pair_cluster]])
        return fe_df(cells.iloc[used].reset_index(drop=True), fe, cell_cl_all[used])

    spec = (["qa*S", "qb*S"] + [f"qa#G{g}" for g in range(1, K + 1)]
            + [f"qb#G{g}" for g in range(1, K + 1)] + [f"G{g}" for g in range(2, K + 1)])
    names_m = names_u[:k0] + spec
    km = len(names_m)
    per_split, proxies = [], []
    for s, main in enumerate(mains):
        in_main = np.isin(np.asarray(cl_labels), main)                  # per cluster
        if in_main.all() or not in_main.any():
            raise ValueError(f"cddf: split {s} leaves a half without clusters")
        # ---- Aux: the proxy ------------------------------------------------------------
        grams = demean_grams(U.subset(~in_main), cells, fe)
        df_aux = fe_dof(~in_main)
        coefs = {}
        for y in ys:
            fit = fit_pm_multi_grams(grams, names_u, y, ["quality_a", *qa_n], exog0 + dnames,
                                     ["quality_b", *qb_n], df_aux)
            b = np.nan_to_num(fit.coef)
            coefs[y] = b
            ok = np.isfinite(fit.coef[0])
            proxies.append({"split": s, "outcome": y[2:], "dimension": "(intercept)",
                            "group": "", "coef": float(b[0]),
                            "status": "estimated" if ok else "not estimable"})
            j = 1
            for n, labs in levels.items():
                for h, lab in enumerate(labs):
                    if h == 0:
                        proxies.append({"split": s, "outcome": y[2:], "dimension": n,
                                        "group": lab, "coef": 0.0, "status": "reference"})
                        continue
                    ok = np.isfinite(fit.coef[j])
                    proxies.append({"split": s, "outcome": y[2:], "dimension": n,
                                    "group": lab, "coef": float(b[j]),
                                    "status": "estimated" if ok else "not estimable"})
                    j += 1
        del grams
        # ---- Main: BLP, GATES, CLAN ------------------------------------------------------
        raw_m = U.subset(in_main)
        df_main = fe_dof(in_main)
        rows = np.flatnonzero(in_main[cl_codes])                       # in cluster order
        xm = {n: xcode[n][rows] for n in levels}
        cm = client[rows]
        mh_cl = pd.factorize(cl_codes[rows])[0]
        G_main = int(in_main.sum())
        mb = np.concatenate([[0], np.cumsum(np.diff(bounds)[in_main])])  # in `rows`
        for y in ys:
            b = coefs[y]
            S = np.full(len(rows), b[0])
            j = 1
            for n, labs in levels.items():
                table = np.concatenate([[0.0], b[j:j + len(labs) - 1]])
                S += table[xm[n]]
                j += len(labs) - 1
            Sbar = S.mean()
            grp = quantile_groups(S, K)
            # qa (S - Sbar) and qb (S - Sbar) are combinations of Aux columns: their
            # blocks come from U's (M' C_g M); only the GATES columns need the rows
            M = np.zeros((len(names_u), k0 + 2))
            M[np.arange(k0), np.arange(k0)] = 1.0
            for c, (q, qn) in enumerate((("quality_a", qa_n), ("quality_b", qb_n))):
                M[names_u.index(q), k0 + c] = b[0] - Sbar
                M[[names_u.index(v) for v in qn], k0 + c] = b[1:1 + nd]
            C = np.empty((G_main, km, km))
            C[:, :k0 + 2, :k0 + 2] = np.einsum("ki,gkl,lj->gij", M, raw_m.C, M, optimize=True)
            sums = np.empty((len(raw_m.pair_cell), km))
            sums[:, :k0 + 2] = raw_m.pair_sums @ M
            p0 = 0
            for g, gl in enumerate(np.flatnonzero(in_main)):
                s0, e0 = int(bounds[gl]), int(bounds[gl + 1])
                H = leading(s0, e0, km)
                sl = slice(int(mb[g]), int(mb[g + 1]))
                qa, qb, Sc = A0[s0:e0, iqa], A0[s0:e0, iqb], S[sl] - Sbar
                H[:, k0], H[:, k0 + 1] = qa * Sc, qb * Sc
                gg = grp[sl]
                for q in range(K):
                    H[:, k0 + 2 + q] = qa * (gg == q)
                    H[:, k0 + 2 + K + q] = qb * (gg == q)
                for q in range(1, K):
                    H[:, k0 + 1 + 2 * K + q] = gg == q
                cross = H[:, k0 + 2:].T @ H
                C[g, k0 + 2:, :] = cross
                C[g, :k0 + 2, k0 + 2:] = cross[:, :k0 + 2].T
                # the rows' pairs as U numbered them (this cluster's run of pairs)
                inv = U.pair_code[s0:e0] - pstart[gl]
                P_g = int(pstart[gl + 1] - pstart[gl])
                sums[p0:p0 + P_g, k0 + 2:] = _pair_sums(inv, P_g, H[:, k0 + 2:])
                p0 += P_g
            grams = demean_grams(ClusterGrams(C, raw_m.labels, None, raw_m.n_obs, None,
                                              raw_m.pair_cell, raw_m.pair_cluster, sums,
                                              raw_m.pair_count), cells, fe)
            exog = exog0 + dnames
            blp, gates = blp_gates(grams, names_m, y, exog, K, df_main)
            per_split += split_rows(s, y[2:], blp, gates, grp, cm, xm, levels, mh_cl,
                                     K, G_main - 1)
    per = pd.DataFrame(per_split)
    for k, v in split_inference(per["estimate"], per["std_error"], per["df"], alpha).items():
        per[k] = v
    return make_tables(per, pd.DataFrame(proxies), tuple(mains), alpha, min_cell, K)


def blp_gates(grams, names: list[str], y: str, exog: list[str], K: int, df: int):
    """The BLP and GATES 2SLS fits on Main's demeaned blocks, columns as the module notes
    name them (``qa*S``, ``qa#G1``, ``G2``, ...)."""
    blp = fit_pm_multi_grams(grams, names, y, ["quality_a", "qa*S"], exog,
                             ["quality_b", "qb*S"], df)
    gates = fit_pm_multi_grams(grams, names, y, [f"qa#G{g}" for g in range(1, K + 1)],
                               exog + [f"G{g}" for g in range(2, K + 1)],
                               [f"qb#G{g}" for g in range(1, K + 1)], df)
    return blp, gates
