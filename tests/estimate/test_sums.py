"""``GramSums``: the blocks added up over batches equal those of all rows at once, with
rows in or out of cluster order, and with ``only`` the blocks of the chosen columns (the
others' with each other NaN)."""

import numpy as np
import pandas as pd
import pytest

from impact.estimate.cgram import cluster_grams
from impact.estimate import sums as sums_module
from impact.estimate.sums import GramSums, Indicator


def _rows(n: int, sorted_clusters: bool, seed: int = 3):
    rng = np.random.default_rng(seed)
    cl = rng.integers(0, 7, n)
    if sorted_clusters:
        cl = np.sort(cl)
    muni = pd.Series([f"m{c}" for c in cl])
    t = rng.integers(0, 5, n)
    cols = {f"x{j}": rng.normal(size=n) for j in range(4)}
    cats = {"c": rng.integers(0, 3, n)}
    return cols, cats, pd.Series([f"g{c}" for c in cl]), muni, t


def _add(gs: GramSums, cols, cats, cl, muni, t, step: int) -> None:
    for lo in range(0, len(t), step):  # batches cutting clusters and cells
        r = slice(lo, lo + step)
        gs.add({k: v[r] for k, v in cols.items()}, {k: v[r] for k, v in cats.items()},
               cl.iloc[r], muni.iloc[r], muni.iloc[r], t[r])


@pytest.mark.parametrize("sorted_clusters", [True, False])
def test_batches_equal_all_rows(sorted_clusters):
    cols, cats, cl, muni, t = _rows(900, sorted_clusters)
    gs = GramSums()
    _add(gs, cols, cats, cl, muni, t, 97)
    sel = [gs.col[("num", c)] for c in cols] + [gs.col[("c", 1)], gs.col[("c", 2)]]
    got = gs.raw(sel)
    A = np.column_stack([*cols.values(), cats["c"] == 1, cats["c"] == 2]).astype(float)
    want, _ = cluster_grams(A, cl.to_numpy())
    order = [list(want.labels).index(g) for g in got.labels]
    np.testing.assert_allclose(got.C, want.C[order], rtol=1e-12, atol=1e-12)
    assert gs.count(("c", 2)) == (cats["c"] == 2).sum()


def test_only_makes_the_chosen_columns_blocks():
    cols, cats, cl, muni, t = _rows(900, True)
    full, part = GramSums(), GramSums(only=lambda name: name in ("x1", "x3"))
    _add(full, cols, cats, cl, muni, t, 97)
    _add(part, cols, cats, cl, muni, t, 97)
    assert full.col == part.col
    j = [part.col[("num", c)] for c in ("x1", "x3")]
    rest = [i for i in range(len(part.col)) if i not in j]
    P, G = len(part.pairs), len(part.clusters)
    # the blocks of the clusters seen (``C`` keeps room for more, ``GramSums._grow``)
    Cp, Cf = part.C[:G], full.C[:G]
    np.testing.assert_allclose(Cp[:, j, :], Cf[:, j, :], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Cp[:, :, j], Cf[:, :, j], rtol=1e-12, atol=1e-12)
    assert np.isnan(Cp[:, rest][:, :, rest]).all()
    np.testing.assert_allclose(part.S[:P], full.S[:P], rtol=1e-12, atol=1e-12)
    assert part.count(("c", 0)) == full.count(("c", 0)) == (cats["c"] == 0).sum()


def _dict_codes(batches):
    """The reference: a dict numbering values in order of first appearance (missing
    values one key), batch after batch."""
    seen, out = {}, []
    for b in batches:
        keys = ["NA" if pd.isna(v) else v for v in pd.Series(b, dtype=object)]
        out.append(np.array([seen.setdefault(k, len(seen)) for k in keys], dtype=np.int64))
    return out, [np.nan if k == "NA" else k for k in seen]


def _text(values, dtype):
    return pd.Series(values, dtype=dtype)


@pytest.mark.parametrize("kind", ["int", "uint", "str", "object", "float", "int_then_str",
                                  "str_then_int", "runs", "bool"])
def test_codes_are_first_appearance_across_batches(kind):
    """``_Codes`` (pandas' incremental factorizers) against a dict, for every kind of key
    the passes give it, missing values included; ``lookup`` adds nothing."""
    from impact.estimate.sums import _Codes

    rng = np.random.default_rng(5)
    ints = [rng.integers(0, 40, 50) * (1 << 33) for _ in range(6)]
    words = [[None if v == 3 else f"w{v}" for v in rng.integers(0, 40, 50)] for _ in range(6)]
    batches = {
        "int": ints,
        "uint": [b.astype(np.uint64) for b in ints],
        "str": [_text(w, "str") for w in words],
        "object": [pd.Series(w, dtype=object) for w in words],
        "float": [np.where(b % 7 == 0, np.nan, b / 3.0) for b in ints],
        "int_then_str": ints[:3] + [_text(w, "str") for w in words[3:]],
        "str_then_int": [_text(w, "str") for w in words[:3]] + ints[3:],
        "runs": [_text(np.repeat(w[:10], 8), "string[pyarrow]") for w in words],
        "bool": [b % 3 == 0 for b in ints],
    }[kind]
    want, seen = _dict_codes(batches)
    codes = _Codes()
    for b, w in zip(batches, want):
        before = len(codes)
        np.testing.assert_array_equal(codes.lookup(b), np.where(w < before, w, -1))
        assert len(codes) == before                      # lookup added nothing
        np.testing.assert_array_equal(codes(b), w)
    assert len(codes) == len(seen)
    got = list(codes.index)
    assert len(got) == len(seen)
    assert all((pd.isna(a) and pd.isna(b)) or a == b for a, b in zip(got, seen))
    assert codes.index.equals(pd.Index(seen)) or kind in ("str", "object", "runs", "float")


def test_duration_band_codes_from_their_index_equal_the_labels_codes():
    """Value-added's batches code the duration bands from their index's distinct values
    (``_Codes.of_distinct``): the codes and the labels seen are those of coding every
    row's label, across batches, whatever band comes first."""
    from impact.estimate.frames import duration_band
    from impact.estimate.sums import _Codes
    from impact.estimate.value_added_stream import _Batch

    rng = np.random.default_rng(8)
    batches = [rng.choice([3, 8, 15, 30, 70, np.nan], size=200, p=p)
               for p in ([0, 0, 0, 0, 1, 0], [.2, .2, .2, .2, .1, .1], [.5, 0, .5, 0, 0, 0],
                         [1 / 6] * 6)]
    by_label, kept = _Codes(), {}
    for d in batches:
        df = pd.DataFrame({"caseworker_key": "cw", "exit_work": 0, "duration": d, "t": 5})
        got = _Batch(df, "caseworker_key", ("duration_band",), [], kept).cats
        np.testing.assert_array_equal(got["duration_band"], by_label(duration_band(d)))
    seen = list(kept["duration_band"].index)
    assert seen == list(by_label.index) and seen[0] == "60p" and len(seen) == 5


def test_codes_without_pandas_hash_table(monkeypatch):
    """Another pandas without ``Int64HashTable``: the dict, the same codes."""
    import pandas._libs.hashtable as ht

    from impact.estimate.sums import _Codes

    monkeypatch.delattr(ht, "Int64HashTable")
    batches = [np.array([5, 9, 5, 2]), np.array([2, 7, 9])]
    codes = _Codes()
    assert [codes(b).tolist() for b in batches] == [[0, 1, 0, 2], [2, 3, 1]]
    assert codes.map == {5: 0, 9: 1, 2: 2, 7: 3} and list(codes.index) == [5, 9, 2, 7]


def test_first_rows_equal_the_sorting_reference():
    """``_first_rows`` by a running maximum: the first row of each code from ``known`` on,
    as ``np.unique(return_index=True)`` finds it, for codes numbered in order of first
    appearance (any integer type) and, through its fallback, for codes that are not."""
    from impact.estimate.sums import _first_rows

    def reference(codes, known):
        uniq, first = np.unique(codes, return_index=True)
        return first[uniq >= known]

    rng = np.random.default_rng(9)
    for trial in range(400):
        n = int(rng.integers(0, 60))
        values = rng.integers(0, 15, n)
        codes = pd.factorize(values)[0].astype(["int64", "int32", "uint32", "int8"][trial % 4])
        known = int(rng.integers(0, codes.max() + 2)) if n else 0
        np.testing.assert_array_equal(_first_rows(codes, known), reference(codes, known))
        shuffled = rng.permutation(15)[values]      # not numbered by first appearance
        np.testing.assert_array_equal(_first_rows(shuffled, known),
                                      reference(shuffled, known))


def test_local_codes_add_the_same_bits_as_unique():
    """Running sums added at ``local_codes``' distinct codes equal, bit for bit, those
    added at ``np.unique(return_inverse=True)``'s (empty batches included)."""
    from impact.distinct import local_codes

    rng = np.random.default_rng(12)
    a, b = np.zeros(50), np.zeros(50)
    for n in (0, 1, 7, 300, 5000, 0, 40):
        codes = rng.integers(0, 50, n)
        w = rng.normal(size=n) * 10.0 ** rng.integers(-8, 8, n)
        u, inv = local_codes(codes)
        a[u] += np.bincount(inv, weights=w, minlength=len(u))
        u2, inv2 = np.unique(codes, return_inverse=True)
        b[u2] += np.bincount(inv2, weights=w, minlength=len(u2))
        assert len(u) == len(set(codes.tolist()))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("sorted_clusters,only,H,bins", [
    (True, None, 3, 4), (False, None, 3, 4), (True, ("qa*d=2", "x0"), 3, 4),
    (False, None, 11, 4), (False, None, 11, 0), (True, ("qa*d=2", "x0"), 3, 0)])
def test_indicator_columns_add_the_dense_columns_bits(sorted_clusters, only, H, bins,
                                                      monkeypatch):
    """Columns given by their structure (``Indicator``: a code's dummies and their
    products with a measure, one scatter and one pair-sum ``bincount`` a group) and a
    categorical's dummies (``cats``, summed the same way) give the blocks and pair sums of
    the same columns written out dense, to the bit; the pair sums equal each (cell,
    cluster) pair's own sum. ``H`` levels with a column: 3 (a comparison a column) or 11
    (a scatter, ``linalg.scatter_dummies``); ``bins`` 0: the sums over the pair x level
    keys present only (``sums._level_sums``' way for many of them)."""
    monkeypatch.setattr(sums_module, "_DENSE_BINS", bins)
    cols, cats, cl, muni, t = _rows(1200, sorted_clusters, seed=8)
    rng = np.random.default_rng(9)
    d = rng.integers(-1, H + 1, len(t))      # levels -1..H; -1 and 0 without a column
    qa = rng.normal(size=len(t)) * 3
    dense = dict(cols)
    for h in range(1, H + 1):
        dense[f"d={h}"], dense[f"qa*d={h}"] = (d == h).astype(float), qa * (d == h)

    def struct(r):   # one codes and one weight object per batch: two groups
        dr, qr = d[r], qa[r]
        out = {k: v[r] for k, v in cols.items()}
        for h in range(1, H + 1):
            out[f"d={h}"], out[f"qa*d={h}"] = Indicator(dr, h), Indicator(dr, h, qr)
        return out

    dense_cats = {f"c={lv}": (cats["c"] == lv).astype(float) for lv in range(3)}
    pick = (lambda name: name in only) if only else None
    a, b = GramSums(only=pick), GramSums(only=pick)
    for lo in range(0, len(t), 113):
        r = slice(lo, lo + 113)
        a.add(struct(r), {"c": cats["c"][r]}, cl.iloc[r], muni.iloc[r], muni.iloc[r], t[r])
        b.add({**{k: v[r] for k, v in dense.items()}, **{k: v[r] for k, v in dense_cats.items()}},
              {}, cl.iloc[r], muni.iloc[r], muni.iloc[r], t[r])
    names = [("num", c) for c in dense]
    ia = [a.col[n] for n in names] + [a.col[("c", lv)] for lv in range(3)]
    ib = [b.col[n] for n in names] + [b.col[("num", f"c={lv}")] for lv in range(3)]
    G, P = len(a.clusters), len(a.pairs)
    assert (G, P) == (len(b.clusters), len(b.pairs))
    np.testing.assert_array_equal(a.C[:G][:, ia][:, :, ia], b.C[:G][:, ib][:, :, ib])
    np.testing.assert_array_equal(a.S[:P][:, ia], b.S[:P][:, ib])
    # against each pair's own sum, rows added in any order
    cell = a.cells.lookup(a.munis.lookup(muni) * (1 << 32) + (t + (1 << 31)))
    pair = a.pairs.lookup(cell * (1 << 32) + a.clusters.lookup(cl))
    assert (pair >= 0).all()
    want = np.zeros((P, len(names)))
    np.add.at(want, pair, np.column_stack(list(dense.values())))
    np.testing.assert_allclose(a.S[:P][:, ia[:len(names)]], want, rtol=1e-12, atol=1e-12)
