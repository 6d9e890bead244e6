"""The group quality models' sums from the data-driven check's first pass
(``check_process.sharing``, ``stream.shared_group_sums``): the stage's way when the check
runs in a second process, so the main one makes no pass of its own for those models.

The models fitted from them equal the models' own pass (``quality_groups_file``) to 1e-8:
estimates, cluster scores, pooled effect, person-months, distinct clients and events per
group, and the wild bootstrap's t statistics. Carrying the extra outcomes through the
check's pass changes none of the check's own tables. On a panel with the hard cases of a
real file (a control with missing values, so rows dropped in both passes; a labour-market
column with a gap; rows without quality; person-months in no group of a dimension; a
missing client id; two outcomes beyond the check's own, one carried per column), in small
batches that cut clusters and cells, municipality and region clusters. When an extra
outcome has a missing value (the models drop the row, the check does not), no sums are
sent and the models make their own pass.
"""

import warnings

import numpy as np
import pytest

from estimate.dgp import file_like_panel
from heterogeneity.compare import same_cddf, same_groups
from impact import io
from impact.estimate.params import EstimateParams
from impact.heterogeneity.cddf.stream import cddf_quality_file
from impact.heterogeneity.check_process import CDDF_OUTCOMES, sharing
from impact.heterogeneity.params import OUTCOMES, HeterogeneityParams
from impact.heterogeneity.stream import cluster_labels_file, quality_groups_file
from impact.heterogeneity.wcr import wcr_weights


def _panel(folder, missing_outcome: bool = False):
    pm = file_like_panel(seed=20261204, mask_seed=4)
    rng = np.random.default_rng(11)
    pm["ladder_step"] = pm["ladder_step"].astype("float64").mask(rng.random(len(pm)) < 0.05)
    pm["exit_education"] = ((pm["exit_any"] == 1) & (pm["exit_work"] == 0)
                            & (rng.random(len(pm)) < 0.5)).astype("int64")
    pm["client_id"] = pm["client_id"].astype(object)
    pm.loc[pm.index[100:103], "client_id"] = None
    if missing_outcome:
        pm["exit_any"] = pm["exit_any"].astype("float64")
        pm.loc[pm.index[500], "exit_any"] = np.nan
    path = folder / "person_months.parquet"
    io.write_parquet(pm, path)
    return path


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    return _panel(tmp_path_factory.mktemp("shared"))


def _defaults():
    """(params, het, outcomes): the default dimensions and outcomes, two small splits."""
    het = HeterogeneityParams(cddf_splits=2, cddf_groups=3)
    return EstimateParams.from_dict(seed=7), het, {o: OUTCOMES[o] for o in het.outcomes}


def _check_with_sharing(path, params, het, outcomes, batch_rows):
    sent = []
    share, carry = sharing(outcomes, sent.append)
    res = cddf_quality_file(path, params, het, dict(CDDF_OUTCOMES), min_cell=5,
                            batch_rows=batch_rows, share=share, carry=carry)
    assert len(sent) == 1
    return res, sent[0], carry


@pytest.mark.parametrize("batch_rows,options", [(333, {}), (4096, {"cluster": "region"})],
                         ids=["333-municipality", "4096-region"])
def test_models_from_the_checks_pass_equal_their_own_pass(panel, batch_rows, options):
    params = EstimateParams.from_dict(estimate=options, seed=7)
    het = HeterogeneityParams(cddf_splits=2, cddf_groups=3)
    outcomes = {o: OUTCOMES[o] for o in het.outcomes}
    wcr = wcr_weights(cluster_labels_file(panel, params), B=99, weights="rademacher",
                      seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res, sums, carry = _check_with_sharing(panel, params, het, outcomes, batch_rows)
        assert sorted(carry.values()) == ["exit_any", "exit_education"]
        assert sums is not None
        got = quality_groups_file(panel, params, het.groups, outcomes, wcr=wcr, sums=sums)
        want = quality_groups_file(panel, params, het.groups, outcomes, wcr=wcr,
                                   batch_rows=batch_rows)
        alone = cddf_quality_file(panel, params, het, dict(CDDF_OUTCOMES), min_cell=5,
                                  batch_rows=batch_rows)
    same_groups(got, want)
    assert {w.outcome for w in want} == set(outcomes)
    # the counts are exact (integers), and the hard cases are there
    for g, w in zip(got, want):
        assert np.array_equal(g.n_events, w.n_events) and np.array_equal(g.n_clients,
                                                                          w.n_clients)
    totals = {w.dimension: int(w.n_person_months.sum()) for w in want}
    assert totals["ladder_step"] < max(totals.values())
    same_cddf(res, alone)   # the carried columns change nothing in the check


def test_a_missing_outcome_value_sends_no_sums(tmp_path):
    path = _panel(tmp_path, missing_outcome=True)
    params, het, outcomes = _defaults()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res, sums, _ = _check_with_sharing(path, params, het, outcomes, 1000)
        alone = cddf_quality_file(path, params, het, dict(CDDF_OUTCOMES), min_cell=5,
                                  batch_rows=1000)
    assert sums is None
    same_cddf(res, alone)


def test_sums_of_other_models_are_not_used(panel):
    """Sums made for other dimensions or outcomes are ignored: the models' own pass."""
    params, het, outcomes = _defaults()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, sums, _ = _check_with_sharing(panel, params, het, outcomes, 2000)
        dims = list(het.groups)[:2]
        got = quality_groups_file(panel, params, dims, outcomes, sums=sums)
        want = quality_groups_file(panel, params, dims, outcomes)
        got1 = quality_groups_file(panel, params, het.groups, {"work": "exit_work"},
                                   sums=sums)
        want1 = quality_groups_file(panel, params, het.groups, {"work": "exit_work"})
    same_groups(got, want)
    same_groups(got1, want1)
