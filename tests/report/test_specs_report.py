"""The report's view of the specifications: exactly the named ones, in params order, the
headline flag and blocks; team value-added published only above the disclosure minimum."""

from __future__ import annotations

import pandas as pd
import pytest

from impact.estimate.results import row, tidy_frame
from impact.estimate.specs import parse_headline, parse_specifications
from impact.estimate.value_added import ValueAddedResult, publishable_teams
from impact.report.specs import SPEC_COLUMNS, collect_specifications, headline_blocks


def _result(block, key, value):
    tidy = tidy_frame([row(f"{block}_m", "x", value, 0.1, df=10)])
    head = {block: {key: value, "std_error": 0.1, "ci_low": value - 0.2,
                    "ci_high": value + 0.2, "p_value": 0.01, "naive_pp": 1.0,
                    "n_clusters": 11, "ci_method": "CRV1"}}
    return tidy, head


def test_collect_reads_exactly_the_named_specifications_in_order():
    specs = parse_specifications({
        "b": {"block": "adoption", "estimator": "twfe"},
        "a": {"block": "quality", "estimator": "iv", "sample": "inflow"},
        "c": {"block": "adoption", "estimator": "imputation"}})
    head = parse_headline({"quality": "a", "adoption": "c"}, specs)
    results = {"a": _result("quality", "effect_pp", 0.1), "b": _result("adoption", "att_pp", 0.2),
               "c": _result("adoption", "att_pp", 0.3),
               "stale": _result("adoption", "att_pp", 9.0)}  # a removed specification
    tidy, table = collect_specifications(results, specs, head)
    assert list(table.columns) == list(SPEC_COLUMNS)
    assert table["specification"].tolist() == ["b", "a", "c"]
    assert table["headline"].tolist() == [False, True, True]
    assert table["estimate"].tolist() == pytest.approx([0.2, 0.1, 0.3])
    assert table.loc[1, "sample"] == "inflow"
    assert set(tidy["specification"]) == {"a", "b", "c"}
    assert tidy.columns[0] == "specification"
    blocks = headline_blocks(results, head)
    assert blocks["adoption"]["att_pp"] == 0.3 and blocks["shock"] is None


def test_team_value_added_respects_the_disclosure_minimum():
    units = pd.DataFrame({"unit": ["GM1:T1", "GM1:T2", "GM2:T1"], "municipality": ["GM1"] * 2 + ["GM2"],
                          "n_clients": [9, 10, 50], "n_caseworkers": [3, 3, 1],
                          "eb_va": [0.1, 0.2, 0.3], "eb_sd": [0.1] * 3,
                          "ci_low": [0.0] * 3, "ci_high": [0.5] * 3})
    teams = publishable_teams(ValueAddedResult("team", units, {}), min_clients=10)
    assert teams["team_key"].tolist() == ["GM1:T2"]  # 9 clients; one caseworker
    with pytest.raises(ValueError, match="personnel assessment"):
        publishable_teams(ValueAddedResult("caseworker", units, {}), min_clients=10)
