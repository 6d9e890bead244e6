"""The sweep through `impact.compute`: the same results in this process, in a local
process pool and on a Dask LocalCluster (one code path: a concurrent.futures executor)."""

import numpy as np
import pandas as pd
import pytest

from impact.compute import ComputeParams, parallel_map
from impact.config import ConfigError
from impact.estimate.params import EstimateParams
from impact.sweep import GridParams, run_cell, run_grid

from decompose.synthetic import make_panel

GRID = GridParams(estimator=("imputation", "twfe"), outcome=("month", "within_6"),
                  fixed_effects=("region_month",), sample=("all", "no_crisis"))


def _square(x):
    return x * x


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    pm, _ = make_panel(5, clients=40)
    pm["spell_id"] = pm["client_id"]  # one spell per client in the synthetic panel
    folder = tmp_path_factory.mktemp("sweep")
    pm.to_parquet(folder / "person_months.parquet", index=False)
    val = folder / "validated"
    val.mkdir()
    ad = pm.dropna(subset=["adoption_month"]).drop_duplicates("municipality")
    pd.DataFrame({"municipality": ad["municipality"], "team_key": None,
                  "programme": "gewogen_maatwerk",
                  "adoption_date": pd.to_datetime(ad["adoption_month"].astype(str))}
                 ).to_parquet(val / "adoption.parquet", index=False)
    return folder / "person_months.parquet", val


def _table(results):
    return pd.DataFrame(results).drop(columns=["warnings"])


def test_serial_process_pool_and_local_cluster_agree(inputs):
    from dask.distributed import Client, LocalCluster

    panel, val = inputs
    params = EstimateParams()
    serial = _table(run_grid(panel, val, params, GRID, ComputeParams(workers=1)))
    assert len(serial) == 8 and (serial["status"] == "ok").all(), serial
    assert serial["estimate"].notna().all()
    pool = _table(run_grid(panel, val, params, GRID, ComputeParams(workers=2)))
    pd.testing.assert_frame_equal(serial, pool)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        dask = _table(run_grid(panel, val, params, GRID, client=client))
        # the same cluster named by its address, as params.yaml compute.scheduler would
        by_address = _table(run_grid(panel, val, params, GRID,
                                     ComputeParams(scheduler=cluster.scheduler_address)))
    pd.testing.assert_frame_equal(serial, dask)
    pd.testing.assert_frame_equal(serial, by_address)
    # the grid's shared sample frames give what each cell aggregating on its own gives
    from impact import io

    adoption = io.read_parquet(val / "adoption.parquet")
    own = _table([run_cell(c, panel, adoption, None, params, GRID) for c in GRID.cells()])
    pd.testing.assert_frame_equal(serial, own)


def test_parallel_map_keeps_the_input_order():
    xs = list(range(40))[::-1]
    assert parallel_map(_square, xs, ComputeParams(workers=2)) == [x * x for x in xs]
    assert parallel_map(_square, xs, ComputeParams(workers=1)) == [x * x for x in xs]


def test_one_worker_runs_submitted_work_at_once():
    """With one worker the executor is this process; ``submit`` runs the function at once
    and its future holds the result or the error (``publish`` submits its briefs so)."""
    from impact.compute import executor

    with executor(ComputeParams(workers=1)) as ex:
        done = ex.submit(_square, 7)
        failed = ex.submit(_square, "x")
    assert done.done() and done.result() == 49
    with pytest.raises(TypeError):
        failed.result()


def test_scheduler_from_the_environment(monkeypatch):
    monkeypatch.setenv("IMPACT_DASK_SCHEDULER", "tcp://example:8786")
    assert ComputeParams().address() == "tcp://example:8786"
    assert ComputeParams(scheduler="tcp://other:1").address() == "tcp://other:1"


@pytest.mark.parametrize("bad", [{"workers": 0}, {"scheduler": 5}, {"cores": 2}])
def test_compute_params_reject_bad_values(bad):
    with pytest.raises(ConfigError):
        ComputeParams.from_dict(bad)
