"""Data-driven check of quality-effect heterogeneity: CDDF's BLP, GATES and CLAN.

Notes
-----
The pre-specified groups (``heterogeneity.quality``) test one dimension at a time. This
module asks the agnostic question of Chernozhukov, Demirer, Duflo and Fernández-Val
(2018, NBER WP 24678; Econometrica, "Generic machine learning inference on heterogeneous
treatment effects in randomized experiments"; CDDF): does a predictor of the quality
effect built on one half of the data predict heterogeneity on the other half? It is a
robustness view reported *beside* the pre-specified groups, never instead of them.

**Adaptation to a continuous, instrumented treatment.** The treatment is the true process
quality q* of the month's caseworker, seen through two independent half-measurements
(``quality_a``, ``quality_b``), with the headline's controls, fixed effects and
clustering (``estimate.quality.quality_frame``). The conditional quality effect is
beta(x) in

    100 y_i = beta(x_i) q*_i + x_i'delta + controls + FE + u_i,

x the client characteristics of every pre-specified dimension (the group dummies).
CDDF's "treatment minus propensity" becomes ``quality_a`` instrumented by ``quality_b``
(errors-in-variables correction, as in the headline); every interaction ``quality_a x w``
is instrumented by ``quality_b x w``. For s = 1..S splits of the *clusters* (by default
municipalities; halves of clusters are independent, halves of rows within a cluster are
not) into Aux and Main:

1. *Proxy (Aux).* The interaction 2SLS of y on ``quality_a`` and ``quality_a x x_j``
   (instruments ``quality_b``, ``quality_b x x_j``), the x_j main effects among the
   controls, gives s(x) = b0 + sum_j b_j x_j, x_j the dummies of every dimension's groups
   with the first group of each dimension left out. Person-months in no group of a
   dimension (e.g. education "unknown") get a level "(none)" of their own, so the sample
   is the headline's. Why linear: the characteristics are the pre-specified group
   dummies (a few dozen), so an additive interaction model is the transparent IV analogue
   of CDDF's ML proxy; IV forests are not available here, and CDDF's inference is valid
   for *any* proxy learnt on Aux (a poor proxy costs power, not size). It cannot pick up
   interactions between dimensions. Collinearity does not bite (one level left out per
   dimension, ~20 dummies, ~10^6 rows per half): no ridge penalty. A level absent from
   Aux (its instrument is a zero column) is dropped by ``fit_pm_multi`` and gets b_j = 0,
   i.e. is predicted like the reference group.
2. *Main.* S_i = s(x_i), centred at its person-month mean on Main.
   **BLP**: 2SLS of y on ``quality_a`` and ``quality_a (S - mean S)`` (instruments
   ``quality_b``, ``quality_b (S - mean S)``), x main effects among the controls (they span
   S itself). **GATES**: K quantile groups G_k of S (cut points the person-month
   quantiles of S on Main; a value equal to a cut point goes to the lower group), 2SLS of
   y on ``quality_a 1{G_k}`` (instruments ``quality_b 1{G_k}``) with the G_k and x main
   effects among the controls; plus the difference top (k = K) minus bottom (k = 1).
   **CLAN**: the share of each group of each dimension among the person-months of the top
   and of the bottom group, and their difference.

**Estimands** (conditional on the Aux half, i.e. on the proxy; tilde = residual after the
controls, fixed effects and x main effects). (beta1, beta2) solve the moment conditions

    E[ z~ q* (beta(x) - beta1 - beta2 (S(x) - mean S)) ] = 0,  z in {q_b, q_b (S - mean S)}.

With omega(x) the identifying variation of quality within characteristic cell x (the
covariance of q_b~ with q*, i.e. the first-stage strength, given x) this is the
omega-weighted best linear predictor of beta(x) by S(x):
beta2 = Cov_w(beta(X), S(X)) / Var_w(S(X)) and beta1 = E_w[beta(X)] + beta2 (E_w S - mean S),
w = omega x person-months. When quality is as good as randomly assigned to clients within
municipality-months (the headline's identifying assumption) and x does not predict how
much a client's caseworker varies, omega is constant: beta2 is the person-month BLP slope
(beta2 = 1 if S were the true effect function, 0 if S is unrelated to it; beta2 > 0 with a
small p: the proxy predicts heterogeneity), and beta1 the average quality effect on Main
(close to the pooled 2SLS on Main). Likewise gamma_k = E_w[beta(X) | S(X) in the k-th
quantile range]: the same estimand as a pre-specified group's effect in
``heterogeneity.quality``, for groups formed by the proxy. CLAN: E[x | G_K] - E[x | G_1],
person-month weighted. (Sorting of clients to caseworkers by characteristic, e.g. the
built-in simulation's ``assignment_sorting``, moves omega, not the validity of the tests.)
Read CLAN only when BLP or GATES find heterogeneity: the proxy sorts person-months by
their characteristics by construction, so top and bottom differ in composition, and
"significantly" so in a single split, even when the proxy is pure noise (the splits then
disagree on the sign and the medians mean little).

**Inference per split**: CRV1 with the headline's small-sample factor (``fit_pm_multi``),
t(G_Main - 1); CLAN differences by the same CRV1 on the regression of the characteristic
on the top indicator within top and bottom. **Aggregation over splits** (CDDF sec. 4):
point estimates and interval bounds are the medians over splits of the split estimates
and of the split intervals computed at level 1 - 2 alpha, so the median interval has level
at least 1 - alpha; p-values are min(1, 2 x median split p). With an even number of splits
the median is the mean of the two middle values. Conservative by construction: under no
heterogeneity the aggregated test rejects at most at about the nominal rate.

**Disclosure**: a GATES group is published when every split's group holds at least
``min_cell`` distinct clients (``n_clients`` is the minimum over splits); the top-bottom
row needs both; a CLAN row needs both groups published and at least ``min_cell`` clients
*with that characteristic* in each of top and bottom in every split (a share is a count
in disguise); BLP needs ``min_cell`` clients on Main. ``publication_view`` blanks what is
not published.

**Performance**: the quality matrix is built once (``quality_frame`` with the dimensions'
group codes and the client as per-row ``extra`` columns); per split only the half's rows
are copied (interaction columns built there) and demeaned by the half's own cells (the
region x month effects differ by half). Columns shared by all outcomes are demeaned once
per half; per outcome only the outcome and the proxy-dependent columns (S and the GATES
groups) are. Peak memory ~ the full matrix plus one half with its interaction columns
(and ``fit_pm_multi``'s n x H score product): measured 225 MB above the panel at 191k
person-months with two outcomes, linear in rows, i.e. about 3.3 GB at 2.8 million; time
per split about 0.65 s there (two outcomes, one BLAS thread, shared machine), about 10-15 s
per split at 2.8 million person-months.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from impact.disclosure.suppress import secondary
from impact.estimate.frames import EstimationWarning
from impact.estimate.params import EstimateParams
from impact.estimate.pmreg import cell_demean, fe_df, fit_pm_multi
from impact.estimate.quality import quality_frame
from impact.heterogeneity.params import OUTCOMES, GroupDimension, HeterogeneityParams

__all__ = ["CDDFResult", "NONE_LEVEL", "aggregate_splits", "cddf_quality",
           "publication_view", "split_inference"]

#: the level of a dimension for person-months in none of its groups
NONE_LEVEL = "(none)"
_BLP_TERMS = ("beta1_average", "beta2_heterogeneity")


@dataclass(frozen=True)
class CDDFResult:
    """Tables of the data-driven check (see the module notes).

    ``blp`` (outcome, term, estimate, ci_low, ci_high, p_value, n_splits, n_clients,
    published); ``gates`` (outcome, group = 1..K or ``top-bottom``, estimate, ci_low,
    ci_high, p_value, n_splits, n_clients, n_person_months, published); ``clan``
    (outcome, dimension, group, mean_top, mean_bottom, difference, ci_low, ci_high,
    p_value, n_splits, published). ``per_split``: every split's numbers (``std_error``,
    ``df``, the split p-value and its 1 - 2 alpha interval); ``proxies``: the proxy's
    coefficients per split and outcome (relative to each dimension's first group, which
    is listed with 0 and status ``reference``; ``not estimable``: absent from Aux, 0);
    ``main_clusters``: the Main half of each split. Counts are internal (minimum over
    splits); ``publication_view`` gives the publishable copy.
    """

    blp: pd.DataFrame
    gates: pd.DataFrame
    clan: pd.DataFrame
    per_split: pd.DataFrame
    proxies: pd.DataFrame
    main_clusters: tuple[np.ndarray, ...]
    alpha: float
    min_cell: int


@dataclass(frozen=True)
class _Half:
    rows: np.ndarray          # rows of the full matrix
    cells: pd.DataFrame       # the half's cells, recoded 0..C-1
    code: np.ndarray          # cell code per row of the half
    clusters: np.ndarray
    df_fe: int


def split_inference(estimate, se, df, alpha: float) -> dict[str, np.ndarray]:
    """Two-sided t(df) p-value and the 1 - 2 alpha interval of one split's estimates."""
    est, se, df = (np.asarray(v, dtype="float64") for v in (estimate, se, df))
    ok = np.isfinite(est) & np.isfinite(se) & (se > 0) & (df >= 1)
    dfs = np.where(ok, df, 1.0)
    crit = stats.t.ppf(1 - alpha, dfs)
    t = np.where(ok, est / np.where(ok, se, 1.0), np.nan)
    p = np.where(ok, 2 * stats.t.sf(np.abs(t), dfs), np.nan)
    return {"p_value": p, "ci_low": np.where(ok, est - crit * se, np.nan),
            "ci_high": np.where(ok, est + crit * se, np.nan)}


def aggregate_splits(per_split: pd.DataFrame, keys: Sequence[str],
                     medians: Sequence[str] = ()) -> pd.DataFrame:
    """CDDF aggregation over splits of a per-split table, grouped by ``keys``.

    ``estimate``, ``ci_low``, ``ci_high`` and the ``medians`` columns: the median over
    splits (the mean of the two middle values for an even count; splits where the
    estimate is not finite are left out); ``p_value``: min(1, 2 x median); ``n_splits``:
    splits with a finite estimate. The per-split intervals must already have level
    1 - 2 alpha (``split_inference``).
    """
    stat = ["estimate", "ci_low", "ci_high", *medians, "p_value"]
    d = per_split[list(keys)].copy()
    ok = np.isfinite(per_split["estimate"].to_numpy(dtype="float64"))
    for c in stat:
        d[c] = np.where(ok, per_split[c].to_numpy(dtype="float64"), np.nan)
    d["n_splits"] = ok.astype("int64")
    gb = d.groupby(list(keys), sort=False, dropna=False)
    out = gb[stat].median()
    out["p_value"] = np.minimum(1.0, 2 * out["p_value"])
    out["n_splits"] = gb["n_splits"].sum()
    return out.reset_index()[[*keys, "estimate", "ci_low", "ci_high", *medians,
                              "p_value", "n_splits"]]


def _splits(labels: np.ndarray, n_splits: int, seed: int) -> list[np.ndarray]:
    """Main halves: a seeded permutation of the sorted cluster labels per split (the
    extra cluster of an odd count goes to Main)."""
    rng = np.random.default_rng([int(seed), 0xCDDF])
    G = len(labels)
    return [np.sort(labels[rng.permutation(G)[: G - G // 2]]) for _ in range(n_splits)]


def _levels(dims: list[GroupDimension], codes: dict[str, np.ndarray]) -> dict[str, list[str]]:
    return {d.name: list(d.labels) + ([NONE_LEVEL] if (codes[d.name] == len(d.labels)).any()
                                      else []) for d in dims}


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
    empty = _empty(alpha, min_cell)
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
    col0 = {n: i for i, n in enumerate(names0)}
    xcode = {n: A0[:, col0[f"#x:{n}"]].astype("int32") for n in codes}
    del codes
    levels = _levels(dims, xcode)
    client = A0[:, col0["#client"]].astype("int64")
    fe = (["munimonth"] if params.estimate.quality_fe == "municipality_month"
          else ["municipality", "regmonth"])
    cname = params.estimate.cluster
    cell_cl_all = cells["region"] if cname == "region" else cells["municipality"]
    if pd.Series(cl).nunique() > cell_cl_all.nunique():  # one municipality: caseworkers
        cell_cl_all = pd.Series(np.arange(len(cells)))
    cell_cl_all = cell_cl_all.to_numpy()
    cl_codes, cl_labels = pd.factorize(cl, sort=True)
    if main_clusters is None:
        mains = _splits(np.asarray(cl_labels), n_splits, seed)
    else:
        mains = [np.sort(np.asarray([str(c) for c in m], dtype=object))
                 for m in main_clusters]

    def half(mask: np.ndarray) -> _Half:
        rows = np.flatnonzero(mask)
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
        names = ["y"] + base + dnames + qa_n + qb_n
        H, Y = _half_matrix(A0, col0, aux.rows, base, ycols, len(names))
        qa, qb = H[:, 1].copy(), H[:, 2].copy()
        k = 1 + len(base)
        for j, (n, h, _) in enumerate(dummies):
            d = (xcode[n][aux.rows] == h).astype("float64")
            H[:, k + j] = d
            H[:, k + len(dummies) + j] = qa * d
            H[:, k + 2 * len(dummies) + j] = qb * d
        del qa, qb
        _demean(H[:, 1:], aux, fe)
        _demean(Y, aux, fe)
        coefs = {}
        for o, y in enumerate(ys):
            H[:, 0] = Y[:, o]
            fit = fit_pm_multi(H, names, "y", ["quality_a", *qa_n], exog0 + dnames,
                               ["quality_b", *qb_n], aux.clusters, aux.df_fe)
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
        del H, Y
        # ---- Main: BLP, GATES, CLAN ------------------------------------------------------
        mh = half(in_main)
        spec = (["qa*S", "qb*S"] + [f"qa#G{g}" for g in range(1, K + 1)]
                + [f"qb#G{g}" for g in range(1, K + 1)] + [f"G{g}" for g in range(2, K + 1)])
        names = ["y"] + base + dnames + spec
        H, Y = _half_matrix(A0, col0, mh.rows, base, ycols, len(names))
        qa, qb = H[:, 1].copy(), H[:, 2].copy()
        k = 1 + len(base)
        for j, (n, h, _) in enumerate(dummies):
            H[:, k + j] = xcode[n][mh.rows] == h
        k0 = k + len(dummies)
        _demean(H[:, 1:k0], mh, fe)
        _demean(Y, mh, fe)
        xm = {n: xcode[n][mh.rows] for n in levels}
        cm = client[mh.rows]
        mh_cl = mh.clusters
        G_main = int(mh_cl.max()) + 1
        for o, y in enumerate(ys):
            b = coefs[y]
            S = np.full(len(mh.rows), b[0])
            j = 1
            for n, labs in levels.items():
                table = np.concatenate([[0.0], b[j:j + len(labs) - 1]])
                S += table[xm[n]]
                j += len(labs) - 1
            Sc = S - S.mean()
            grp = _quantile_groups(S, K)
            cols = [qa * Sc, qb * Sc]
            cols += [qa * (grp == g) for g in range(K)]
            cols += [qb * (grp == g) for g in range(K)]
            cols += [(grp == g).astype("float64") for g in range(1, K)]
            for i, c in enumerate(cols):
                H[:, k0 + i] = c
            _demean(H[:, k0:], mh, fe)
            H[:, 0] = Y[:, o]
            exog = exog0 + dnames
            # BLP reads a prefix of the columns (a view: no copy, a smaller Gram matrix)
            blp = fit_pm_multi(H[:, :k0 + 2], names[:k0 + 2], "y", ["quality_a", "qa*S"], exog,
                               ["quality_b", "qb*S"], mh.clusters, mh.df_fe)
            gates = fit_pm_multi(H, names, "y", [f"qa#G{g}" for g in range(1, K + 1)],
                                 exog + [f"G{g}" for g in range(2, K + 1)],
                                 [f"qb#G{g}" for g in range(1, K + 1)], mh.clusters, mh.df_fe)
            per_split += _split_rows(s, y[2:], blp, gates, grp, cm, xm, levels, mh_cl,
                                     K, G_main - 1)
        del H, Y, qa, qb
    per = pd.DataFrame(per_split)
    for k, v in split_inference(per["estimate"], per["std_error"], per["df"], alpha).items():
        per[k] = v
    return _tables(per, pd.DataFrame(proxies), tuple(mains), alpha, min_cell, K)


def _demean(H: np.ndarray, half: _Half, fe: list[str], width: int = 16) -> None:
    """``cell_demean`` by blocks of ``width`` columns (views, in place): its gather
    temporary is rows x block width instead of rows x all columns."""
    for j in range(0, H.shape[1], width):
        cell_demean(H[:, j:j + width], half.cells, half.code, fe)


def _half_matrix(A0: np.ndarray, col0: dict[str, int], rows: np.ndarray, base: list[str],
                 ycols: list[int], width: int) -> tuple[np.ndarray, np.ndarray]:
    """The half's matrix (Fortran order; column 0 the outcome slot, then the ``base``
    columns, the rest zero) and its outcome columns (demeaned apart, copied into the slot
    per outcome)."""
    H = np.zeros((len(rows), width), order="F")
    for j, c in enumerate(base, start=1):
        H[:, j] = A0[rows, col0[c]]
    Y = np.empty((len(rows), len(ycols)), order="F")
    for j, c in enumerate(ycols):
        Y[:, j] = A0[rows, c]
    return H, Y


def _quantile_groups(S: np.ndarray, K: int) -> np.ndarray:
    """Group 0..K-1 of each value: cut points the (K-quantiles) of S; ties at a cut point
    go to the lower group."""
    cuts = np.quantile(S, np.arange(1, K) / K)
    return np.searchsorted(cuts, S, side="left")


def _clan(codes: np.ndarray, L: int, top: np.ndarray, bot: np.ndarray, g: np.ndarray,
          clients: np.ndarray) -> dict[str, np.ndarray]:
    """CLAN of one dimension (level codes 0..L-1): share of each level among the top and
    bottom person-months, the difference and its CRV1 SE (the regression of the level
    dummy on 1{top} within top and bottom, clustered, factor G/(G-1) (N-1)/(N-2), G the
    clusters with a row there; ``g`` their codes 0..G-1 on the top and bottom rows), and
    the distinct clients of each level in top and bottom."""
    n1, n0 = int(top.sum()), int(bot.sum())
    nan = np.full(L, np.nan)
    if n1 == 0 or n0 == 0:
        return {"mean_top": nan, "mean_bottom": nan, "estimate": nan, "std_error": nan,
                "n_clients_top": np.zeros(L, int), "n_clients_bottom": np.zeros(L, int)}
    sel = top | bot
    G = int(g.max()) + 1
    c, t = codes[sel], top[sel]
    ct = np.bincount(g[t] * L + c[t], minlength=G * L).reshape(G, L)
    cb = np.bincount(g[~t] * L + c[~t], minlength=G * L).reshape(G, L)
    m1, m0 = ct.sum(0) / n1, cb.sum(0) / n0
    # cluster sums of the influence of m1 - m0: (x - m1)/n1 in top, -(x - m0)/n0 in bottom
    sg = (ct - np.outer(ct.sum(1), m1)) / n1 - (cb - np.outer(cb.sum(1), m0)) / n0
    N = n1 + n0
    V = (sg ** 2).sum(0) * G / max(G - 1, 1) * (N - 1) / max(N - 2, 1)
    nct = np.bincount(np.unique(clients[top] * L + codes[top]) % L, minlength=L)
    ncb = np.bincount(np.unique(clients[bot] * L + codes[bot]) % L, minlength=L)
    return {"mean_top": m1, "mean_bottom": m0, "estimate": m1 - m0, "std_error": np.sqrt(V),
            "n_clients_top": nct, "n_clients_bottom": ncb}


def _split_rows(s: int, outcome: str, blp, gates, grp: np.ndarray, clients: np.ndarray,
                xm: dict[str, np.ndarray], levels: dict[str, list[str]],
                clusters: np.ndarray, K: int, df: int) -> list[dict]:
    """One split's BLP, GATES and CLAN rows (inference added later, vectorised)."""
    rows = []
    se_b = np.sqrt(np.diag(blp.V))
    n_main = int(len(np.unique(clients)))
    for i, term in enumerate(_BLP_TERMS):
        rows.append({"split": s, "outcome": outcome, "table": "blp", "term": term,
                     "estimate": blp.coef[i], "std_error": se_b[i], "df": df,
                     "n_clients": n_main, "n_person_months": len(grp)})
    se_g = np.sqrt(np.diag(gates.V))
    n_cl = np.bincount(np.unique(clients * K + grp) % K, minlength=K)
    n_pm = np.bincount(grp, minlength=K)
    for g in range(K):
        rows.append({"split": s, "outcome": outcome, "table": "gates", "term": str(g + 1),
                     "estimate": gates.coef[g], "std_error": se_g[g], "df": df,
                     "n_clients": int(n_cl[g]), "n_person_months": int(n_pm[g])})
    c = np.zeros(K)
    c[K - 1], c[0] = 1.0, -1.0
    ok = np.isfinite(gates.coef[[0, K - 1]]).all()
    rows.append({"split": s, "outcome": outcome, "table": "gates", "term": "top-bottom",
                 "estimate": float(c @ np.nan_to_num(gates.coef)) if ok else np.nan,
                 "std_error": float(np.sqrt(c @ np.nan_to_num(gates.V) @ c)) if ok else np.nan,
                 "df": df, "n_clients": int(min(n_cl[0], n_cl[K - 1])),
                 "n_person_months": int(n_pm[0] + n_pm[K - 1])})
    top, bot = grp == K - 1, grp == 0
    g_sel = pd.factorize(clusters[top | bot])[0]
    for n, labs in levels.items():
        cl = _clan(xm[n], len(labs), top, bot, g_sel, clients)
        for h, lab in enumerate(labs):
            rows.append({"split": s, "outcome": outcome, "table": "clan",
                         "term": f"{n}={lab}", "dimension": n, "group": lab, "df": df,
                         **{k: v[h].item() for k, v in cl.items()}})
    return rows


def _empty(alpha: float, min_cell: int) -> CDDFResult:
    return CDDFResult(
        pd.DataFrame(columns=["outcome", "term", "estimate", "ci_low", "ci_high", "p_value",
                              "n_splits", "n_clients", "published"]),
        pd.DataFrame(columns=["outcome", "group", "estimate", "ci_low", "ci_high", "p_value",
                              "n_splits", "n_clients", "n_person_months", "published"]),
        pd.DataFrame(columns=["outcome", "dimension", "group", "mean_top", "mean_bottom",
                              "difference", "ci_low", "ci_high", "p_value", "n_splits",
                              "published"]),
        pd.DataFrame(), pd.DataFrame(), (), alpha, min_cell)


def _tables(per: pd.DataFrame, proxies: pd.DataFrame, mains: tuple, alpha: float,
            min_cell: int, K: int) -> CDDFResult:
    def with_counts(t: str, cols: list[str]) -> pd.DataFrame:
        part = per[per["table"] == t]
        agg = aggregate_splits(part, ["outcome", "term"])
        counts = part.groupby(["outcome", "term"], sort=False)[cols].min().reset_index()
        return agg.merge(counts, on=["outcome", "term"], how="left", validate="1:1")

    blp = with_counts("blp", ["n_clients"])
    blp["published"] = blp["n_clients"] >= min_cell
    gates = with_counts("gates", ["n_clients", "n_person_months"]).rename(
        columns={"term": "group"})
    gates["published"] = (gates["n_clients"] >= min_cell) & np.isfinite(gates["estimate"])
    # secondary suppression: group sizes add up to the (published) Main total
    grp_rows = (gates["group"] != "top-bottom").to_numpy()
    hidden = secondary(~gates.loc[grp_rows, "published"].to_numpy(dtype=bool),
                       gates.loc[grp_rows, "outcome"].to_numpy(),
                       gates.loc[grp_rows, "n_clients"].to_numpy(dtype="float64"))
    gates.loc[grp_rows, "published"] = ~hidden
    tb = ~grp_rows
    pub = dict(zip(zip(gates["outcome"], gates["group"]), gates["published"]))
    both = {o: bool(pub.get((o, "1"), False) and pub.get((o, str(K)), False))
            for o in gates["outcome"].unique()}
    gates.loc[tb, "published"] = (gates.loc[tb, "outcome"].map(both).astype(bool)
                                  & np.isfinite(gates.loc[tb, "estimate"]))
    gates["published"] = gates["published"].astype(bool)
    gates = gates[["outcome", "group", "estimate", "ci_low", "ci_high", "p_value",
                   "n_splits", "n_clients", "n_person_months", "published"]]

    c = per[per["table"] == "clan"]
    clan = aggregate_splits(c, ["outcome", "dimension", "group"],
                            medians=("mean_top", "mean_bottom"))
    clan = clan.rename(columns={"estimate": "difference"})
    small = (c.groupby(["outcome", "dimension", "group"], sort=False)[
        ["n_clients_top", "n_clients_bottom"]].min().min(axis=1).rename("small").reset_index())
    clan = clan.merge(small, on=["outcome", "dimension", "group"], how="left", validate="1:1")
    primary = (clan["small"] >= min_cell) & np.isfinite(clan["difference"])
    # secondary suppression: a dimension's shares add up to one in top and in bottom
    hidden = secondary(~primary.to_numpy(dtype=bool),
                       (clan["outcome"] + "|" + clan["dimension"]).to_numpy(),
                       clan["small"].to_numpy(dtype="float64"))
    clan["published"] = clan["outcome"].map(both).astype(bool).to_numpy() & ~hidden
    clan = clan[["outcome", "dimension", "group", "mean_top", "mean_bottom", "difference",
                 "ci_low", "ci_high", "p_value", "n_splits", "published"]]
    return CDDFResult(blp, gates.reset_index(drop=True), clan, per.reset_index(drop=True),
                      proxies, mains, alpha, min_cell)


def publication_view(result: CDDFResult) -> dict[str, pd.DataFrame]:
    """The three tables as published: unpublished rows keep their labels and
    ``published`` False but no statistic and no count."""
    out = {}
    for name in ("blp", "gates", "clan"):
        t = getattr(result, name).copy()
        keep = {"outcome", "term", "group", "dimension", "published", "n_splits"}
        stat = [c for c in t.columns if c not in keep]
        t[stat] = t[stat].astype("float64")
        t.loc[~t["published"].astype(bool), stat] = np.nan
        out[name] = t
    return out
