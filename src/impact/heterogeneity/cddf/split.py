"""One split's numbers on its Main half: BLP and GATES rows from the fits, quantile groups
of the proxy and CLAN (see the package notes)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from impact.distinct import per_group, unique
from impact.estimate.frames import EstimationWarning
from impact.heterogeneity.cddf.tables import BLP_TERMS, NONE_LEVEL
from impact.heterogeneity.params import OUTCOMES, GroupDimension, HeterogeneityParams

__all__ = ["SplitCounts", "clan", "clan_counts", "dimension_levels", "main_halves", "present",
           "quantile_groups", "split_rows", "split_rows_counts", "tally_counts"]


def present(columns, het: HeterogeneityParams, outcomes: Mapping[str, str] | None,
            warn_missing: bool) -> tuple[dict[str, str], list[GroupDimension]]:
    """The outcomes (name -> person-month column; default ``het.outcomes``) and the
    dimensions whose columns are among ``columns``; with ``warn_missing`` a warning for
    each dimension left out of the proxy."""
    columns = set(columns)
    if outcomes is None:
        outcomes = {o: OUTCOMES[o] for o in het.outcomes if OUTCOMES[o] in columns}
    outcomes = {o: c for o, c in outcomes.items() if c in columns}
    dims = [d for d in het.groups if d.column in columns]
    for d in het.groups:
        if warn_missing and d.column not in columns:
            warnings.warn(f"cddf: person_months has no column {d.column!r} (dimension "
                          f"{d.name}); left out of the proxy", EstimationWarning, stacklevel=3)
    return outcomes, dims


def main_halves(labels: np.ndarray, n_splits: int, seed: int) -> list[np.ndarray]:
    """Main halves: a seeded permutation of the sorted cluster labels per split (the
    extra cluster of an odd count goes to Main)."""
    rng = np.random.default_rng([int(seed), 0xCDDF])
    G = len(labels)
    return [np.sort(labels[rng.permutation(G)[: G - G // 2]]) for _ in range(n_splits)]


def dimension_levels(dims: list[GroupDimension], codes: dict[str, np.ndarray]
                     ) -> dict[str, list[str]]:
    """Each dimension's level labels, with ``NONE_LEVEL`` where a row is in no group."""
    return {d.name: list(d.labels) + ([NONE_LEVEL] if (codes[d.name] == len(d.labels)).any()
                                      else []) for d in dims}


def quantile_groups(S: np.ndarray, K: int) -> np.ndarray:
    """Group 0..K-1 of each value: cut points the (K-quantiles) of S; ties at a cut point
    go to the lower group."""
    cuts = np.quantile(S, np.arange(1, K) / K)
    return np.searchsorted(cuts, S, side="left")


@dataclass(frozen=True)
class SplitCounts:
    """What one split's tables count on its Main half: ``n_clients`` distinct clients,
    per quantile group 0..K-1 its person-months ``n_pm`` and distinct clients ``n_cl``,
    and per dimension its CLAN (``clan_counts``)."""

    n_clients: int
    n_pm: np.ndarray
    n_cl: np.ndarray
    clan: dict[str, dict[str, np.ndarray]]


def clan_counts(ct: np.ndarray, cb: np.ndarray, nct: np.ndarray, ncb: np.ndarray
                ) -> dict[str, np.ndarray]:
    """CLAN of one dimension from counts: ``ct``, ``cb`` (G, L) the person-months of each
    level in the top and the bottom group per cluster (the G clusters with a top or bottom
    row), ``nct``, ``ncb`` (L,) the distinct clients of each level there. The share of each
    level among the top and bottom person-months, the difference and its CRV1 SE (the
    regression of the level dummy on 1{top} within top and bottom, clustered, factor
    G/(G-1) (N-1)/(N-2))."""
    L = ct.shape[1]
    n1, n0 = float(ct.sum()), float(cb.sum())
    nan = np.full(L, np.nan)
    if n1 == 0 or n0 == 0:
        return {"mean_top": nan, "mean_bottom": nan, "estimate": nan, "std_error": nan,
                "n_clients_top": np.zeros(L, int), "n_clients_bottom": np.zeros(L, int)}
    G = ct.shape[0]
    m1, m0 = ct.sum(0) / n1, cb.sum(0) / n0
    # cluster sums of the influence of m1 - m0: (x - m1)/n1 in top, -(x - m0)/n0 in bottom
    sg = (ct - np.outer(ct.sum(1), m1)) / n1 - (cb - np.outer(cb.sum(1), m0)) / n0
    N = n1 + n0
    V = (sg ** 2).sum(0) * G / max(G - 1, 1) * (N - 1) / max(N - 2, 1)
    return {"mean_top": m1, "mean_bottom": m0, "estimate": m1 - m0, "std_error": np.sqrt(V),
            "n_clients_top": np.asarray(nct), "n_clients_bottom": np.asarray(ncb)}


def clan(codes: np.ndarray, L: int, top: np.ndarray, bot: np.ndarray, g: np.ndarray,
          clients: np.ndarray) -> dict[str, np.ndarray]:
    """CLAN of one dimension (level codes 0..L-1) from the Main rows (``clan_counts``):
    ``g`` the codes 0..G-1 of the clusters on the top and bottom rows."""
    if not top.any() or not bot.any():
        return clan_counts(np.zeros((0, L)), np.zeros((0, L)), np.zeros(L, int),
                           np.zeros(L, int))
    sel = top | bot
    G = int(g.max()) + 1
    c, t = codes[sel], top[sel]
    ct = np.bincount(g[t] * L + c[t], minlength=G * L).reshape(G, L)
    cb = np.bincount(g[~t] * L + c[~t], minlength=G * L).reshape(G, L)
    nct = per_group(codes[top], clients[top], L)
    ncb = per_group(codes[bot], clients[bot], L)
    return clan_counts(ct, cb, nct, ncb)


def split_rows(s: int, outcome: str, blp, gates, grp: np.ndarray, clients: np.ndarray,
                xm: dict[str, np.ndarray], levels: dict[str, list[str]],
                clusters: np.ndarray, K: int, df: int) -> list[dict]:
    """One split's BLP, GATES and CLAN rows from its Main rows (``split_rows_counts``)."""
    top, bot = grp == K - 1, grp == 0
    g_sel = pd.factorize(clusters[top | bot])[0]
    counts = SplitCounts(
        int(len(unique(clients))), np.bincount(grp, minlength=K),
        per_group(grp, clients, K),
        {n: clan(xm[n], len(labs), top, bot, g_sel, clients) for n, labs in levels.items()})
    return split_rows_counts(s, outcome, blp, gates, counts, levels, K, df)


def tally_counts(cl: np.ndarray, codes: list[np.ndarray], n: np.ndarray, grp: np.ndarray,
                 t_client: np.ndarray, t_codes: list[np.ndarray], t_grp: np.ndarray,
                 levels: dict[str, list[str]], K: int) -> SplitCounts:
    """The ``SplitCounts`` of a Main half from tallies instead of rows: per tally (its
    cluster ``cl``, level code of each dimension ``codes``, person-months ``n`` and
    quantile group ``grp``) and per distinct (client, cluster, codes) triple (its client
    code, level codes and group). The same counts as ``split_rows`` makes of the rows."""
    top, bot = grp == K - 1, grp == 0
    ttop, tbot = t_grp == K - 1, t_grp == 0
    sel = top | bot
    g = pd.factorize(cl[sel])[0]
    G = int(g.max()) + 1 if len(g) else 0
    ts, ns = top[sel], n[sel]
    clan = {}
    for (name, labs), x, tx in zip(levels.items(), codes, t_codes):
        L = len(labs)
        xs = x[sel]
        ct = np.bincount(g[ts] * L + xs[ts], weights=ns[ts], minlength=G * L).reshape(G, L)
        cb = np.bincount(g[~ts] * L + xs[~ts], weights=ns[~ts], minlength=G * L).reshape(G, L)
        nct = per_group(tx[ttop], t_client[ttop], L)
        ncb = per_group(tx[tbot], t_client[tbot], L)
        clan[name] = clan_counts(ct, cb, nct, ncb)
    return SplitCounts(int(len(unique(t_client))),
                       np.bincount(grp, weights=n, minlength=K).round().astype("int64"),
                       per_group(t_grp, t_client, K), clan)


def split_rows_counts(s: int, outcome: str, blp, gates, counts: SplitCounts,
                      levels: dict[str, list[str]], K: int, df: int) -> list[dict]:
    """One split's BLP, GATES and CLAN rows (inference added later, vectorised)."""
    rows = []
    se_b = np.sqrt(np.diag(blp.V))
    n_cl, n_pm = counts.n_cl, counts.n_pm
    for i, term in enumerate(BLP_TERMS):
        rows.append({"split": s, "outcome": outcome, "table": "blp", "term": term,
                     "estimate": blp.coef[i], "std_error": se_b[i], "df": df,
                     "n_clients": counts.n_clients, "n_person_months": int(n_pm.sum())})
    se_g = np.sqrt(np.diag(gates.V))
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
    for n, labs in levels.items():
        cl = counts.clan[n]
        for h, lab in enumerate(labs):
            rows.append({"split": s, "outcome": outcome, "table": "clan",
                         "term": f"{n}={lab}", "dimension": n, "group": lab, "df": df,
                         **{k: v[h].item() for k, v in cl.items()}})
    return rows
