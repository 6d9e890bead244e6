"""The slow, obvious panel: plain Python loops over spells and months.

Written from the data contract and architecture.md, independently of the SQL, so the two
can be compared row by row. Quadratic where convenient; for tiny data only.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

import pandas as pd

FAR = date(9999, 12, 31)


def _d(x: Any) -> date | None:
    return None if x is None or pd.isna(x) else pd.Timestamp(x).date()


def _s(x: Any) -> str | None:
    return None if x is None or (not isinstance(x, str) and pd.isna(x)) else str(x)


def _t(d: date) -> int:
    return d.year * 12 + d.month - 1


def _tm(s: str) -> int:
    return int(s[:4]) * 12 + int(s[5:7]) - 1


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [dict(r) for _, r in df.iterrows()]


def merge_spells(traj: pd.DataFrame, gap_days: int) -> list[list[dict[str, Any]]]:
    """Groups of input spells (dicts, in start order) that form one merged spell."""
    by_client: dict[str, list[dict]] = defaultdict(list)
    for r in _records(traj):
        r = {**r, "start_date": _d(r["start_date"]), "end_date": _d(r["end_date"])}
        by_client[r["client_id"]].append(r)
    groups = []
    for rows in by_client.values():
        rows.sort(key=lambda r: (r["start_date"], r["spell_id"]))
        current = [rows[0]]
        for r in rows[1:]:
            prev_end = current[-1]["end_date"]
            if (prev_end is not None and (r["start_date"] - prev_end).days - 1 < gap_days
                    and r["municipality"] == current[-1]["municipality"]):
                current.append(r)
            else:
                groups.append(current)
                current = [r]
        groups.append(current)
    return groups


def reference_panel(frames: dict[str, pd.DataFrame], p: dict[str, Any]) -> pd.DataFrame:
    """Person-months as the contract defines them; columns as build_panel's subset."""
    t0, t1 = _tm(p["start"]), _tm(p["end"])
    w = p.get("quality_window_months", 6)
    instrument = p.get("quality_instrument", "fidelity_audit")
    programme = p.get("programme", "gewogen_maatwerk")
    shock_type = p.get("shock_type", "business_park_opening")
    ev_lo, ev_hi = p.get("shock_event_window", (-12, 24))
    indicators = p.get("indicators", ["unemployment_rate", "vacancy_rate"])

    region = {r["municipality"]: r["region"] for r in _records(frames["municipalities"])}
    lm: dict[tuple, float] = {}
    for r in _records(frames["labour_market"]):
        lm[(r["area"], _t(_d(r["month"])), r["indicator"])] = float(r["value"])

    asg_by_spell: dict[str, list[dict]] = defaultdict(list)
    if "caseworker_assignments" in frames:
        for r in _records(frames["caseworker_assignments"]):
            asg_by_spell[r["spell_id"]].append(
                {**r, "start_date": _d(r["start_date"]), "end_date": _d(r["end_date"]),
                 "caseworker_key": _s(r["caseworker_key"]), "team_key": _s(r["team_key"])})

    meas: dict[str, list[tuple[int, float, int]]] = defaultdict(list)  # ck -> (t, score, session)
    if "quality" in frames:
        rows = [r for r in _records(frames["quality"])
                if r["unit_type"] == "caseworker" and r["instrument"] == instrument]
        dates_by_ck: dict[str, set] = defaultdict(set)
        for r in rows:
            dates_by_ck[r["unit_key"]].add(_d(r["date"]))
        session = {(ck, d): i + 1 for ck, ds in dates_by_ck.items()
                   for i, d in enumerate(sorted(ds))}
        for r in rows:
            d = _d(r["date"])
            meas[r["unit_key"]].append((_t(d), float(r["score"]), session[(r["unit_key"], d)]))

    def quality_at(ck: str | None, t: int):
        if "quality" not in frames:
            return None, None, None, None
        near = [(s, k) for (tm, s, k) in meas.get(ck, []) if t - w <= tm <= t + w] if ck else []
        if not near:
            return None, None, None, 0
        mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
        return (mean([s for s, _ in near]), mean([s for s, k in near if k % 2 == 1]),
                mean([s for s, k in near if k % 2 == 0]), len(near))

    team_adopt, muni_adopt = {}, {}
    if "adoption" in frames:
        for r in _records(frames["adoption"]):
            if r["programme"] != programme:
                continue
            target, key = (team_adopt, r["team_key"]) if _s(r["team_key"]) else (muni_adopt, r["municipality"])
            target[key] = min(target.get(key, 10**9), _t(_d(r["adoption_date"])))

    shock_list = []
    if "shocks" in frames:
        shock_list = [r for r in _records(frames["shocks"]) if r["type"] == shock_type]

    def shock_at(muni: str, t: int):
        best = None
        for r in shock_list:
            d = _d(r["date"])
            e = t - _t(d)
            if r["municipality"] != muni or not ev_lo <= e <= ev_hi:
                continue
            key = (e < 0, abs(e), -d.toordinal(), r["shock_id"])
            if best is None or key < best[0]:
                best = (key, r["shock_id"], e)
        return (best[1], best[2]) if best else (None, None)

    def caseworker_at(group: list[dict], t: int, merged_end: date | None):
        base = max((r for r in group if _t(r["start_date"]) <= t),
                   key=lambda r: (r["start_date"], r["spell_id"]))
        ck, tk = _s(base["caseworker_key"]), _s(base["team_key"])
        cover = []
        for r in group:
            for a in asg_by_spell.get(r["spell_id"], []):
                end = a["end_date"] or r["end_date"] or merged_end
                if _t(a["start_date"]) <= t and (end is None or t <= _t(end)):
                    cover.append(a)
        if cover:
            a = max(cover, key=lambda a: (a["start_date"], a["end_date"] or FAR,
                                          a["caseworker_key"] or "", a["team_key"] or ""))
            ck = a["caseworker_key"] if a["caseworker_key"] is not None else ck
            tk = a["team_key"] if a["team_key"] is not None else tk
        return ck, tk

    out = []
    for group in merge_spells(frames["trajectories"], p.get("merge_gap_days", 31)):
        first, last = group[0], group[-1]
        end, reason = last["end_date"], last["exit_reason"]
        ts = _t(first["start_date"])
        t_end = _t(end) if end is not None else t1
        intake, _ = caseworker_at(group, ts, end)
        for t in range(max(ts, t0), min(t_end, t1) + 1):
            ck, tk = caseworker_at(group, t, end)
            q, qa, qb, qn = quality_at(ck, t)
            muni = first["municipality"]
            adopt_t = team_adopt[tk] if tk in team_adopt else muni_adopt.get(muni)
            shock_id, ev = shock_at(muni, t)
            row = {
                "spell_id": first["spell_id"], "client_id": first["client_id"],
                "municipality": muni, "region": region.get(muni), "t": t,
                "month": date(t // 12, t % 12 + 1, 1), "duration": t - ts,
                "age": t // 12 - int(first["birth_year"]),
                "left_truncated": int(ts < t0), "caseworker_key": ck, "team_key": tk,
                "exit_work": int(end is not None and t == _t(end) and reason == "work"),
                "exit_any": int(end is not None and t == _t(end)),
                "exit_education": int(end is not None and t == _t(end) and reason == "education"),
                "quality_score": q, "quality_a": qa, "quality_b": qb, "quality_n": qn,
                "adoption_month": None if adopt_t is None else date(adopt_t // 12, adopt_t % 12 + 1, 1),
                "adopted": (None if "adoption" not in frames
                            else int(adopt_t is not None and t >= adopt_t)),
                "shock_id": shock_id, "shock_event_time": ev,
                "intake_caseworker_key": intake,
                "intake_quality_score": quality_at(intake, t)[0],
                "prior_benefit_months": int(first["prior_benefit_months"]),
                "sex": first["sex"],
            }
            for ind in indicators:
                row[f"lm_{ind}_muni"] = lm.get((muni, t, ind))
                row[f"lm_{ind}_region"] = lm.get((region.get(muni), t, ind))
            out.append(row)
    cols = list(out[0]) if out else ["spell_id", "t"]
    return pd.DataFrame(out, columns=cols).sort_values(["spell_id", "t"]).reset_index(drop=True)
