"""The estimate stage loads only the person-month columns its specification reads
(``run.panel_columns``) and, for the quality 2SLS, OLS, hazard and value-added, hands the
panel file to them (``quality_stream``, ``hazard_stream``, ``value_added_stream``).
Either way the specification's rows, headline and warnings are those of the whole frame
in memory."""

import multiprocessing
import warnings

import numpy as np
import pandas as pd
import pytest

from impact import io
from impact.estimate import EstimateParams
from impact.estimate.run import load_person_months, panel_columns, run_specification
from impact.estimate.shock import WEIGHT
from impact.estimate.specs import parse_specifications

SPECS = parse_specifications({
    "q_iv": {"block": "quality", "estimator": "iv"},
    "q_ols_inflow": {"block": "quality", "estimator": "ols", "sample": "inflow"},
    "q_va": {"block": "quality", "estimator": "iv", "value_added": True},
    "q_va_inflow": {"block": "quality", "estimator": "iv", "value_added": True,
                    "sample": "inflow"},
    "q_hazard": {"block": "quality", "estimator": "hazard_cloglog"},
    "q_hazard_logit_inflow": {"block": "quality", "estimator": "hazard_logit",
                              "sample": "inflow"},
    "a_imp": {"block": "adoption", "estimator": "imputation"},
    "a_bacon": {"block": "adoption", "estimator": "bacon"},
    "shock": {"block": "shock", "estimator": "imputation"},
})


def _run(spec, pm, sim, params, panel=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_specification(spec, pm, sim.cells, sim.quality, sim.adoption, sim.shocks,
                                 params, panel=panel)


@pytest.mark.parametrize("name", list(SPECS))
def test_pruned_frame_and_file_give_the_whole_frame_result(sim, tmp_path, name):
    params = EstimateParams.from_dict(adoption={"ri_permutations": 0})
    spec = SPECS[name]
    path = tmp_path / "person_months.parquet"
    io.write_parquet(sim.person_months, path)
    whole = io.read_person_months(path)
    cols = panel_columns(spec, params, sim.adoption)
    assert cols is not None and len(cols) <= 3
    if spec.block == "quality":  # everything from the file, value-added too
        assert cols == []
    ref = _run(spec, whole, sim, params)
    got = _run(spec, load_person_months(path, cols), sim, params, panel=path)
    if spec.block != "quality":  # the cell models' weighted distinct rows, and the columns
        rows = load_person_months(path, cols)
        assert rows[WEIGHT].sum() == len(whole) and len(rows) < len(whole) / 50
        also = _run(spec, whole[cols], sim, params, panel=path)
        pd.testing.assert_frame_equal(also.tidy, got.tidy)
        assert also.meta["n_person_months"] == got.meta["n_person_months"]
    assert ref.headline[spec.block] is not None
    a, b = ref.tidy, got.tidy
    assert a.shape == b.shape
    num = a.select_dtypes("number").columns
    # value-added's numbers after its optimisers agree to their tolerance
    # (tests/estimate/test_value_added_stream.py); everything else to 1e-8
    va = a["model"].str.startswith("quality_value_added").to_numpy()
    for rows, rtol in ((~va, 1e-8), (va, 1e-6)):
        np.testing.assert_allclose(b.loc[rows, num].to_numpy(float),
                                   a.loc[rows, num].to_numpy(float), rtol=rtol, atol=1e-12)
    assert ref.meta["warnings"] == got.meta["warnings"]
    assert ref.meta["n_person_months"] == got.meta["n_person_months"]
    assert ref.tables.keys() == got.tables.keys()  # value-added's unit tables
    for k in ref.tables:
        # (pp; an interval end near 0 has no relative precision: 1e-8 pp absolute)
        pd.testing.assert_frame_equal(ref.tables[k], got.tables[k], check_exact=False,
                                      rtol=1e-6, atol=1e-8)


def test_team_adoption_reads_every_column(sim):
    team = sim.person_months["team_key"].dropna().iloc[0]
    adoption = pd.concat([sim.adoption, sim.adoption.iloc[:1].assign(team_key=team)],
                         ignore_index=True)
    assert panel_columns(SPECS["a_imp"], EstimateParams(), adoption) is None
    assert panel_columns(SPECS["a_imp"], EstimateParams(), sim.adoption) is not None


def test_robustness_on_the_pruned_columns(sim, tmp_path):
    """The robustness stage loads ``cell_model_columns`` as weighted distinct rows
    (``load_person_months``): the same checks (placebo adoption and shocks, leave one
    municipality out) as on every column."""
    from impact.compute import ComputeParams
    from impact.estimate.run import cell_model_columns
    from impact.robustness import RobustnessParams, run_robustness

    params = EstimateParams()
    cols = cell_model_columns(sim.adoption, params.adoption.programme)
    head = {"adoption": {"att_pp": 1.0}, "quality": None, "shock": None}
    args = (sim.adoption, sim.shocks, params, RobustnessParams(placebo_shift_months=6), head,
            None, None,
            ComputeParams.from_dict({"workers": 1}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = run_robustness(sim.cells, sim.person_months, *args)
        got = run_robustness(sim.cells, sim.person_months[cols], *args)
        path = tmp_path / "person_months.parquet"
        io.write_parquet(sim.person_months, path)
        rows = run_robustness(sim.cells, load_person_months(path, cols), *args)
    for a, b in zip(ref, rows):
        pd.testing.assert_frame_equal(a, b)
    assert ref[0]["estimate"].iloc[:2].notna().all()  # placebo adoption dates and shocks
    assert ref[1]["estimate"].notna().sum() == sim.cells["municipality"].nunique()
    for a, b in zip(ref, got):
        pd.testing.assert_frame_equal(a, b)


def test_value_added_levels_in_two_processes(sim, tmp_path):
    """``workers=2`` (the stage's default on two cores): value-added's levels in two
    processes give the same rows, tables and warnings, in the same order."""
    params = EstimateParams.from_dict(adoption={"ri_permutations": 0})
    path = tmp_path / "person_months.parquet"
    pm = sim.person_months.copy()
    pm.loc[pm.index[::7], "team_key"] = None  # a warning-worthy gap at the team level
    io.write_parquet(pm, path)
    runs = {}
    for workers in (1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runs[workers] = run_specification(SPECS["q_va"], None, sim.cells, sim.quality,
                                              sim.adoption, sim.shocks, params, panel=path,
                                              workers=workers)
    one, two = runs[1], runs[2]
    assert any("value_added" in m for m in one.tidy["model"])
    pd.testing.assert_frame_equal(one.tidy, two.tidy)
    assert one.meta["warnings"] == two.meta["warnings"]
    assert any("value-added" in w or "team" in w for w in one.meta["warnings"]), one.meta
    assert one.tables.keys() == two.tables.keys() == {"value_added_caseworker",
                                                      "value_added_team"}
    for k in one.tables:
        pd.testing.assert_frame_equal(one.tables[k], two.tables[k])


@pytest.mark.skipif(multiprocessing.get_start_method() != "fork",
                    reason="the workers must inherit the slowed value-added")
def test_an_error_beside_value_added_ends_its_workers(sim, tmp_path, monkeypatch):
    """Value-added's workers start before the specification's own work
    (``value_added_run``); when that work fails, the error comes at once and the workers
    are ended, not waited for."""
    import time

    import impact.estimate.run as run
    import impact.estimate.value_added_stream as vs

    path = tmp_path / "person_months.parquet"
    io.write_parquet(sim.person_months, path)

    def slow(*args, **kwargs):
        time.sleep(300)

    def fails(*args, **kwargs):
        raise RuntimeError("the 2SLS failed")

    monkeypatch.setattr(vs, "value_added_file", slow)  # inherited by the forked workers
    monkeypatch.setattr(run, "quality_block", fails)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="the 2SLS failed"):
        run_specification(SPECS["q_va"], None, sim.cells, sim.quality, sim.adoption,
                          sim.shocks, EstimateParams(), panel=path, workers=2)
    assert time.monotonic() - t0 < 60
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("batch_rows", [7, 1 << 20])
@pytest.mark.parametrize("t_missing", [False, True])
def test_cell_model_rows_count_the_person_months_of_every_triple(tmp_path, batch_rows,
                                                                 t_missing):
    """Arrow's counts of each batch summed equal pandas' groupby of the whole file: text
    read as dictionaries whose codes differ by row group, missing adoption months and
    municipalities kept as groups of their own, the dtypes the batches read give (an
    integer month with a missing value in one row group: float64 in every batch)."""
    from impact.estimate.shock import cell_model_rows

    rng = np.random.default_rng(8)
    n = 3_000
    muni = pd.Series(rng.choice(["GM0003", "GM0001", "GM0002"], n), dtype="str")
    muni[rng.random(n) < 0.01] = None
    adopt = pd.to_datetime(pd.Series(rng.choice(["2020-01-01", "2021-06-01"], n)))
    adopt[rng.random(n) < 0.3] = pd.NaT
    pm = pd.DataFrame({"municipality": muni, "t": rng.integers(600, 640, n).astype("int32"),
                       "adoption_month": adopt.dt.date, "other": rng.random(n)})
    if t_missing:
        pm["t"] = pm["t"].astype("Int32")
        pm.loc[2_600, "t"] = pd.NA
    path = tmp_path / "pm.parquet"
    pm.to_parquet(path, row_group_size=500)   # a dictionary per row group
    got = cell_model_rows(path, batch_rows=batch_rows)
    assert str(got["t"].dtype) == ("float64" if t_missing else "int32")
    cols = ["municipality", "t", "adoption_month"]
    # the person-months as the streamed passes read them (``io.iter_batches``: the whole
    # file's dtypes in every batch), counted by pandas
    whole = pd.concat(list(io.iter_batches(path, cols, 1 << 20)), ignore_index=True)
    want = (whole.groupby(cols, dropna=False, sort=True, observed=True).size()
            .rename(WEIGHT).reset_index())
    pd.testing.assert_frame_equal(got, want)
    assert got[WEIGHT].sum() == n and got["adoption_month"].isna().any()
    assert got["municipality"].isna().any()
    pm.iloc[:0].to_parquet(tmp_path / "none.parquet")
    empty = cell_model_rows(tmp_path / "none.parquet")
    assert len(empty) == 0 and list(empty.columns) == [*cols, WEIGHT]
