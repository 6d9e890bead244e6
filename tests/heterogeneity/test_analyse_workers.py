"""The heterogeneity analysis with a second process (``analyse(..., workers=2)``, the
stage's default on a multi-core machine: the quality check and the cumulative incidence
there; the programme check, the intermediate results and the group effects here) gives
the same tables as run in one process: every part is deterministic and reads only files,
and the group quality models' sums shared by the check's first pass are those of their
own pass. With the programme block alone, the second process makes the programme check.
The intermediate results' tables given as the validated Parquet files (the stage's way)
or as frames give the same table too."""

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd

from impact import io
from impact.estimate import EstimateParams
from impact.heterogeneity.params import HeterogeneityParams
from impact.heterogeneity.run import analyse
from impact.simulate.lean import simulate

from heterogeneity.progress_data import progress_tables


SIM = dict(seed=20261203, n_muni=10, n_regions=3, n_months=30, caseload=80, n_cw=4)
HET = HeterogeneityParams(draws=99, cddf_splits=2, cddf_groups=3)


def test_second_process_gives_the_same_tables(tmp_path):
    sim = simulate(**SIM)
    path = tmp_path / "person_months.parquet"
    io.write_parquet(sim.person_months.drop(columns=["p_true", "tau_true"]), path)
    het = HET
    params = EstimateParams.from_dict(seed=3)
    traj, pr, _ = progress_tables(sim.person_months, np.random.default_rng(7))
    io.write_parquet(traj, tmp_path / "trajectories.parquet")
    io.write_parquet(pr.assign(date=pd.to_datetime(pr["date"])), tmp_path / "progress.parquet")
    logs = {1: [], 2: [], 3: []}

    def run(workers, files=True):
        tables = ({"trajectories": tmp_path / "trajectories.parquet",
                   "progress_table": tmp_path / "progress.parquet"} if files else
                  {"trajectories": traj, "progress_table": pr.assign(
                      date=pd.to_datetime(pr["date"]))})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return analyse(None, adoption=sim.adoption, shocks=sim.shocks, params=params,
                           het=het, min_cell=5, t_start=int(sim.person_months["t"].min()) + 6,
                           log=logs[workers + (not files)].append, panel=path,
                           workers=workers, **tables)

    one, two, frames = run(1), run(2), run(2, files=False)
    assert any("second process" in m for m in logs[2])
    assert not any("second process" in m for m in logs[1])
    assert all(any("intermediate results" in m for m in logs[w]) for w in (1, 2, 3))
    # the incidence is the second process's there (its log is not this one's)
    assert "cumulative incidence" in logs[1] and "cumulative incidence" not in logs[2]
    assert len(one.progress) and one.progress["estimate"].notna().any()
    for other in (two, frames):
        pd.testing.assert_frame_equal(one.progress, other.progress)
    # with the check in a second process the group quality models take their sums from
    # its first pass (tests/heterogeneity/test_shared_sums.py); alone, their own pass
    assert any("from the data-driven check's first pass" in m for m in logs[2])
    assert any("one pass over the panel file" in m and "quality" in m for m in logs[1])
    assert set(one.cddf) == set(two.cddf) == {"blp", "gates", "clan"}
    assert len(one.cddf["gates"]) and set(one.cddf["gates"]["block"]) == {"quality", "adoption"}
    for name in one.cddf:
        pd.testing.assert_frame_equal(one.cddf[name], two.cddf[name])
    for a, b in ((one.groups, two.groups), (one.tests, two.tests),
                 (one.incidence, two.incidence)):
        pd.testing.assert_frame_equal(a, b)
    assert one.meta == two.meta


def test_the_programme_block_alone_goes_to_the_second_process(tmp_path):
    sim = simulate(**SIM)
    path = tmp_path / "person_months.parquet"
    io.write_parquet(sim.person_months.drop(columns=["p_true", "tau_true"]), path)
    het = replace(HET, blocks=("adoption",))
    logs: dict[int, list] = {1: [], 2: []}

    def run(workers):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return analyse(None, trajectories=None, adoption=sim.adoption, shocks=sim.shocks,
                           progress_table=None, params=EstimateParams.from_dict(seed=3),
                           het=het, min_cell=5, t_start=int(sim.person_months["t"].min()),
                           log=logs[workers].append, panel=path, workers=workers)

    one, two = run(1), run(2)
    assert any("data-driven check, programme" in m for m in logs[1])
    assert not any(m.startswith("data-driven check, programme") for m in logs[2])
    assert set(one.cddf["gates"]["block"]) == {"adoption"} and len(one.groups)
    assert set(one.groups["block"]) == {"adoption"}
    for name in one.cddf:
        pd.testing.assert_frame_equal(one.cddf[name], two.cddf[name])
    for a, b in ((one.groups, two.groups), (one.tests, two.tests),
                 (one.incidence, two.incidence)):
        pd.testing.assert_frame_equal(a, b)
