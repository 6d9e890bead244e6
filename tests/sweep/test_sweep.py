"""The specification grid: params, cell names (as DVC's matrix names its stages), the
cells' outcome frames, and the specification curve."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from impact.config import ConfigError
from impact.estimate.params import EstimateParams
from impact.sweep import AXES, GridParams, cell_name, run_cell
from impact.sweep.cells import cell_frame
from impact.sweep.curve import curve_figure, curve_table, summary

ROOT = Path(__file__).resolve().parents[2]


def test_default_grid_has_at_least_24_cells():
    grid = GridParams.from_dict(yaml.safe_load((ROOT / "params.yaml").read_text())["grid"])
    assert len(grid.cells()) >= 24
    assert len({cell_name(c) for c in grid.cells()}) == len(grid.cells())


def test_cell_names_are_dvc_stage_names():
    """The report reads data/sweep/<cell_name>; DVC's matrix must name the same cells."""
    out = subprocess.run([str(Path(sys.executable).parent / "dvc"), "stage", "list",
                          "--name-only"], cwd=ROOT, capture_output=True, text=True, check=True)
    stages = {s for s in out.stdout.split() if s.startswith("sweep@")}
    grid = GridParams.from_dict(yaml.safe_load((ROOT / "params.yaml").read_text())["grid"])
    assert stages == {f"sweep@{cell_name(c)}" for c in grid.cells()}


@pytest.mark.parametrize("bad, match", [
    ({"outcome": ["month", "weekly"]}, "weekly"),
    ({"sample": []}, "non-empty"),
    ({"estimator": ["twfe", "twfe"]}, "distinct"),
    ({"crisis": ["2021-05", "2020-04"]}, "crisis"),
    ({"colour": ["red"]}, "unknown key grid.colour"),
])
def test_grid_params_reject_bad_values(bad, match):
    with pytest.raises(ConfigError, match=match):
        GridParams.from_dict(bad)


def _toy_panel():
    """Two municipalities, hand-made spells (t = month index)."""
    rows = []
    t0 = 2019 * 12

    def spell(sid, muni, start, months, exit_work, left_truncated=0, age=30):
        for d in range(months):
            rows.append({"spell_id": sid, "municipality": muni, "region": "AM01",
                         "t": start + d, "duration": d + (12 if left_truncated else 0),
                         "age": age, "sex": "F", "education_level": "low",
                         "household": "single", "prior_benefit_months": 0,
                         "left_truncated": left_truncated,
                         "exit_work": int(exit_work and d == months - 1),
                         "lm_unemployment_rate_muni": 5.0})
    spell("a", "GM0001", t0, 3, True)       # exits in its 3rd month: within 6
    spell("b", "GM0001", t0, 8, True)       # exits in its 8th month: not within 6
    spell("c", "GM0001", t0, 5, False)      # leaves otherwise: not within 6
    spell("d", "GM0001", t0 + 1, 2, True)   # intake a month later, exits within 6
    spell("e", "GM0002", t0, 24, False, left_truncated=1)  # stock: no intake cohort
    spell("f", "GM0002", t0, 6, True, age=60)
    return pd.DataFrame(rows)


def test_cohort_outcome_by_hand():
    pm = _toy_panel()
    t0 = 2019 * 12
    f = cell_frame(pm, "within_6", "all", ("2020-04", "2021-05"), {})
    g1 = f[(f["municipality"] == "GM0001") & (f["t"] == t0)].iloc[0]
    assert (g1["person_months"], g1["exits_work"]) == (3, 1)   # spells a, b, c; only a
    g2 = f[(f["municipality"] == "GM0001") & (f["t"] == t0 + 1)].iloc[0]
    assert (g2["person_months"], g2["exits_work"]) == (1, 1)
    g3 = f[(f["municipality"] == "GM0002") & (f["t"] == t0)].iloc[0]
    assert (g3["person_months"], g3["exits_work"]) == (1, 1)   # f exits in month 6 (d = 5)
    # cohorts whose 6-month follow-up passes the last month are dropped
    assert f["t"].max() <= pm["t"].max() - 6 + 1
    # age band: spell f (60) leaves
    f2 = cell_frame(pm, "within_6", "age_25_54", ("2020-04", "2021-05"), {})
    assert "GM0002" not in set(f2["municipality"])


def test_month_outcome_and_samples():
    pm = _toy_panel()
    f = cell_frame(pm, "month", "all", ("2020-04", "2021-05"), {"GM0001": 2019 * 12 + 2})
    assert f["person_months"].sum() == len(pm) and f["exits_work"].sum() == pm["exit_work"].sum()
    assert (f.loc[f["municipality"] == "GM0001", "g"] == 2019 * 12 + 2).all()
    assert f.loc[f["municipality"] == "GM0002", "g"].isna().all()
    inflow = cell_frame(pm, "month", "inflow", ("2020-04", "2021-05"), {})
    assert inflow["person_months"].sum() == (pm["left_truncated"] == 0).sum()
    nc = cell_frame(pm, "month", "no_crisis", ("2020-04", "2020-06"), {})
    lo, hi = 2020 * 12 + 3, 2020 * 12 + 5
    assert not ((nc["t"] >= lo) & (nc["t"] <= hi)).any()
    assert nc["person_months"].sum() == ((pm["t"] < lo) | (pm["t"] > hi)).sum()


def test_cell_without_adoption_says_why():
    pm = _toy_panel()
    cell = {"estimator": "imputation", "outcome": "month", "fixed_effects": "month",
            "sample": "all", "controls": "full", "inference": "cluster"}
    r = run_cell(cell, pm, None, None, EstimateParams(), GridParams())
    assert r["estimate"] is None and "no adoption" in r["status"]
    with pytest.raises(ValueError, match="outcome"):
        run_cell({**cell, "outcome": "weekly"}, pm, None, None, EstimateParams(), GridParams())


def _results(n_per=4):
    rng = np.random.default_rng(3)
    rows = []
    for cell in GridParams().cells():
        est = rng.normal(0.2, 0.1)
        rows.append({"cell": cell_name(cell), **cell, "estimate": est, "std_error": 0.05,
                     "ci_low": est - 0.1, "ci_high": est + 0.1,
                     "p_value": float(2 * (1 - 0.5 * (1 + np.tanh(abs(est) / 0.05)))),
                     "n_clusters": 31, "n_obs": 100, "pretrend_p_value": 0.5, "status": "ok"})
    return pd.DataFrame(rows)


def test_curve_table_ranks_within_outcome_and_summary():
    t = curve_table(_results())
    assert len(t) == len(GridParams().cells())
    for o, g in t.groupby("outcome"):
        assert list(g["rank"]) == list(range(1, len(g) + 1))
        assert g["estimate"].is_monotonic_increasing
    s = summary(t)
    assert s["all"]["cells"] == len(t)
    assert s["all"]["share_significant"] == pytest.approx((t["p_value"] < 0.05).mean())
    fig = curve_figure(t)
    # one estimates panel and one choices panel per outcome, every cell drawn
    assert len(fig.axes) == 2 * t["outcome"].nunique()
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_axes_are_what_the_grid_documents():
    assert list(AXES) == ["estimator", "outcome", "fixed_effects", "sample", "controls",
                          "inference"]
    assert json.dumps(GridParams().to_dict())
