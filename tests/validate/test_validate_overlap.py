"""``later_overlapping`` on integer codes gives what a sort of the values themselves
gives: random spells with ties, open ends and missing groups, starts and tiebreaks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from impact.validate.spells import _OPEN_END, later_overlapping


def _by_values(group, start, end, tiebreak):
    """The rule by pandas' stable sort of the values (missing last) and its groupby."""
    frame = pd.DataFrame(
        {"g": group.to_numpy(), "s": start.to_numpy(),
         "e": end.fillna(pd.Timestamp(_OPEN_END)).to_numpy(), "t": tiebreak.to_numpy(),
         "pos": np.arange(len(group))}
    ).sort_values(["g", "s", "t"], kind="stable")
    running = frame.groupby("g", sort=False)["e"].cummax()
    before = running.groupby(frame["g"], sort=False).shift(1)
    flag = (frame["s"] <= before).to_numpy()
    out = np.zeros(len(group), dtype=bool)
    out[frame["pos"].to_numpy()] = flag
    prev = pd.Series(pd.NaT, index=range(len(group)), dtype="datetime64[us]")
    prev.iloc[frame["pos"].to_numpy()] = before.to_numpy()
    return out, prev.set_axis(group.index)


@pytest.mark.parametrize("seed", range(30))
def test_codes_give_what_the_values_give(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 60))
    day = np.datetime64("2020-01-01", "us") + rng.integers(0, 40, n).astype("timedelta64[D]")
    start = pd.Series(day, dtype="datetime64[us]")
    end = start + pd.to_timedelta(rng.integers(-3, 15, n), unit="D")
    end = end.where(rng.random(n) > 0.2)                       # open ends
    start = start.where(rng.random(n) > 0.05)                  # a missing start
    group = pd.Series(rng.choice(["C1", "C2", "c10", "C3"], n), dtype="str")
    group = group.where(rng.random(n) > 0.05)                  # a missing group
    tie = pd.Series(rng.choice(["S2", "S10", "S1", "s1"], n), dtype="str")
    tie = tie.where(rng.random(n) > 0.05)
    index = pd.RangeIndex(n) * 3 + 7                           # not 0..n-1
    args = [x.set_axis(index) for x in (group, start, end, tie)]
    flag, prev = later_overlapping(*args)
    want_flag, want_prev = _by_values(*args)
    np.testing.assert_array_equal(flag, want_flag)
    pd.testing.assert_series_equal(prev, want_prev, check_names=False)
    assert flag.sum() > 0 or n < 10


def test_integer_tiebreaks_and_exact_previous_ends():
    start = pd.Series(pd.to_datetime(["2020-01-01", "2020-01-01", "2020-03-01", "2020-02-01"]),
                      dtype="datetime64[us]")
    end = pd.Series(pd.to_datetime(["2020-01-31", None, "2020-03-31", "2020-02-10"]),
                    dtype="datetime64[us]")
    group = pd.Series(["A", "A", "A", "B"], dtype="str")
    flag, prev = later_overlapping(group, start, end, pd.Series([1, 0, 2, 3]))
    # row 1 (tiebreak 0) comes first; row 0 starts within it, and so does row 2 (open)
    assert flag.tolist() == [True, False, True, False]
    assert prev.iloc[0] == pd.Timestamp(_OPEN_END) and pd.isna(prev.iloc[1])
    assert prev.iloc[2] == pd.Timestamp(_OPEN_END) and pd.isna(prev.iloc[3])
