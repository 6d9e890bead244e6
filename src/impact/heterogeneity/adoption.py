"""The programme effect per client group: the imputation ATT on cells split by group.

Notes
-----
The headline adoption model (Borusyak, Jaravel and Spiess 2024; ``estimate.adoption``) on
adopting-unit x month x group cells: Y(0) = a_unit + g_region,month + c_group + X'b
(composition means, labour-market indicators, shock event-time counts) fitted on the
untreated cells, imputed on the adopted ones; the group ATT is the person-month weighted
mean of tau over the group's adopted cells, as the contract's estimand restricted to the
group. One imputation gives all H targets, so their (G x H) cluster scores (BJS Theorem
3, taubar by event time x group, leaving out the own cluster) give the joint covariance
for the equality test, the Romano-Wolf adjustment and the shrinkage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from impact.estimate.adoption import adoption_cells, impute_adoption
from impact.estimate.frames import shock_events, warn
from impact.estimate.imputation import aggregate
from impact.estimate.params import EstimateParams
from impact.heterogeneity.params import GroupDimension
from impact.heterogeneity.quality import GroupEstimates

__all__ = ["adoption_by_group"]


def adoption_by_group(pm: pd.DataFrame, adoption: pd.DataFrame | None,
                      shocks: pd.DataFrame | None, params: EstimateParams,
                      dim: GroupDimension, outcomes: dict[str, str]) -> list[GroupEstimates]:
    """Group ATTs of the programme for each outcome (name -> person-month indicator)."""
    if adoption is None or dim.column not in pm:
        return []
    codes = dim.codes(pm[dim.column])
    H = len(dim.labels)
    cells = adoption_cells(None, pm, adoption, params.adoption.programme,
                           by={"group": codes}, counts=tuple(outcomes.values()))
    if cells is None:
        return []
    cells = cells[cells["group"] >= 0].reset_index(drop=True)
    cells["group"] = cells["group"].astype("int64")
    cells["group_key"] = cells["group"].astype(str)
    events = shock_events(shocks, params.shock.type)
    # clients per group among the adopted person-months (disclosure counts)
    g_t = _adoption_t(pm, cells)
    adopted_pm = np.isfinite(g_t) & (pm["t"].to_numpy() >= g_t) & (codes >= 0)
    clients = (pd.DataFrame({"g": codes[adopted_pm],
                             "c": pm["client_id"].to_numpy()[adopted_pm]})
               .drop_duplicates()["g"].to_numpy())
    n_clients = np.bincount(clients, minlength=H)
    out = []
    for o, col in outcomes.items():
        ev_col = col.replace("exit_", "exits_", 1)
        prep = impute_adoption(cells, events, params, extra_fe=("group_key",), events_col=ev_col)
        imp = prep.imputation
        if imp is None or not prep.treated[imp.idx1].any():
            warn(f"heterogeneity: no adopted {dim.name} cell can be imputed ({o})")
            continue
        idx1 = imp.idx1
        p1, tr1 = prep.p[idx1], prep.treated[idx1]
        grp1 = cells["group"].to_numpy()[idx1]
        W = np.column_stack([np.where(tr1, p1, 0.0)]
                            + [np.where(tr1 & (grp1 == h), p1, 0.0) for h in range(H)])
        present = W.sum(axis=0) > 0
        rel1 = prep.rel[idx1].astype(int)
        e, s = aggregate(imp, W[:, present], rel1 * H + grp1)
        est = np.full(H + 1, np.nan)
        S = np.full((s.shape[0], H + 1), np.nan)  # rows: cluster codes (some may be empty)
        est[present], S[:, present] = e, s
        tr_cells = prep.treated
        npm = np.bincount(cells["group"].to_numpy()[tr_cells],
                          weights=cells["person_months"].to_numpy()[tr_cells], minlength=H)
        nev = np.bincount(cells["group"].to_numpy()[tr_cells],
                          weights=cells[ev_col].to_numpy()[tr_cells], minlength=H)
        out.append(GroupEstimates(
            "adoption", o, dim.name, dim.labels, est[1:], S[:, 1:], float(est[0]),
            float(np.sqrt(np.nansum(S[:, 0] ** 2))), npm.astype("int64"), n_clients,
            nev.astype("int64"), imp.n_clusters,
            "imputation (BJS 2024) on unit x month x group cells, group effects in Y(0); "
            "person-month weighted ATT per group",
            np.asarray(pd.factorize(prep.frame[params.estimate.cluster])[1])[:S.shape[0]]))
    return out


def _adoption_t(pm: pd.DataFrame, cells: pd.DataFrame) -> np.ndarray:
    """Adoption month index of each person-month's unit (NaN = never), via the cells.

    Mapped over the distinct teams and municipalities (a few hundred), then gathered:
    a string map over millions of rows took seconds."""
    key = cells.drop_duplicates(["unit"]).set_index("unit")["g"]

    def lookup(values, prefix=""):
        codes, uniq = pd.factorize(pd.Series(values), use_na_sentinel=True)
        g = pd.Series([prefix + str(u) for u in uniq], dtype=object).map(key)
        table = np.append(g.to_numpy(dtype="float64"), np.nan)  # last slot: missing
        return table[codes]

    g_team = lookup(pm["team_key"], "team:")
    g_muni = lookup(pm["municipality"])
    return np.where(np.isfinite(g_team), g_team, g_muni)
