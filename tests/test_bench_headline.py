"""benchmarks/headline.py: the headline regression by impact, pyfixest and linearmodels
on one panel, each in its own process, agree on the estimate (the harness's comparison
is only meaningful if they fit the same model)."""

import sys
from pathlib import Path

import pytest

from impact.simulate.lean import simulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import headline  # noqa: E402


def test_three_implementations_agree_on_one_panel(tmp_path):
    sim = simulate(seed=3)
    panel = tmp_path / "data" / "panel"
    panel.mkdir(parents=True)
    sim.person_months.to_parquet(panel / "person_months.parquet")
    res = {r["method"]: r for r in headline.compare(panel, headline.METHODS, timeout=600)}
    assert all("error" not in r for r in res.values()), res
    iv, ols = res["impact_iv"]["estimate"], res["impact_ols"]["estimate"]
    assert res["pyfixest_iv"]["estimate"] == pytest.approx(iv, rel=1e-8)
    assert res["pyfixest_iv"]["std_error"] == pytest.approx(res["impact_iv"]["std_error"], rel=1e-6)
    assert res["pyfixest_ols"]["estimate"] == pytest.approx(ols, rel=1e-8)
    assert res["linearmodels_ols"]["estimate"] == pytest.approx(ols, rel=1e-8)
    md = headline.table(list(res.values()), "test")
    assert md.count("\n| ") == len(headline.METHODS) + 1
