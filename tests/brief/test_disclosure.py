"""Disclosure control: suppression rules and the output scan (which must catch plants)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impact.brief.render import compile_pdf, typst_escape
from impact.disclosure import scan_outputs, secondary, suppress_counts

IDS = {"C0000123", "S00000042", "GM0363:KM007", "KM007"}


def _clean(root):
    (root / "tables").mkdir(parents=True)
    pd.DataFrame({"municipality": ["GM0363", "GM0599"], "clients": [120, 45],
                  "exits_work": [30, 12], "rate": [1.5, 2.0]}).to_csv(root / "tables/t.csv", index=False)
    (root / "briefs").mkdir()
    (root / "briefs/b.html").write_text("<p>Amsterdam: 1,25 procent (GM0363).</p>")
    (root / "data_quality.json").write_text(json.dumps({"rows_rejected": 3, "clients": 4}))
    return root


def test_clean_outputs_pass(tmp_path):
    assert scan_outputs(_clean(tmp_path), IDS, 10) == []


def test_planted_small_cell_is_found(tmp_path):
    root = _clean(tmp_path)
    pd.DataFrame({"team": ["T1", "T2"], "n_clients": [25, 7]}).to_csv(root / "tables/teams.csv", index=False)
    found = scan_outputs(root, IDS, 10)
    assert [(f.path, f.kind) for f in found] == [("tables/teams.csv", "small_cell")]
    # a suppressed (empty) cell is fine
    pd.DataFrame({"team": ["T1", "T2"], "n_clients": [25, None]}).to_csv(root / "tables/teams.csv", index=False)
    assert scan_outputs(root, IDS, 10) == []


def test_small_count_in_json_is_found_outside_internal_files(tmp_path):
    root = _clean(tmp_path)
    (root / "briefs/x.facts.json").write_text(json.dumps([{"key": "a", "exits_work": 4}]))
    assert [f.kind for f in scan_outputs(root, IDS, 10)] == ["small_cell"]


@pytest.mark.parametrize("where", ["briefs/b.html", "tables/t.md", "figures/f.svg"])
@pytest.mark.parametrize("ident", ["C0000123", "KM007", "GM0363:KM007"])
def test_planted_identifier_is_found(tmp_path, where, ident):
    root = _clean(tmp_path)
    path = root / where
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<p>best caseworker: {ident}, 3 clients</p>")
    found = scan_outputs(root, IDS, 10)
    assert [(f.path, f.kind) for f in found] == [(where, "identifier")]


def test_identifier_column_and_internal_files(tmp_path):
    root = _clean(tmp_path)
    pd.DataFrame({"client_id": ["x"], "clients": [50]}).to_csv(root / "tables/c.csv", index=False)
    (root / "data_quality.md").write_text("row 5: spell of client_id C0000123 overlaps")
    found = {(f.path, f.kind) for f in scan_outputs(root, IDS, 10)}
    assert found == {("tables/c.csv", "identifier_column"), ("data_quality.md", "identifier")}


def test_identifier_in_pdf_text_is_found(tmp_path):
    root = _clean(tmp_path)
    src = f"#set document(date: none)\n{typst_escape('Klantmanager KM007 scoort laag.')}\n"
    (root / "briefs/b.pdf").write_bytes(compile_pdf(src, root / "briefs", "b"))
    assert [(f.path, f.kind) for f in scan_outputs(root, IDS, 10)] == [("briefs/b.pdf", "identifier")]


def test_secondary_suppression_protects_a_lone_hidden_cell():
    hidden = np.array([True, False, False, False, False])
    out = secondary(hidden, np.array(["a", "a", "a", "b", "b"]), np.array([3, 40, 20, 50, 60]))
    assert out.tolist() == [True, False, True, False, False]  # the smallest other in 'a'


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 60)),
                min_size=1, max_size=40, unique_by=lambda t: (t[0], t[1])))
def test_suppress_counts_two_way(cells):
    df = pd.DataFrame(cells, columns=["municipality", "category", "clients"])
    out = suppress_counts(df, ["clients"], 10, margins=["municipality", "category"])
    hidden = out["clients"].isna()
    assert hidden[df["clients"] < 10].all()  # primary
    assert (out.loc[~hidden, "clients"] == df.loc[~hidden, "clients"]).all()
    for margin in ("municipality", "category"):  # no margin leaves one hidden cell alone
        counts = hidden.groupby(df[margin]).sum()
        sizes = df.groupby(margin).size()
        assert not ((counts == 1) & (sizes > 1)).any()


def test_identifier_values_of_the_validated_tables(tmp_path):
    """Every client, spell, caseworker and caseworker-rated unit id of the validated
    tables, read column by column: text, a dictionary column, an integer column with a
    missing value (as integers, and as the floats pandas makes of them: an output may
    show either), raw caseworker ids too, no team unit, no short number, no missing
    value; never fewer than pandas' reading of the whole tables finds."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from impact.disclosure import identifier_values

    traj = pa.table({
        "client_id": pa.array(["C0000123", None, "12345678", "C0000123", "1234"]),
        "spell_id": pa.array([900000001, 900000002, None, 7, 900000001], pa.int64()),
        "caseworker_key": pa.array(["GM0363:KM007", "GM0363:KM008", None, "GM0363:KM007",
                                    "GM0599:KM1"]).dictionary_encode(),
        "age": pa.array([30, 40, 50, 60, 70])})
    pq.write_table(traj, tmp_path / "trajectories.parquet")
    pq.write_table(pa.table({"unit_key": ["GM0363:KM009", "GM0363:T01", None],
                             "unit_type": ["caseworker", "team", "caseworker"],
                             "rater_id": ["R0000001", None, "R0000002"]}),
                   tmp_path / "quality.parquet")
    got = identifier_values(tmp_path)
    assert got == {"C0000123", "12345678", "900000001", "900000002", "900000001.0",
                   "900000002.0", "7.0", "GM0363:KM007", "KM007", "GM0363:KM008", "KM008",
                   "GM0599:KM1", "KM1", "GM0363:KM009", "KM009", "R0000001", "R0000002"}
    # pandas' reading of the whole tables (the scan's first way) finds no more
    ref: set[str] = set()
    for name, cols in {"trajectories.parquet": ["client_id", "spell_id", "caseworker_key"],
                       "quality.parquet": ["unit_key", "rater_id"]}.items():
        df = pd.read_parquet(tmp_path / name)
        if "unit_type" in df:
            df = df.assign(unit_key=df["unit_key"].where(df["unit_type"] == "caseworker"))
        for c in cols:
            vals = df[c].dropna().astype(str).unique()
            ref.update(vals)
            if c in ("caseworker_key", "unit_key"):
                ref.update(v.split(":", 1)[1] for v in vals if ":" in v)
    assert {v for v in ref if v and not (v.isdigit() and len(v) < 8)} <= got
