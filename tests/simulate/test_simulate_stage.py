"""The simulate stage script: each table written by a thread while the next is made, at
most one in writing; a failure leaves no table and no truth behind."""

from __future__ import annotations

import json
import os
import runpy
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import impact.io
import impact.simulate

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "pipeline" / "simulate.py"


def _run(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    out, truth = tmp_path / "sim", tmp_path / "truth.json"
    monkeypatch.chdir(ROOT)   # params.yaml and data/reference of the project
    # the stage's settings of this process (``stage.small_pages``) left as they are
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", os.environ.get("NUMPY_MADVISE_HUGEPAGE", "1"))
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--reference", "data/reference",
                                      "--out", str(out), "--truth", str(truth)])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    return out, truth


def test_tables_written_while_the_next_is_made(tmp_path, monkeypatch):
    tables = {n: pd.DataFrame({"x": range(i + 2), "name": n}) for i, n in
              enumerate(["first", "second", "third"])}
    handed = {n: threading.Event() for n in tables}
    active, most = [0], [0]
    lock = threading.Lock()
    real = impact.io.write_csv

    def slow_write(df, path):
        name = Path(path).stem
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        # a table is written while the next one is made: the next is handed over before
        # this write ends (a writer that waited for its write would time out here)
        nxt = list(tables).index(name) + 1
        if nxt < len(tables):
            assert handed[list(tables)[nxt]].wait(timeout=20), "no overlap"
        real(df, path)
        with lock:
            active[0] -= 1

    def fake_country(params, reference, seed, write):
        for k, (name, df) in enumerate(tables.items()):
            handed[name].set()
            write(name, df)
            # ``write`` returns once the table before is written: one in writing at a
            # time, so at most two held (this one and the one made next)
            if k:
                assert (out / f"{list(tables)[k - 1]}.csv").exists()
        return {"seed": seed, "tables": len(tables)}

    out = tmp_path / "sim"
    monkeypatch.setattr(impact.io, "write_csv", slow_write)
    monkeypatch.setattr(impact.simulate, "write_country", fake_country)
    assert _run(tmp_path, monkeypatch)[0] == out
    truth = tmp_path / "truth.json"
    assert most[0] == 1   # at most one table in writing
    assert sorted(p.stem for p in out.glob("*.csv")) == sorted(tables)
    for name, df in tables.items():
        pd.testing.assert_frame_equal(pd.read_csv(out / f"{name}.csv"), df)
    assert json.loads(truth.read_text())["tables"] == 3


def test_a_failure_leaves_nothing(tmp_path, monkeypatch):
    (tmp_path / "sim").mkdir()
    (tmp_path / "sim" / "old.csv").write_text("x\n1\n")
    (tmp_path / "truth.json").write_text("{}")

    def failing_country(params, reference, seed, write):
        write("first", pd.DataFrame({"x": [1, 2]}))
        raise RuntimeError("engine broke")

    monkeypatch.setattr(impact.simulate, "write_country", failing_country)
    with pytest.raises(RuntimeError, match="engine broke"):
        _run(tmp_path, monkeypatch)
    assert list((tmp_path / "sim").iterdir()) == []
    assert not (tmp_path / "truth.json").exists()


def test_a_failed_last_write_fails_the_stage(tmp_path, monkeypatch):
    """The last table's write fails after the country is made: the stage fails, and no
    table nor truth is left (the error is not lost with the writer's thread)."""
    real = impact.io.write_csv

    def failing_write(df, path):
        if Path(path).stem == "second":
            real(df.head(1), path)   # half written
            raise OSError("disk full")
        real(df, path)

    def country(params, reference, seed, write):
        write("first", pd.DataFrame({"x": [1, 2]}))
        write("second", pd.DataFrame({"x": [1, 2]}))
        return {"seed": seed}

    monkeypatch.setattr(impact.io, "write_csv", failing_write)
    monkeypatch.setattr(impact.simulate, "write_country", country)
    with pytest.raises(OSError, match="disk full"):
        _run(tmp_path, monkeypatch)
    assert list((tmp_path / "sim").iterdir()) == []
    assert not (tmp_path / "truth.json").exists()


def test_the_folder_is_cleared_after_the_write_under_way(tmp_path, monkeypatch):
    """A failure while a table is being written: the folder is cleared once that write
    has ended, not before (it would leave the table behind)."""
    real = impact.io.write_csv
    started = threading.Event()

    def slow_write(df, path):
        started.set()
        time.sleep(0.5)
        real(df, path)

    def failing_country(params, reference, seed, write):
        write("first", pd.DataFrame({"x": [1, 2]}))
        assert started.wait(timeout=20)
        raise RuntimeError("engine broke")

    monkeypatch.setattr(impact.io, "write_csv", slow_write)
    monkeypatch.setattr(impact.simulate, "write_country", failing_country)
    with pytest.raises(RuntimeError, match="engine broke"):
        _run(tmp_path, monkeypatch)
    time.sleep(1.0)   # a write left running would have written its file by now
    assert list((tmp_path / "sim").iterdir()) == []
