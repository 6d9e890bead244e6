"""The engine's arrays as the data contract's tables, exactly as a user's files look.

Codes and identifiers are strings, dates ISO ``YYYY-MM-DD`` strings, open spells have a
null ``end_date`` and ``exit_reason``; rows are sorted deterministically. Spells that
ended before the study window are dropped (as a user's extract for the window would);
left-truncated spells keep their true start date.

``progress`` (when ``simulate.progress`` is true) holds the written reviews of the kept
spells (:mod:`.progress`): per review a ``ladder_step`` row (the step after the review)
and a ``goal_reached`` row (0/1), ``value`` a float, dated on a day of the review month
that is not after the spell's end date; rows sorted by ``spell_id``, ``date``,
``measure``. Every spell id is one of ``trajectories``. The panel joins spells of one
client less than ``panel.merge_gap_days`` apart; the simulator's repeat spells start at
least four calendar months after the previous exit month (at least 89 days without
benefit), so with the default 31 days no spell is joined and every progress row belongs
to a spell of its own.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

from impact.distinct import unique

from . import hazard as hz
from .engine import Sim
from .params import SimulateParams
from .world import World

__all__ = ["contract_tables", "iter_contract_tables", "iso_dates", "iso_from_days", "day_numbers",
           "kept_spells", "text"]


def day_numbers(abs_month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 for month ``year*12 + month-1`` and day of month."""
    m = (np.asarray(abs_month, dtype=np.int64) - 1970 * 12).astype("datetime64[M]")
    return m.astype("datetime64[D]").astype(np.int64) + (np.asarray(day, dtype=np.int64) - 1)


def text(labels: np.ndarray, codes: np.ndarray | None = None,
         missing: np.ndarray | None = None) -> pd.api.extensions.ExtensionArray:
    """``labels[codes]`` (all labels when ``codes`` is None; null where ``missing``, or
    where a label is None) as pandas text, made by Arrow from the labels once (a dictionary
    decoded). From an object array pandas makes Arrow strings value by value: 24 s for the
    national simulation's tables, most of them the 20 million rows of ``progress``."""
    lab = pa.array(labels, type=pa.large_string(), from_pandas=True)
    if codes is not None:
        ind = pa.array(np.asarray(codes, dtype=np.int64), mask=missing)
        lab = pa.DictionaryArray.from_arrays(ind, lab).dictionary_decode()
    return pd.array(lab, dtype="str")


def iso_from_days(days: np.ndarray, missing: np.ndarray | None = None
                  ) -> pd.api.extensions.ExtensionArray:
    """``YYYY-MM-DD`` text for day numbers (null where ``missing``), through a lookup
    table of the days in their range."""
    days = np.asarray(days, dtype=np.int64)
    lo, hi = (days.min(), days.max()) if len(days) else (0, -1)
    table = np.arange(lo, hi + 1).astype("datetime64[D]").astype(str)
    return text(table, days - lo, missing)


def iso_dates(abs_month: np.ndarray, day: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """``YYYY-MM-DD`` strings for month ``year*12 + month-1`` and day of month."""
    return iso_from_days(day_numbers(abs_month, day))


def _month_str(abs_month: np.ndarray) -> np.ndarray:
    return (np.asarray(abs_month, dtype=np.int64) - 1970 * 12).astype("datetime64[M]").astype(str).astype(object)


def kept_spells(sim: Sim, w: World) -> np.ndarray:
    """Indices of spells at risk in at least one window month, in spell_id order
    (start date, municipality, creation order)."""
    s = sim.spells
    start_abs = w.t0 + w.k_start
    keep = np.flatnonzero((s["end"] < 0) | (s["end"] >= start_abs))
    order = np.lexsort((keep, s["muni"][keep], s["start_day"][keep], s["start"][keep]))
    return keep[order]


def _cw_ids(sim: Sim, w: World) -> tuple[np.ndarray, np.ndarray]:
    """Caseworker id (``KM017``, unique within municipality) and team id (``T03``) per
    caseworker record."""
    st = sim.staff.finalize()
    width = max(3, len(str(int(st["num"].max()))))
    cw = np.char.add("KM", np.char.zfill(st["num"].astype(str), width)).astype(object)
    team_num = sim.staff.team_num[st["team"]]
    team = np.char.add("T", np.char.zfill(team_num.astype(str), 2)).astype(object)
    return cw, team


def contract_tables(sim: Sim, w: World, p: SimulateParams, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """All contract tables (municipalities, trajectories, caseworker_assignments, quality,
    adoption, labour_market, shocks, and progress when ``p.progress``)."""
    return dict(iter_contract_tables(sim, w, p, rng))


def iter_contract_tables(sim: Sim, w: World, p: SimulateParams, rng: np.random.Generator
                         ) -> Iterator[tuple[str, pd.DataFrame]]:
    """``contract_tables``' (name, table) pairs, each table made when the one before has
    been taken (the same tables: ``rng`` is drawn from in the same order), so that a
    writer need hold one at a time: the national tables are 2.0 GB together, 1.35 GB
    of it ``progress``."""
    codes = w.munis["municipality"].to_numpy(dtype=object)
    cw_id, cw_team = _cw_ids(sim, w)
    idx = kept_spells(sim, w)
    s, c = sim.spells, sim.clients
    spell_id = np.array([f"S{i:08d}" for i in range(1, len(idx) + 1)], dtype=object)
    client = s["client"][idx]
    _, first = np.unique(client, return_index=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(1, len(first) + 1)
    client_id = np.array([f"C{r:07d}" for r in rank[np.unique(client, return_inverse=True)[1]]], dtype=object)
    open_ = s["end"][idx] < 0
    end = iso_from_days(day_numbers(np.where(open_, 2000 * 12, s["end"][idx]),
                                    np.where(open_, 1, s["end_day"][idx])), missing=open_)
    start_days = day_numbers(s["start"][idx], s["start_day"][idx])
    ladder = pd.array(s["ladder"][idx].astype("int64"), dtype="Int64")
    ladder[s["ladder"][idx] == 0] = pd.NA
    traj = pd.DataFrame({
        "spell_id": text(spell_id), "client_id": text(client_id),
        "municipality": text(codes, s["muni"][idx]),
        "caseworker_id": text(cw_id, s["init_cw"][idx]),
        "team_id": text(cw_team, s["init_cw"][idx]),
        "start_date": iso_from_days(start_days), "end_date": end,
        "exit_reason": text(hz.EXITS, s["reason"][idx]),
        "birth_year": c["birth_year"][client].astype("int64"),
        "sex": text(hz.SEX, c["sex"][client]),
        "education_level": text(hz.EDUCATION, c["edu"][client]),
        "household": text(hz.HOUSEHOLD, c["hh"][client]),
        "prior_benefit_months": s["prior"][idx].astype("int64"), "ladder_step": ladder,
    })
    del client, first, rank, client_id, open_, end, ladder  # (the spells' table's alone)
    yield "municipalities", (w.munis[["municipality", "name", "region", "province",
                                      "population"]]
                             .astype({"population": "int64"}).reset_index(drop=True))
    yield "trajectories", traj
    del traj
    yield "caseworker_assignments", _assignments(sim, idx, spell_id, cw_id, cw_team, start_days)
    yield "quality", _quality(sim, w, p, rng, codes, cw_id, cw_team)
    yield "adoption", _adoption(w, p, rng, codes)
    yield "labour_market", _labour_market(w, rng)
    yield "shocks", _shocks(w, rng, codes)
    if p.progress:
        yield "progress", _progress(sim, w, idx, spell_id)


def _progress(sim, w, idx, spell_id) -> pd.DataFrame:
    """Two rows per written review of a kept spell (see module docstring)."""
    rev, s = sim.reviews, sim.spells
    pos_of = np.full(len(s["start"]), -1)
    pos_of[idx] = np.arange(len(idx))
    spell = rev["spell"].astype(np.int64)
    row = pos_of[spell] if len(spell) else np.zeros(0, np.int64)
    keep = row >= 0
    spell, row = spell[keep], row[keep]
    month = w.t0 + rev["k"][keep].astype(np.int64)
    ends_here = s["end"][spell] == month
    last_day = np.where(ends_here, s["end_day"][spell], _days(month))
    day = 1 + np.floor(rev["day_u"][keep] * last_day).astype(np.int64)
    names = np.array(["goal_reached", "ladder_step"], dtype=object)  # sorted: code order
    goal, after = rev["goal"][keep], rev["after"][keep]
    # rows by spell, month and measure: each review's two rows side by side (the engine
    # reviews a spell at most once a month: one sort of all rows gave the same)
    o = np.lexsort((month, row))
    row, month, day = row[o], month[o], day[o]
    if len(o) > 1 and ((row[1:] == row[:-1]) & (month[1:] == month[:-1])).any():
        raise ValueError("simulate: a spell reviewed twice in one month")
    r, days = np.repeat(row, 2), np.repeat(day_numbers(month, day), 2)
    code = np.tile([0, 1], len(o))
    value = np.empty(2 * len(o))
    value[0::2], value[1::2] = goal[o], after[o]
    return pd.DataFrame({"spell_id": text(spell_id, r), "date": iso_from_days(days),
                         "measure": text(names, code), "value": value})


def _assignments(sim, idx, spell_id, cw_id, cw_team, start_days) -> pd.DataFrame:
    """Full caseworker history of every kept spell that changed caseworker: the first row
    from the spell's start, later rows from the first day of the month of the change;
    the last row's end_date is null (until the spell ends)."""
    ev = sim.events
    pos_of = np.full(len(sim.spells["start"]), -1)
    pos_of[idx] = np.arange(len(idx))
    e_row = pos_of[ev["spell"]]
    keep = e_row >= 0
    e_row, e_month, e_cw = e_row[keep], ev["month"][keep], ev["cw"][keep]
    rows_spell = unique(e_row)
    first_cw = sim.spells["init_cw"][idx[rows_spell]]
    r = np.concatenate([rows_spell, e_row])
    start = np.concatenate([start_days[rows_spell], day_numbers(e_month, np.ones(len(e_month)))])
    cw = np.concatenate([first_cw, e_cw])
    first = np.concatenate([np.ones(len(rows_spell), bool), np.zeros(len(e_row), bool)])
    month = np.concatenate([np.full(len(rows_spell), -1), e_month])
    order = np.lexsort((month, r))
    r, start, cw, first, month = r[order], start[order], cw[order], first[order], month[order]
    last = np.r_[r[1:] != r[:-1], True]
    nxt = np.r_[month[1:], 0]
    end = iso_from_days(day_numbers(np.where(last, 2000 * 12, nxt), np.ones(len(r))) - 1,
                        missing=last)
    return pd.DataFrame({"spell_id": text(spell_id, r), "caseworker_id": text(cw_id, cw),
                         "team_id": text(cw_team, cw), "start_date": iso_from_days(start),
                         "end_date": end})


def _quality(sim, w, p, rng, codes, cw_id, cw_team) -> pd.DataFrame:
    a = sim.audits
    muni_of_cw = sim.staff.finalize()["muni"]
    months = w.t0 + a["k"]
    day = 1 + np.floor(a["day_u"] * _days(months)).astype(np.int64)
    audit = pd.DataFrame({"unit_type": "caseworker", "unit_id": cw_id[a["cw"]],
                          "municipality": codes[muni_of_cw[a["cw"]]], "date": iso_dates(months, day),
                          "instrument": "fidelity_audit", "score": a["score"],
                          "rater_id": sim.staff.rater_ids[a["rater"]]})
    rows = []
    st = sim.staff
    for k, q, _ in sim.surveys:
        month = w.t0 + k
        if month % 12 == 9:  # October: methodical_working questionnaire per team (1-5)
            tq = np.bincount(st.pos_team, weights=q) / np.bincount(st.pos_team)
            score = np.clip(np.round(3 + 0.5 * (tq - p.quality_mean) + rng.normal(0, 0.25, len(tq)), 2), 1, 5)
            team = np.char.add("T", np.char.zfill(st.team_num.astype(str), 2)).astype(object)
            days = 1 + rng.integers(0, 31, len(tq))
            rows.append(pd.DataFrame({"unit_type": "team", "unit_id": team,
                                      "municipality": codes[st.team_muni],
                                      "date": iso_dates(np.full(len(tq), month), days),
                                      "instrument": "methodical_working", "score": score, "rater_id": None}))
        else:  # June: dossier_review of the municipality (0-10)
            mq = np.bincount(st.pos_muni, weights=q) / np.bincount(st.pos_muni)
            score = np.clip(np.round(mq + rng.normal(0, 0.3, len(mq)), 1), 0, 10)
            days = 1 + rng.integers(0, 30, len(mq))
            rows.append(pd.DataFrame({"unit_type": "municipality", "unit_id": codes, "municipality": codes,
                                      "date": iso_dates(np.full(len(mq), month), days),
                                      "instrument": "dossier_review", "score": score, "rater_id": None}))
    out = pd.concat([audit, *rows], ignore_index=True)
    return out.sort_values(["municipality", "unit_type", "unit_id", "date", "instrument", "rater_id"],
                           ignore_index=True, na_position="first")


def _days(abs_month: np.ndarray) -> np.ndarray:
    m = (np.asarray(abs_month) - 1970 * 12).astype("datetime64[M]")
    return ((m + 1).astype("datetime64[D]") - m.astype("datetime64[D]")).astype(np.int64)


def _adoption(w, p, rng, codes) -> pd.DataFrame:
    """gewogen_maatwerk for the adopters; a placebo programme (gilde_werkwijze, no effect)
    for a share ``placebo_share`` of all municipalities."""
    ka = w.munis["adoption_k"].to_numpy()
    m = np.flatnonzero(ka >= 0)
    months = w.t0 + ka[m]
    rows = [pd.DataFrame({"municipality": codes[m], "team_id": None, "programme": "gewogen_maatwerk",
                          "adoption_date": iso_dates(months, 1 + rng.integers(0, 28, len(m)))})]
    n_pl = int(round(p.placebo_share * len(codes)))
    if n_pl:
        mp = np.sort(rng.choice(len(codes), n_pl, replace=False))
        kp = w.t0 + rng.integers(w.k_start, w.k_end + 1, n_pl)
        rows.append(pd.DataFrame({"municipality": codes[mp], "team_id": None, "programme": "gilde_werkwijze",
                                  "adoption_date": iso_dates(kp, 1 + rng.integers(0, 28, n_pl))}))
    return pd.concat(rows, ignore_index=True).sort_values(["programme", "municipality"], ignore_index=True)


def _labour_market(w, rng) -> pd.DataFrame:
    """Unemployment per municipality (yearly, ``YYYY``) and region (monthly, ``YYYY-MM``),
    vacancy rate per region (quarterly, ``YYYY-Qn``), from 12 months before the window."""
    ks = np.arange(max(0, w.k_start - 12), w.n_months)
    months = w.t0 + ks
    out = []
    codes = w.munis["municipality"].to_numpy(dtype=object)
    years = months // 12
    for y in np.unique(years):
        sel = ks[years == y]
        val = w.u_muni[:, sel].mean(axis=1) + rng.normal(0, 0.2, len(codes))
        out.append(pd.DataFrame({"area": codes, "period": str(y), "indicator": "unemployment_rate",
                                 "value": np.round(np.maximum(val, 0.5), 1)}))
    reg = np.array(w.regions, dtype=object)
    ur = w.u_region[:, ks] + rng.normal(0, 0.1, (len(reg), len(ks)))
    out.append(pd.DataFrame({"area": np.repeat(reg, len(ks)), "period": np.tile(_month_str(months), len(reg)),
                             "indicator": "unemployment_rate", "value": np.round(np.maximum(ur, 0.5), 1).ravel()}))
    quarters = years * 4 + (months % 12) // 3
    for qt in np.unique(quarters):
        sel = ks[quarters == qt]
        u = w.u_region[:, sel].mean(axis=1)
        vac = 4.7 * np.exp(-0.24 * (u - 3.6)) * np.exp(rng.normal(0, 0.04, len(reg)))
        out.append(pd.DataFrame({"area": reg, "period": f"{qt // 4}-Q{qt % 4 + 1}", "indicator": "vacancy_rate",
                                 "value": np.round(vac, 2)}))
    return pd.concat(out, ignore_index=True).sort_values(["area", "indicator", "period"], ignore_index=True)


def _shocks(w, rng, codes) -> pd.DataFrame:
    sh = w.shocks.sort_values(["k", "m", "type"], ignore_index=True)
    months = w.t0 + sh["k"].to_numpy(dtype=np.int64)
    return pd.DataFrame({
        "shock_id": [f"SH{i:03d}" for i in range(1, len(sh) + 1)],
        "municipality": codes[sh["m"].to_numpy(dtype=np.int64)],
        "date": iso_dates(months, 1 + rng.integers(0, 28, len(sh))) if len(sh) else np.zeros(0, object),
        "type": sh["type"].to_numpy(dtype=object),
        "jobs": pd.array(sh["jobs"].to_numpy(), dtype="Int64"),
        "description": sh["description"].to_numpy(dtype=object),
    })
