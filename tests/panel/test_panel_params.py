"""PanelParams: defaults and fail-fast validation naming key, value and what is allowed."""

from __future__ import annotations

import pytest

from impact.panel import PanelParams


def test_defaults():
    p = PanelParams.from_dict({})
    assert (p.start, p.end, p.merge_gap_days, p.quality_window_months) == ("2016-01", "2023-12", 31, 6)
    assert p.indicators == ("unemployment_rate", "vacancy_rate")
    assert (p.quality_instrument, p.programme, p.shock_type) == (
        "fidelity_audit", "gewogen_maatwerk", "business_park_opening")
    assert p.shock_event_window == (-12, 24)
    assert p.n_months == 96 and p.t_end - p.t_start == 95
    assert PanelParams.from_dict(None) == p


def test_values_pass_through():
    p = PanelParams.from_dict(
        {"start": "2018-03", "end": "2018-03", "merge_gap_days": 0, "quality_window_months": 0,
         "indicators": []},
        quality_instrument="methodical_working", programme="gilde", shock_type="plant_closure",
        shock_event_window=[-3, 3],
    )
    assert p.n_months == 1 and p.indicators == () and p.shock_event_window == (-3, 3)
    assert p.to_dict()["shock_event_window"] == [-3, 3]


@pytest.mark.parametrize(
    "section, key, value",
    [
        ({"strat": "2016-01"}, "strat", "strat"),
        ({"start": "2016-1"}, "panel.start", "2016-1"),
        ({"start": "2016-13"}, "panel.start", "2016-13"),
        ({"end": 2016}, "panel.end", "2016"),
        ({"start": "2017-01", "end": "2016-12"}, "panel.end", "2016-12"),
        ({"merge_gap_days": -1}, "panel.merge_gap_days", "-1"),
        ({"merge_gap_days": 3.5}, "panel.merge_gap_days", "3.5"),
        ({"merge_gap_days": True}, "panel.merge_gap_days", "True"),
        ({"quality_window_months": "6"}, "panel.quality_window_months", "'6'"),
        ({"indicators": "unemployment_rate"}, "panel.indicators", "unemployment_rate"),
        ({"indicators": ["Unemployment rate"]}, "panel.indicators", "Unemployment rate"),
        ({"indicators": ["jobs", "jobs"]}, "panel.indicators", "jobs"),
    ],
)
def test_bad_panel_values_name_key_value_and_allowed(section, key, value):
    with pytest.raises(ValueError, match="allowed") as err:
        PanelParams.from_dict(section)
    assert key in str(err.value) and value in str(err.value)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"shock_event_window": (3, -3)}, "shock.event_window"),
        ({"shock_event_window": (0,)}, "shock.event_window"),
        ({"shock_event_window": "0,11"}, "shock.event_window"),
        ({"quality_instrument": ""}, "quality.instrument"),
        ({"programme": None}, "adoption.programme"),
        ({"shock_type": 3}, "shock.type"),
    ],
)
def test_bad_other_sections(kwargs, key):
    with pytest.raises(ValueError, match="allowed") as err:
        PanelParams.from_dict({}, **kwargs)
    assert key in str(err.value)
