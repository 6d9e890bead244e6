"""Cases found in review: open assignments end with their own input spell, and a client
who moves to another municipality starts a new spell there (no merge across municipalities).

Window throughout: 2016-01 .. 2016-12.
"""

from __future__ import annotations

from panel_factory import adoption, assignments, base_tables, municipalities, pm, trajectories

K = {x: f"GM0001:{x}" for x in ("A", "B", "X")}


def test_open_assignment_does_not_outlive_its_input_spell():
    traj = trajectories(
        {"spell_id": "s1", "client_id": "c", "start_date": "2016-01-10", "end_date": "2016-03-20",
         "exit_reason": "other", "caseworker_key": K["A"]},
        {"spell_id": "s2", "client_id": "c", "start_date": "2016-04-05", "end_date": "2016-06-15",
         "exit_reason": "work", "caseworker_key": K["B"]},
    )
    asg = assignments(("s1", K["X"], None, "2016-02-01", None))
    df = pm(base_tables(traj, caseworker_assignments=asg), start="2016-01", end="2016-12")
    assert df["spell_id"].unique().tolist() == ["s1"]  # joined: 15 days apart
    assert df["caseworker_key"].tolist() == [K["A"], K["X"], K["X"], K["B"], K["B"], K["B"]]


def test_no_merge_across_municipalities():
    traj = trajectories(
        {"spell_id": "s1", "client_id": "c", "municipality": "GM0001", "start_date": "2016-01-10",
         "end_date": "2016-03-20", "exit_reason": "moved"},
        {"spell_id": "s2", "client_id": "c", "municipality": "GM0002", "start_date": "2016-04-05",
         "end_date": "2016-06-15", "exit_reason": "work"},
    )
    tables = base_tables(traj, adoption=adoption(("GM0002", None, "gewogen_maatwerk", "2016-01-01")))
    tables["municipalities"] = municipalities(("GM0001", "AM01"), ("GM0002", "AM01"))
    df = pm(tables, start="2016-01", end="2016-12")
    by = df.groupby("spell_id")
    assert by["municipality"].first().to_dict() == {"s1": "GM0001", "s2": "GM0002"}
    assert by["adopted"].max().to_dict() == {"s1": 0, "s2": 1}
    assert df.loc[df["exit_work"] == 1, "municipality"].tolist() == ["GM0002"]
