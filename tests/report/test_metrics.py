"""metrics.json keeps to the data contract: every key, numbers only, absent blocks null."""

import json
import math

import pandas as pd
import pytest

from impact import io
from impact.report import CONTRACT_KEYS, MetricsError, build_metrics, check_metrics, publication_estimates

COUNTS = {"spells": 10, "person_months": 100, "rejected_rows": 0}


def _headline():
    return {
        "quality": {"effect_pp": 0.3, "std_error": 0.05, "ci_low": 0.2, "ci_high": 0.4,
                    "naive_pp": 0.9, "reliability": 0.6, "estimator": "iv"},
        "adoption": None,
        "shock": {"effect_pp": 1.0, "std_error": 0.2, "ci_low": 0.6, "ci_high": 1.4,
                  "naive_pp": float("nan")},
    }


def test_build_metrics_keeps_contract_and_nulls():
    m = build_metrics(_headline(), COUNTS)
    assert set(m) == set(CONTRACT_KEYS)
    assert m["adoption"] is None
    assert m["quality"]["estimator"] == "iv"
    assert m["shock"]["naive_pp"] is None  # NaN never becomes a fake number
    problems = check_metrics(m)
    assert problems == ["shock.naive_pp is not numeric: None"]


def test_missing_contract_key_raises():
    h = _headline()
    del h["quality"]["reliability"]
    with pytest.raises(MetricsError, match="reliability"):
        build_metrics(h, COUNTS)


def test_missing_count_raises():
    with pytest.raises(MetricsError, match="rejected_rows"):
        build_metrics(_headline(), {"spells": 1, "person_months": 2})


def test_json_roundtrip_is_byte_stable(tmp_path):
    m = build_metrics(_headline(), COUNTS)
    io.write_json(m, tmp_path / "a.json")
    io.write_json(json.loads((tmp_path / "a.json").read_text()), tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert "NaN" not in (tmp_path / "a.json").read_text()


def test_check_metrics_flags_strings_and_missing_blocks():
    m = build_metrics(_headline(), COUNTS)
    m["quality"]["effect_pp"] = "0.3"
    del m["shock"]
    problems = check_metrics(m)
    assert "quality.effect_pp is not numeric: '0.3'" in problems
    assert "block 'shock' missing" in problems


def test_publication_estimates_sorted_stably():
    tidy = pd.DataFrame({"model": ["b", "a", "a"], "term": ["x", "y", "x"], "estimate": [1.0, 2.0, 3.0]})
    out = publication_estimates(tidy)
    assert out[["model", "term"]].values.tolist() == [["a", "x"], ["a", "y"], ["b", "x"]]
    assert not math.isnan(out["estimate"].iloc[0])
