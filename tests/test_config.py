"""params.yaml fails fast with a message naming key, value and what is allowed."""

import pytest

from impact.config import ConfigError, Params, load_params


def test_project_params_load_and_validate(root):
    params = load_params(root / "params.yaml").validate_all()
    assert params.seed == 20261124
    assert params.window == ("2016-01", "2023-12")


def test_unknown_top_level_section(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: 1\nsimulte: {}\n")
    with pytest.raises(ConfigError, match="simulte"):
        load_params(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")


@pytest.mark.parametrize("seed", [-1, "abc", 1.5, True])
def test_bad_seed(seed):
    with pytest.raises(ConfigError, match="seed"):
        Params(raw={"seed": seed}).seed


@pytest.mark.parametrize(
    "section, body, needle",
    [
        ("privacy", {"min_cell": 0}, "privacy.min_cell"),
        ("privacy", {"min_cel": 10}, "min_cel"),
        ("panel", {"strat": "2016-01"}, "strat"),
        ("data", {"max_reject_share": 2}, "max_reject_share"),
        ("simulate", {"preset": "galaxy"}, "galaxy"),
    ],
)
def test_section_errors_are_config_errors(section, body, needle):
    with pytest.raises(ConfigError, match=needle):
        getattr(Params(raw={section: body}), section)
