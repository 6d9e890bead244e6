"""Without the optional tables (quality, adoption, shocks, caseworker_assignments) the
whole pipeline still runs on the small preset: the data block of reports/metrics.json is
filled, the quality, adoption and shock blocks are null (not zero), and the data-quality
report notes each absent table."""

from __future__ import annotations

import json

import pytest

from pipeline_utils import SMALL, make_repo, run
from test_recovery_builtin import ONLY_HEADLINE, STAGES

pytestmark = [pytest.mark.slow]

ABSENT = ("quality", "adoption", "shocks", "caseworker_assignments", "progress")


def test_pipeline_without_optional_tables_leaves_their_blocks_null(tmp_path):
    repo = make_repo(tmp_path, {**SMALL, **ONLY_HEADLINE}, git=False)
    simulate, *rest = STAGES
    assert simulate[0] == "pipeline/simulate.py"
    run(["python", *simulate], repo)
    for name in ABSENT:
        (repo / "data" / "simulated" / f"{name}.csv").unlink()
    for stage in rest:
        run(["python", *stage], repo)

    metrics = json.loads((repo / "reports" / "metrics.json").read_text())
    assert metrics["quality"] is None and metrics["adoption"] is None and metrics["shock"] is None
    data = metrics["data"]
    assert data["spells"] > 0 and data["person_months"] > 0 and data["rejected_rows"] == 0

    report = json.loads((repo / "reports" / "data_quality.json").read_text())
    assert set(ABSENT) <= set(report["missing_optional_tables"])
    assert not set(ABSENT) & set(report["tables"])
    md = (repo / "reports" / "data_quality.md").read_text()
    for name in ABSENT:
        note = next(n for n in report["notes"] if f"'{name}' not given" in n)
        assert note in md
    for block in ("quality", "adoption", "shock"):
        assert any(f"{block} block of reports/metrics.json is null" in n for n in report["notes"])
    manifest = json.loads((repo / "data" / "validated" / "manifest.json").read_text())
    assert set(manifest["tables"]) == {"municipalities", "trajectories", "labour_market"}


def test_decomposition_and_benchmark_without_optional_tables(tmp_path):
    """Without quality, adoption and shocks the decomposition still splits the change
    into composition, labour market and residual (quality and shocks exactly zero), and
    the benchmark has expected rates and naive ranks but no quality contribution."""
    import numpy as np
    import pandas as pd

    repo = make_repo(tmp_path, {**SMALL, **ONLY_HEADLINE}, git=False)
    simulate, *rest = STAGES
    run(["python", *simulate], repo)
    for name in ABSENT:
        (repo / "data" / "simulated" / f"{name}.csv").unlink()
    for stage in rest:
        if stage[0] in ("pipeline/validate.py", "pipeline/panel.py", "pipeline/decompose.py",
                        "pipeline/benchmark.py"):
            run(["python", *stage], repo)
    d = pd.read_csv(repo / "data/decompose/decomposition.csv")
    ok = d[d["status"] == "ok"]
    assert len(ok)
    for comp in ("quality", "shocks"):
        assert (ok.loc[ok["component"] == comp, "contribution_pp"] == 0).all()
    wide = ok.pivot_table(index=["municipality", "period_from"], columns="component",
                          values="contribution_pp")
    parts = wide[["composition", "labour_market", "shocks", "quality", "residual"]].sum(axis=1)
    assert np.max(np.abs(parts - wide["observed_change"])) < 1e-9
    b = pd.read_csv(repo / "data/benchmark/benchmark.csv")
    pub = b[b["published"]]
    assert len(pub) and pub["expected_rate_pp"].notna().all() and pub["rank_naive"].notna().all()
    assert pub["quality_contribution_pp"].isna().all() and pub["rank_quality"].isna().all()
