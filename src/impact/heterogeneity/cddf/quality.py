"""CDDF's BLP, GATES and CLAN of the quality effect: cluster splits, the linear proxy
fitted on Aux and the fits on Main (see the package notes)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from impact.estimate.frames import EstimationWarning
from impact.estimate.params import EstimateParams
from impact.estimate.cgram import cluster_grams, fit_pm_multi_grams
from impact.estimate.pmreg import cell_demean, fe_df
from impact.estimate.quality import quality_frame
from impact.heterogeneity.cddf.split import (
    dimension_levels, main_halves, quantile_groups, split_rows,
)
from impact.heterogeneity.cddf.tables import (
    CDDFResult, empty_result, make_tables, split_inference,
)
from impact.heterogeneity.params import OUTCOMES, HeterogeneityParams

__all__ = ["cddf_quality"]


@dataclass(frozen=True)
class _Half:
    rows: np.ndarray          # rows of the full matrix
    cells: pd.DataFrame       # the half's cells, recoded 0..C-1
    code: np.ndarray          # cell code per row of the half
    clusters: np.ndarray
    df_fe: int


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
    if outcomes is None:
        outcomes = {o: OUTCOMES[o] for o in het.outcomes if OUTCOMES[o] in pm}
    outcomes = {o: c for o, c in outcomes.items() if c in pm}
    dims = [d for d in het.groups if d.column in pm]
    for d in het.groups:
        if d.column not in pm:
            warnings.warn(f"cddf: person_months has no column {d.column!r} (dimension "
                          f"{d.name}); left out of the proxy", EstimationWarning, stacklevel=2)
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
    # A0): every half is a union of clusters, so its rows (in order) come in contiguous
    # cluster blocks, the blocks of its Gram matrix (``cgram``), and are gathered from A0
    # in increasing order
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

    def half(mask: np.ndarray) -> _Half:
        rows = np.flatnonzero(mask)  # in cluster order, as A0's rows
        used, hcode = np.unique(code[rows], return_inverse=True)
        hcells = cells.iloc[used].reset_index(drop=True)
        # integer cluster codes (same partition as the labels; factorising strings in
        # every fit is slow)
        return _Half(rows, hcells, hcode.astype("int64"), pd.factorize(cl_codes[rows])[0],
                     fe_df(hcells, fe, cell_cl_all[used]))

    # dummies of every dimension (first level left out) and their names
    dummies = [(n, h, f"x:{n}={lab}") for n, labs in levels.items()
               for h, lab in enumerate(labs) if h > 0]
    dnames = [d for _, _, d in dummies]
    base = ["quality_a", "quality_b", *exog0]
    ycols = [col0[y] for y in ys]
    per_split, proxies = [], []
    for s, main in enumerate(mains):
        in_main = np.isin(cl_codes, np.flatnonzero(np.isin(np.asarray(cl_labels), main)))
        if in_main.all() or not in_main.any():
            raise ValueError(f"cddf: split {s} leaves a half without clusters")
        # ---- Aux: the proxy ------------------------------------------------------------
        aux = half(~in_main)
        qa_n, qb_n = [f"qa*{d}" for d in dnames], [f"qb*{d}" for d in dnames]
        names = list(ys) + base + dnames + qa_n + qb_n
        H = _half_matrix(A0, col0, aux.rows, ycols, base, len(names))
        ny = len(ys)
        qa, qb = H[:, ny].copy(), H[:, ny + 1].copy()
        k = ny + len(base)
        for j, (n, h, _) in enumerate(dummies):
            d = (xcode[n][aux.rows] == h).astype("float64")
            H[:, k + j] = d
            H[:, k + len(dummies) + j] = qa * d
            H[:, k + 2 * len(dummies) + j] = qb * d
        del qa, qb
        _demean(H, aux, fe)
        # every outcome's column is in H: one set of cluster Gram blocks serves them all
        grams, _ = cluster_grams(H, aux.clusters)
        del H
        coefs = {}
        for y in ys:
            fit = fit_pm_multi_grams(grams, names, y, ["quality_a", *qa_n], exog0 + dnames,
                                     ["quality_b", *qb_n], aux.df_fe)
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
        mh = half(in_main)
        spec = (["qa*S", "qb*S"] + [f"qa#G{g}" for g in range(1, K + 1)]
                + [f"qb#G{g}" for g in range(1, K + 1)] + [f"G{g}" for g in range(2, K + 1)])
        names = list(ys) + base + dnames + spec
        H = _half_matrix(A0, col0, mh.rows, ycols, base, len(names))
        qa, qb = H[:, ny].copy(), H[:, ny + 1].copy()
        k = ny + len(base)
        for j, (n, h, _) in enumerate(dummies):
            H[:, k + j] = xcode[n][mh.rows] == h
        k0 = k + len(dummies)
        _demean(H[:, :k0], mh, fe)
        # the blocks of the outcomes, quality and controls once; each outcome's proxy
        # columns are added to them (``extend``: only the new columns are multiplied)
        grams0, _ = cluster_grams(H[:, :k0], mh.clusters)
        xm = {n: xcode[n][mh.rows] for n in levels}
        cm = client[mh.rows]
        mh_cl = mh.clusters
        G_main = int(mh_cl.max()) + 1
        for y in ys:
            b = coefs[y]
            S = np.full(len(mh.rows), b[0])
            j = 1
            for n, labs in levels.items():
                table = np.concatenate([[0.0], b[j:j + len(labs) - 1]])
                S += table[xm[n]]
                j += len(labs) - 1
            Sc = S - S.mean()
            grp = quantile_groups(S, K)
            cols = [qa * Sc, qb * Sc]
            cols += [qa * (grp == g) for g in range(K)]
            cols += [qb * (grp == g) for g in range(K)]
            cols += [(grp == g).astype("float64") for g in range(1, K)]
            for i, c in enumerate(cols):
                H[:, k0 + i] = c
            _demean(H[:, k0:], mh, fe)
            exog = exog0 + dnames
            # one set of cluster Gram blocks for both models (BLP reads a subset of the
            # columns): no further pass over the rows
            grams = grams0.extend(H, k0, H.shape[1])
            blp = fit_pm_multi_grams(grams, names, y, ["quality_a", "qa*S"], exog,
                                     ["quality_b", "qb*S"], mh.df_fe)
            gates = fit_pm_multi_grams(grams, names, y, [f"qa#G{g}" for g in range(1, K + 1)],
                                       exog + [f"G{g}" for g in range(2, K + 1)],
                                       [f"qb#G{g}" for g in range(1, K + 1)], mh.df_fe)
            per_split += split_rows(s, y[2:], blp, gates, grp, cm, xm, levels, mh_cl,
                                     K, G_main - 1)
        del H, qa, qb, grams0
    per = pd.DataFrame(per_split)
    for k, v in split_inference(per["estimate"], per["std_error"], per["df"], alpha).items():
        per[k] = v
    return make_tables(per, pd.DataFrame(proxies), tuple(mains), alpha, min_cell, K)


def _demean(H: np.ndarray, half: _Half, fe: list[str], width: int = 16) -> None:
    """``cell_demean`` by blocks of ``width`` columns (views, in place): its gather
    temporary is rows x block width instead of rows x all columns."""
    for j in range(0, H.shape[1], width):
        cell_demean(H[:, j:j + width], half.cells, half.code, fe)


def _half_matrix(A0: np.ndarray, col0: dict[str, int], rows: np.ndarray, ycols: list[int],
                 base: list[str], width: int) -> np.ndarray:
    """The half's matrix (Fortran order): the outcome columns ``ycols`` of A0, then the
    ``base`` columns, the rest zero. ``rows`` (increasing) are copied run by run: a half
    is a few runs of consecutive rows (its clusters), and a slice copy is faster than a
    gather."""
    cut = np.flatnonzero(np.diff(rows) != 1) + 1
    runs = [(int(r[0]), int(r[-1]) + 1) for r in np.split(rows, cut) if len(r)]

    def fill(out: np.ndarray, c: int) -> None:
        pos = 0
        for s, e in runs:
            out[pos:pos + e - s] = A0[s:e, c]
            pos += e - s

    H = np.zeros((len(rows), width), order="F")
    for j, c in enumerate([*ycols, *(col0[b] for b in base)]):
        fill(H[:, j], c)
    return H
