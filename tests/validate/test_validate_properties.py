"""Property-based tests: valid data in any allowed spelling passes untouched and typed;
arbitrary data always reconciles (rows read = kept + rejected) and what is kept obeys
the rules, checked against a slow obvious loop."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vdata
from impact.ingest.contract import EDUCATION, EXIT_REASON, HOUSEHOLD, SEX

SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# municipality as written -> (normalised as given, mapped to 2026)
CODE_FORMS = {
    "GM0363": ("GM0363", "GM0363"), "0363": ("GM0363", "GM0363"), "363": ("GM0363", "GM0363"),
    "gm0599": ("GM0599", "GM0599"), "599": ("GM0599", "GM0599"),
    "GM1978": ("GM1978", "GM1978"), "GM0571": ("GM0571", "GM1978"),  # Nieuw-Lekkerland
    "457": ("GM0457", "GM0363"),  # Weesp
    "824": ("GM0824", "GM0824"), "GM0788": ("GM0788", "GM0824"),  # Haaren (split)
}
IDS = st.text(alphabet="abcXYZ0123456789-_", min_size=1, max_size=6)


def _case(s: str, draw) -> str:
    return draw(st.sampled_from([s, s.upper(), s.lower(), s.capitalize()]))


@st.composite
def valid_trajectories(draw):
    rows = []
    n_clients = draw(st.integers(1, 12))
    for c in range(n_clients):
        day = dt.date(2008, 1, 1) + dt.timedelta(days=draw(st.integers(0, 4000)))
        n_spells = draw(st.integers(1, 3))
        for k in range(n_spells):
            is_open = k == n_spells - 1 and draw(st.booleans())
            end = None if is_open else day + dt.timedelta(days=draw(st.integers(0, 900)))
            rows.append({
                "spell_id": f"s{c}-{k}",
                "client_id": draw(st.sampled_from([f"{c:04d}", f"c{c}"])),
                "municipality": draw(st.sampled_from(sorted(CODE_FORMS))),
                "caseworker_id": draw(st.none() | IDS),
                "team_id": draw(st.none() | IDS),
                "start_date": day,
                "end_date": end,
                "exit_reason": None if is_open else _case(draw(st.sampled_from(EXIT_REASON)), draw),
                "birth_year": draw(st.integers(1900, 2010)),
                "sex": _case(draw(st.sampled_from(SEX)), draw),
                "education_level": draw(st.sampled_from(EDUCATION)),
                "household": draw(st.sampled_from(HOUSEHOLD)),
                "prior_benefit_months": draw(st.integers(0, 300)),
                "ladder_step": draw(st.none() | st.integers(1, 6)),
            })
            if end is not None:
                day = end + dt.timedelta(days=draw(st.integers(1, 400)))
    df = pd.DataFrame(rows)
    client_ids = df["client_id"].str.extract(r"(\d+)")[0].astype(int)
    df["client_id"] = "c" + client_ids.astype(str)  # one id per client, whatever was drawn
    native = draw(st.booleans())
    if native:  # Parquet/Stata-like: dates and integers as native types
        for col in ("start_date", "end_date"):
            df[col] = pd.to_datetime(df[col])
        for col in ("birth_year", "prior_benefit_months", "ladder_step"):
            df[col] = df[col].astype("Int64")
        return df, rows
    fmt = draw(st.sampled_from(["%Y-%m-%d", "%Y%m%d"]))
    for col in ("start_date", "end_date"):
        df[col] = df[col].map(lambda d: None if d is None else d.strftime(fmt))
    return df.astype("str"), rows


@SETTINGS
@given(valid_trajectories())
def test_valid_trajectories_pass_untouched_and_typed(drawn):
    traj, rows = drawn
    raw = vdata.subset(vdata.tables())
    raw["trajectories"] = traj
    result = vdata.run(raw, max_reject_share=0.0)
    assert result.report["rejected_rows"] == 0
    out = result.tables["trajectories"]
    assert len(out) == len(traj)
    dtypes = {c: str(t) for c, t in out.dtypes.items()}
    assert dtypes["start_date"] == dtypes["end_date"] == "datetime64[us]"
    assert dtypes["birth_year"] == dtypes["prior_benefit_months"] == dtypes["ladder_step"] == "Int64"
    assert dtypes["municipality"] == dtypes["spell_id"] == dtypes["caseworker_key"] == "str"
    given_codes = [CODE_FORMS[r["municipality"]] for r in rows]
    assert out["municipality"].tolist() == [m for _, m in given_codes]
    expected_keys = [None if r["caseworker_id"] is None else f"{g}:{r['caseworker_id']}"
                     for r, (g, _) in zip(rows, given_codes)]
    assert [None if pd.isna(k) else k for k in out["caseworker_key"]] == expected_keys
    assert [d.date() for d in out["start_date"]] == [r["start_date"] for r in rows]
    assert [None if pd.isna(d) else d.date() for d in out["end_date"]] == [r["end_date"] for r in rows]
    assert set(out["sex"]) <= set(SEX) and set(out["exit_reason"].dropna()) <= set(EXIT_REASON)


CELLS = {
    "client_id": st.sampled_from(["c1", "c2", "c3", None]),
    "municipality": st.sampled_from(["GM0363", "599", "GM9999", "abc", "457", None]),
    "start_date": st.sampled_from(["2016-01-01", "2016-06-01", "20170101", "2016-02-30", "x", None]),
    "end_date": st.sampled_from(["2016-03-31", "2016-12-31", "20180101", "2015-01-01", "bad", None]),
    "exit_reason": st.sampled_from(["work", "Other", "job", None]),
    "birth_year": st.sampled_from(["1950", "1899", "2011", "19x0", "1980.0", None]),
    "sex": st.sampled_from(["F", "m", "female", None]),
    "education_level": st.sampled_from(["low", "phd", None]),
    "household": st.sampled_from(["single", "flat", None]),
    "prior_benefit_months": st.sampled_from(["0", "12", "-1", "x", None]),
    "ladder_step": st.sampled_from(["1", "6", "0", "7", None]),
}


@st.composite
def messy_trajectories(draw):
    n = draw(st.integers(1, 40))
    valid = vdata.tables()["trajectories"].iloc[[0]]
    rows = [valid.iloc[0].to_dict()]
    for i in range(n):
        row = dict(rows[0])
        for col, strat in CELLS.items():
            if draw(st.booleans()):
                row[col] = draw(strat)
        rows.append(row)
    df = pd.DataFrame(rows).astype("str")
    df["spell_id"] = [f"s{i}" for i in range(len(df))]
    return df


def _overlaps_slow(kept: pd.DataFrame) -> list[tuple[str, str]]:
    """Every pair of kept spells of one client that share a day (a slow obvious loop)."""
    pairs = []
    far = pd.Timestamp("2262-01-01")
    recs = kept.to_dict("records")
    for i, a in enumerate(recs):
        for b in recs[i + 1:]:
            if a["client_id"] != b["client_id"]:
                continue
            a_end = far if pd.isna(a["end_date"]) else a["end_date"]
            b_end = far if pd.isna(b["end_date"]) else b["end_date"]
            if a["start_date"] <= b_end and b["start_date"] <= a_end:
                pairs.append((a["spell_id"], b["spell_id"]))
    return pairs


@SETTINGS
@given(messy_trajectories())
def test_messy_trajectories_always_reconcile_and_kept_rows_obey_the_rules(traj):
    raw = vdata.subset(vdata.tables())
    raw["trajectories"] = traj
    result = vdata.run(raw)
    t = result.report["tables"]["trajectories"]
    kept, rej = result.tables["trajectories"], result.rejects["trajectories"]
    assert t["rows_read"] == len(traj) == t["rows_kept"] + t["rows_rejected"]
    assert len(kept) == t["rows_kept"] and len(rej) == t["rows_rejected"]
    assert sorted(set(kept["spell_id"]) | set(rej["spell_id"])) == sorted(traj["spell_id"])
    assert not set(kept["spell_id"]) & set(rej["spell_id"])
    assert rej["rule"].notna().all() and rej["reason"].str.len().gt(0).all()
    assert sum(t["rejected_by_rule"].values()) == t["rows_rejected"]
    # what is kept obeys the rules (the schema check inside validate covers types/ranges)
    assert _overlaps_slow(kept) == []
    assert (kept["end_date"].isna() == kept["exit_reason"].isna()).all()
    assert ((kept["end_date"] >= kept["start_date"]) | kept["end_date"].isna()).all()
    # a row with a clearly invalid value never survives
    raw_by_id = traj.set_index("spell_id")
    for col, bad in [("birth_year", "1899"), ("sex", "female"), ("ladder_step", "7"),
                     ("municipality", "GM9999"), ("start_date", "2016-02-30")]:
        ids = raw_by_id.index[raw_by_id[col] == bad]
        assert not set(ids) & set(kept["spell_id"]), (col, bad)
    # every overlapping_spell reject shares a day with a spell of its client that starts
    # no later (dates parsed here the slow obvious way)
    def day(v, far=dt.date(2262, 1, 1)):
        for fmt in ("%Y-%m-%d", "%Y%m%d"):
            try:
                return dt.datetime.strptime(v, fmt).date()
            except (TypeError, ValueError):
                pass
        return far if v is None or pd.isna(v) else None

    spells = [(r.spell_id, r.client_id, day(r.start_date), day(r.end_date))
              for r in traj.itertuples()]
    for r in rej[rej["rule"] == "overlapping_spell"].itertuples():
        s0, e0 = day(r.start_date), day(r.end_date)
        assert any(
            c == r.client_id and sid != r.spell_id and s1 is not None and e1 is not None
            and s1 <= s0 and s0 <= e1 and s1 <= e0
            for sid, c, s1, e1 in spells
        ), r
