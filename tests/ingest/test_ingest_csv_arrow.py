"""The CSV reader's Arrow path gives exactly the frame pandas' reader gives, or steps
aside: random files of the characters where the two sets of rules could part (quotes,
separators, spaces, line ends, missing-value words, non-ASCII text)."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from impact.ingest.readers import NA_STRINGS, _read_csv_arrow, read_table_file

_PIECES = ["x", "7", "007", "é", " ", "  ", '"', '""', ",", ";", "\t", "\n", "\r\n", "\r",
           "2020-01-01", "3,5", "-", *NA_STRINGS]


def _pandas(path, sep):
    return pd.read_csv(path, sep=sep, dtype=str, encoding="utf-8-sig", keep_default_na=False,
                       na_values=list(NA_STRINGS), skipinitialspace=True)


def _random_file(rng: random.Random, sep: str) -> str:
    # most files without the quotes and lone carriage returns that send a file to pandas
    plain = rng.random() < 0.7
    pieces = [p for p in _PIECES if not plain or ('"' not in p and p not in "\r\t")]
    quoting = 0.0 if plain else 0.3
    width = rng.randint(1, 3)
    header = sep.join(["spell_id", "date", "value"][:width])
    rows = []
    for _ in range(rng.randint(0, 6)):
        fields = []
        for _ in range(width if rng.random() < 0.8 else rng.randint(1, 4)):
            field = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 3)))
            if rng.random() < quoting:  # a quoted field, quotes inside doubled
                field = '"' + field.replace('"', '""') + '"'
            fields.append(field)
        rows.append(sep.join(fields))
    end = rng.choice(["\n", "\r\n"])
    return header + end + end.join(rows) + rng.choice(["", end, end + end])


@pytest.mark.parametrize("sep", [",", ";"])
def test_arrow_path_equals_pandas_or_steps_aside(tmp_path, sep):
    rng = random.Random(20261207 + ord(sep))
    path = tmp_path / "progress.csv"
    fast = 0
    for case in range(1500):
        text = _random_file(rng, sep)
        path.write_text(text, encoding="utf-8", newline="")
        header = text.splitlines()[0]
        got = _read_csv_arrow(path, header, sep, "utf-8-sig")
        if got is None:
            continue
        fast += 1
        want = _pandas(path, sep)
        pd.testing.assert_frame_equal(got, want, check_exact=True, obj=repr(text))
    # the comparison means something only if the Arrow path read a fair share
    assert fast > 300, fast


def test_arrow_path_reads_the_usual_file_and_the_byte_order_mark(tmp_path):
    path = tmp_path / "quality.csv"
    text = ("\ufeffunit_type;unit_id;municipality;date;instrument;score\n"
            "caseworker;007;0363;2020-01-01;fidelity_audit;3,5\n"
            "team;T1;GM0363;2020-02-01;fidelity_audit;NA\n")
    path.write_text(text, encoding="utf-8")
    got = _read_csv_arrow(path, text.splitlines()[0].lstrip("\ufeff"), ";", "utf-8-sig")
    assert got is not None
    pd.testing.assert_frame_equal(got, _pandas(path, ";"), check_exact=True)
    assert got["unit_id"].tolist() == ["007", "T1"] and pd.isna(got["score"].iloc[1])
    # through the reader: the decimal comma of the numeric column as before
    df = read_table_file(path, "quality")
    assert df["score"].iloc[0] == "3.5" and df.attrs["format"] == "csv"


@pytest.mark.parametrize("text, why", [
    ("a,b\n 1,2\n", "a field led by a space"),
    ('a,b\n1,"2,3"\n', "a quote"),
    ('a,b\n1,"2\n', "a quote left open"),
    ("a,b\n1,2,3\n", "a row longer than the header"),
    ("a,b\n1\n", "a row shorter than the header"),
    ('"a",b\n1,2\n', "a quote in the header"),
    ("a,,b\n1,2,3\n", "an empty name"),
])
def test_arrow_path_steps_aside(tmp_path, text, why):
    path = tmp_path / "t.csv"
    path.write_text(text, encoding="utf-8")
    assert _read_csv_arrow(path, text.splitlines()[0], ",", "utf-8-sig") is None, why


def test_arrow_path_steps_aside_for_other_encodings_and_bad_bytes(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("a,b\nSúdwest,2\n".encode("cp1252"))
    assert _read_csv_arrow(path, "a,b", ",", "utf-8-sig") is None   # not UTF-8: pandas says
    assert _read_csv_arrow(path, "a,b", ",", "cp1252") is None
