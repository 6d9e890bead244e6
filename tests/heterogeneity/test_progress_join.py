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
