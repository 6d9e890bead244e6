"""Aggregation of the CDDF splits (medians, CDDF sec. 4), disclosure control and the
publication view (see the package notes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from impact.disclosure.suppress import secondary

__all__ = ["BLP_TERMS", "CDDFResult", "NONE_LEVEL", "aggregate_splits", "empty_result",
           "make_tables", "publication_view", "split_inference"]

#: the level of a dimension for person-months in none of its groups
NONE_LEVEL = "(none)"
BLP_TERMS = ("beta1_average", "beta2_heterogeneity")


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


def empty_result(alpha: float, min_cell: int) -> CDDFResult:
    return CDDFResult(
        pd.DataFrame(columns=["outcome", "term", "estimate", "ci_low", "ci_high", "p_value",
                              "n_splits", "n_clients", "published"]),
        pd.DataFrame(columns=["outcome", "group", "estimate", "ci_low", "ci_high", "p_value",
                              "n_splits", "n_clients", "n_person_months", "published"]),
        pd.DataFrame(columns=["outcome", "dimension", "group", "mean_top", "mean_bottom",
                              "difference", "ci_low", "ci_high", "p_value", "n_splits",
                              "published"]),
        pd.DataFrame(), pd.DataFrame(), (), alpha, min_cell)


def make_tables(per: pd.DataFrame, proxies: pd.DataFrame, mains: tuple, alpha: float,
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
