"""DataParams: defaults, and an error naming key, value and what is allowed."""

from __future__ import annotations

import pytest

from impact.validate import DataParams


def test_defaults():
    p = DataParams.from_dict({})
    assert (p.raw_dir, p.classification_year, p.max_reject_share) == ("data/simulated", 2026, 0.05)
    assert (p.csv_sep, p.decimal, p.encoding) == (None, None, "utf-8")
    assert p.reader_options() == {"csv_sep": None, "decimal": None, "encoding": "utf-8"}


def test_all_keys_of_params_yaml_are_accepted():
    d = {"raw_dir": "x", "classification_year": 2023, "max_reject_share": 0,
         "csv_sep": ";", "decimal": ",", "encoding": "cp1252"}
    p = DataParams.from_dict(d)
    assert p.to_dict() == {**d, "max_reject_share": 0.0}


@pytest.mark.parametrize(
    "key,value,allowed",
    [
        ("raw_folder", "x", "raw_dir"),
        ("raw_dir", "", "folder"),
        ("classification_year", "2026", "integer year"),
        ("classification_year", True, "integer year"),
        ("classification_year", 1800, "1900..2100"),
        ("max_reject_share", 1.5, "[0, 1]"),
        ("max_reject_share", "5%", "[0, 1]"),
        ("csv_sep", "\t", "';'"),
        ("decimal", ";", "','"),
        ("encoding", "utf-99", "codec"),
    ],
)
def test_bad_value_names_key_value_and_allowed(key, value, allowed):
    with pytest.raises(ValueError) as exc:
        DataParams.from_dict({key: value})
    msg = str(exc.value)
    assert f"data.{key}" in msg and repr(value) in msg and allowed in msg
