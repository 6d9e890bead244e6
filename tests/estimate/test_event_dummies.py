"""``frames.event_dummies`` against the definition written out row by row."""

import numpy as np
import pandas as pd
import pytest

from impact.estimate.frames import event_dummies


def _by_definition(muni, t, events, window, pooled):
    lo, hi = window
    times = list(range(lo, hi + 1))
    keys = ([(None, e) for e in times] if pooled
            else [(k, e) for k in range(len(events)) for e in times])
    M = np.zeros((len(muni), len(keys)))
    for i, (m, ti) in enumerate(zip(muni, t)):
        for k, ev in enumerate(events.itertuples(index=False)):
            e = ti - ev.t_event
            if str(m) == ev.municipality and lo <= e <= hi:
                M[i, keys.index((None, e) if pooled else (k, e))] += 1.0
    keep = M.any(axis=0)
    return M[:, keep], [key for key, ok in zip(keys, keep) if ok]


@pytest.mark.parametrize("pooled", [True, False])
def test_event_dummies_match_the_definition(pooled):
    rng = np.random.default_rng(5)
    n = 400
    muni = rng.choice(["GM0001", "GM0002", "GM0003", "GM0004"], n)
    t = rng.integers(100, 160, n)
    events = pd.DataFrame({  # two in one municipality (overlapping), one without rows
        "municipality": ["GM0002", "GM0002", "GM0003", "GM9999"],
        "t_event": [120, 126, 140, 130]})
    got, keys = event_dummies(muni, t, events, (-6, 12), pooled=pooled)
    want, want_keys = _by_definition(muni, t, events, (-6, 12), pooled)
    assert keys == want_keys
    np.testing.assert_array_equal(got, want)
    assert got.shape[1] > 0


def test_event_dummies_without_rows_or_events():
    events = pd.DataFrame({"municipality": ["GM0001"], "t_event": [10]})
    got, keys = event_dummies(np.array([], dtype=str), np.array([], dtype=int), events,
                              (-2, 2), pooled=True)
    assert got.shape == (0, 0) and keys == []
    got, keys = event_dummies(np.array(["GM0001"]), np.array([10]),
                              events.iloc[:0], (-2, 2), pooled=True)
    assert got.shape == (1, 0) and keys == []


@pytest.mark.parametrize("pooled", [True, False])
def test_sparse_event_dummies_are_the_dense_ones(pooled):
    rng = np.random.default_rng(11)
    n = 500
    muni = rng.choice(["GM0001", "GM0002", "GM0003"], n)
    t = rng.integers(100, 160, n)
    events = pd.DataFrame({  # overlapping windows in one municipality; two events in one
        "municipality": ["GM0001", "GM0001", "GM0001", "GM0003", "GM0404"],  # month: pooled,
        "t_event": [120, 124, 120, 150, 130]})                    # their cells count twice
    dense, keys = event_dummies(muni, t, events, (-6, 12), pooled=pooled)
    got, got_keys = event_dummies(muni, t, events, (-6, 12), pooled=pooled, sparse=True)
    assert got_keys == keys and got.has_sorted_indices
    np.testing.assert_array_equal(got.toarray(), dense)
    if pooled:
        assert dense.max() == 2.0  # the overlap summed, not set


def test_first_column_is_argmax_of_the_dense_matrix():
    from impact.estimate.shock import _first_column

    rng = np.random.default_rng(3)
    dense = (rng.random((60, 9)) < 0.15).astype(float)
    dense[:5] = 0.0                     # rows without a one: 0, as np.argmax gives
    import scipy.sparse as sp

    got = _first_column(sp.csr_matrix(dense))
    np.testing.assert_array_equal(got, np.argmax(dense > 0, axis=1))
    assert (got[:5] == 0).all() and got[5:].max() > 0
    np.testing.assert_array_equal(_first_column(sp.csr_matrix((4, 3))), np.zeros(4))
