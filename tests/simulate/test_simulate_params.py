"""SimulateParams: defaults, presets, the params.yaml snippet, and errors that name the
key, the value and what is allowed."""

from pathlib import Path

import pandas as pd
import pytest
import yaml

from impact.simulate import (DEFAULT_PARAMS_YAML, PRESETS, REFERENCE_FILES, SimulateParams,
                             load_reference, simulate_country)

REF_DIR = Path(__file__).resolve().parents[2] / "data" / "reference"


def test_empty_section_is_the_default_preset():
    p = SimulateParams.from_dict({})
    assert p == SimulateParams()
    assert p.preset == "default"
    assert p.regions == ("AM08", "AM09", "AM36")
    assert (p.start, p.end, p.burn_in_years, p.scale) == ("2016-01", "2023-12", 10, 1.0)


def test_presets_resolve_and_explicit_values_win():
    small = SimulateParams.from_dict({"preset": "small"})
    assert small.regions == PRESETS["small"]["regions"]
    assert (small.start, small.end, small.scale) == ("2018-01", "2021-12", 0.6)
    national = SimulateParams.from_dict({"preset": "national", "regions": None})
    assert national.regions is None and national.start == "2014-01"
    custom = SimulateParams.from_dict({"preset": "small", "scale": 0.3, "regions": ["AM09", "AM03"]})
    assert custom.scale == 0.3 and custom.regions == ("AM03", "AM09")
    assert SimulateParams.from_dict({"regions": "all"}).regions is None


def test_to_dict_round_trips():
    for preset in PRESETS:
        p = SimulateParams.from_dict({"preset": preset, "quality_coef": 0.2})
        d = p.to_dict()
        assert yaml.safe_load(yaml.safe_dump(d)) == d
        assert SimulateParams.from_dict(d) == p


def test_default_yaml_snippet_is_the_default_and_lists_every_field():
    section = yaml.safe_load(DEFAULT_PARAMS_YAML)["simulate"]
    assert SimulateParams.from_dict(section) == SimulateParams.from_dict({})
    assert set(section) == set(SimulateParams().to_dict())


@pytest.mark.parametrize("d, words", [
    ({"qualty_coef": 0.1}, ["qualty_coef", "allowed keys", "quality_coef"]),
    ({"preset": "huge"}, ["preset", "'huge'", "default, small, national"]),
    ({"start": "2016-13"}, ["simulate.start", "'2016-13'", "YYYY-MM"]),
    ({"end": 202312}, ["simulate.end", "202312", "YYYY-MM"]),
    ({"scale": -1}, ["simulate.scale", "-1", "[0.001, 20]"]),
    ({"quality_prosperity_corr": 1.5}, ["quality_prosperity_corr", "1.5", "[-1, 1]"]),
    ({"burn_in_years": 2.5}, ["burn_in_years", "2.5", "integer"]),
    ({"audit_interval_months": True}, ["audit_interval_months", "True", "integer"]),
    ({"regions": "AM08"}, ["simulate.regions", "'AM08'", "list"]),
    ({"regions": ["AM08", "Nijmegen"]}, ["simulate.regions", "'Nijmegen'", "'AM' + 2 digits"]),
    ({"recession_region": "north"}, ["recession_region", "'north'", "'auto'"]),
    ({"start": "2020-01", "end": "2019-12"}, ["simulate.end", "'2019-12'", "before"]),
])
def test_bad_values_name_key_value_and_allowed(d, words):
    with pytest.raises(ValueError) as err:
        SimulateParams.from_dict(d)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_unknown_region_is_reported_with_the_allowed_codes():
    frames = {Path(f).stem: pd.read_csv(REF_DIR / f, dtype=str) for f in REFERENCE_FILES}
    with pytest.raises(ValueError, match=r"'AM99' is not an arbeidsmarktregio; allowed: AM01, AM02"):
        simulate_country(SimulateParams.from_dict({"regions": ["AM99"]}), frames, seed=1)


def test_missing_reference_file_is_named():
    frames = {Path(f).stem: pd.read_csv(REF_DIR / f, dtype=str) for f in REFERENCE_FILES[:2]}
    with pytest.raises(ValueError, match="cbs_gemeentelijke_herindelingen_lineage.csv"):
        load_reference(frames)
