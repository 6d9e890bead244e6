"""The robustness rows and summary: what passes, what fails, and that the summary says
so (the stage itself runs in tests/test_dvc_pipeline.py)."""

import numpy as np
import pandas as pd
import pytest

from impact.config import ConfigError
from impact.robustness import COLUMNS, RobustnessParams, summary_markdown
from impact.robustness.checks import row
from impact.robustness.summary import _loo_row

HEAD = {"att_pp": 0.2, "effect_pp": 0.2, "std_error": 0.05, "ci_low": 0.1, "ci_high": 0.3,
        "p_value": 0.001}


def test_zero_expectation_passes_only_when_the_interval_covers_zero():
    ok = row("placebo", "adoption", {**HEAD, "att_pp": 0.02, "ci_low": -0.05, "ci_high": 0.09},
             "att_pp", "zero")
    bad = row("placebo", "adoption", HEAD, "att_pp", "zero")
    assert ok["passes"] is True and bad["passes"] is False
    assert row("placebo", "adoption", None, "att_pp", "zero")["passes"] is None


def test_same_sign_significant():
    assert row("alt", "adoption", HEAD, "att_pp", "same sign, significant", "", 0.3)["passes"]
    neg = {**HEAD, "att_pp": -0.2, "ci_low": -0.3, "ci_high": -0.1}
    assert not row("alt", "adoption", neg, "att_pp", "same sign, significant", "", 0.3)["passes"]
    wide = {**HEAD, "ci_low": -0.1}
    assert not row("alt", "adoption", wide, "att_pp", "same sign, significant", "", 0.3)["passes"]


def test_leave_one_out_row_names_the_extremes():
    loo = pd.DataFrame({"municipality": ["A", "B", "C"], "estimate": [0.1, 0.3, 0.2]})
    r = _loo_row("adoption", loo, 0.2)
    assert r["passes"] and r["ci_low"] == 0.1 and r["ci_high"] == 0.3
    assert "without A" in r["note"] and "without B" in r["note"]
    flipped = _loo_row("adoption", loo.assign(estimate=[-0.1, 0.3, 0.2]), 0.2)
    assert flipped["passes"] is False


def test_summary_says_which_conclusions_fail():
    checks = pd.DataFrame([
        row("placebo adoption dates", "adoption", HEAD, "att_pp", "zero"),
        row("placebo shock dates", "shock", {**HEAD, "ci_low": -0.1}, "effect_pp", "zero"),
    ], columns=COLUMNS)
    text = summary_markdown(checks, {"adoption": HEAD, "quality": None, "shock": HEAD})
    assert "It fails 1 of 1 check." in text and "FAILS" in text
    assert "It survives all 1 check." in text
    assert "process quality" not in text  # no quality headline, no section


@pytest.mark.parametrize("bad", [{"placebo_shift_months": 0}, {"placebo_shock_type": 3},
                                 {"shift": 12}])
def test_params_reject_bad_values(bad):
    with pytest.raises(ConfigError):
        RobustnessParams.from_dict(bad)
