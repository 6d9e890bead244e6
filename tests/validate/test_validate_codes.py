"""Municipality codes: normalisation, and mapping to the classification year with the
real CBS lineage (data/reference/cbs_gemeentelijke_herindelingen_lineage.csv)."""

from __future__ import annotations

import pandas as pd
import pytest

import vdata
from impact.validate import build_code_map
from impact.validate.parse import municipality_code


@pytest.mark.parametrize(
    "given,expected",
    [("GM0363", "GM0363"), ("gm0363", "GM0363"), ("0363", "GM0363"), ("363", "GM0363"),
     (" 363 ", "GM0363"), (363, "GM0363"), (363.0, "GM0363"), ("GM363", "GM0363"),
     ("14", "GM0014"), ("GM1978", "GM1978")],
)
def test_code_forms_normalise_to_gm_plus_four_digits(given, expected):
    out, bad = municipality_code(pd.Series([given], dtype=object))
    assert out.tolist() == [expected] and not bad.any()


@pytest.mark.parametrize("given", ["GM12345", "Amsterdam", "GM", "36.3", "-363", "AM18"])
def test_non_codes_are_bad(given):
    out, bad = municipality_code(pd.Series([given], dtype="str"))
    assert out.isna().all() and bad.all()


@pytest.mark.parametrize(
    "code,year,expected",
    [
        # chain: Nieuw-Lekkerland -> Molenwaard (2013) -> Molenlanden (2019)
        ("GM0571", 2012, None),
        ("GM0571", 2013, "GM1927"),
        ("GM0571", 2018, "GM1927"),
        ("GM0571", 2019, "GM1978"),
        ("GM0571", 2026, "GM1978"),
        ("GM1927", 2026, "GM1978"),
        # split: Haaren (2021) to Boxtel, Oisterwijk, Tilburg, Vught; most inhabitants
        # (5,827) went to Oisterwijk
        ("GM0788", 2020, None),
        ("GM0788", 2021, "GM0824"),
        # dissolved on 24 March 2022: still a municipality on 1 January 2022
        ("GM0457", 2022, None),
        ("GM0457", 2023, "GM0363"),
        # chain through a 1989 merger: Kockengen -> Breukelen -> Stichtse Vecht (2011);
        # the 2011 rows "Breukelen -> Breukelen/Kockengen" are ignored
        ("GM0324", 2010, "GM0311"),
        ("GM0324", 2026, "GM1904"),
        ("GM0311", 2026, "GM1904"),
        # never dissolved
        ("GM0363", 2026, None),
    ],
)
def test_lineage_maps_to_the_classification_year(code, year, expected):
    m = build_code_map(vdata.LINEAGE, year)
    assert m.mapping.get(code) == expected
    assert m.map(pd.Series([code], dtype="str")).tolist() == [expected or code]


def test_every_2026_target_of_a_dissolved_code_is_no_longer_dissolved():
    m = build_code_map(vdata.LINEAGE, 2026)
    assert not set(m.mapping.values) & set(m.mapping.index)


def test_old_codes_in_data_are_mapped_and_reported_keys_use_code_as_given():
    raw = vdata.tables()
    traj = raw["trajectories"]
    traj.loc[[0, 4], "municipality"] = ["457", "GM0457"]  # Weesp, part of Amsterdam since 2022
    raw["quality"].loc[0, "municipality"] = "GM0457"
    result = vdata.run(raw)
    out = result.tables["trajectories"]
    assert out.loc[[0, 4], "municipality"].tolist() == ["GM0363", "GM0363"]
    assert out.loc[0, "caseworker_key"] == "GM0457:0"
    assert out.loc[0, "team_key"] == "GM0457:T1"
    # assignment keys use the spell's municipality as given too
    assert set(result.tables["caseworker_assignments"]["caseworker_key"]) == {"GM0457:0", "GM0457:2"}
    assert result.tables["quality"].loc[0, "unit_key"] == "GM0457:0"
    mappings = result.report["merger_mappings"]
    assert mappings == [
        {"from": "GM0457", "from_name": "Weesp", "to": "GM0363", "to_name": "Amsterdam",
         "rows": 3, "tables": ["trajectories", "quality"]}
    ]
    t = result.report["tables"]["trajectories"]
    assert t["merger_mappings"][0]["rows"] == 2
    assert t["codes_normalised"] == {"municipality": 12 + 1}  # '0599'-style codes + '457'


def test_classification_year_decides_what_is_known():
    raw = vdata.tables()
    raw["trajectories"].loc[4, "municipality"] = "GM0788"  # Haaren, dissolved 2021
    assert vdata.run(raw).report["rejected_rows"] == 0  # 2026: Haaren -> Oisterwijk
    result = vdata.run(raw, classification_year=2020)  # Haaren still exists, not listed
    rej = result.rejects["trajectories"]
    assert rej["rule"].tolist() == ["unknown_municipality:municipality"]
    assert "GM0788" in rej["reason"].iloc[0]


def test_municipality_list_of_an_older_year_collapses_merged_rows():
    raw = vdata.tables()
    weesp = pd.DataFrame([{"municipality": "457", "name": "Weesp", "region": "AM18",
                           "province": "Noord-Holland", "population": "20766"}])
    raw["municipalities"] = pd.concat([raw["municipalities"], weesp], ignore_index=True)
    result = vdata.run(raw)
    m = result.tables["municipalities"].set_index("municipality")
    assert len(m) == 4
    assert m.loc["GM0363", "name"] == "Amsterdam"
    assert m.loc["GM0363", "population"] == 931298 + 20766
    report = result.report["tables"]["municipalities"]
    assert report["rows_read"] == 5 and report["rows_kept"] == 5 and report["rows_written"] == 4
    assert report["merged_rows"][0]["from"] == ["GM0363", "GM0457"]


def test_new_code_takes_the_lineage_name_when_only_old_codes_are_listed():
    raw = vdata.tables()
    old = pd.DataFrame([
        {"municipality": "GM0571", "name": "Nieuw-Lekkerland", "region": "AM35", "population": "9526"},
        {"municipality": "GM0693", "name": "Graafstroom", "region": "AM35", "population": "9894"},
    ])
    raw["municipalities"] = pd.concat(
        [raw["municipalities"][raw["municipalities"]["municipality"] != "GM1978"], old],
        ignore_index=True,
    )
    m = vdata.run(raw).tables["municipalities"].set_index("municipality")
    assert m.loc["GM1978", "name"] == "Molenlanden"
    assert m.loc["GM1978", "population"] == 9526 + 9894


def test_adoptions_of_merged_municipalities_keep_the_earliest_date():
    raw = vdata.tables()
    weesp = pd.DataFrame([{"municipality": "GM0457", "team_id": None,
                           "programme": "gewogen_maatwerk", "adoption_date": "2017-05-01"}])
    raw["adoption"] = pd.concat([raw["adoption"], weesp], ignore_index=True)
    result = vdata.run(raw)
    a = result.tables["adoption"]
    ams = a[(a["municipality"] == "GM0363") & a["team_key"].isna()]
    assert ams["adoption_date"].dt.strftime("%Y-%m-%d").tolist() == ["2017-05-01"]
    t = result.report["tables"]["adoption"]
    assert t["rows_kept"] == 3 and t["rows_written"] == 2
    assert t["merged_adoptions"] == [{"municipality": "GM0363", "programme": "gewogen_maatwerk",
                                      "dropped_date": "2018-01-01"}]


def test_old_codes_in_every_table_are_mapped_and_each_mapping_is_reported():
    raw = vdata.tables()
    weesp = pd.DataFrame([{"municipality": "457", "name": "Weesp", "region": "AM18",
                           "province": "Noord-Holland", "population": "20766"}])
    raw["municipalities"] = pd.concat([raw["municipalities"], weesp], ignore_index=True)
    raw["trajectories"].loc[0, "municipality"] = "457"          # Weesp -> Amsterdam
    raw["quality"].loc[0, "municipality"] = "GM0457"
    raw["quality"].loc[9, ["unit_id", "municipality"]] = ["788", "GM0788"]  # Haaren -> Oisterwijk
    raw["adoption"].loc[0, "municipality"] = "GM0457"
    raw["shocks"].loc[1, "municipality"] = "788"
    lm = raw["labour_market"]
    lm.loc[lm["area"] == "GM1978", "area"] = "GM1927"             # Molenwaard -> Molenlanden
    result = vdata.run(raw, max_reject_share=0.0)
    assert result.report["rejected_rows"] == 0
    t = result.tables
    assert t["trajectories"].loc[0, "municipality"] == "GM0363"
    assert t["quality"].loc[0, "municipality"] == "GM0363"
    assert t["quality"].loc[9, ["unit_key", "municipality"]].tolist() == ["GM0824", "GM0824"]
    assert t["adoption"].loc[0, "municipality"] == "GM0363"
    assert t["shocks"].loc[1, "municipality"] == "GM0824"
    assert "GM1927" not in set(t["labour_market"]["area"]) and "GM1978" in set(t["labour_market"]["area"])
    by_pair = {(m["from"], m["to"]): m for m in result.report["merger_mappings"]}
    assert set(by_pair) == {("GM0457", "GM0363"), ("GM0788", "GM0824"), ("GM1927", "GM1978")}
    assert sorted(by_pair["GM0457", "GM0363"]["tables"]) == [
        "adoption", "municipalities", "quality", "trajectories"]
    assert by_pair["GM0457", "GM0363"]["rows"] == 4
    assert sorted(by_pair["GM0788", "GM0824"]["tables"]) == ["quality", "shocks"]
    assert by_pair["GM0788", "GM0824"]["rows"] == 3  # quality municipality + unit_id, shocks
    assert by_pair["GM1927", "GM1978"] == {
        "from": "GM1927", "from_name": "Molenwaard", "to": "GM1978", "to_name": "Molenlanden",
        "rows": 40, "tables": ["labour_market"]}
    columns = {m["column"] for m in result.report["tables"]["quality"]["merger_mappings"]}
    assert columns == {"municipality", "unit_id"}
    md = result.report_markdown()
    for text in ("Weesp", "Haaren", "Molenwaard", "| unit_id |"):
        assert text in md
