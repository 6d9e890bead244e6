"""Romano-Wolf for the programme's group effects: t(G-1)-calibrated statistics against
joint multiplier draws of the BJS cluster scores (``heterogeneity.adoption.multiplier_draws``).

* the statistics and draws as defined (by hand), and the calibration only shrinks |t|;
* family-wise error: the lean DGP (20 municipalities, outcome redrawn from ``p_true`` on a
  fixed design), each ladder group's null the true group ATT (the person-month mean of
  ``tau_true`` over its adopted person-months): the cells, imputation and scores of
  ``adoption_by_group``, then ``multiplier_draws`` and the step-down ``max_t_adjust`` as
  ``run.group_tables`` uses them; Holm beside it, with the power of both against 0;
* the size of the programme block's equality test (Hotelling) on the same sets.

Seeds are fixed once, before any result was seen, and never changed to make a test pass.
"""

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from impact.estimate import EstimateParams
from impact.estimate.adoption import adoption_cells, impute_adoption
from impact.estimate.frames import shock_events
from impact.estimate.imputation import aggregate
from impact.estimate.multiplicity import equality_test, max_t_adjust
from impact.heterogeneity.adoption import multiplier_draws
from impact.heterogeneity.params import HeterogeneityParams
from impact.heterogeneity.run import holm
from impact.heterogeneity.wcr import wcr_weights
from impact.simulate.lean import simulate

SEED = 20261203


def test_multiplier_draws_by_hand():
    rng = np.random.default_rng(SEED)
    G, H, df = 6, 3, 5
    S = rng.normal(size=(G, H))
    est = np.array([0.9, -2.5, np.nan])
    V = np.array(list(itertools.product([-1.0, 1.0], repeat=G)))
    t, tb = multiplier_draws(est, S, df, V)
    se = np.sqrt((S ** 2).sum(axis=0))
    for h in range(2):
        z = est[h] / se[h]
        assert t[h] == pytest.approx(np.sign(z) * stats.norm.isf(stats.t.sf(abs(z), df)))
        assert abs(t[h]) < abs(z)  # t(df) has heavier tails than the normal draws
        np.testing.assert_allclose(tb[:, h], V @ S[:, h] / se[h], rtol=1e-12)
    assert np.isnan(t[2]) and np.isnan(tb[:, 2]).all()
    # many degrees of freedom: the plain t
    t_inf, _ = multiplier_draws(est[:2], S[:, :2], 10 ** 7, V)
    np.testing.assert_allclose(t_inf, est[:2] / se[:2], rtol=1e-5)


@pytest.fixture(scope="module")
def lean():
    return simulate(seed=11, n_muni=20, n_months=36, caseload=150)


def test_family_wise_error_of_programme_groups(lean):
    """FWER at 5% of Romano-Wolf on the calibrated multiplier draws, 20 municipality
    clusters, the four ladder groups' nulls at their true ATTs."""
    reps, B = 200, 399
    pm, params = lean.person_months, EstimateParams()
    dim = {d.name: d for d in HeterogeneityParams().groups}["ladder_step"]
    H = len(dim.labels)
    codes = dim.codes(pm["ladder_step"])
    rng = np.random.default_rng(SEED)
    p = pm["p_true"].to_numpy() / 100
    pm = pd.concat([pm, pd.DataFrame({f"exit_r{r}": (rng.random(len(pm)) < p).astype("int8")
                                      for r in range(reps)}, index=pm.index)], axis=1)
    # the cells of adoption_by_group, with every redrawn outcome's exits at once
    cells = adoption_cells(None, pm, lean.adoption, params.adoption.programme,
                           by={"group": codes}, counts=tuple(f"exit_r{r}" for r in range(reps)))
    cells = cells[cells["group"] >= 0].reset_index(drop=True)
    cells["group_key"] = cells["group"].astype(str)
    adopted = pm["adopted"].to_numpy() == 1
    truth = np.array([pm.loc[adopted & (codes == h), "tau_true"].mean() for h in range(H)])
    events = shock_events(lean.shocks, params.shock.type)
    W, labels, enumerated = wcr_weights(np.sort(pm["municipality"].unique()), B=B, seed=SEED + 1)
    rw, rw_pow, hm, hm_pow, eq = [], [], [], [], []
    for r in range(reps):
        prep = impute_adoption(cells, events, params, extra_fe=("group_key",),
                               events_col=f"exits_r{r}")
        imp = prep.imputation
        assert imp.n_lost == 0
        tr1, p1 = prep.treated[imp.idx1], prep.p[imp.idx1]
        grp1 = cells["group"].to_numpy()[imp.idx1]
        Wt = np.column_stack([np.where(tr1 & (grp1 == h), p1, 0.0) for h in range(H)])
        est, S = aggregate(imp, Wt, prep.rel[imp.idx1].astype(int) * H + grp1)
        cl = np.asarray(pd.factorize(prep.frame["municipality"])[1])[:S.shape[0]]
        V = W[:, pd.Index(labels).get_indexer(cl)]
        df = imp.n_clusters - 1
        se = np.sqrt((S ** 2).sum(axis=0))
        # the equality test (Hotelling), as run.group_tables: its null centred at the truth
        eq.append(equality_test(est - truth, S.T @ S, df, hotelling=True).p_value < 0.05)
        for null, rw_out, hm_out in ((truth, rw, hm), (0.0, rw_pow, hm_pow)):
            t, tb = multiplier_draws(est - null, S, df, V)
            rw_out.append((max_t_adjust(t, tb, plus_one=not enumerated) < 0.05).any())
            p_t = 2 * stats.t.sf(np.abs(est - null) / se, df)
            hm_out.append((holm(p_t) < 0.05).any())
    fwer = float(np.mean(rw))
    mc = np.sqrt(0.05 * 0.95 / reps)
    print(f"\nprogramme groups, G=20, H={H}, {reps} sets, B={B}: FWER Romano-Wolf "
          f"{fwer:.3f}, Holm {np.mean(hm):.3f}; some group found against 0 (true ATTs "
          f"{np.round(truth, 2)}): Romano-Wolf {np.mean(rw_pow):.3f}, Holm {np.mean(hm_pow):.3f}")
    print(f"equality test (Hotelling) rejection rate at 5%: {np.mean(eq):.3f}")
    assert abs(fwer - 0.05) <= 3 * mc
    assert abs(np.mean(eq) - 0.05) <= 3 * mc
    assert np.mean(rw_pow) >= np.mean(hm_pow)  # the point of Romano-Wolf over Holm
