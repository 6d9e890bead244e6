"""A corpus of broken input folders, each the small valid set of ``vdata`` written to disk
as CSV with exactly one fault, checked through the real entry point ``impact check DIR``
(and, for a few, the ``pipeline/validate.py`` stage in a subprocess).

For every case: the exit code (2 for a structural fault or a reject share above the
threshold, 0 for row faults under it); the message names the file, the column and the
value seen; the JSON report reconciles (rows in the file = rows read = kept + rejected,
per table, and the rules add up); a row fault lands in exactly one reject with its rule;
and the raw folder is byte-for-byte unchanged.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

import vdata
from impact import cli
from impact.ingest import REQUIRED_TABLES

runner = CliRunner()
ROW_THRESHOLD = 0.5  # the small tables have 2..24 rows: one reject must stay under it

Frames = dict[str, pd.DataFrame]


@dataclass(frozen=True)
class Case:
    """One broken folder: ``fault`` changes the frames (or writes a file itself)."""

    id: str
    fault: Callable[[Frames, Path], None]
    exit: int
    texts: tuple[str, ...]                  # the output must contain each
    table: str | None = None                # table of a row fault ...
    rule: str | None = None                 # ... and the rule that rejects its one row
    share: float = ROW_THRESHOLD
    report: dict = field(default_factory=dict)  # report[table][key] == value


def _set(table: str, row: int, **values) -> Callable[[Frames, Path], None]:
    def fault(f: Frames, _: Path) -> None:
        for col, v in values.items():
            f[table].loc[row, col] = v
    return fault


def _drop_file(table: str):
    def fault(f: Frames, _: Path) -> None:
        f.pop(table)
    return fault


def _drop_column(table: str, col: str):
    def fault(f: Frames, _: Path) -> None:
        f[table] = f[table].drop(columns=col)
    return fault


def _fill(table: str, col: str, value):
    def fault(f: Frames, _: Path) -> None:
        f[table][col] = value
    return fault


def _append(table: str, row: int, **values):
    def fault(f: Frames, _: Path) -> None:
        extra = f[table].iloc[[row]].assign(**values)
        f[table] = pd.concat([f[table], extra], ignore_index=True)
    return fault


def _corrupt(table: str, suffix: str):
    def fault(f: Frames, d: Path) -> None:
        f.pop(table)
        (d / f"{table}.{suffix}").write_bytes(b"PK\x03\x04 not really a file \x00\xff" * 8)
    return fault


def _cp1252(f: Frames, d: Path) -> None:
    munis = f.pop("municipalities")
    munis.loc[2, "name"] = "Molenlandén"
    (d / "municipalities.csv").write_bytes(munis.to_csv(index=False).encode("cp1252"))


def _zero_bytes(f: Frames, d: Path) -> None:
    f.pop("municipalities")
    (d / "municipalities.csv").write_bytes(b"")


def _two_files(f: Frames, d: Path) -> None:
    f["shocks"].to_parquet(d / "Shocks.parquet", index=False)


def _header_only(table: str):
    def fault(f: Frames, _: Path) -> None:
        f[table] = f[table].iloc[:0]
    return fault


def _dup_header(f: Frames, d: Path) -> None:
    t = f.pop("trajectories")
    text = t.to_csv(index=False).splitlines()
    text[0] = text[0].replace("household", "Sex")  # 'sex' and 'Sex'
    (d / "trajectories.csv").write_text("\n".join(text) + "\n")


def _lm_gap(f: Frames, _: Path) -> None:
    lm = f["labour_market"]
    f["labour_market"] = lm[~((lm["area"] == "GM0824") & (lm["period"] == "2017-Q2"))]


def _overlap_assignment(f: Frames, _: Path) -> None:
    f["caseworker_assignments"].loc[1, "start_date"] = "2015-06-01"


S = "structural"
CASES = [
    # -- structural faults: exit 2, one message ------------------------------------------
    Case("missing_file_trajectories", _drop_file("trajectories"), 2,
         ("trajectories", "trajectories.csv", "missing")),
    Case("missing_file_municipalities", _drop_file("municipalities"), 2,
         ("municipalities", "municipalities.csv", "missing")),
    Case("missing_file_labour_market", _drop_file("labour_market"), 2,
         ("labour_market", "labour_market.csv", "missing")),
    Case("corrupt_parquet", _corrupt("trajectories", "parquet"), 2,
         ("trajectories.parquet", "unreadable parquet")),
    Case("corrupt_xlsx", _corrupt("quality", "xlsx"), 2, ("quality.xlsx", "unreadable xlsx")),
    Case("corrupt_sav", _corrupt("shocks", "sav"), 2, ("shocks.sav", "unreadable sav")),
    Case("zero_byte_file", _zero_bytes, 2, ("municipalities.csv", "empty")),
    Case("wrong_encoding", _cp1252, 2,
         ("municipalities.csv", "column 'name'", r"b'\xe9'", "'utf-8'", "data.encoding")),
    Case("two_files_for_one_table", _two_files, 2, ("shocks", "Shocks.parquet", "shocks.csv")),
    Case("duplicate_column_in_header", _dup_header, 2, ("trajectories.csv", "'sex'", "'Sex'", "twice")),
    Case("missing_column_start_date", _drop_column("trajectories", "start_date"), 2,
         ("trajectories.csv", "start_date", "required column is missing", "columns seen")),
    Case("missing_column_region", _drop_column("municipalities", "region"), 2,
         ("municipalities.csv", "region", "required column is missing")),
    Case("missing_column_score", _drop_column("quality", "score"), 2,
         ("quality.csv", "score", "required column is missing")),
    Case("missing_column_value", _drop_column("labour_market", "value"), 2,
         ("labour_market.csv", "value", "required column is missing")),
    Case("wrong_type_birth_year", _fill("trajectories", "birth_year", "abc"), 2,
         ("trajectories.csv", "birth_year", "'abc'", "expected an integer")),
    Case("wrong_type_start_date", _fill("trajectories", "start_date", "last week"), 2,
         ("trajectories.csv", "start_date", "'last week'", "YYYY-MM-DD")),
    Case("wrong_type_score", _fill("quality", "score", "high"), 2,
         ("quality.csv", "score", "'high'", "expected a number")),
    Case("wrong_type_period", _fill("labour_market", "period", "Q1"), 2,
         ("labour_market.csv", "period", "'Q1'", "YYYY-Qn")),
    Case("wrong_type_sex", _fill("trajectories", "sex", "female"), 2,
         ("trajectories.csv", "sex", "'female'", "one of F, M, X, unknown")),
    Case("required_column_empty", _fill("municipalities", "region", None), 2,
         ("municipalities.csv", "region", "empty in all")),
    Case("duplicate_spell_id", _set("trajectories", 1, spell_id="S000"), 2,
         ("trajectories.csv", "spell_id", "'S000'", "duplicate key")),
    Case("duplicate_municipality_after_normalising", _append("municipalities", 0, municipality="363"), 2,
         ("municipalities.csv", "municipality", "'GM0363'", "'363'", "duplicate key")),
    Case("duplicate_labour_market_key", _append("labour_market", 0, value="9.9"), 2,
         ("labour_market.csv", "area, period, indicator", "'GM0363'", "'2015-Q1'", "duplicate")),
    Case("duplicate_shock_id", _set("shocks", 1, shock_id="B1"), 2,
         ("shocks.csv", "shock_id", "'B1'", "duplicate key")),
    Case("duplicate_adoption_key", _append("adoption", 0, adoption_date="2020-01-01"), 2,
         ("adoption.csv", "programme", "'GM0363'", "duplicate key")),
    Case("reserved_column_name", _fill("trajectories", "caseworker_key", "x"), 2,
         ("trajectories.csv", "caseworker_key", "rename")),
    Case("empty_table_trajectories", _header_only("trajectories"), 2,
         ("trajectories.csv", "no rows")),
    Case("empty_table_labour_market", _header_only("labour_market"), 2,
         ("labour_market.csv", "no rows")),
    Case("reject_share_over_threshold", _fill("trajectories", "ladder_step", None), 0,
         ("trajectories.csv",)),  # replaced below: a real over-threshold case
    # -- row faults: exit 0, one reject with its rule -----------------------------------
    Case("unknown_municipality", _set("trajectories", 4, municipality="GM9999"), 0,
         ("trajectories.csv", "municipality", "'GM9999'"), "trajectories", "unknown_municipality:municipality"),
    Case("invalid_municipality_code", _set("trajectories", 4, municipality="Amsterdam"), 0,
         ("trajectories.csv", "municipality", "'Amsterdam'"), "trajectories", "invalid_municipality:municipality"),
    Case("unknown_municipality_quality", _set("quality", 2, municipality="GM0001"), 0,
         ("quality.csv", "municipality", "'GM0001'"), "quality", "unknown_municipality:municipality"),
    Case("unknown_municipality_shock", _set("shocks", 0, municipality="1"), 0,
         ("shocks.csv", "municipality", "GM0001"), "shocks", "unknown_municipality:municipality"),
    Case("unknown_municipality_adoption", _set("adoption", 0, municipality="GM0001"), 0,
         ("adoption.csv", "municipality", "GM0001"), "adoption", "unknown_municipality:municipality"),
    Case("unknown_caseworker", _set("quality", 0, unit_id="K404"), 0,
         ("quality.csv", "unit_id", "'K404'"), "quality", "unknown_caseworker:unit_id"),
    Case("unknown_team_quality", _set("quality", 8, unit_id="T9"), 0,
         ("quality.csv", "unit_id", "'T9'"), "quality", "unknown_team:unit_id"),
    Case("unknown_team_adoption", _set("adoption", 1, team_id="T9"), 0,
         ("adoption.csv", "team_id", "'T9'"), "adoption", "unknown_team:team_id"),
    Case("overlapping_spells", _set("trajectories", 5, start_date="2015-12-01"), 0,
         ("trajectories.csv", "start_date 2015-12-01", "'C002'"), "trajectories", "overlapping_spell"),
    Case("exit_reason_without_end_date", _set("trajectories", 3, exit_reason="work"), 0,
         ("trajectories.csv", "exit_reason", "'work'", "end_date is missing"), "trajectories",
         "exit_reason_on_open_spell"),
    Case("end_date_without_exit_reason", _set("trajectories", 4, exit_reason=None), 0,
         ("trajectories.csv", "exit_reason is missing", "end_date 20160301"), "trajectories",
         "end_date_without_exit_reason"),
    Case("end_before_start", _set("trajectories", 4, end_date="20140101"), 0,
         ("trajectories.csv", "end_date 20140101", "before start_date 2015-05-01"), "trajectories",
         "end_before_start"),
    Case("assignment_end_before_start", _set("caseworker_assignments", 0, end_date="2015-01-01"), 0,
         ("caseworker_assignments.csv", "end_date 2015-01-01", "before start_date"),
         "caseworker_assignments", "end_before_start"),
    Case("overlapping_assignments", _overlap_assignment, 0,
         ("caseworker_assignments.csv", "start_date 2015-06-01", "'S000'"), "caseworker_assignments",
         "overlapping_assignment"),
    Case("assignment_of_unknown_spell", _set("caseworker_assignments", 1, spell_id="S999"), 0,
         ("caseworker_assignments.csv", "spell_id", "'S999'"), "caseworker_assignments",
         "unknown_spell:spell_id"),
    Case("score_above_instrument_range", _set("quality", 1, score="11"), 0,
         ("quality.csv", "score 11", "0..10", "'fidelity_audit'"), "quality", "out_of_range:score"),
    Case("score_below_instrument_range", _set("quality", 8, score="0.5"), 0,
         ("quality.csv", "score 0.5", "1..5", "'methodical_working'"), "quality", "out_of_range:score"),
    Case("birth_year_out_of_range", _set("trajectories", 6, birth_year="1899"), 0,
         ("trajectories.csv", "birth_year", "1899", "1900..2010"), "trajectories", "out_of_range:birth_year"),
    Case("ladder_step_out_of_range", _set("trajectories", 7, ladder_step="7"), 0,
         ("trajectories.csv", "ladder_step", "7", "1..6"), "trajectories", "out_of_range:ladder_step"),
    Case("invalid_category", _set("trajectories", 5, household="flat"), 0,
         ("trajectories.csv", "household", "'flat'"), "trajectories", "invalid_category:household"),
    Case("impossible_date", _set("trajectories", 8, start_date="2016-02-30"), 0,
         ("trajectories.csv", "start_date", "'2016-02-30'"), "trajectories", "invalid_date:start_date"),
    Case("invalid_period", _set("labour_market", 5, period="2020-13"), 0,
         ("labour_market.csv", "period", "'2020-13'"), "labour_market", "invalid_period:period"),
    Case("progress_of_unknown_spell", _set("progress", 0, spell_id="S999"), 0,
         ("progress.csv", "spell_id", "'S999'"), "progress", "unknown_spell:spell_id"),
    Case("negative_jobs", _set("shocks", 1, jobs="-5"), 0,
         ("shocks.csv", "jobs", "-5"), "shocks", "out_of_range:jobs"),
    # -- reported, not rejected -------------------------------------------------------
    Case("spell_outside_window", _set("trajectories", 0, start_date="2010-01-01", end_date="2010-06-30"), 0,
         ("trajectories", "1 spells lie entirely outside the window"),
         report={"trajectories": {"rows_rejected": 0}}),
    Case("labour_market_gap", _lm_gap, 0,
         ("labour_market", "unemployment_rate", "GM0824: 3 months", "not filled"),
         report={"labour_market": {"rows_rejected": 0}}),
]
# The reject share: two bad rows of 24 trajectories (8.3%) under the default 5%.
CASES[[c.id for c in CASES].index("reject_share_over_threshold")] = Case(
    "reject_share_over_threshold", _set("trajectories", 6, birth_year="1800", sex="female"), 2,
    ("trajectories", "trajectories.csv", "more than data.max_reject_share", "'female'"),
    share=0.05,
)


def _two_bad_rows(f: Frames, d: Path) -> None:
    f["trajectories"].loc[[4, 6], "birth_year"] = "1800"


CASES[[c.id for c in CASES].index("reject_share_over_threshold")] = Case(
    "reject_share_over_threshold", _two_bad_rows, 2,
    ("trajectories.csv", "2 of 24 rows", "out_of_range:birth_year", "birth_year = 1800",
     "more than data.max_reject_share"),
    share=0.05,
)


def _hash(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def make_folder(tmp_path: Path, case: Case) -> tuple[Path, Path]:
    """The valid set as CSV files with the case's one fault, and a params.yaml."""
    d = tmp_path / "raw"
    d.mkdir()
    frames = vdata.tables()
    case.fault(frames, d)
    for name, df in _files_of(case, frames).items():
        df.to_csv(d / f"{name}.csv", index=False)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({
        "data": {"max_reject_share": case.share},
        "panel": {"start": "2016-01", "end": "2023-12"},
    }))
    return d, params


def _files_of(case: Case, frames: Frames) -> Frames:
    """The required tables and the optional tables the case is about (fewer files:
    faster); the cases that name no optional table run with all of them."""
    named = {n for n in frames if n not in REQUIRED_TABLES
             and (n == case.table or any(n in t for t in case.texts))}
    keep = set(REQUIRED_TABLES) | (named or set(frames))
    if named & {"quality", "adoption", "progress"}:
        keep.add("caseworker_assignments")  # their units and spells come from the spell tables
    return {k: v for k, v in frames.items() if k in keep}


def _rows_in_file(path: Path) -> int:
    return len(pd.read_csv(path, dtype=str))


def assert_reconciles(report: dict, folder: Path) -> None:
    total = 0
    for name, t in report["tables"].items():
        assert t["rows_read"] == _rows_in_file(folder / t["source"]), name
        assert t["rows_read"] == t["rows_kept"] + t["rows_rejected"], name
        assert sum(t["rejected_by_rule"].values()) == t["rows_rejected"], name
        assert sum(len(v) for v in t["rejected_examples"].values()) == min(
            t["rows_rejected"], sum(min(3, n) for n in t["rejected_by_rule"].values())), name
        total += t["rows_rejected"]
    assert report["rejected_rows"] == total
    assert report["rows_read"] == report["rows_kept"] + report["rejected_rows"]


@pytest.fixture
def wide_console(monkeypatch):
    """A wide console so that long reasons are not folded mid-word in the output."""
    monkeypatch.setattr(cli, "console", Console(width=400))


def test_corpus_has_at_least_30_cases_with_unique_ids():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) >= 30
    assert sum(c.exit == 2 for c in CASES) >= 15 and sum(c.rule is not None for c in CASES) >= 15


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_broken_folder(case: Case, tmp_path, wide_console):
    folder, params = make_folder(tmp_path, case)
    before = _hash(folder)
    out_json = tmp_path / "check.json"
    res = runner.invoke(cli.app, ["check", str(folder), "--params", str(params),
                                  "--json", str(out_json)])
    output = res.output
    assert res.exit_code == case.exit, output
    for text in case.texts:
        assert text in output, (text, output)
    assert _hash(folder) == before  # the raw folder is never written to
    got = json.loads(out_json.read_text())
    assert got["ok"] is (case.exit == 0)
    if case.exit == 2:
        assert got["error"] and all(t in output for t in case.texts)
    report = got["report"]
    if report is not None:
        assert_reconciles(report, folder)
    if case.rule is not None:
        t = report["tables"][case.table]
        assert t["rejected_by_rule"] == {case.rule: 1}, t["rejected_by_rule"]
        others = {k: v["rows_rejected"] for k, v in report["tables"].items() if k != case.table}
        assert not any(others.values()), others  # exactly one fault, one reject
        (example,) = t["rejected_examples"][case.rule]
        assert example.startswith("row ")
        assert case.rule in output and example in output
    for table, expected in case.report.items():
        for key, value in expected.items():
            assert report["tables"][table][key] == value


# -- the stage script itself, in a subprocess (slow: a few cases only) ----------------

STAGE_CASES = ["missing_column_start_date", "unknown_caseworker", "reject_share_over_threshold"]


@pytest.mark.parametrize("case_id", STAGE_CASES)
def test_validate_stage_script(case_id, tmp_path):
    case = next(c for c in CASES if c.id == case_id)
    folder, params = make_folder(tmp_path, case)
    before = _hash(folder)
    out = tmp_path / "out"
    cmd = [sys.executable, str(vdata.ROOT / "pipeline" / "validate.py"), "--params", str(params),
           "--raw", str(folder), "--lineage", str(vdata.LINEAGE_PATH),
           "--out", str(out / "validated"), "--rejects", str(out / "rejects"),
           "--report", str(out / "dq.json"), "--report-md", str(out / "dq.md")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == case.exit, proc.stderr
    assert _hash(folder) == before
    if case.exit == 2:
        assert "impact validate: error:" in proc.stderr
        line = " ".join(proc.stderr.split())
        for text in case.texts:
            assert text in line, (text, proc.stderr)
    if (out / "dq.json").exists():
        assert_reconciles(json.loads((out / "dq.json").read_text()), folder)
    if case.exit == 0:
        rej = pd.read_parquet(out / "rejects" / f"{case.table}.parquet")
        assert rej["rule"].tolist() == [case.rule]
        assert "'K404'" in rej["reason"].iloc[0] and rej["unit_id"].iloc[0] == "K404"
        kept = pd.read_parquet(out / "validated" / f"{case.table}.parquet")
        assert len(kept) + len(rej) == _rows_in_file(folder / f"{case.table}.csv")
        assert "unknown_caseworker:unit_id" in (out / "dq.md").read_text()
        # the report (it goes to reports/) names the column, never the identifier
        for name in ("dq.json", "dq.md"):
            text = (out / name).read_text()
            assert "K404" not in text and "unit_id <unit_id>" in text, name
