"""Fixtures of the estimator tests: one lean simulated data set and its estimates.

Seeds are fixed once, before any result was seen, and never changed to make a test pass.
"""

import warnings

import pytest

from impact.estimate import EstimateParams, estimate_all

from .dgp import simulate

SEED = 20261124


@pytest.fixture(scope="session")
def sim():
    return simulate(seed=SEED)


@pytest.fixture(scope="session")
def params():
    return EstimateParams.from_dict(seed=SEED)


@pytest.fixture(scope="session")
def result(sim, params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimate_all(sim.person_months, sim.cells, sim.quality, sim.adoption,
                            sim.shocks, params)
