"""Property: valid data with row faults injected at random lose nothing.

Hypothesis draws a set of (table, row, fault) injections, at most one fault per row, into
the valid ``vdata`` set; every fault has a known rule. Then, per table, rows in = kept +
rejected, the rejected rows are exactly the injected rows (no more, no fewer), each
rejected for its own rule, and the report counts every rule.

To keep faults independent, each spell has a twin of another client with the same
municipality, caseworker and team (so rejecting a spell never orphans a caseworker's
quality measurement), and spells with dependants (assignments, progress) are never hit.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vdata

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def base() -> dict[str, pd.DataFrame]:
    raw = vdata.tables()
    traj = raw["trajectories"]
    twins = traj.assign(spell_id=traj["spell_id"] + "b", client_id="D" + traj["client_id"])
    raw["trajectories"] = pd.concat([traj, twins], ignore_index=True)
    return {k: raw[k] for k in ("municipalities", "trajectories", "caseworker_assignments",
                                "quality", "labour_market")}


BASE = base()
T = BASE["trajectories"]
OPEN = set(T.index[T["end_date"].isna()])
TARGET_SPELLS = [i for i in range(2, 24)]  # originals without dependants (S000, S001)


def _earlier_start(raw, i):
    """Start the second spell of a client one day after the first starts."""
    first = pd.Timestamp(raw["trajectories"].loc[i - 1, "start_date"]) + pd.Timedelta(days=1)
    raw["trajectories"].loc[i, "start_date"] = first.strftime("%Y-%m-%d")


# fault name -> (table, eligible rows, change, rule)
FAULTS = {
    "unknown_muni": ("trajectories", TARGET_SPELLS, {"municipality": "GM9999"},
                     "unknown_municipality:municipality"),
    "bad_muni": ("trajectories", TARGET_SPELLS, {"municipality": "Amsterdam"},
                 "invalid_municipality:municipality"),
    "end_before_start": ("trajectories", [i for i in TARGET_SPELLS if i not in OPEN],
                         {"end_date": "20000101"}, "end_before_start"),
    "exit_on_open": ("trajectories", [i for i in TARGET_SPELLS if i in OPEN],
                     {"exit_reason": "work"}, "exit_reason_on_open_spell"),
    "end_no_exit": ("trajectories", [i for i in TARGET_SPELLS if i not in OPEN],
                    {"exit_reason": None}, "end_date_without_exit_reason"),
    "birth_year": ("trajectories", TARGET_SPELLS, {"birth_year": "1899"}, "out_of_range:birth_year"),
    "sex": ("trajectories", TARGET_SPELLS, {"sex": "female"}, "invalid_category:sex"),
    "date": ("trajectories", TARGET_SPELLS, {"start_date": "2016-02-30"}, "invalid_date:start_date"),
    "ladder": ("trajectories", TARGET_SPELLS, {"ladder_step": "9"}, "out_of_range:ladder_step"),
    "prior": ("trajectories", TARGET_SPELLS, {"prior_benefit_months": "-3"},
              "out_of_range:prior_benefit_months"),
    "no_client": ("trajectories", TARGET_SPELLS, {"client_id": None}, "missing_value:client_id"),
    "overlap": ("trajectories", [i for i in TARGET_SPELLS if i % 2 == 1], _earlier_start,
                "overlapping_spell"),
    "score": ("quality", list(range(8)), {"score": "11"}, "out_of_range:score"),
    "caseworker": ("quality", list(range(8)), {"unit_id": "K404"}, "unknown_caseworker:unit_id"),
    "quality_muni": ("quality", list(range(10)), {"municipality": "GM0001"},
                     "unknown_municipality:municipality"),
    "quality_date": ("quality", list(range(10)), {"date": "yesterday"}, "invalid_date:date"),
    "period": ("labour_market", list(range(0, 160, 7)), {"period": "2020-13"}, "invalid_period:period"),
    "value": ("labour_market", list(range(3, 160, 7)), {"value": "n.a."}, "invalid_number:value"),
}


@st.composite
def injections(draw):
    chosen = draw(st.lists(st.sampled_from(sorted(FAULTS)), min_size=1, max_size=12))
    out: dict[tuple[str, int], str] = {}
    for name in chosen:
        table, rows, _, _ = FAULTS[name]
        row = draw(st.sampled_from(rows))
        if (table, row) in out:
            continue  # one fault per row
        if name == "overlap" and (table, row - 1) in out:
            continue  # the earlier spell must be kept for the later one to overlap it
        if (table, row + 1) in out and out[(table, row + 1)] == "overlap":
            continue
        out[(table, row)] = name
    return out


@SETTINGS
@given(injections())
def test_injected_faults_land_in_rejects_with_their_rule_and_nothing_is_lost(injected):
    raw = {k: v.copy() for k, v in BASE.items()}
    for (table, row), name in sorted(injected.items()):
        _, _, change, _ = FAULTS[name]
        if callable(change):
            change(raw, row)
        else:
            for col, value in change.items():
                raw[table].loc[row, col] = value
    result = vdata.run(raw)
    report = result.report
    for table, t in report["tables"].items():
        assert t["rows_read"] == len(raw[table]) == t["rows_kept"] + t["rows_rejected"], table
        rej = result.rejects[table]
        expected = {row: FAULTS[name][3] for (tb, row), name in injected.items() if tb == table}
        got = dict(zip(rej["row"] - 1, rej["rule"]))
        assert got == expected, (table, got, expected)
        assert t["rejected_by_rule"] == dict(Counter(expected.values())), table
        if table not in ("labour_market", "municipalities"):  # those two collapse rows
            assert len(result.tables[table]) == t["rows_kept"], table
    assert report["rejected_rows"] == len(injected)
    kept = set(result.tables["trajectories"]["spell_id"])
    lost = set(raw["trajectories"]["spell_id"].dropna()) - kept - set(result.rejects["trajectories"]["spell_id"])
    assert not lost
