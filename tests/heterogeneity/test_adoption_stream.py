"""The programme's group effects from the panel file in batches
(``adoption_stream.group_cells_file`` through ``run.estimate_groups(..., panel=)``) equal
the in-memory ones: the group cells themselves, and every group's estimate, cluster
scores, pooled effect, counts and multiplier draws, to 1e-8.

Municipality-level and team-level adoption; batches of 97 to 5,000 rows cut cells and
units; composition columns with missing values (their means skip them); the partial cells
added up along the way (a low bound); two outcomes.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from heterogeneity.compare import close, same_groups
from impact import io
from impact.estimate.adoption import adoption_cells
from impact.estimate.params import EstimateParams
from impact.heterogeneity import adoption_stream
from impact.heterogeneity.adoption import _adoption_t, group_cells
from impact.heterogeneity.adoption_stream import group_cells_file
from impact.heterogeneity.params import HeterogeneityParams
from impact.heterogeneity.run import estimate_groups
from impact.simulate.lean import simulate



def _write(sim, tmp_path):
    pm = sim.person_months.drop(columns=["p_true", "tau_true"], errors="ignore")
    rng = np.random.default_rng(1)
    pm["age"] = pm["age"].astype("float64").mask(rng.random(len(pm)) < 0.03)
    path = tmp_path / "person_months.parquet"
    io.write_parquet(pm, path)
    return path


@pytest.fixture(scope="module", params=[False, True], ids=["municipality", "team"])
def data(request, tmp_path_factory):
    sim = simulate(seed=11, n_muni=10, n_regions=3, n_months=30, caseload=60,
                   team_adoption=request.param)
    return sim, _write(sim, tmp_path_factory.mktemp("adoption"))


@pytest.mark.parametrize("batch_rows", [97, 5000])
def test_group_cells_equal_the_in_memory_cells(data, batch_rows, monkeypatch):
    sim, path = data
    monkeypatch.setattr(adoption_stream, "_REDUCE_ROWS", 500)  # add partial cells up often
    params = EstimateParams()
    het = HeterogeneityParams()
    outcomes = {"work": "exit_work", "any": "exit_any"}
    pm = io.read_person_months(path)
    got = group_cells_file(path, sim.adoption, params, het.groups, outcomes,
                           batch_rows=batch_rows)
    assert set(got) == {d.name for d in het.groups if d.column in pm}
    for d in het.groups:
        codes = d.codes(pm[d.column])
        want = group_cells(adoption_cells(None, pm, sim.adoption, params.adoption.programme,
                                          by={"group": codes},
                                          counts=tuple(outcomes.values())))
        cells, n_clients = got[d.name]
        # the adopted clients per group, counted as ``adoption_by_group`` counts them
        g_t = _adoption_t(pm, want)
        adopted = np.isfinite(g_t) & (pm["t"].to_numpy() >= g_t) & (codes >= 0)
        pairs = pd.DataFrame({"g": codes[adopted], "c": pm["client_id"].to_numpy()[adopted]})
        assert list(n_clients) == list(np.bincount(pairs.drop_duplicates()["g"],
                                                   minlength=len(d.labels))), d.name
        assert list(cells.columns) == list(want.columns), d.name
        for c in want.columns:
            if want[c].dtype == object or str(want[c].dtype) in ("str", "string"):
                assert cells[c].astype(str).tolist() == want[c].astype(str).tolist(), c
            else:
                close(cells[c], want[c], f"{d.name}: {c}")
        assert n_clients.sum() > 0


def test_group_effects_from_the_file_equal_the_in_memory_ones(data):
    sim, path = data
    params = EstimateParams()
    het = HeterogeneityParams(blocks=("adoption",), draws=99)
    pm = io.read_person_months(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = estimate_groups(pm, sim.adoption, sim.shocks, params, het)
        got = estimate_groups(None, sim.adoption, sim.shocks, params, het, panel=path)
    assert len(want)
    same_groups(got, want)


def test_a_text_rule_on_an_integer_column_with_a_gap(data, tmp_path):
    """Read whole, an integer column with a missing value is float64, so a rule value
    given as text ("1") matches no row in memory while 2 matches numerically; every batch
    must see the column the same way (``io.iter_batches``), also batches without the
    missing value."""
    from impact.heterogeneity.params import GroupDimension

    sim, _ = data
    pm = sim.person_months.drop(columns=["p_true", "tau_true"], errors="ignore")
    pm["ladder_step"] = pm["ladder_step"].astype("Int64")
    pm.loc[pm.index[-1], "ladder_step"] = pd.NA           # the gap: in the last batch only
    path = tmp_path / "person_months.parquet"
    io.write_parquet(pm, path)
    dim = GroupDimension("ladder_text", "ladder_step", "levels", ("low", "high"),
                         (("1", 2), ("3", 4)))
    params = EstimateParams()
    whole = io.read_person_months(path)
    codes = dim.codes(whole["ladder_step"])
    assert set(np.unique(codes)) == {-1, 0, 1}            # "1" and "3" match nothing
    want = group_cells(adoption_cells(None, whole, sim.adoption, params.adoption.programme,
                                      by={"group": codes}, counts=("exit_work",)))
    got, _ = group_cells_file(path, sim.adoption, params, [dim], {"work": "exit_work"},
                              batch_rows=500)["ladder_text"]
    assert len(got) == len(want)
    close(got["person_months"], want["person_months"], "person-months")
