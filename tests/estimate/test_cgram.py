"""Per-cluster Gram blocks (``impact.estimate.cgram``): the fits from the blocks equal the
fits from the rows, and extending the blocks by new columns equals computing them anew."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from impact.estimate import EstimateParams
from impact.estimate.cgram import (
    cluster_grams, cluster_grams_by, demean_grams, fit_pm_grams,
)
from impact.estimate.pmreg import cell_demean, fe_df, fit_pm
from impact.estimate.quality import quality_frame
from impact.simulate.lean import simulate

FE = ["municipality", "regmonth"]


@pytest.fixture(scope="module")
def frame():
    pm = simulate(seed=8, n_muni=12, n_regions=3, n_months=30, caseload=120).person_months
    A, names, exog, cells, code, cl = quality_frame(
        pm, EstimateParams(), outcomes={"y1": "exit_work", "y2": "exit_any"})
    cell_demean(A, cells, code, FE)
    df_fe = fe_df(cells, FE, cells["municipality"].to_numpy())
    return A, names, exog, cells, code, cl, df_fe


@pytest.mark.parametrize("instrument", ["quality_b", None])
def test_fit_from_grams_equals_fit_pm(frame, instrument):
    A, names, exog, cells, code, cl, df_fe = frame
    grams, order = cluster_grams(A, cl)
    x = "quality_a" if instrument else "quality_score"
    via = fit_pm_grams(grams, names, ["y1", "y2"], x, exog, instrument, df_fe)
    for y, g in zip(["y1", "y2"], via):
        r = fit_pm(A, names, y, x, exog, instrument, cl, df_fe)
        assert g.coef == pytest.approx(r.coef, rel=1e-9)
        assert g.se == pytest.approx(r.se, rel=1e-8)
        assert (g.n_obs, g.n_clusters, g.df_k) == (r.n_obs, r.n_clusters, r.df_k)
        if instrument:
            assert g.first_stage_f == pytest.approx(r.first_stage_f, rel=1e-8)
        else:
            assert np.isnan(g.first_stage_f) and np.isnan(r.first_stage_f)
    assert via[0].coef != via[1].coef


def test_blocks_and_pair_sums_match_direct_sums(frame):
    """Each block is its cluster's Gram matrix, each pair sum its rows' column sum; the
    rows come sorted (``order``) and the labels in order of first appearance."""
    A, names, exog, cells, code, cl, df_fe = frame
    grams, order = cluster_grams(A, cl, code)
    labels = pd.unique(pd.Series(np.asarray(cl)))
    assert list(grams.labels) == list(labels)
    cl = np.asarray(cl)
    for g, lab in enumerate(grams.labels):
        rows = cl == lab
        np.testing.assert_allclose(grams.C[g], A[rows].T @ A[rows], rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(grams.gram, A.T @ A, rtol=1e-10, atol=1e-7)
    # pair sums: rebuild with pandas on the sorted rows
    sorted_code = np.asarray(code)[order]
    df = pd.DataFrame(A[order][:, :3], columns=list("abc"))
    df["cell"], df["cl"] = sorted_code, pd.factorize(cl)[0][order]
    ref = df.groupby(["cell", "cl"], sort=False)[list("abc")].sum().to_numpy()
    np.testing.assert_allclose(grams.pair_sums[:, :3], ref, rtol=1e-10, atol=1e-9)
    assert grams.pair_count.sum() == len(A)
    assert (grams.pair_cell == df.groupby(["cell", "cl"], sort=False).size()
            .index.get_level_values(0)).all()


def test_extend_equals_blocks_of_the_wider_matrix(frame):
    A, names, exog, cells, code, cl, df_fe = frame
    grams, order = cluster_grams(A, cl, code)
    As = np.asfortranarray(A[order])
    k = As.shape[1] - 4
    narrow, none = cluster_grams(As[:, :k], np.asarray(cl)[order], np.asarray(code)[order])
    assert none is None  # already sorted: no copy
    wide = narrow.extend(As, k, As.shape[1])
    np.testing.assert_allclose(wide.C, grams.C, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(wide.pair_sums, grams.pair_sums, rtol=1e-10, atol=1e-9)
    with pytest.raises(ValueError, match="rows"):
        narrow.extend(As[:-1], k, As.shape[1])


def test_multi_fit_from_grams_equals_fit_pm_multi(frame):
    """Several endogenous slopes (quality by ladder half), one of them with an instrument
    that is all zero (dropped, NaN), as ``fit_pm_multi``."""
    from impact.estimate.cgram import fit_pm_multi_grams
    from impact.estimate.pmreg import fit_pm_multi

    A, names, exog, cells, code, cl, df_fe = frame
    qa, qb = A[:, names.index("quality_a")], A[:, names.index("quality_b")]
    half = (np.arange(len(A)) % 3 == 0).astype(float)
    extra = np.column_stack([qa * half, qa * (1 - half), qb * half, qb * (1 - half),
                             np.zeros(len(A)), np.zeros(len(A))])
    B = np.asfortranarray(np.column_stack([A, extra]))
    nm = names + ["x1", "x2", "z1", "z2", "x3", "z3"]
    args = (nm, "y1", ["x1", "x2", "x3"], exog, ["z1", "z2", "z3"])
    r = fit_pm_multi(B, *args, cl, df_fe)
    grams, _ = cluster_grams(B, cl)
    g = fit_pm_multi_grams(grams, *args, df_fe)
    assert np.isnan(r.coef[2]) and np.isnan(g.coef[2])
    np.testing.assert_allclose(g.coef, r.coef, rtol=1e-9)
    np.testing.assert_allclose(g.V, r.V, rtol=1e-8)
    np.testing.assert_allclose(g.scores, r.scores, rtol=1e-8, atol=1e-12)
    assert (g.cluster_labels == r.cluster_labels).all() and g.df_k == r.df_k


@pytest.fixture(scope="module")
def raw():
    """The quality matrix before demeaning, rows sorted by municipality."""
    pm = simulate(seed=9, n_muni=12, n_regions=3, n_months=30, caseload=120).person_months
    A, names, exog, cells, code, cl = quality_frame(
        pm, EstimateParams(), outcomes={"y1": "exit_work", "y2": "exit_any"})
    cl_code, labels = pd.factorize(np.asarray(cl), sort=True)
    order = np.argsort(cl_code, kind="stable")
    return (np.asfortranarray(A[order]), names, exog, cells, np.asarray(code)[order],
            cl_code[order], np.asarray(labels), np.asarray(pm["caseworker_key"]))


@pytest.mark.parametrize("half", [None, "even"])
def test_demeaned_blocks_from_raw_blocks_equal_demeaning_the_rows(raw, half):
    """``cluster_grams_by`` + ``subset`` + ``demean_grams`` (no row demeaned) give the
    blocks and pair sums of ``cell_demean`` + ``cluster_grams`` on the half's rows, and
    the same fits (2SLS coefficient and CRV1 SE to 1e-9)."""
    A, names, exog, cells, code, cl_code, labels, _ = raw
    G = len(labels)
    bounds = np.searchsorted(cl_code, np.arange(G + 1))
    grams = cluster_grams_by(lambda s, e: A[s:e], bounds, labels, code)
    keep = np.ones(G, bool) if half is None else (np.arange(G) % 2 == 0)
    via = demean_grams(grams.subset(keep), cells, FE)
    rows = keep[cl_code]
    D = np.asfortranarray(A[rows])
    cell_demean(D, cells, code[rows], FE)
    ref, _ = cluster_grams(D, labels[cl_code[rows]], code[rows])
    assert list(via.labels) == list(ref.labels) and via.n_obs == ref.n_obs == rows.sum()
    scale = np.abs(ref.C).max()
    np.testing.assert_allclose(via.C, ref.C, rtol=1e-9, atol=1e-10 * scale)
    # pair sums, matched by (cell, cluster)
    key = lambda g: pd.Series(range(len(g.pair_cell)),
                              index=g.pair_cell * G + g.pair_cluster).sort_index()
    a, b = key(via), key(ref)
    assert list(a.index) == list(b.index)
    np.testing.assert_allclose(via.pair_sums[a.to_numpy()], ref.pair_sums[b.to_numpy()],
                               rtol=1e-9, atol=1e-9 * np.abs(ref.pair_sums).max())
    used = np.unique(code[rows])
    df_fe = fe_df(cells.iloc[used].reset_index(drop=True), FE,
                  cells["municipality"].to_numpy()[used])
    f1 = fit_pm_grams(via, names, "y1", "quality_a", exog, "quality_b", df_fe)
    f2 = fit_pm(D, names, "y1", "quality_a", exog, "quality_b", labels[cl_code[rows]], df_fe)
    assert f1.coef == pytest.approx(f2.coef, rel=1e-9)
    assert f1.se == pytest.approx(f2.se, rel=1e-9)


def test_demeaned_blocks_with_clusters_that_cut_across_cells(raw):
    """Clusters that do not nest the cells (caseworkers, as with one municipality):
    the pair sums carry the correction all the same."""
    A, names, exog, cells, code, cl_code, labels, _ = raw
    rng = np.random.default_rng(3)
    cw = rng.integers(0, 25, len(A))
    order = np.argsort(cw, kind="stable")
    A2, code2, cw2 = np.asfortranarray(A[order]), code[order], cw[order]
    bounds = np.searchsorted(cw2, np.arange(26))
    via = demean_grams(cluster_grams_by(lambda s, e: A2[s:e], bounds, np.arange(25), code2),
                       cells, FE)
    D = A2.copy(order="F")
    cell_demean(D, cells, code2, FE)
    ref, _ = cluster_grams(D, cw2)
    np.testing.assert_allclose(via.C, ref.C, rtol=1e-9, atol=1e-10 * np.abs(ref.C).max())


def test_demeaned_blocks_are_the_same_numbers_however_the_pairs_come(raw):
    """``demean_grams`` takes pairs already in cluster order as views and one cluster's
    pairs that are the cells as the cells' projection: the very numbers of gathering
    them (the clusters' pairs interleaved, each cluster's in their order), and
    ``sums=False`` the same blocks."""
    A, names, exog, cells, code, cl_code, labels, _ = raw
    G = len(labels)
    grams = cluster_grams_by(lambda s, e: A[s:e], np.searchsorted(cl_code, np.arange(G + 1)),
                             labels, code)
    assert (np.diff(grams.pair_cluster) >= 0).all()  # in cluster order: views
    ref = demean_grams(grams, cells, FE)
    r = np.random.default_rng(4).random(len(grams.pair_cell))
    for g in range(G):  # random positions, each cluster's pairs in their order
        at = np.flatnonzero(grams.pair_cluster == g)
        r[at] = np.sort(r[at])
    perm = np.argsort(r)
    assert not (np.diff(grams.pair_cluster[perm]) >= 0).all()  # gathered
    shuffled = replace(grams, pair_cell=grams.pair_cell[perm],
                       pair_cluster=grams.pair_cluster[perm],
                       pair_sums=grams.pair_sums[perm], pair_count=grams.pair_count[perm])
    got = demean_grams(shuffled, cells, FE)
    np.testing.assert_array_equal(got.C, ref.C)
    np.testing.assert_array_equal(got.pair_sums, ref.pair_sums[perm])
    only = demean_grams(grams, cells, FE, sums=False)
    assert only.pair_sums is None
    np.testing.assert_array_equal(only.C, ref.C)
    # the pair sums column-major, as ``GramSums.raw`` gives them (``S[:P, sel]``)
    fortran = replace(grams, pair_sums=np.asfortranarray(grams.pair_sums))
    np.testing.assert_array_equal(demean_grams(fortran, cells, FE).C, ref.C)
    np.testing.assert_array_equal(demean_grams(fortran, cells, FE).pair_sums, ref.pair_sums)
    # as many pairs as cells but not the cells in order: gathered
    assert len(grams.pair_cell) == len(cells)
    np.testing.assert_array_equal(got.pair_sums, ref.pair_sums[perm])
    # one cluster whose pairs are the cells, in order (value-added's caseworker x
    # region-month cells): the cells' projection itself, the same numbers as gathered
    cells_used = np.unique(code)
    one_cells = cells.iloc[cells_used].reset_index(drop=True)
    one_code = np.searchsorted(cells_used, code)
    one = cluster_grams_by(lambda s, e: A[s:e], np.array([0, len(A)]), np.array(["all"]),
                           one_code)
    order = np.argsort(one.pair_cell, kind="stable")
    one = replace(one, pair_cell=one.pair_cell[order], pair_cluster=one.pair_cluster[order],
                  pair_sums=one.pair_sums[order], pair_count=one.pair_count[order])
    assert np.array_equal(one.pair_cell, np.arange(len(one_cells)))
    direct = demean_grams(one, one_cells, FE)
    # a cell table with one more cell (a copy of the first, without a pair): gathered
    more = pd.concat([one_cells, one_cells.iloc[:1]], ignore_index=True)
    gathered = demean_grams(one, more, FE)
    np.testing.assert_array_equal(direct.C, gathered.C)
    np.testing.assert_array_equal(direct.pair_sums, gathered.pair_sums)
    # and the same as demeaning the rows
    D = A.copy(order="F")
    cell_demean(D, one_cells, one_code, FE)
    np.testing.assert_allclose(direct.gram, D.T @ D, rtol=1e-9,
                               atol=1e-10 * np.abs(D.T @ D).max())


def test_cell_fitted_overwriting_its_input_gives_the_same_projection(raw):
    from impact.estimate.pmreg import cell_fitted

    A, names, exog, cells, code, *_ = raw
    n_c = np.bincount(code, minlength=len(cells)).astype(float)
    sums = np.stack([np.bincount(code, weights=A[:, j], minlength=len(cells))
                     for j in range(A.shape[1])], axis=1)
    ref = cell_fitted(sums, n_c, cells, FE)
    mine = sums.copy()
    got = cell_fitted(mine, n_c, cells, FE, overwrite=True)
    np.testing.assert_array_equal(got, ref)
    assert np.shares_memory(got, mine)
    assert not np.shares_memory(ref, sums)


@pytest.mark.parametrize("zero", ["none", "some", "all"])
def test_only_blocks_skip_columns_zero_in_a_cluster(zero):
    """``cluster_grams(only_from=)`` leaves out the products of a column that is 0 in all
    of a cluster's rows (the check's GATES columns in a split's Aux clusters): they are
    0, every other product is the one of the full matrix, and the other columns' blocks
    with each other are NaN."""
    rng = np.random.default_rng(5)
    n, k0, k = 400, 4, 9
    A = rng.normal(size=(n, k))
    cl = np.repeat(np.arange(8), n // 8)
    if zero != "none":
        for g in range(8):       # each cluster its own zero columns (none, some or all)
            cols = (np.arange(k0, k) if zero == "all" and g % 2
                    else k0 + np.flatnonzero(rng.random(k - k0) < 0.5))
            A[np.ix_(cl == g, cols)] = 0.0
    A[cl == 3, k0 + 1] = 0.0   # and one column zero in a cluster in every case but "none"
    if zero == "none":
        A[cl == 3, k0 + 1] = rng.normal(size=(cl == 3).sum())
    want = np.stack([A[cl == g].T @ A[cl == g] for g in range(8)])
    got, _ = cluster_grams(np.asfortranarray(A), cl, only_from=k0)
    np.testing.assert_allclose(got.C[:, k0:, :], want[:, k0:, :], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.C[:, :, k0:], want[:, :, k0:], rtol=1e-12, atol=1e-12)
    assert np.isnan(got.C[:, :k0, :k0]).all()
    if zero != "none":
        assert (want[3, k0 + 1] == 0).all() and (got.C[3, k0 + 1] == 0).all()
        # left out, not made: an infinite value beside the zero column gives no NaN
        # (its product would be 0 x inf)
        A[np.flatnonzero(cl == 3)[0], 0] = np.inf
        got, _ = cluster_grams(np.asfortranarray(A), cl, only_from=k0)
        assert got.C[3, k0 + 1, 0] == 0 and got.C[3, 0, k0 + 1] == 0
