"""`impact repro`'s memory plan before a stage's peak is known at the panel's size: the
rates in dvc.yaml's ``meta`` times the panel's rows (``schedule.expected_peaks``)."""

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq

from impact.schedule import expected_peaks


def test_expected_peaks_records_at_this_size_else_the_rate():
    peaks = {"het": 500.0, "iv": 300.0, "small": 40.0, "old": 700.0}
    at = {"het": 1e6, "iv": 4e6, "small": 1e6}        # "old": a record of unknown size
    rates = {"het": 150.0, "iv": 80.0, "new": 60.0, "old": 10.0}
    # no panel yet: the records as they are, nothing for a stage never run
    assert expected_peaks(peaks, at, rates, None) == peaks
    # the records' own size (and up to 10% more): the records
    assert expected_peaks(peaks, at, rates, 1.1e6) == {**peaks, "new": 66.0}
    # a larger panel: a record made on a smaller one gives way to its rate, but never
    # falls below it; a stage without a rate keeps its record (small); never run: the
    # rate; a record of unknown size (old, kept before sizes were) as one of a smaller
    # panel: its rate where that is more (a run on the built-in data before this change)
    got = expected_peaks(peaks, at, rates, 60e6)
    assert got == {"het": 9000.0, "iv": 4800.0, "small": 40.0, "old": 700.0, "new": 3600.0}
    assert expected_peaks(peaks, at, rates, 100e6)["old"] == 1000.0
    assert expected_peaks({"het": 9500.0}, {"het": 1e6}, rates, 60e6)["het"] == 9500.0
    assert expected_peaks(peaks, at, rates, 2e6)["iv"] == 300.0   # a larger panel's record
    assert peaks["het"] == 500.0   # not changed in place


def test_a_first_run_is_planned_from_the_rates_and_the_panels_rows(tmp_path, monkeypatch):
    """No peaks recorded: two stages whose rates times the panel's rows sum above the
    budget run one after the other (a short one beside), the waiting one says why, and
    the rated stages' peaks are kept with the rows they were measured at; the next run at
    the same size is planned by those peaks (a dvc process each, far below the rates), so
    the two run side by side (``pipeline_utils.TimedStages``)."""
    from impact.repro import PEAKS, ROWS, panel_rows, run
    from pipeline_utils import TimedStages, toy_repo

    monkeypatch.chdir(tmp_path)
    toy_repo(tmp_path)
    toy = TimedStages(tmp_path)
    panel = tmp_path / "data" / "panel" / "person_months.parquet"
    panel.parent.mkdir(parents=True)
    pq.write_table(pa.table({"x": list(range(2000))}), panel)
    assert panel_rows(tmp_path) == 2000.0
    # 400,000 MB per million rows x 2,000 rows = 800 MB each
    rate = {n: "{expected_mb_per_million_rows: 400000}" for n in ("big", "other")}

    def pipeline(*stages):
        toy.pipeline(*stages, meta=rate)

    spans = toy.spans

    pipeline(("big", "1 small"), ("other", "1"), ("small", "0.2"))
    got = toy.held_run()
    assert "other waits for memory (0.8 GB expected for this panel, 1.0 GB budget)" in got
    peaks = json.loads((tmp_path / PEAKS).read_text())
    # the rows kept for the stages with a rate (a stage before the panel would record the
    # panel's old size)
    assert json.loads((tmp_path / ROWS).read_text()) == {"big": 2000.0, "other": 2000.0}
    assert max(peaks.values()) < 400.0   # what the dvc processes took
    # the same panel: the recorded peaks plan the run, and big and other go together
    pipeline(("big", "0 other"), ("other", "0.2"))
    out = io.StringIO()
    assert run(tmp_path, jobs=2, force=True, out=out, memory_mb=1000.0) == 0, out.getvalue()
    span = spans("big", "other")
    assert span["other"][0] < span["big"][1] < span["big"][0] + 60
    assert "waits for memory" not in out.getvalue()


def test_a_stage_known_by_its_rate_alone_is_no_short_backfill():
    """The backfill past the running lane's time (a short stage that leaves the waiting
    one room) needs peaks both stages really had: one expected from its rate alone never
    ran, so its time (1 s by default) says nothing of how long it takes."""
    from impact.schedule import choose

    need = {"het": 9000.0, "hz": 2500.0, "small": 300.0}   # hz, small: from their rates
    times = {"het": 800.0}
    kw = dict(prio={"hz": 5.0, "small": 1.0}, jobs=1, peaks=need,
              secs=lambda b: sum(times.get(s, 1.0) for s in b), horizon=lambda: 0.5,
              budget=10000.0)
    running = [(["het"], 100.0)]
    assert choose(["hz", "small"], running=running, **kw) == (["small"], "hz")
    assert choose(["hz", "small"], running=running, known={"het"}, **kw) == (None, "hz")
