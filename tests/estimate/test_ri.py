"""Randomization inference for adoption: the permutation keeps the schedule, a large
effect gives the smallest attainable p-value, and under no effect p is ~uniform (slow).

Data: ``dgp.staggered_cells`` (40 units, 48 months, four adoption dates, 4 never-adopters;
``slope=0`` plants no effect, the default slope 0.3 pp per month since adoption a large
one). Estimators: the pipeline's ``estimate_adoption`` (imputation ATT) and, for the
many-replication check, a lean imputation ATT (unit + month effects fitted on untreated
cells) with the same estimand.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from impact.estimate.adoption import adoption_cells, estimate_adoption
from impact.estimate.frames import rate_pp
from impact.estimate.linalg import build_design, wls_fit
from impact.estimate.params import EstimateParams
from impact.estimate.ri import permute_adoption, randomization_inference

from .dgp import staggered_cells

_EVENTS = pd.DataFrame(columns=["municipality", "t", "shock_id"])


def _frame(seed, slope):
    cells, adoption, truth = staggered_cells(seed=seed, slope=slope)
    return adoption_cells(cells, None, adoption, "gewogen_maatwerk"), truth


def lean_att(frame):
    """Imputation ATT: Y(0) = unit + month effects on untreated cells, person-month weights."""
    y = rate_pp(frame["exits_work"], frame["person_months"])
    p = frame["person_months"].to_numpy(dtype="float64")
    tr = (frame["t"].to_numpy() - frame["g"].to_numpy()) >= 0
    d = build_design(frame, ["unit", "t"], [])
    fit = wls_fit(d, y, p, ~tr)
    yhat = d.Z[tr][:, fit.keep] @ fit.coef[fit.keep]
    return float(np.average(y[tr] - yhat, weights=p[tr]))


def pipeline_att(frame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, head = estimate_adoption(frame, _EVENTS, EstimateParams.from_dict(seed=1))
    return head["att_pp"]


def test_permutation_keeps_schedule():
    f, _ = _frame(1, 0.3)
    rng = np.random.default_rng(0)
    g0 = f.groupby("unit")["g"].first()
    g1 = permute_adoption(f, rng).groupby("unit")["g"].first()
    assert sorted(g0.fillna(-1)) == sorted(g1.fillna(-1))  # same multiset, NaN = never
    assert (g0.fillna(-1) != g1.fillna(-1)).any()
    assert f.groupby("unit")["g"].first().equals(g0)  # input not mutated
    assert permute_adoption(f, rng).groupby("unit")["g"].nunique(dropna=False).max() == 1


def test_large_effect_small_p_with_pipeline_estimator():
    f, truth = _frame(1, 0.3)
    res = randomization_inference(f, pipeline_att, n_perm=49, seed=7)
    assert res.att_obs == pytest.approx(truth, abs=0.1)
    assert res.n_failed == 0
    assert res.p_value == pytest.approx(1 / 50)  # no permutation reaches the observed ATT


def test_p_value_definition_and_errors():
    f, _ = _frame(2, 0.0)
    res = randomization_inference(f, lean_att, n_perm=30, seed=3)
    hits = np.sum(np.abs(res.att_perm) >= abs(res.att_obs))
    assert res.p_value == pytest.approx((1 + hits) / 31)
    again = randomization_inference(f, lean_att, n_perm=30, seed=3)
    np.testing.assert_array_equal(res.att_perm, again.att_perm)  # seeded
    bad = f.copy()
    bad.loc[bad.index[0], "g"] = 5.0
    with pytest.raises(ValueError, match="more than one adoption month"):
        randomization_inference(bad, lean_att, n_perm=5)
    with pytest.raises(ValueError, match="no unit adopts"):
        randomization_inference(f.assign(g=np.nan), lean_att, n_perm=5)


@pytest.mark.slow
def test_null_p_values_uniform():
    """300 data sets with no effect, 49 permutations each: p ~ U(0, 1).

    A first run of this check (seeds 100..139, 99 permutations) gave mean p 0.65 and KS
    p 0.0005; 200 further data sets showed the observed and permuted ATTs with the same
    spread (sd 0.035 vs 0.034), and this larger run (seeds 2000..2299, first run) mean p
    0.486, KS p 0.52, rejection 0.053 at 5%. Reported, not hidden: see the issue report.
    """
    ps = np.array([randomization_inference(_frame(2000 + r, 0.0)[0], lean_att, n_perm=49,
                                           seed=r).p_value for r in range(300)])
    print("RI null p-values: mean", ps.mean().round(3), "reject 5%", np.mean(ps <= 0.05),
          "KS p", stats.kstest(ps, "uniform").pvalue.round(3))
    assert stats.kstest(ps, "uniform").pvalue > 0.01
    assert abs(ps.mean() - 0.5) <= 3 * np.sqrt(1 / 12 / 300)
    assert abs(np.mean(ps <= 0.05) - 0.05) <= 3 * np.sqrt(0.05 * 0.95 / 300)
