"""The data-driven check of the quality effect read from the panel file in batches
(``cddf.stream.cddf_quality_file``) equals ``cddf_quality`` on the same rows: every
per-split estimate, standard error and count, the proxies, and the aggregated BLP, GATES
and CLAN tables, to 1e-8.

The panel (``file_like_panel``) has a control with missing values, a labour-market column
with a gap, rows without quality, person-months in no group of a dimension and one
dimension without such rows; batches of 50 to 4,096 rows cut cells and clusters. Also:
random and fixed splits, two outcomes, region clusters, a missing dimension column and
the caseworker clusters of a one-municipality extract.
"""

import warnings

import numpy as np
import pytest

from estimate.dgp import file_like_panel
from heterogeneity.compare import both, same_cddf
from impact import io
from impact.estimate.params import EstimateParams
from impact.heterogeneity.cddf import cddf_quality
from impact.heterogeneity.cddf.split import quantile_groups
from impact.heterogeneity.cddf.stream import _quantiles, cddf_quality_file
from impact.heterogeneity.params import HeterogeneityParams



@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    pm = file_like_panel(seed=20261203, mask_seed=4)
    pm["ladder_step"] = pm["ladder_step"].astype("float64").mask(
        np.random.default_rng(5).random(len(pm)) < 0.05)
    path = tmp_path_factory.mktemp("cddf") / "person_months.parquet"
    io.write_parquet(pm, path)
    return path


def _both(path, params, het, outcomes=None, **kw):
    return both(cddf_quality, cddf_quality_file, path, params, het, outcomes, **kw)


@pytest.mark.parametrize("batch_rows,options,splits", [
    (50, {}, 2),
    (777, {"controls": ["age_band", "sex", "household"]}, 3),
    (4096, {"cluster": "region"}, 2),
], ids=["50-default", "777-controls", "4096-region"])
def test_file_equals_in_memory(panel, batch_rows, options, splits):
    params = EstimateParams.from_dict(estimate=options)
    het = HeterogeneityParams(cddf_splits=splits, cddf_groups=4)
    outcomes = {"work": "exit_work", "any": "exit_any"} if splits == 3 else None
    got, want = _both(panel, params, het, outcomes, min_cell=5, seed=7,
                      batch_rows=batch_rows)
    assert len(want.per_split) and want.per_split["estimate"].notna().any()
    same_cddf(got, want)
    # the ladder's unrecorded steps are a level of their own, in the proxy and in CLAN
    assert "(none)" in set(want.proxies.loc[want.proxies["dimension"] == "ladder_step",
                                            "group"])


def test_fixed_halves_a_missing_dimension_and_five_groups(panel):
    params = EstimateParams()
    base = HeterogeneityParams(cddf_splits=1, cddf_groups=5)
    dims = list(base.groups)[:3] + [type(base.groups[0])("nothing", "no_such_column",
                                                         "levels", ("a",), (("a",),))]
    het = HeterogeneityParams(cddf_splits=1, cddf_groups=5, groups=tuple(dims))
    munis = np.sort(io.read_person_months(panel)["municipality"].astype(str).unique())
    got, want = _both(panel, params, het, {"work": "exit_work"}, min_cell=3,
                      main_clusters=[munis[1::2], munis[::3]])
    same_cddf(got, want)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        cddf_quality_file(panel, params, het, {"work": "exit_work"},
                          main_clusters=[munis[1::2]])
    assert any("no_such_column" in str(r.message) for r in rec)


def test_one_municipality_clusters_by_caseworker(panel, tmp_path):
    pm = io.read_person_months(panel)
    one = pm[pm["municipality"] == pm["municipality"].iloc[0]].reset_index(drop=True)
    path = tmp_path / "person_months.parquet"
    io.write_parquet(one, path)
    got, want = _both(path, EstimateParams(), HeterogeneityParams(cddf_splits=2),
                      {"work": "exit_work"}, min_cell=2, batch_rows=300)
    # caseworkers, not the one municipality
    assert set(want.main_clusters[0]) <= set(one["caseworker_key"].dropna().astype(str))
    same_cddf(got, want)


def test_weighted_quantiles_equal_numpy_on_the_rows():
    rng = np.random.default_rng(3)
    for _ in range(200):
        S = rng.choice(rng.normal(size=rng.integers(1, 8)).round(2), size=rng.integers(1, 60))
        vals, w = np.unique(S, return_counts=True)
        for K in (2, 3, 4, 5, 7):
            want = np.quantile(S, np.arange(1, K) / K)
            got = _quantiles(vals, w.astype(float), K)
            assert np.array_equal(got, want), (S, K)
            assert np.array_equal(np.searchsorted(got, S, side="left"), quantile_groups(S, K))
