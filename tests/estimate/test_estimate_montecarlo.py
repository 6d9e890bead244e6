"""Monte Carlo: mean bias of the quality and adoption estimators within 3 Monte Carlo SEs.

A single draw cannot show bias; the mean over replications can. R replications of the
lean DGP with fixed seeds (1000..1000+R-1, chosen before any result was seen); the test
fails when |mean(estimate - truth)| > 3 * sd / sqrt(R) (about 0.3% of the time for an
unbiased estimator), and when the standard errors are far too small (coverage of the
95% interval below 80% in R = 25 draws is very unlikely when it is 95%).
"""

import warnings

import numpy as np
import pytest

from impact.estimate import EstimateParams
from impact.estimate.adoption import adoption_cells, estimate_adoption
from impact.estimate.frames import shock_events
from impact.estimate.quality import estimate_quality

from .dgp import simulate

R = 25


@pytest.fixture(scope="session")
def draws():
    params = EstimateParams.from_dict(seed=1)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in range(R):
            sim = simulate(seed=1000 + r, n_muni=16, n_regions=4, n_months=48, caseload=220,
                           n_cw=5)
            _, q = estimate_quality(sim.person_months, params)
            frame = adoption_cells(sim.cells, sim.person_months, sim.adoption,
                                   params.adoption.programme)
            events = shock_events(sim.shocks, params.shock.type)
            _, a = estimate_adoption(frame, events, params)
            out.append((q["effect_pp"] - sim.truth["quality_pp"], q["std_error"], q["ci_low"],
                        q["ci_high"], sim.truth["quality_pp"],
                        a["att_pp"] - sim.truth["att_pp"], a["std_error"], a["ci_low"],
                        a["ci_high"], sim.truth["att_pp"]))
    return np.array(out)


@pytest.mark.slow
@pytest.mark.parametrize("name, j", [("quality", 0), ("adoption", 5)])
def test_mean_bias_within_three_mc_se(draws, name, j):
    err = draws[:, j]
    mcse = err.std(ddof=1) / np.sqrt(len(err))
    assert abs(err.mean()) < 3 * mcse, (name, err.mean(), mcse)


@pytest.mark.slow
@pytest.mark.parametrize("name, j", [("quality", 0), ("adoption", 5)])
def test_interval_coverage_not_far_below_nominal(draws, name, j):
    truth = draws[:, j + 4]
    covered = (draws[:, j + 2] <= truth) & (truth <= draws[:, j + 3])
    assert covered.mean() >= 0.8, (name, covered.mean())
