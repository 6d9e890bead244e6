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
         "csv_sep": ";", "decimal": ",", "encoding": "cp1252",
         "instrument_ranges": {"fidelity_audit": [1, 5], "my_scale": [-1.5, 1.5]}}
    p = DataParams.from_dict(d)
    ranges = {"fidelity_audit": [1.0, 5.0], "methodical_working": [1.0, 5.0],
              "dossier_review": [0.0, 10.0], "my_scale": [-1.5, 1.5]}
    assert p.to_dict() == {**d, "max_reject_share": 0.0, "instrument_ranges": ranges}


def test_default_instrument_ranges_cover_the_built_in_instruments():
    p = DataParams.from_dict({})
    assert p.instrument_ranges == {"fidelity_audit": (0.0, 10.0),
                                   "methodical_working": (1.0, 5.0),
                                   "dossier_review": (0.0, 10.0)}


def test_params_yaml_data_section_is_valid(root):
    import yaml

    data = yaml.safe_load((root / "params.yaml").read_text())["data"]
    p = DataParams.from_dict(data)
    assert p.instrument_ranges["fidelity_audit"] == (0.0, 10.0)


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
        ("instrument_ranges", [0, 10], "instrument: [low, high]"),
        ("instrument_ranges", {"fidelity_audit": [10, 0]}, "low <= high"),
        ("instrument_ranges", {"fidelity_audit": ["0", 10]}, "low <= high"),
        ("instrument_ranges", {"fidelity_audit": [0, 5, 10]}, "low <= high"),
    ],
)
def test_bad_value_names_key_value_and_allowed(key, value, allowed):
    with pytest.raises(ValueError) as exc:
        DataParams.from_dict({key: value})
    msg = str(exc.value)
    assert f"data.{key}" in msg and allowed in msg
    shown = next(iter(value.values())) if isinstance(value, dict) else value
    assert repr(shown) in msg
