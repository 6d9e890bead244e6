"""The panel build under ``panel.memory_limit``: out of core, the same panel.

A panel of ~1 million person-months (a few hundred MB in DuckDB's sort) is built and
written to Parquet with the memory limit at 80 MB and one thread. With a spill folder
it must give the same file content as an unlimited build; with spilling switched off
(``temp_directory`` empty) the same limit must fail with DuckDB's out-of-memory error,
which shows the limit really binds rather than being ignored.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from impact.panel import PanelParams, build_panel, connect

from panel_factory import base_tables, trajectories


def _tables(n_spells: int = 20000, seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2016-01-01") + pd.to_timedelta(rng.integers(0, 700, n_spells), "D")
    length = rng.integers(30, 3000, n_spells)
    rows = [{"spell_id": f"s{i}", "client_id": f"c{i}", "start_date": start[i].date(),
             "end_date": (start[i] + pd.Timedelta(days=int(length[i]))).date()
             if length[i] < 2500 else None,
             "exit_reason": "work" if i % 3 == 0 else "other",
             "caseworker_key": f"k{i % 50}", "team_key": f"t{i % 5}"}
            for i in range(n_spells)]
    return base_tables(trajectories(*rows))


def _build(con: duckdb.DuckDBPyConnection, tables, params: PanelParams, out) -> pd.DataFrame:
    rels = {k: con.from_df(v) for k, v in tables.items()}
    res = build_panel(con, rels, params)
    res.person_months.write_parquet(str(out))
    return pd.read_parquet(out)


def test_memory_limit_spills_and_gives_the_same_panel(tmp_path):
    tables = _tables()
    free = PanelParams.from_dict({"start": "2016-01", "end": "2023-12", "memory_limit": None})
    want = _build(duckdb.connect(), tables, free, tmp_path / "free.parquet")
    assert len(want) > 900_000

    tight = PanelParams.from_dict({"start": "2016-01", "end": "2023-12",
                                   "memory_limit": "80MB", "threads": 1})
    con = connect(tight, str(tmp_path / "spill"))
    assert con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] in ("76.2 MiB",
                                                                               "80.0 MB")
    got = _build(con, tables, tight, tmp_path / "tight.parquet")
    pd.testing.assert_frame_equal(got, want)

    con = connect(tight)
    con.execute("SET temp_directory = ''").fetchall()  # no spilling: the limit must bite
    with pytest.raises(duckdb.OutOfMemoryException):
        _build(con, tables, tight, tmp_path / "none.parquet")


@pytest.mark.parametrize("section, value", [({"memory_limit": "lots"}, "lots"),
                                            ({"memory_limit": 4}, "4"),
                                            ({"threads": 0}, "0"),
                                            ({"threads": True}, "True")])
def test_bad_resource_settings(section, value):
    with pytest.raises(ValueError, match="allowed") as err:
        PanelParams.from_dict(section)
    assert value in str(err.value)


def test_resource_settings_are_not_part_of_the_result():
    a = PanelParams.from_dict({"memory_limit": "1GB", "threads": 2}).to_dict()
    assert a == PanelParams.from_dict({}).to_dict() and "memory_limit" not in a
