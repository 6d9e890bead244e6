"""``write_person_months`` writes the view's rows, in its order, with its values and types.

The file is compared with the view evaluated by DuckDB (``ORDER BY piece_order, t``, the
way the file was written before) and with the independent reference loop of
``test_panel_reference``; chunks and row groups are made small so that pieces straddle
them.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import impact.panel.expand as expand
from impact.panel.expand import write_person_months

from panel_factory import base_tables, quality, random_tables, run, trajectories
from test_panel_reference import assert_same_panel, reference_panel


def _view(res) -> pa.Table:
    return res.person_months.to_arrow_table()


def _assert_same(path, res) -> pa.Table:
    got = pq.read_table(path)
    want = _view(res)
    assert got.column_names == want.column_names
    assert got.num_rows == want.num_rows
    for name in want.column_names:
        g, w = got.column(name), want.column(name)
        assert g.type == w.type, name
        assert g.equals(w), f"column {name} differs"
    # a column written as required has no nulls
    for field in pq.ParquetFile(path).schema_arrow:
        if not field.nullable:
            assert want.column(field.name).null_count == 0, field.name
    return got


@pytest.mark.parametrize("seed", range(10))
def test_file_is_the_view(seed, tmp_path):
    frames, params = random_tables(seed)
    res = run(frames, **params)
    n = write_person_months(res.source, tmp_path / "pm.parquet")
    got = _assert_same(tmp_path / "pm.parquet", res)
    assert n == got.num_rows
    assert_same_panel(got.to_pandas(), reference_panel(frames, params))


@pytest.mark.parametrize("seed", [100, 101])
@pytest.mark.parametrize("dropped", [
    ("caseworker_assignments", "quality", "adoption", "shocks"), ("quality",), ("adoption",),
    ("shocks",), ("caseworker_assignments",)])
def test_without_optional_tables(seed, dropped, tmp_path):
    frames, params = random_tables(seed)
    some = {k: v for k, v in frames.items() if k not in dropped}
    res = run(some, **params)
    write_person_months(res.source, tmp_path / "pm.parquet")
    got = _assert_same(tmp_path / "pm.parquet", res)
    assert_same_panel(got.to_pandas(), reference_panel(some, params))
    empty = {"quality": ("quality_score", "quality_n", "intake_quality_score"),
             "adoption": ("adoption_month", "adopted"), "shocks": ("shock_id",)}
    for table in dropped:
        for col in empty.get(table, ()):
            assert got.column(col).null_count == got.num_rows


def test_quality_without_a_usable_row(tmp_path):
    """A quality table none of whose rows counts (another instrument, or outside the
    window): the quality columns are null and ``quality_n`` 0, as in the view."""
    traj = trajectories({"spell_id": "a", "client_id": "c1", "start_date": "2016-02-10",
                         "caseworker_key": "k1", "end_date": "2016-06-03",
                         "exit_reason": "work"})
    for rows, instrument in (([("k1", "2016-03-01", 3.0, "r", "caseworker",
                                "methodical_working")], "methodical_working"),
                             ([("k1", "2011-03-01", 3.0, "r", "caseworker",
                                "fidelity_audit")], "fidelity_audit")):
        res = run(base_tables(traj, quality=quality(*rows, instrument=instrument)))
        write_person_months(res.source, tmp_path / "pm.parquet")
        got = _assert_same(tmp_path / "pm.parquet", res)
        assert got.num_rows == 5 and got.column("quality_score").null_count == 5
        assert got.column("quality_n").to_pylist() == [0] * 5


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(expand, "ROW_GROUP_ROWS", 50)
    monkeypatch.setattr(expand, "_CHUNK_GROUPS", 1)
    rows = expand._Expander.rows
    calls = []

    def failing(self, start, stop):
        calls.append(start)
        if len(calls) > 2:
            raise RuntimeError("disk full")
        return rows(self, start, stop)

    monkeypatch.setattr(expand._Expander, "rows", failing)
    frames, params = random_tables(4)
    res = run(frames, **params)
    with pytest.raises(RuntimeError, match="disk full"):
        write_person_months(res.source, tmp_path / "pm.parquet")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("rows,groups", [(7, 1), (13, 2), (64, 3)])
def test_small_chunks_and_row_groups(rows, groups, tmp_path, monkeypatch):
    """Pieces straddle chunks and row groups: every row group but the last is full."""
    monkeypatch.setattr(expand, "ROW_GROUP_ROWS", rows)
    monkeypatch.setattr(expand, "_CHUNK_GROUPS", groups)
    frames, params = random_tables(3)
    res = run(frames, **params)
    write_person_months(res.source, tmp_path / "pm.parquet")
    _assert_same(tmp_path / "pm.parquet", res)
    meta = pq.ParquetFile(tmp_path / "pm.parquet").metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert all(s == rows for s in sizes[:-1]) and 0 < sizes[-1] <= rows


def test_row_groups_are_duckdbs(tmp_path):
    """``ROW_GROUP_ROWS`` is the row-group size of DuckDB's files, which the panel file had
    when DuckDB wrote it (readers cut text batches at row groups, so their sums stay the
    same); the writer's own row groups are checked in the test above."""
    con = duckdb.connect()
    con.sql("SELECT range AS x, range % 7 AS y FROM range(300000)").write_parquet(
        str(tmp_path / "d.parquet"))
    meta = pq.ParquetFile(tmp_path / "d.parquet").metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sizes == [expand.ROW_GROUP_ROWS, expand.ROW_GROUP_ROWS,
                     300000 - 2 * expand.ROW_GROUP_ROWS]


def test_statistics_of_all_but_identifiers(tmp_path):
    """Every row group keeps the min and max of each column but the identifiers of
    clients, spells and staff (``expand._statistics``): the municipality's and the
    month's let a reader skip row groups; a spell's or a caseworker's would not."""
    frames, params = random_tables(3)
    res = run(frames, **params)
    write_person_months(res.source, tmp_path / "pm.parquet")
    meta = pq.ParquetFile(tmp_path / "pm.parquet").metadata
    assert meta.num_rows > 0
    names = [meta.schema.column(j).name for j in range(meta.num_columns)]
    ids = {"spell_id", "client_id", "caseworker_key", "team_key", "intake_caseworker_key"}
    assert ids <= set(names)
    assert {"municipality", "t", "quality_a", "shock_id"} <= set(names) - ids
    for i in range(meta.num_row_groups):
        for j, name in enumerate(names):
            stats = meta.row_group(i).column(j).statistics
            if name in ids:
                assert stats is None, name
            else:
                # (an all-missing column has no min and max: no value)
                assert stats is not None, name
                assert stats.has_min_max or stats.num_values == 0, name


def test_missing_values_of_pieces(tmp_path):
    """Null birth years and ladder steps: the columns made of them stay nullable."""
    traj = trajectories(
        {"spell_id": "a", "client_id": "c1", "start_date": "2016-02-10",
         "end_date": "2016-06-03", "exit_reason": "work", "birth_year": None},
        {"spell_id": "b", "client_id": "c2", "start_date": "2015-11-01",
         "exit_reason": None, "ladder_step": 3},
        {"spell_id": "c", "client_id": "c3", "start_date": "2016-03-01",
         "end_date": "2016-04-20", "exit_reason": "education"},
    )
    res = run(base_tables(traj))
    write_person_months(res.source, tmp_path / "pm.parquet")
    got = _assert_same(tmp_path / "pm.parquet", res)
    schema = pq.ParquetFile(tmp_path / "pm.parquet").schema_arrow
    assert schema.field("age").nullable and got.column("age").null_count > 0
    assert not schema.field("t").nullable and not schema.field("exit_work").nullable
    assert got.column("exit_education").to_pylist().count(1) == 1


def test_empty_panel(tmp_path):
    traj = trajectories({"spell_id": "a", "client_id": "c1", "start_date": "2010-01-01",
                         "end_date": "2010-03-01", "exit_reason": "work"})
    res = run(base_tables(traj))
    assert write_person_months(res.source, tmp_path / "pm.parquet") == 0
    got = pq.read_table(tmp_path / "pm.parquet")
    want = _view(res)
    assert got.num_rows == 0 and got.column_names == want.column_names
    assert [f.type for f in got.schema] == [f.type for f in want.schema]


def test_repeated_keys_fall_back_to_duckdb(tmp_path, monkeypatch):
    """Where a lookup table had two rows for one key and month (the view's joins would
    repeat person-months), DuckDB writes the view itself: the same rows."""
    monkeypatch.setattr(expand, "_unique", lambda con, table, keys: False)
    frames, params = random_tables(2)
    res = run(frames, **params)
    n = write_person_months(res.source, tmp_path / "pm.parquet")
    got = pq.read_table(tmp_path / "pm.parquet")
    want = _view(res)
    assert n == want.num_rows == got.num_rows
    assert all(got.column(c).equals(want.column(c)) for c in want.column_names)


def test_unique_keys():
    con = duckdb.connect()
    con.execute("CREATE TABLE u AS SELECT * FROM (VALUES ('a', 1), ('a', 2), ('b', 1)) v(k, t)")
    con.execute("CREATE TABLE d AS SELECT * FROM (VALUES ('a', 1), ('a', 2), ('a', 1)) v(k, t)")
    assert expand._unique(con, "u", "k, t") and not expand._unique(con, "d", "k, t")


def test_source_keeps_its_connection():
    frames, params = random_tables(1)
    con = duckdb.connect()
    res = run(frames, con=con, **params)
    assert res.source.con is con and res.source.view.endswith("person_months")
