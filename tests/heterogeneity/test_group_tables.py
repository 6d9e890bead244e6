"""The group tables: disclosure, Holm, the equality test on published groups only."""

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from impact.estimate.multiplicity import equality_test
from impact.heterogeneity.quality import GroupEstimates
from impact.heterogeneity.run import group_tables, holm, publication_view


def test_holm_equals_statsmodels():
    rng = np.random.default_rng(1)
    for _ in range(20):
        p = rng.uniform(0, 0.2, rng.integers(1, 12))
        np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1], rtol=1e-12)


def _ge(block, dim, est, se, clients, events, G=25, seed=0):
    rng = np.random.default_rng(seed)
    H = len(est)
    S = rng.normal(size=(G, H))
    S *= np.asarray(se) / np.sqrt((S ** 2).sum(axis=0))  # exactly the given SEs
    return GroupEstimates(block, "work", dim, tuple(f"g{h}" for h in range(H)),
                          np.asarray(est, float), S, float(np.mean(est)), 0.01,
                          np.asarray(clients) * 10, np.asarray(clients), np.asarray(events), G,
                          "test", np.array([f"GM{g:04d}" for g in range(G)]))


@pytest.mark.parametrize("block", ["adoption"])
def test_small_groups_are_not_published_nor_tested(block):
    a = _ge(block, "ladder", [0.1, 0.3, 0.5, 9.0], [0.05, 0.05, 0.05, 0.05],
            clients=[100, 100, 100, 9], events=[50, 50, 50, 50])
    b = _ge(block, "education", [0.2, 0.2], [0.05, 0.05], clients=[40, 40], events=[30, 5],
            seed=1)
    groups, tests = group_tables([a, b], min_cell=10, alpha=0.05)
    pub = groups.set_index(["dimension", "group"])["published"]
    assert not pub[("ladder", "g3")] and not pub[("education", "g1")]  # clients 9, events 5
    assert pub.sum() == 4
    # the equality test of a dimension uses its published groups only
    t = tests.set_index("dimension")
    assert t.loc["ladder", "n_groups"] == 3
    keep = np.array([True, True, True, False])
    ref = equality_test(a.estimate[keep], a.scores[:, keep].T @ a.scores[:, keep], 24,
                        hotelling=True)
    assert t.loc["ladder", "p_value"] == pytest.approx(ref.p_value, rel=1e-12)
    assert np.isnan(t.loc["education", "statistic"])  # one published group: nothing to test
    # Holm over the published groups of the family (both dimensions)
    p = groups.loc[groups["published"], "p_value"].to_numpy()
    np.testing.assert_allclose(groups.loc[groups["published"], "p_adjusted"], holm(p))
    assert groups.loc[~groups["published"], "p_adjusted"].isna().all()
    # the publication view blanks every statistic and count of an unpublished group
    view = publication_view(groups)
    hidden = view[~view["published"]]
    assert hidden[["estimate", "std_error", "ci_low", "ci_high", "n_clients"]].isna().all().all()
    assert "n_events" not in view and "n_person_months" not in view
    assert view.loc[view["published"], "estimate"].notna().all()
