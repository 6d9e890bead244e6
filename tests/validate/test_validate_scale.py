"""Validation at scale: a 250,000-spell table with planted faults rejects exactly them.

Speed is measured by ``benchmarks/bench_validate.py`` (docs/performance.md), not here:
the project's rule is no timed unit tests.
"""

from __future__ import annotations

import numpy as np

import vdata


def test_250k_spells_with_faults_reject_exactly_the_faults():
    n = 250_000
    raw = vdata.subset(vdata.tables())
    traj = vdata.big_trajectories(n)
    bad = np.random.default_rng(1).choice(n, 5_000, replace=False)
    traj.loc[bad, "birth_year"] = "1800"
    raw["trajectories"] = traj
    result = vdata.run(raw)
    t = result.report["tables"]["trajectories"]
    assert t["rejected_by_rule"] == {"out_of_range:birth_year": 5_000}
    assert t["rows_kept"] == n - 5_000
