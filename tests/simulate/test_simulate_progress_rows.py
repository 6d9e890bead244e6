"""The progress table's rows: each review's two rows side by side in (spell, month)
order, as one sort of all rows gives them; a spell reviewed twice in a month (which the
engine never does) is an error, not a silent other order."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from impact.simulate.tables import _days, _progress, iso_dates, text


def _one_sort(sim, w, idx, spell_id):
    """The rows by one stable sort of both halves (the first way the table was made)."""
    rev, s = sim.reviews, sim.spells
    pos_of = np.full(len(s["start"]), -1)
    pos_of[idx] = np.arange(len(idx))
    spell = rev["spell"].astype(np.int64)
    row = pos_of[spell]
    keep = row >= 0
    spell, row = spell[keep], row[keep]
    month = w.t0 + rev["k"][keep].astype(np.int64)
    last_day = np.where(s["end"][spell] == month, s["end_day"][spell], _days(month))
    day = 1 + np.floor(rev["day_u"][keep] * last_day).astype(np.int64)
    n = len(row)
    r, m, d = np.concatenate([row, row]), np.concatenate([month, month]), np.concatenate([day, day])
    names = np.array(["goal_reached", "ladder_step"], dtype=object)
    code = np.repeat([1, 0], n)
    value = np.concatenate([rev["after"][keep], rev["goal"][keep]]).astype("float64")
    order = np.lexsort((code, m, r))
    return pd.DataFrame({"spell_id": text(spell_id, r[order]),
                         "date": iso_dates(m[order], d[order]),
                         "measure": text(names, code[order]), "value": value[order]})


@pytest.mark.parametrize("twice", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_rows_as_one_sort_gives_them(seed, twice):
    rng = np.random.default_rng(seed)
    n_spells, n_rev = 40, 300
    start = 2016 * 12 + rng.integers(0, 24, n_spells)
    end = np.where(rng.random(n_spells) < 0.5, start + rng.integers(1, 40, n_spells), -1)
    spells = {"start": start, "end": end, "end_day": rng.integers(1, 29, n_spells)}
    spell = rng.integers(0, n_spells, n_rev)
    k = start[spell] - 2010 * 12 + rng.integers(0, 30, n_rev)
    if not twice:  # at most one review of a spell in a month
        _, first = np.unique(spell * 10_000 + k, return_index=True)
        spell, k = spell[np.sort(first)], k[np.sort(first)]
    n = len(spell)
    assert pd.DataFrame({"s": spell, "k": k}).duplicated().any() == twice
    reviews = {"spell": spell.astype(np.int32), "k": k.astype(np.int32),
               "day_u": rng.random(n), "goal": rng.integers(0, 2, n).astype(np.int8),
               "after": rng.integers(1, 7, n).astype(np.int8)}
    sim = SimpleNamespace(reviews=reviews, spells=spells)
    w = SimpleNamespace(t0=2010 * 12)
    idx = np.sort(rng.choice(n_spells, 30, replace=False))   # some spells not kept
    spell_id = np.array([f"S{i:08d}" for i in range(1, len(idx) + 1)], dtype=object)
    want = _one_sort(sim, w, idx, spell_id)
    if twice:
        with pytest.raises(ValueError, match="reviewed twice in one month"):
            _progress(sim, w, idx, spell_id)
        return
    got = _progress(sim, w, idx, spell_id)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert len(got) > 100
