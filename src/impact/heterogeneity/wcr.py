"""Wild cluster restricted (WCR) bootstrap of the H group effects of the interaction 2SLS,
for Romano-Wolf adjusted p-values with few clusters.

Why. ``multiplicity.romano_wolf`` draws the statistics from the cluster scores of the
unrestricted fit, with one standard error for all draws: with ~20 municipality clusters
its family-wise error was 13% at a nominal 5% on the lean DGP. The WCR bootstrap
(Cameron, Gelbach and Miller 2008, *REStat* 90(3), 414-427; MacKinnon and Webb 2017,
*J. Appl. Econometrics* 32(2); Roodman, MacKinnon, Nielsen and Webb 2019, *Stata J.*
19(1), "Fast and wild") imposes each null in the bootstrap DGP and re-studentises every
draw with its own CRV1 standard error; Romano and Wolf (2005, *Econometrica* 73(4); 2016,
*Statist. Probab. Lett.* 113) step down on such studentised statistics
(``multiplicity.max_t_adjust``).

Model (``pmreg.fit_pm_multi``): on the matrix A whose cell fixed effects were projected out
(``pmreg.cell_demean``), y = X b + W g + u with H endogenous columns X (``xs``), their H
instruments Z (``zs``) and the exogenous controls W (``exog``, independent subset).
Everything below is on the columns with W partialled out (Frisch-Waugh-Lovell, valid for
2SLS with W in both stages): y~, X~, Z~ (n x 1, n x H, n x H) from the Gram blocks of A.

* Unrestricted (just identified): b = Q Z~'y~, Q = (Z~'X~)^{-1}; u = y~ - X~ b; cluster
  scores s_g = Q Z~_g'u_g; V = c sum_g s_g s_g', c = G/(G-1) (N-1)/(N-K), K = H + dim W
  + ``df_fe``: exactly ``fit_pm_multi``; t_h = (b_h - null_h) / sqrt(V_hh).
* Restricted under H0_h: b_h = null_h (over-identified: H - 1 endogenous X~_{-h}, all H
  instruments Z~), with y~_h = y~ - null_h x~_h and P_Z = Z~ (Z~'Z~)^{-1} Z~':

      b_{r,-h} = [X~_{-h}' P_Z X~_{-h}]^{-1} X~_{-h}' P_Z y~_h,   b_{r,h} = null_h,

  restricted residuals u_r = y~ - X~ b_r (= the residuals of the 2SLS with W and the fixed
  effects in both stages, which are orthogonal to them).
* Bootstrap DGP (one per hypothesis h, the same cluster weights w for all): y* = X b_r
  + W g_r + FE + w_g u_r, refitted with all controls (and, with ``fe``, all fixed effects)
  re-estimated. Since Z~ is orthogonal to W and the fixed effects,

      b* - b_r = Q sum_g w_g Z~_g'u_{r,g}                         (b*_h - null_h: row h)

  and the refit's residuals are u* = M (w o u_r) - X~ (b* - b_r), M the annihilator of
  W (and of the fixed effects), so its cluster scores are

      Z~_g'u*_g = w_g Z~_g'u_{r,g} - Z~_g'X~_g (b* - b_r)
                  - Z~_g'W_g (W'W)^{-1} sum_k w_k W_k'u_{r,k}                     [controls]
                  - sum_{p in g} Zs_p D_p' (D'ND)^{-1} sum_k w_k sum_{p in k} D_p Us_p   [FE]

  (p: the cell x cluster pairs, Zs_p, Us_p the sums of z~ and u_r over its rows, D_p its
  fixed-effect dummies, N the cell sizes). Rademacher weights have w_g^2 = 1, so the
  first term alone would give every draw the same standard error: the other three are
  what re-studentises. The [controls] term makes the draws equal to ``fit_pm_multi``
  refitted on y* (tested); the [FE] term (only with ``fe``) to the refit of the model
  with its fixed effects, i.e. y* re-demeaned by ``cell_demean`` (tested). Fixed effects
  nested in the clusters (municipality, municipality x month with municipality clusters)
  give a zero [FE] term; region x month effects do not. Then se*_h = sqrt(c sum_g
  (Q_h Z~_g'u*_g)^2) with the data's factor c and t*_h = (b*_h - null_h) / se*_h.

Cost. Everything is linear in the weights: per hypothesis the per-cluster component is
s*_g = sum_k w_k K_gk with K = diag(a) - U V' (a_g = Q_h Z~_g'u_{r,g}; U, V: G x r, r = H
+ dim W + FE levels, from per-cluster aggregates), so B draws cost one product,
O(B G min(G, r)), and no refit. Once per model: the Gram blocks of the columns used
(O(n k^2), as every fit; or pass ``gram``), the partialled columns T = [y~, X~, Z~]
(O(n k H), the only n-row arrays created: n x (O + 2H) for O outcomes, twice while
sorting by cluster), their per-cluster products with Z~ and W (O(n H (H + dim W))) and,
with ``fe``, their sums by cell x cluster pair. Several outcomes of one model share all
of it (``y`` a list). Given the cluster blocks of A's Gram matrix instead (``grams``,
``impact.estimate.cgram``) no row is touched: T = A M, so Z~_g'T_g = M_z'C_g M,
T_g'W_g = M'C_g[:, W] and the pair sums of T are those of A times M (the heterogeneity
stage computes the blocks of its shared columns once for all its models). Measured (one BLAS thread, B = 9999, H = 4, 43 controls, with the
FE term): 0.08 s for 73,500 rows and G = 20; 3.4 s for 1.3 million rows and G = 342
(fit_pm_multi alone: 0.5 s), of which 0.7 s the draws.

Joint families. The draws are a (B x L) matrix indexed by cluster *label*
(``wcr_weights``), so the models of several dimensions (different samples, the same
municipalities) are bootstrapped with the same weights and stepped down as one family::

    W, labels, enum = wcr_weights(np.concatenate([cl_1, cl_2]), B=9999, seed=1)
    d1 = wcr_draws(A_1, ..., cl_1, df_fe_1, null, W, labels)
    d2 = wcr_draws(A_2, ..., cl_2, df_fe_2, null, W, labels)
    p = max_t_adjust(np.r_[d1.t_stat, d2.t_stat], np.hstack([d1.t_boot, d2.t_boot]),
                     plus_one=not enum)

which is what ``romano_wolf_wcr([model_1, model_2])`` does.

Size. On the lean DGP (20 municipalities, outcome redrawn from p_true on a fixed design,
H0 the true effect in every group), family-wise error at a nominal 5% (measured when
this was written, B = 999; tests/heterogeneity/test_wcr.py prints current values):
ladder (H = 4) 4.6% and 4.6% in two sets of 500, education (H = 3) 5.4% in 500; the
score draws of ``romano_wolf`` on the same data 11.4%, 10.0% and 10.4%. Leaving out the
[FE] term gave 4.8%, 5.0%, 5.6%, and keeping only the X~ term 5.6%, 5.0%, 6.0%: on this
design the corrections matter less than imposing the null and re-studentising at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from impact.estimate.cgram import ClusterGrams
from impact.estimate.multiplicity import MaxTResult, max_t_adjust
from impact.estimate.pmreg import _independent, cluster_codes
from impact.estimate.wild import WildWeights, draw_weights
from impact.heterogeneity.wcr_parts import (
    _gram_aggregates, _gram_block, _row_aggregates, _solve_spd,
)

__all__ = ["CellFE", "WCRModel", "WCRDraws", "wcr_weights", "wcr_draws", "romano_wolf_wcr"]

#: relative tolerance for ties between an observed and a bootstrap |t| (as ``multiplicity``)
_TIE = 1e-10


@dataclass(frozen=True)
class CellFE:
    """The cell fixed effects projected out of A (the arguments of ``pmreg.cell_demean``):
    the cell table, the cell code of each row of A and the fixed-effect columns."""

    cells: pd.DataFrame
    cell_code: np.ndarray
    fe: tuple[str, ...]


@dataclass(frozen=True)
class WCRModel:
    """One interaction 2SLS to bootstrap: the arguments of ``pmreg.fit_pm_multi``, the null
    values, optionally the fixed effects to re-estimate in every draw (``wcr_draws``)."""

    A: np.ndarray = field(repr=False)
    names: Sequence[str]
    y: str
    xs: Sequence[str]
    exog: Sequence[str]
    zs: Sequence[str]
    clusters: np.ndarray = field(repr=False)
    df_fe: int
    null: float | np.ndarray = 0.0
    fe: CellFE | None = field(default=None, repr=False)
    gram: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True)
class WCRDraws:
    """WCR draws of the H coefficients of ``names`` in one model and outcome.

    ``estimate``, ``std_error``, ``scores`` (G, H; ``V = scores.T @ scores``) are those of
    ``pmreg.fit_pm_multi``; ``t_stat`` = (estimate - null) / std_error; ``t_boot`` (B, H):
    draw b of t_h under H0_h, = (``estimate_boot`` - null) / ``se_boot`` (b*_h and its CRV1
    standard error in the refit of draw b of the DGP under H0_h); ``restricted`` (H, H):
    row h = all H coefficients of the fit restricted by H0_h (its h-th entry is null_h).
    Columns that ``fit_pm_multi`` drops (an instrument collinear with the rest) are NaN
    throughout.
    """

    outcome: str
    names: tuple[str, ...]
    estimate: np.ndarray
    std_error: np.ndarray
    scores: np.ndarray
    null: np.ndarray
    t_stat: np.ndarray
    t_boot: np.ndarray
    estimate_boot: np.ndarray
    se_boot: np.ndarray
    restricted: np.ndarray
    n_obs: int
    n_clusters: int
    df_k: int
    cluster_labels: np.ndarray


def wcr_weights(labels, *, B: int = 9999, weights: WildWeights = "rademacher", seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray, bool]:
    """Cluster weights for one or several models: ``(W (B' x L), labels (L,), enumerated)``.

    ``labels``: cluster labels (repeats allowed, e.g. the concatenated cluster columns of
    several models); the distinct ones, in order of first appearance, index the columns of
    W. Drawn by ``wild.draw_weights`` with ``np.random.default_rng(seed)``: all 2^L sign
    vectors for Rademacher with L <= 10 (``enumerated``; B' = 2^L), all 6^L Webb vectors
    when 6^L <= B, otherwise B i.i.d. rows.
    """
    uniq = pd.unique(pd.Series(np.asarray(labels)))
    if len(uniq) < 2:
        raise ValueError(f"need at least 2 clusters, got {len(uniq)}")
    W, enumerated = draw_weights(len(uniq), B, weights, np.random.default_rng(seed))
    return W, np.asarray(uniq), enumerated


def wcr_draws(A: np.ndarray, names: Sequence[str], y: str | Sequence[str], xs: Sequence[str],
              exog: Sequence[str], zs: Sequence[str], clusters: np.ndarray, df_fe: int,
              null, W: np.ndarray, W_labels, *, fe: CellFE | None = None,
              gram: np.ndarray | None = None,
              grams: ClusterGrams | None = None) -> WCRDraws | list[WCRDraws]:
    """WCR bootstrap t's of the H coefficients of ``xs`` (each instrumented by ``zs``).

    Parameters
    ----------
    A, names, xs, exog, zs, clusters, df_fe
        As ``pmreg.fit_pm_multi`` (A with the fixed effects projected out, column-major;
        it is not modified or copied).
    y : str or sequence of str
        The outcome column, or several (the partialled regressors and their cluster
        aggregates are then computed once for all).
    null : float or array (H,)
        Hypothesised values; H0_h: b_h = null_h is imposed for the draws of column h.
    W : array (B, L)
        Cluster weights, column l for the cluster labelled ``W_labels[l]``
        (``wcr_weights``). Every label in ``clusters`` must be among ``W_labels``; other
        columns are ignored, so one W serves several models with the same clusters.
    fe : CellFE, optional
        The cell fixed effects projected out of A, re-estimated in every draw (the exact
        WCR of the model with its fixed effects). None: the draws refit the regression on
        A as given (the fixed effects held at their estimates), which is the same thing
        when every fixed effect is nested in the clusters.
    gram : array (k, k), optional
        ``A.T @ A`` if already computed; otherwise the blocks needed are computed.
    grams : ClusterGrams, optional
        The cluster blocks of A's Gram matrix (``cgram.cluster_grams``; with the cell x
        cluster pair sums when ``fe`` is given): then A and ``clusters`` are not read
        (pass None) and no n-row array is made; clusters are ``grams.labels``.

    Returns
    -------
    WCRDraws (a list, one per outcome, when ``y`` is a sequence). Formulas in the module
    docstring; t_boot is NaN in a draw whose bootstrap standard error is zero.
    """
    single = isinstance(y, str)
    ys = [y] if single else list(y)
    xs, zs, exog = list(xs), list(zs), list(exog)
    H = len(xs)
    if len(zs) != H:
        raise ValueError(f"{H} endogenous columns but {len(zs)} instruments")
    nul = np.broadcast_to(np.asarray(null, dtype="float64"), (H,)).copy()
    if not np.isfinite(nul).all():
        raise ValueError("null must be finite")
    W = np.asarray(W, dtype="float64")
    if W.ndim != 2 or W.shape[1] != len(W_labels):
        raise ValueError(f"W must be (B, {len(W_labels)}), got shape {W.shape}")
    col = {n: i for i, n in enumerate(names)}
    N = grams.n_obs if grams is not None else A.shape[0]
    if fe is not None and grams is None and len(fe.cell_code) != N:
        raise ValueError(f"fe.cell_code has {len(fe.cell_code)} rows, A has {N}")
    if fe is not None and grams is not None and grams.pair_sums is None:
        raise ValueError("grams without cell x cluster pair sums cannot re-estimate fe")

    # Gram blocks on the columns used, in local positions (``loc``)
    cand = sorted({col[e] for e in exog} | {col[z] for z in zs})
    need = sorted(set(cand) | {col[x] for x in xs} | {col[v] for v in ys})
    loc = {j: i for i, j in enumerate(need)}
    if grams is not None:
        L = grams.gram[np.ix_(need, need)]
    elif gram is None:
        L = np.zeros((len(need), len(need)))
        ci = [loc[j] for j in cand]
        L[ci, :] = _gram_block(A, cand, need)
        L[:, ci] = L[ci, :].T
    else:
        L = np.asarray(gram)[np.ix_(need, need)]
    lc = {n: loc[col[n]] for n in set(exog) | set(xs) | set(zs) | set(ys)}
    ex = _independent(L, [lc[e] for e in exog])               # as fit_pm_multi
    keep_h = [h for h, z in enumerate(zs)
              if lc[z] in _independent(L, ex + [lc[zs[k]] for k in range(h + 1)])]
    Hk, O = len(keep_h), len(ys)
    if Hk == 0:
        raise ValueError("no coefficient of xs is identified (every instrument collinear)")
    if grams is not None:
        cl, labels = None, np.asarray(grams.labels)
        G = len(labels)
    else:
        cl, labels = cluster_codes(clusters)
        G = int(cl.max()) + 1
    if G < 2:
        raise ValueError(f"the WCR bootstrap needs at least 2 clusters, got {G}")
    widx = pd.Index(np.asarray(W_labels)).get_indexer(labels)
    if (widx < 0).any():
        raise ValueError(f"clusters {list(labels[widx < 0][:5])} have no column in W")
    Wm = W[:, widx]                                                         # (B, G)
    B = W.shape[0]
    df_k = Hk + len(ex) + df_fe
    c = G / max(G - 1, 1) * (N - 1) / (N - df_k)

    # FWL: T = [y~_1..y~_O, X~, Z~], the controls partialled out with their Gram blocks
    tgt = [lc[v] for v in ys] + [lc[xs[h]] for h in keep_h] + [lc[zs[h]] for h in keep_h]
    ex = sorted(ex)
    ex_glob = [need[i] for i in ex]
    Pi = _solve_spd(L[np.ix_(ex, ex)], L[np.ix_(ex, tgt)]) if ex else None
    xpos = list(range(O, O + Hk))
    zsl = slice(O + Hk, O + 2 * Hk)
    if grams is not None:  # every aggregate a form of the cluster blocks
        ZT, TW, fparts = _gram_aggregates(grams, need, tgt, ex_glob, Pi, zsl, fe)
    else:
        ZT, TW, fparts = _row_aggregates(A, need, tgt, ex_glob, Pi, zsl, cl, G, fe)
    ZTt = ZT.sum(axis=0)
    Szx, ZZ = ZTt[:, xpos], ZTt[:, zsl]
    Q = np.linalg.inv(Szx)                                                  # (Z~'X~)^{-1}
    ZZinv_zx = np.linalg.solve(ZZ, Szx)                                     # (Z~'Z~)^{-1} Z~'X~
    Gww = L[np.ix_(ex, ex)]
    ZW = TW[:, zsl]                                                         # Z~_g'W_g
    UX = [np.einsum("h,ghk->gk", Q[j], ZT[:, :, xpos]) for j in range(Hk)]  # Q_j Z~_g'X~_g
    UW = [np.einsum("h,ghk->gk", Q[j], ZW) for j in range(Hk)]              # Q_j Z~_g'W_g
    if fparts is not None:
        AF = np.stack([fparts.by_cluster(j) for j in range(zsl.start, zsl.stop)], axis=1)
        UF = [np.einsum("h,ghf->gf", Q[j], AF) for j in range(Hk)]          # (G, f)

    out = []
    for o in range(O):
        rc = [o] + xpos                                                     # [y~_o, X~]
        ZR = ZT[:, :, rc]                                                   # (G, H, 1+H)
        WR = TW[:, rc]                                                      # (G, 1+H, kx)
        Szy = ZTt[:, o]
        b = Q @ Szy
        S = np.sqrt(c) * (ZR @ np.concatenate([[1.0], -b])) @ Q.T          # (G, H) scores
        se = np.sqrt(np.einsum("gh,gh->h", S, S))
        est, sd = np.full(H, np.nan), np.full(H, np.nan)
        scores = np.full((G, H), np.nan)
        t_obs = np.full(H, np.nan)
        t_boot = np.full((B, H), np.nan)
        b_boot, se_boot = np.full((B, H), np.nan), np.full((B, H), np.nan)
        restricted = np.full((H, H), np.nan)
        est[keep_h], sd[keep_h], scores[:, keep_h] = b, se, S
        t_obs[keep_h] = (b - nul[keep_h]) / se
        for j, h in enumerate(keep_h):
            # restricted 2SLS under b_h = null_h: H - 1 endogenous, H instruments
            E = [k for k in range(Hk) if k != j]
            br = np.zeros(Hk)
            br[j] = nul[h]
            if E:
                rhs = Szy - nul[h] * Szx[:, j]
                br[E] = np.linalg.solve(Szx[:, E].T @ ZZinv_zx[:, E], ZZinv_zx[:, E].T @ rhs)
            restricted[h, keep_h] = br
            cr = np.concatenate([[1.0], -br])
            Sr = ZR @ cr                                                    # Z~_g'u_r,g
            a = Sr @ Q[j]                                                   # (G,)
            # s*_g = sum_k w_k K_gk, K = diag(a) - U V' (X, controls and FE terms)
            U, V = [UX[j]], [Sr @ Q.T]
            if ex:
                U.append(UW[j])
                V.append(_solve_spd(Gww, np.einsum("grk,r->kg", WR, cr)).T)
            if fparts is not None:
                U.append(UF[j])
                SR = sum(cr[i] * fparts.by_cluster(rc[i]) for i in range(len(rc)))
                V.append(fparts.solve(SR.T).T)
            U, V = np.hstack(U), np.hstack(V)
            if U.shape[1] < G:
                s_star = Wm * a - (Wm @ V) @ U.T
            else:
                s_star = Wm @ (np.diag(a) - U @ V.T).T
            num = Wm @ a                                                    # b*_h - null_h
            se_star = np.sqrt(c * np.einsum("bg,bg->b", s_star, s_star))
            b_boot[:, h], se_boot[:, h] = nul[h] + num, se_star
            with np.errstate(divide="ignore", invalid="ignore"):
                t_boot[:, h] = np.where(se_star > 0, num / se_star, np.nan)
        out.append(WCRDraws(ys[o], tuple(xs), est, sd, scores, nul.copy(), t_obs, t_boot,
                            b_boot, se_boot, restricted, N, G, df_k, np.asarray(labels)))
    return out[0] if single else out


def romano_wolf_wcr(models: WCRModel | Sequence[WCRModel], *, B: int = 9999,
                    weights: WildWeights = "rademacher", seed: int = 0,
                    stepdown: bool = True) -> MaxTResult:
    """Romano-Wolf step-down (or single-step max-T) adjusted p-values from WCR draws.

    ``models``: one model or several (e.g. one per group dimension, on the same clusters),
    all bootstrapped with the same cluster weights (``wcr_weights`` over the union of their
    cluster labels); their hypotheses form one family, in the order of the models and of
    each model's ``xs``. p-values from ``multiplicity.max_t_adjust`` (two-sided, on |t|;
    (1 + #) / (B + 1), or the exact share when the weights are enumerated); ``p_single``
    are the per-hypothesis WCR p-values, ``n_clusters`` the distinct cluster labels.
    Coefficients that ``fit_pm_multi`` drops are NaN and left out of the family.

    Raises
    ------
    ValueError
        A draw with a zero bootstrap standard error (degenerate design), or the errors of
        ``wcr_draws``.
    """
    models = [models] if isinstance(models, WCRModel) else list(models)
    if not models:
        raise ValueError("no model to bootstrap")
    Wt, labels, enumerated = wcr_weights(
        np.concatenate([np.asarray(m.clusters) for m in models]), B=B, weights=weights,
        seed=seed)
    draws = [wcr_draws(m.A, m.names, m.y, m.xs, m.exog, m.zs, m.clusters, m.df_fe, m.null,
                       Wt, labels, fe=m.fe, gram=m.gram) for m in models]
    t = np.concatenate([d.t_stat for d in draws])
    T = np.hstack([d.t_boot for d in draws])
    se = np.concatenate([d.std_error for d in draws])
    ok = np.isfinite(t)
    if not np.isfinite(T[:, ok]).all():
        raise ValueError("a bootstrap standard error is zero (degenerate draws)")
    p_adj = np.full(t.size, np.nan)
    p_single = np.full(t.size, np.nan)
    plus = 0 if enumerated else 1
    if ok.any():
        p_adj[ok] = max_t_adjust(t[ok], T[:, ok], stepdown=stepdown, plus_one=not enumerated)
        p_single[ok] = np.minimum(1.0, ((np.abs(T[:, ok]) >= np.abs(t[ok]) * (1 - _TIE))
                                        .sum(axis=0) + plus) / (T.shape[0] + plus))
    return MaxTResult(p_adj, p_single, t, se,
                      "romano-wolf (WCR)" if stepdown else "westfall-young (WCR)",
                      T.shape[0], weights, enumerated, len(labels))
