"""``distinct``: client codes and distinct clients per group, batch by batch, against
pandas' ``nunique`` on the whole data."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from impact import distinct
from impact.distinct import ClientCodes, DistinctCounter, per_group, unique


def test_codes_follow_first_appearance_across_batches():
    codes = ClientCodes()
    a = codes(pa.array(["b", "b", "a", None, "a", "b"]))
    b = codes(pa.array(["c", "a", "a"]))
    assert a.tolist() == [0, 0, 1, -1, 1, 0]
    assert b.tolist() == [2, 1, 1]
    assert len(codes) == 3
    assert codes(pa.array([], type=pa.string())).tolist() == []
    # non-string ids are taken as text; pandas input too
    assert codes(pa.array([7, 7, 8])).tolist() == [3, 3, 4]
    assert codes(pd.Series(["a", "z"], dtype="string")).tolist() == [1, 5]


def test_counts_equal_nunique_over_batches():
    rng = np.random.default_rng(0)
    n, G = 50_000, 7
    # runs of one client (spells) in random order, some ids missing, some groups outside
    client = np.repeat(rng.integers(0, 3000, n // 10), 10)
    ids = pd.array([None if rng.random() < 0.01 else f"C{c}" for c in client],
                   dtype="string")
    group = rng.integers(-1, G + 1, n)
    codes, counter = ClientCodes(), DistinctCounter(G)
    for lo in range(0, n, 1234):
        hi = min(n, lo + 1234)
        counter.add(group[lo:hi], codes(pa.array(ids[lo:hi])))
        if lo == 0:  # a count in between does not change what follows
            counter.counts()
    frame = pd.DataFrame({"client": ids, "group": group})
    want = (frame[(frame["group"] >= 0) & (frame["group"] < G)]
            .groupby("group")["client"].nunique().reindex(range(G), fill_value=0))
    got = counter.counts()
    assert got.tolist() == want.tolist()
    assert (got < np.bincount(group[(group >= 0) & (group < G)], minlength=G)).all()


def test_compaction_keeps_every_key():
    counter = DistinctCounter(3, compact_at=4)
    for i in range(40):  # many small batches, compacted on the way
        counter.add(np.array([i % 3, (i + 1) % 3, i % 3]), np.array([i, i, i]))
    assert len(counter.kept) > 0  # compacted before the count
    assert counter.counts().tolist() == [27, 27, 26]


def test_counts_of_groups_numbered_as_they_come():
    # value-added's units: a bound of 2^32 groups, counted for the units seen only
    counter = DistinctCounter(1 << 32)
    counter.add(np.array([0, 0, 2, 1, 2]), np.array([5, 6, 5, 5, 5]))
    counter.add(np.array([3, 0]), np.array([7, 5]))
    assert counter.counts(4).tolist() == [2, 1, 1, 1]
    assert counter.counts(2).tolist() == [2, 1]   # groups beyond the size left out


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint16", "int8", "bool", "float64"])
def test_unique_is_numpys(dtype):
    rng = np.random.default_rng(1)
    for n in (0, 1, 2, 1000):
        a = rng.integers(-50 if dtype[0] == "i" else 0, 100, n).astype(dtype)
        if dtype == "float64" and n:
            a[::7] = np.nan
        got, want = unique(a), np.unique(a)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_per_group_equals_nunique():
    rng = np.random.default_rng(2)
    client, group = rng.integers(0, 300, 5000), rng.integers(0, 6, 5000)
    want = pd.DataFrame({"c": client, "g": group}).groupby("g")["c"].nunique()
    got = per_group(group, client, 8)  # two groups without rows
    assert got.tolist() == want.reindex(range(8), fill_value=0).tolist()


@pytest.mark.parametrize("dtype", ["str", "string[pyarrow]", pd.ArrowDtype(pa.string()), object])
@pytest.mark.parametrize("sentinel", [True, False])
def test_factorize_is_pandas_factorize(dtype, sentinel, monkeypatch):
    """Text in runs (with missing values, runs of them, a run at each end), text without
    runs, one value, none, several Arrow chunks: the codes and uniques of
    ``pd.factorize``; text in runs factorises its runs only."""
    rng = np.random.default_rng(7)
    pool = np.array(["GM0363", "GM0014", None, "GM0344", ""], dtype=object)
    runs = pool[np.repeat(rng.integers(0, 5, 300), rng.integers(1, 30, 300))]
    cases = [runs, pool[rng.integers(0, 5, 400)], runs[:1], runs[:0], runs[::-1]]
    seen = []
    real = pd.factorize

    def spy(values, *a, **k):
        seen.append(len(values))
        return real(values, *a, **k)

    monkeypatch.setattr(distinct.pd, "factorize", spy)
    for v in cases:
        s = pd.Series(v, dtype=dtype, index=np.arange(len(v)) * 3)
        seen.clear()
        codes, uniq = distinct.factorize(s, use_na_sentinel=sentinel)
        want_codes, want_uniq = real(s, use_na_sentinel=sentinel)
        np.testing.assert_array_equal(codes, want_codes)
        assert type(uniq) is type(want_uniq) and uniq.dtype == want_uniq.dtype
        assert [None if pd.isna(x) else x for x in uniq] == [
            None if pd.isna(x) else x for x in want_uniq]
        if v is runs and dtype is not object:
            assert seen and max(seen) < len(v) / 4    # the runs' values, not every value
    chunked = pd.Series(pd.arrays.ArrowExtensionArray(
        pa.chunked_array([pa.array(runs[:500].tolist()), pa.array(runs[500:].tolist())])))
    codes, uniq = distinct.factorize(chunked, use_na_sentinel=sentinel)
    want_codes, want_uniq = real(chunked, use_na_sentinel=sentinel)
    np.testing.assert_array_equal(codes, want_codes)
    assert list(uniq.fillna("<NA>")) == list(want_uniq.fillna("<NA>"))


def test_run_starts():
    """Runs of equal values; consecutive missing values are one run; empty and one value."""
    a = pa.array(["a", "a", None, None, "b", None, "b", "b"])
    assert distinct.run_starts(a).tolist() == [0, 2, 4, 5, 6]
    assert distinct.run_starts(pa.array([], type=pa.string())).tolist() == []
    assert distinct.run_starts(pa.array(["x"])).tolist() == [0]


@pytest.mark.parametrize("dtype", ["int16", "int64", "uint8", "object"])
def test_first_codes_are_pandas_factorize(dtype):
    """``first_codes`` by chunks of rows (a table for integer labels) equals
    ``pd.factorize`` of the whole array, chunk boundaries and negative labels included."""
    from impact.distinct import first_codes

    rng = np.random.default_rng(5)
    lo = 0 if dtype == "uint8" else -40
    v = rng.integers(lo, lo + 90, 5_000)
    v[:100] = v[0]   # a label running over the first chunk boundary
    v = v.astype(str).astype(object) if dtype == "object" else v.astype(dtype)
    codes, G = first_codes(v, step=333)
    want, uniq = pd.factorize(v)
    assert G == len(uniq)
    got = np.concatenate([codes(a, min(a + 250, len(v))) for a in range(0, len(v), 250)])
    np.testing.assert_array_equal(got, want)


def test_first_codes_of_uint64_labels_above_int64():
    from impact.distinct import first_codes

    v = np.array([2**64 - 1, 2**64 - 3, 2**64 - 1, 5], dtype=np.uint64)
    codes, G = first_codes(v, step=2)
    np.testing.assert_array_equal(codes(0, 4), pd.factorize(v)[0])
    assert G == 3
