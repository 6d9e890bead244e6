"""The data-driven check of the programme effect read from the panel file in batches
(``cddf.programme_stream.cddf_programme_file``) equals ``cddf_programme`` on the same
rows: every per-split estimate, standard error and count, the proxies and the aggregated
BLP, GATES and CLAN tables, to 1e-8.

Municipality- and region-level clusters, anticipation months, random and fixed
splits, two outcomes, batches
of 113 to 5,000 rows, person-months in no group of a dimension, a labour-market column
with a gap (not a control), shocks (their event-time bins are controls), and a cell whose
region-month never occurs untreated (imputed with the fallback effects).
"""

import warnings

import numpy as np
import pytest

from heterogeneity.compare import both, same_cddf
from impact import io
from impact.estimate.params import EstimateParams
from impact.heterogeneity.cddf import cddf_programme
from impact.heterogeneity.cddf.programme_stream import cddf_programme_file
from impact.heterogeneity.params import HeterogeneityParams
from impact.simulate.lean import simulate



@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    pm = simulate(seed=21, n_muni=12, n_regions=3, n_months=30, caseload=60).person_months
    pm = pm.drop(columns=["p_true", "tau_true"], errors="ignore")
    rng = np.random.default_rng(4)
    pm["ladder_step"] = pm["ladder_step"].astype("float64").mask(rng.random(len(pm)) < 0.05)
    pm["lm_gap_muni"] = pm["lm_unemployment_rate_muni"].mask(rng.random(len(pm)) < 0.01)
    path = tmp_path_factory.mktemp("cddfp") / "person_months.parquet"
    io.write_parquet(pm, path)
    return path


def _both(path, params, het, outcomes=None, **kw):
    return both(cddf_programme, cddf_programme_file, path, params, het, outcomes, **kw)


@pytest.mark.parametrize("batch_rows,options,outcomes,anticipation", [
    (113, {}, None, 0),
    (5000, {"cluster": "region"}, {"work": "exit_work", "any": "exit_any"}, 2),
], ids=["113-municipality", "5000-region-anticipation"])
def test_file_equals_in_memory(panel, batch_rows, options, outcomes, anticipation):
    params = EstimateParams.from_dict(estimate=options,
                                      adoption={"anticipation_months": anticipation})
    het = HeterogeneityParams(cddf_splits=3, cddf_groups=4)
    got, want = _both(panel, params, het, outcomes, min_cell=5, seed=3,
                      batch_rows=batch_rows)
    assert len(want.per_split) and want.per_split["estimate"].notna().any()
    same_cddf(got, want)
    assert "(none)" in set(want.proxies.loc[want.proxies["dimension"] == "ladder_step",
                                            "group"])


def test_fixed_halves_and_a_region_month_never_untreated(panel, tmp_path):
    pm = io.read_person_months(panel)
    # every municipality of one region adopts from the same month on, the others never
    # before it: that region's later months have no untreated cell (the fallback)
    reg = pm["region"].astype(str)
    first = sorted(reg.unique())[0]
    month = pm["month"].sort_values().unique()[10]
    pm["adoption_month"] = pm["adoption_month"].where(reg != first, month)
    path = tmp_path / "person_months.parquet"
    io.write_parquet(pm, path)
    munis = np.sort(pm["municipality"].astype(str).unique())
    het = HeterogeneityParams(cddf_splits=1, cddf_groups=3)
    kw = dict(min_cell=3, main_clusters=[munis[::2], munis[1::3]])
    said = []
    for run in (lambda: cddf_programme(pm, EstimateParams(), het, {"work": "exit_work"}, **kw),
                lambda: cddf_programme_file(path, EstimateParams(), het, {"work": "exit_work"},
                                            batch_rows=700, **kw)):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            said.append((run(), sorted(str(r.message) for r in rec
                                       if "imputed with municipality + t" in str(r.message))))
    (want, fb_want), (got, fb_got) = said
    assert fb_want and fb_got == fb_want   # the same cells fall back, in the same halves
    same_cddf(got, want)


def test_nothing_without_adoption(panel, tmp_path):
    pm = io.read_person_months(panel).drop(columns=["adoption_month"])
    path = tmp_path / "person_months.parquet"
    io.write_parquet(pm, path)
    res = cddf_programme_file(path, EstimateParams(), HeterogeneityParams(), min_cell=3)
    assert res.per_split.empty and res.blp.empty
