"""The Monte Carlo machinery (impact.validation.montecarlo): a 3-replication run in-process
and the summary statistics checked by hand on a made-up replications frame. The real run
(R = 200) is ``benchmarks/montecarlo.py`` / ``make validate``, outside CI."""

import numpy as np
import pandas as pd
import pytest

from impact.validation.montecarlo import (ESTIMATORS, REPLICATION_COLUMNS, SUMMARY_COLUMNS,
                                          Estimator, run_montecarlo, summarise,
                                          summary_markdown)

SMALL = {"n_muni": 16, "n_regions": 4, "n_months": 48, "caseload": 220, "n_cw": 5}


def test_three_replications_in_process(tmp_path):
    reps, summary = run_montecarlo(reps=3, seed=20261124, out=tmp_path, workers=1,
                                   sim_kwargs=SMALL, progress=False)
    assert list(reps.columns[: len(REPLICATION_COLUMNS)]) == list(REPLICATION_COLUMNS)
    assert reps["seed"].tolist() == [20261124, 20261125, 20261126]
    assert (reps["error"] == "").all(), reps["error"].tolist()
    assert reps[["quality_effect_pp", "adoption_att_pp", "shock_effect_pp",
                 "adoption_twfe_pp", "truth_att_pp"]].notna().all().all()
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert summary["estimator"].tolist() == [e.name for e in ESTIMATORS]
    assert (summary["n_reps"] == 3).all()
    head = summary[summary["role"] == "headline"]
    assert head["meets_criteria"].notna().all()
    assert summary.loc[summary["role"] != "headline", "meets_criteria"].isna().all()
    for name in ("montecarlo_replications.csv", "montecarlo_summary.csv",
                 "montecarlo_summary.md"):
        assert (tmp_path / name).stat().st_size > 0
    assert "| quality_iv | headline | 3 |" in (tmp_path / "montecarlo_summary.md").read_text()


def test_summary_statistics_by_hand():
    # truth varies by draw (as the realised ATT does); estimate = truth + err
    truth = np.array([2.0, 2.0, 3.0, 3.0])
    err = np.array([0.5, -0.1, 0.3, 0.1])  # mean 0.2
    reps = pd.DataFrame({"est": truth + err, "tru": truth, "se": [0.2, 0.2, 0.4, 0.4],
                         "lo": truth + err - 0.4, "hi": truth + err + 0.4})
    reps.loc[1, "hi"] = np.nan  # an interval that failed: not counted in coverage
    reps = pd.concat([reps, pd.DataFrame({"est": [np.nan], "tru": [2.0]})], ignore_index=True)
    est = Estimator("x", "b", "headline", "est", "tru", "se", "lo", "hi")
    naive = Estimator("n", "b", "comparison", "est", "tru")
    s = summarise(reps, [est, naive]).set_index("estimator")
    r = s.loc["x"]
    assert r["n_reps"] == 4  # the missing estimate is dropped
    assert r["truth_mean"] == pytest.approx(2.5)
    assert r["mean_estimate"] == pytest.approx(2.7)
    assert r["bias"] == pytest.approx(0.2)
    assert r["bias_pct_truth"] == pytest.approx(8.0)
    sd = np.std(err, ddof=1)
    assert r["sd_error"] == pytest.approx(sd)
    assert r["mcse_bias"] == pytest.approx(sd / 2)
    assert r["bias_over_mcse"] == pytest.approx(0.2 / (sd / 2))
    assert r["rmse"] == pytest.approx(np.sqrt(np.mean(err ** 2)))
    assert r["sd_estimate"] == pytest.approx(np.std(truth + err, ddof=1))
    assert r["mean_se"] == pytest.approx(0.3)
    # intervals +-0.4: draw 0 (err 0.5) misses, draw 1 has no interval, draws 2-3 cover
    assert r["coverage_95"] == pytest.approx(2 / 3)
    assert r["mcse_coverage"] == pytest.approx(np.sqrt(2 / 3 * 1 / 3 / 3))
    assert bool(r["meets_bias"]) and not bool(r["meets_coverage"])
    assert not bool(r["meets_criteria"])
    n = s.loc["n"]
    assert n["bias"] == pytest.approx(0.2)
    assert pd.isna(n["coverage_95"]) and pd.isna(n["mean_se"]) and pd.isna(n["meets_criteria"])
    md = summary_markdown(s.reset_index())
    assert "| x | headline | 4 | 2.500 | 2.700 | 0.200 | 8.0 |" in md
    assert "no (coverage)" in md


def test_coverage_inside_band_meets_criteria():
    t = np.full(100, 1.0)
    reps = pd.DataFrame({"est": t, "tru": t, "lo": t - 1, "hi": t + 1})
    reps.loc[:4, ["lo", "hi"]] = [[5.0, 6.0]] * 5  # 95 of 100 cover
    s = summarise(reps, [Estimator("x", "b", "headline", "est", "tru", None, "lo", "hi")])
    assert s.loc[0, "coverage_95"] == pytest.approx(0.95)
    assert bool(s.loc[0, "meets_criteria"])
