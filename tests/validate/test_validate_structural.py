"""Structural faults stop validation with a ContractError naming table, column and value."""

from __future__ import annotations

import pandas as pd
import pytest

import vdata
from impact.validate import ContractError


def _dup_row(df: pd.DataFrame, i: int, **change) -> pd.DataFrame:
    row = df.iloc[[i]].assign(**change)
    return pd.concat([df, row], ignore_index=True)


def _missing_table(raw):
    raw.pop("trajectories")


def _missing_column(raw):
    raw["trajectories"] = raw["trajectories"].drop(columns="start_date")


def _wrong_type(raw):
    raw["trajectories"]["birth_year"] = "abc"


def _wrong_date_type(raw):
    raw["quality"]["date"] = "last week"


def _empty_required_values(raw):
    raw["municipalities"]["region"] = None


def _dup_spell(raw):
    raw["trajectories"].loc[1, "spell_id"] = "S000"


def _dup_municipality_after_normalising(raw):
    raw["municipalities"] = _dup_row(raw["municipalities"], 0, municipality="363")


def _dup_labour_market(raw):
    lm = raw["labour_market"]
    raw["labour_market"] = _dup_row(lm, 0, area="gm363", period="2015-q1")


def _dup_shock(raw):
    raw["shocks"].loc[1, "shock_id"] = "B1"


def _dup_adoption(raw):
    raw["adoption"] = _dup_row(raw["adoption"], 0, adoption_date="2020-01-01")


def _dup_column_case(raw):
    t = raw["trajectories"]
    t["Sex"] = t["sex"]


def _reserved_extra(raw):
    raw["trajectories"]["caseworker_key"] = "x"


def _no_rows(raw):
    raw["trajectories"] = raw["trajectories"].iloc[:0]


# (fault, texts the message must contain)
FAULTS = [
    (_missing_table, ["trajectories", "missing", "trajectories.csv"]),
    (_missing_column, ["trajectories", "start_date", "missing", "columns seen"]),
    (_wrong_type, ["trajectories", "birth_year", "'abc'", "expected an integer"]),
    (_wrong_date_type, ["quality", "'date'", "'last week'", "YYYY-MM-DD"]),
    (_empty_required_values, ["municipalities", "region", "empty"]),
    (_dup_spell, ["trajectories", "spell_id", "'S000'", "duplicate"]),
    (_dup_municipality_after_normalising, ["municipalities", "municipality", "'GM0363'", "duplicate"]),
    (_dup_labour_market, ["labour_market", "area, period, indicator", "'GM0363'", "'2015-Q1'"]),
    (_dup_shock, ["shocks", "shock_id", "'B1'"]),
    (_dup_adoption, ["adoption", "programme", "'GM0363'", "duplicate"]),
    (_dup_column_case, ["trajectories", "sex", "'Sex'", "twice"]),
    (_reserved_extra, ["trajectories", "caseworker_key", "rename"]),
    (_no_rows, ["trajectories", "no rows"]),
]


@pytest.mark.parametrize("fault,texts", FAULTS, ids=[f.__name__[1:] for f, _ in FAULTS])
def test_structural_fault_raises_naming_table_column_value(fault, texts):
    raw = vdata.tables()
    fault(raw)
    with pytest.raises(ContractError) as exc:
        vdata.run(raw)
    msg = str(exc.value)
    for text in texts:
        assert text in msg, msg


def test_message_names_the_file_when_read_from_one():
    raw = vdata.tables()
    raw["trajectories"]["birth_year"] = "abc"
    raw["trajectories"].attrs["source"] = "Trajectories.CSV"
    with pytest.raises(ContractError, match=r"Trajectories\.CSV"):
        vdata.run(raw)


def test_input_frames_are_not_modified():
    raw = vdata.tables()
    before = {k: v.copy() for k, v in raw.items()}
    raw["trajectories"].loc[0, "birth_year"] = "1800"
    before["trajectories"].loc[0, "birth_year"] = "1800"
    vdata.run(raw)
    for k in raw:
        pd.testing.assert_frame_equal(raw[k], before[k])


def test_lineage_without_needed_column_raises():
    from impact.validate import DataParams, validate_tables

    with pytest.raises(ContractError, match="lineage.*inwoners"):
        validate_tables(vdata.tables(), DataParams(), lineage=vdata.LINEAGE.drop(columns="inwoners"))


@pytest.mark.parametrize("faulty,expected", [
    (("caseworker_assignments", "progress"), "caseworker_assignments"),
    (("progress", "quality"), "progress"),
    (("progress",), "progress"),
    (("quality",), "quality"),
])
def test_first_table_in_order_names_the_fault(faulty, expected):
    """progress is checked in a second thread beside the tables after trajectories
    (``core._BESIDE``); with faults in several tables the error is still the one of the
    first in the order the validators run one after another."""
    from impact.validate.core import VALIDATORS

    raw = vdata.tables()
    for name in faulty:
        raw[name] = raw[name].drop(columns=raw[name].columns[0])   # a required one
    assert list(VALIDATORS).index("caseworker_assignments") < list(VALIDATORS).index(
        "progress") < list(VALIDATORS).index("quality")
    with pytest.raises(ContractError) as exc:
        vdata.run(raw)
    assert exc.value.table == expected, str(exc.value)
