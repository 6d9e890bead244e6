"""The quality effect per client group read from the panel file in batches
(``heterogeneity.stream.quality_groups_file``) equals ``quality_by_group`` on the same
rows for every default dimension and outcome: group estimates, cluster scores, the pooled
effect, person-months, distinct clients and events per group, and the wild cluster
restricted bootstrap's observed and drawn t statistics (the same cluster weights), to
1e-8.

The panel has a control with missing values, a labour-market column with a gap, a level
first seen in the last rows, rows without quality, person-months in no group of some
dimensions (the group of their own, not reported) and a dimension whose "no group" is
empty; batches of 50 to 4,096 rows cut cells and clusters. Also: region clusters, a
missing dimension column, and the cluster labels read from the file.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from estimate.dgp import file_like_panel
from heterogeneity.compare import same_groups
from impact import io
from impact.estimate.params import EstimateParams
from impact.heterogeneity.params import OUTCOMES, HeterogeneityParams
from impact.heterogeneity.quality import quality_base, quality_by_group, spare_columns
from impact.heterogeneity.run import _cluster_labels
from impact.heterogeneity.stream import cluster_labels_file, quality_groups_file
from impact.heterogeneity.wcr import wcr_weights



@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    pm = file_like_panel(seed=20261202, mask_seed=9)
    # some ladder steps unrecorded: person-months in no group of that dimension
    pm["ladder_step"] = pm["ladder_step"].astype("float64").mask(
        np.random.default_rng(2).random(len(pm)) < 0.05)
    path = tmp_path_factory.mktemp("groups") / "person_months.parquet"
    io.write_parquet(pm, path)
    return path


def _reference(pm, params, dims, outcomes, wcr):
    base = quality_base(pm, params, outcomes, spare_columns(dims))
    out = []
    for d in dims:
        out += quality_by_group(pm, params, d, outcomes, wcr=wcr, base=base)
    return out


@pytest.mark.parametrize("batch_rows,options", [
    (50, {}),
    (777, {"controls": ["age_band", "sex", "household", "prior_benefit_months"]}),
    (4096, {"cluster": "region"}),
], ids=["50-default", "777-controls", "4096-region"])
def test_groups_from_the_file_equal_the_in_memory_models(panel, batch_rows, options):
    params = EstimateParams.from_dict(estimate=options)
    het = HeterogeneityParams()
    pm = io.read_person_months(panel)
    outcomes = {o: OUTCOMES[o] for o in het.outcomes if OUTCOMES[o] in pm}
    labels = _cluster_labels(pm, params)
    assert list(cluster_labels_file(panel, params)) == list(labels)
    wcr = wcr_weights(labels, B=199, weights="rademacher", seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = _reference(pm, params, het.groups, outcomes, wcr)
        got = quality_groups_file(panel, params, het.groups, outcomes, wcr=wcr,
                                  batch_rows=batch_rows)
    same_groups(got, want)
    # the ladder's unrecorded steps are a group of their own (not reported), and some
    # dimension has every person-month in a group: both cases are covered
    totals = {w.dimension: int(w.n_person_months.sum()) for w in want}
    assert totals["ladder_step"] < max(totals.values())


def test_without_bootstrap_and_with_a_missing_column(panel):
    params = EstimateParams.from_dict(estimate={})
    het = HeterogeneityParams()
    pm = io.read_person_months(panel)
    dims = list(het.groups)[:2] + [type(het.groups[0])("nothing", "no_such_column", "levels",
                                                      ("a",), (("a",),))]
    outcomes = {"work": "exit_work"}
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        got = quality_groups_file(panel, params, dims, outcomes, batch_rows=1000)
    assert any("no_such_column" in str(r.message) for r in rec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = _reference(pm, params, dims[:2], outcomes, None)
    same_groups(got, want)


def test_the_stage_path_reads_the_file_for_the_quality_block(panel):
    """``run.estimate_groups(..., panel=path)`` (what the stage runs) gives the in-memory
    list: the same dimensions in the same order, the same numbers."""
    from impact.heterogeneity.run import estimate_groups

    params = EstimateParams.from_dict(estimate={})
    het = HeterogeneityParams(blocks=("quality",), draws=99)
    pm = io.read_person_months(panel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = estimate_groups(pm, None, None, params, het)
        got = estimate_groups(pm, None, None, params, het, panel=panel)
    same_groups(got, want)


def test_incidence_from_the_file_equals_the_in_memory_counts(panel, tmp_path):
    """Cumulative incidence by group counted by DuckDB on the file (the groups' labels
    joined to the column's distinct values) equals the in-memory table: with and without
    exits to education, for a numeric dimension in bands and a column stored as text."""
    from impact.heterogeneity.run import incidence_by_group

    het = HeterogeneityParams()
    pm = io.read_person_months(panel)
    assert "exit_education" not in pm
    want = incidence_by_group(pm, het, 0.05, 3)
    got = incidence_by_group(None, het, 0.05, 3, panel=panel)
    assert len(want) and set(want["dimension"]) >= {"household", "prior_benefit"}
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=0, atol=1e-12)
    other = pm.copy()
    # half of the exits that are not to work go to education
    other["exit_education"] = ((other["exit_any"] == 1) & (other["exit_work"] == 0)
                               & (np.arange(len(other)) % 2 == 0)).astype("int8")
    other["ladder_step"] = other["ladder_step"].astype("Int64").astype("string")
    path = tmp_path / "person_months.parquet"
    io.write_parquet(other, path)
    want = incidence_by_group(io.read_person_months(path), het, 0.05, 3)
    got = incidence_by_group(None, het, 0.05, 3, panel=path)
    assert (want["outcome"] == "education").any()
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=0, atol=1e-12)
