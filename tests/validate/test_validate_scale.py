"""Validation is vectorised: a large trajectories table costs seconds, not minutes.

The budget is loose on purpose (shared CI machines); the point is to catch a per-row
Python loop, which would take minutes at this size. A 1-million-row table validated in
about 5 seconds on the development machine.
"""

from __future__ import annotations

import time

import numpy as np

import vdata


def test_250k_spells_with_faults_validate_in_seconds():
    n = 250_000
    raw = vdata.subset(vdata.tables())
    traj = vdata.big_trajectories(n)
    bad = np.random.default_rng(1).choice(n, 5_000, replace=False)
    traj.loc[bad, "birth_year"] = "1800"
    raw["trajectories"] = traj
    t0 = time.perf_counter()
    result = vdata.run(raw)
    elapsed = time.perf_counter() - t0
    t = result.report["tables"]["trajectories"]
    assert t["rejected_by_rule"] == {"out_of_range:birth_year": 5_000}
    assert t["rows_kept"] == n - 5_000
    assert elapsed < 20, f"{elapsed:.1f}s for {n} spells"
