"""The decompose and benchmark stages load only ``decompose_reads`` of the panel's columns;
the decomposition table, the model's coefficients and the benchmark tables are those of the
whole frame, for the default model and for other controls, clusters and fixed effects."""

import warnings

import numpy as np
import pandas as pd
import pytest

from impact import io
from impact.benchmark import BenchmarkParams, run_benchmark
from impact.decompose import decompose
from impact.decompose.core import decompose_reads
from impact.decompose.params import DecomposeParams
from impact.estimate.params import EstimateParams

from estimate.dgp import simulate


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    pm = simulate(seed=20261130, n_months=36).person_months.drop(columns=["p_true", "tau_true"])
    path = tmp_path_factory.mktemp("reads") / "person_months.parquet"
    io.write_parquet(pm, path)
    return path


def _both(path, params):
    whole = io.read_person_months(path)
    cols = decompose_reads(io.parquet_columns(path), params)
    pruned = io.read_person_months(path, columns=cols)
    return whole, pruned, cols


def _run(pm, params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = decompose(pm, params, DecomposeParams(), min_cell=10)
        coefs = pd.DataFrame({"term": d.fit.names, "estimate": d.fit.coef,
                              "factor": ["quality"] + [d.design.factor(c)
                                                       for c in d.design.columns]})
        b = run_benchmark(pm, pd.DataFrame({"municipality": pm["municipality"].unique(),
                                            "name": "x", "region": "r"}),
                          coefs, d.fit.psi[:, 0], params, BenchmarkParams(), 10)
    return d, b


@pytest.mark.parametrize("options", [
    {},
    {"controls": ["sex", "household", "age_band", "prior_benefit_months"], "cluster": "region"},
], ids=["default", "controls_region"])
def test_pruned_columns_give_the_whole_frame_result(panel, options):
    params = EstimateParams.from_dict(estimate=options)
    whole, pruned, cols = _both(panel, params)
    # identifiers of spells, dates, other outcomes and the simulator's extras are not read
    assert {"spell_id", "month", "exit_any", "quality_n", "adopted", "shock_id"}.isdisjoint(cols)
    assert {"client_id", "team_key", "exit_work", "quality_a"} <= set(cols)
    d_w, b_w = _run(whole, params)
    d_p, b_p = _run(pruned, params)
    pd.testing.assert_frame_equal(d_p.table, d_w.table)
    np.testing.assert_array_equal(d_p.fit.coef, d_w.fit.coef)
    assert d_w.table["status"].eq("ok").any()
    for name in ("municipalities", "teams", "years"):
        pd.testing.assert_frame_equal(getattr(b_p, name), getattr(b_w, name))
    assert len(b_w.teams)  # the team table is built (team_key read)
