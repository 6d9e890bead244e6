"""The join of reviews to their person-months (``progress._with_person_month``) is the
inner merge on (client, month) with the reviews' order kept: checked against pandas'
merge on awkward input (a client without person-months, months outside the panel,
two reviews of one person-month, a missing client)."""

import numpy as np
import pandas as pd
import pytest

from impact.heterogeneity.progress import _with_person_month


def _pm(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(f"C{c:03d}", t) for c in range(40) for t in range(100, 100 + rng.integers(3, 30))]
    pm = pd.DataFrame(rows, columns=["client_id", "t"]).sample(frac=1.0, random_state=seed)
    pm["client_id"] = pm["client_id"].astype("str")
    pm["t"] = pm["t"].astype("int32")
    pm["spell_id"] = pm["client_id"] + "-S"
    pm["age"] = rng.integers(18, 67, len(pm))
    pm["quality_a"] = rng.normal(size=len(pm))
    pm["lm_unemployment_rate_muni"] = rng.normal(5, 1, len(pm))
    return pm.reset_index(drop=True)


def test_join_equals_the_inner_merge():
    pm = _pm(1)
    rng = np.random.default_rng(2)
    n = 500
    r = pd.DataFrame({
        "orig_spell": [f"X{i}" for i in range(n)],
        "t": rng.integers(95, 135, n).astype("int64"),       # some outside the panel
        "value": rng.integers(1, 7, n).astype(float),
        "client_id": pd.array(np.where(rng.random(n) < 0.05, None,
                                       [f"C{c:03d}" for c in rng.integers(0, 45, n)]),
                              dtype="string")})                # C040..C044 have no months
    r = pd.concat([r, r.iloc[:20]], ignore_index=True)          # two reviews of one month
    got = _with_person_month(r, pm)
    cols = ["spell_id", "age", "quality_a", "lm_unemployment_rate_muni"]
    at = pm[["client_id", "t", *cols]].assign(client_id=pm["client_id"].astype("string"),
                                              t=pm["t"].astype("int64"))
    want = r.merge(at, on=["client_id", "t"], how="inner", validate="many_to_one")
    assert 100 < len(want) < len(r)  # matches and non-matches both present
    pd.testing.assert_frame_equal(got[want.columns], want)


def test_two_rows_of_one_client_month_are_refused():
    pm = _pm(3)
    pm = pd.concat([pm, pm.iloc[:1]], ignore_index=True)
    r = pd.DataFrame({"t": [100], "client_id": pd.array(["C000"], dtype="string")})
    with pytest.raises(ValueError, match="two rows of one client"):
        _with_person_month(r, pm)


def _spell_months_by_pandas(p: pd.DataFrame, trajectories: pd.DataFrame) -> pd.DataFrame:
    """The reference: ``review_frame``'s first steps as they were written with pandas."""
    from impact.estimate.frames import month_index

    client = trajectories.set_index(trajectories["spell_id"].astype(str))["client_id"]
    r = pd.DataFrame({"orig_spell": p["spell_id"].astype(str).to_numpy(),
                      "t": month_index(p["date"]),
                      "value": pd.to_numeric(p["value"], errors="coerce").to_numpy()})
    r["client_id"] = r["orig_spell"].map(client).astype("string")
    r = r.dropna(subset=["client_id", "t", "value"])
    r["t"] = r["t"].astype("int64")
    r = (r.sort_values(["orig_spell", "t"], kind="stable")
         .groupby(["orig_spell", "t"], sort=True, as_index=False).last())
    first = ~r["orig_spell"].duplicated()
    r["prev_t"] = r.groupby("orig_spell")["t"].shift(1)
    r["prev_v"] = r.groupby("orig_spell")["value"].shift(1)
    r["first"] = first.to_numpy()
    return r


@pytest.mark.parametrize("ids", ["text", "unicode", "numbers"])
def test_spell_months_equal_the_pandas_steps(ids):
    """One review per spell and month (the month's last), spells in the order Python
    gives their text (S10 before S9; accents, emoji and the empty id; numbers as text),
    with the previous review: on reviews in random order, several in one month, spells
    missing from the trajectories or missing, months and values missing, and a value
    that is not a number."""
    from impact.heterogeneity.progress_reviews import spell_months

    rng = np.random.default_rng(4)
    names = {"text": [f"S{i}" for i in range(66)],
             "unicode": ["", " a", "Z", "é", "ß", "\U0001f600", "İ", "ı", "ﬁ", "e\u0301"]
             + [f"S{i}" for i in range(56)],
             "numbers": list(range(1000, 1066))}[ids]
    traj = pd.DataFrame({"spell_id": names[:60],
                         "client_id": [f"C{i % 45:03d}" for i in range(60)]})
    if ids != "numbers":
        traj = traj.astype("str")
    n = 3000
    days = pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D")
    pick = [names[i] for i in rng.integers(0, 66, n)]
    p = pd.DataFrame({
        "spell_id": (pd.array(np.where(rng.random(n) < 0.03, None, pick), dtype="str")
                     if ids != "numbers" else pd.array(pick, dtype="Int64")),
        "date": pd.Series(days).where(rng.random(n) > 0.02),
        "measure": "ladder_step",
        "value": pd.array(rng.integers(1, 7, n).astype(str), dtype="str")})
    p.loc[rng.random(n) < 0.02, "value"] = "n/a"
    got = spell_months(p, traj)
    want = _spell_months_by_pandas(p, traj)
    assert got["first"].sum() > 40 and (~got["first"]).sum() > 1000 and len(got) < n * 0.9
    assert list(got.columns) == [c for c in want.columns if c != "orig_spell"]
    for c in got.columns:  # text as text, numbers as numbers (NaN equal to NaN)
        kind = object if c == "client_id" else "float64"
        np.testing.assert_array_equal(np.asarray(got[c], dtype=kind),
                                      np.asarray(want[c], dtype=kind), err_msg=c)
    assert got["t"].dtype == want["t"].dtype and got["client_id"].dtype == want["client_id"].dtype
    dup = pd.concat([traj, traj.iloc[:1]], ignore_index=True)
    with pytest.raises(ValueError, match="more than once"):
        spell_months(p, dup)
