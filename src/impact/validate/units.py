"""``quality``, ``adoption`` and ``shocks``: tables about units and events."""

from __future__ import annotations

import numpy as np
import pandas as pd

from impact.ingest.contract import TABLES
from impact.validate import parse
from impact.validate.check import TableCheck, counts
from impact.validate.context import Context, TableOutcome, make_key

__all__ = ["validate_quality", "validate_adoption", "validate_shocks"]


def _municipality(ck: TableCheck, ctx: Context) -> pd.Series:
    """Normalise, map and check the ``municipality`` column; return the mapped codes."""
    ck.count_normalised("municipality")
    mapped = ck.map_codes("municipality", ctx.codes)
    ck.require_known("municipality", mapped, ctx.known, f"classification year {ctx.codes.year}")
    return mapped


def validate_quality(raw: pd.DataFrame, ctx: Context) -> TableOutcome:
    """Quality measurements; ``unit_key`` per architecture.md.

    A caseworker or team key is ``<municipality as given>:<unit_id>``; a municipality
    unit's key is its mapped code. Units that appear in no trajectory or assignment
    are kept (caseworkers are measured whether or not they have clients in the data)
    and counted in the report.
    """
    ck = TableCheck(TABLES["quality"], raw)
    ck.parse_columns()
    v = ck.values
    mapped = _municipality(ck, ctx)
    is_muni = (v["unit_type"] == "municipality").fillna(False).to_numpy()
    unit_code, bad_code = parse.municipality_code(ck.raw["unit_id"].where(is_muni))
    ck.reject("invalid_municipality:unit_id", bad_code,
              "unit_id {unit_id!r} of a municipality unit is not a CBS municipality code")
    unit_mapped = ck.map_codes("unit_id", ctx.codes, given=unit_code.where(~bad_code))
    unknown = (is_muni & unit_mapped.notna().to_numpy() & ~unit_mapped.isin(ctx.known).to_numpy())
    ck.reject("unknown_municipality:unit_id", unknown,
              "unit_id {unit_id!r} (as {m}) is not in municipalities", m=unit_mapped)
    person_key = make_key(v["municipality"], v["unit_id"])
    unit_key = person_key.where(~is_muni, unit_mapped)
    _known_units(ck, v["unit_type"], person_key, ctx)
    _score_in_range(ck, ctx.instrument_ranges)
    out = pd.DataFrame(
        {
            "unit_type": v["unit_type"],
            "unit_key": unit_key.astype("str"),
            "municipality": mapped,
            "date": v["date"],
            "instrument": v["instrument"],
            "score": v["score"],
            "rater_id": v["rater_id"],
        }
    )
    for name, col in ck.extras(out).items():
        out[name] = col
    kept, rejects = ck.finish(out)
    ck.report["rows_written"] = len(kept)
    ck.report["instruments"] = counts(kept["instrument"])
    return TableOutcome(kept, rejects, ck.report)


def _known_units(ck: TableCheck, unit_type: pd.Series, key: pd.Series, ctx: Context) -> None:
    """Reject measurements of a caseworker or team that no spell has.

    Identifiers are unique within the municipality as given, so the key is
    ``<municipality>:<unit_id>``; a caseworker absent from trajectories and
    caseworker_assignments (a typo, or the municipality of another extract) cannot be
    matched to any client-month.
    """
    for unit, keys in (("caseworker", ctx.caseworker_keys), ("team", ctx.team_keys)):
        is_unit = (unit_type == unit).fillna(False).to_numpy()
        unknown = is_unit & key.notna().to_numpy() & ~key.isin(keys).to_numpy() & ck.ok
        where = "trajectories or caseworker_assignments" if unit == "caseworker" else "trajectories"
        ck.reject(
            f"unknown_{unit}:unit_id", unknown,
            f"unit_id {{unit_id!r}} ({unit} of municipality {{municipality}}, key {{key}}) is "
            f"in no spell of {where}",
            key=key,
        )


def _score_in_range(ck: TableCheck, ranges: dict[str, tuple[float, float]]) -> None:
    """Reject scores outside their instrument's declared range; note unranged instruments."""
    v = ck.values
    instrument = v["instrument"]
    lo = instrument.map({k: r[0] for k, r in ranges.items()}).astype("float64")
    hi = instrument.map({k: r[1] for k, r in ranges.items()}).astype("float64")
    score = v["score"].to_numpy(dtype="float64", na_value=np.nan)
    outside = (score < lo.to_numpy()) | (score > hi.to_numpy())  # NaN compares False
    rng = lo.map("{:g}".format).where(lo.notna(), "") + ".." + hi.map("{:g}".format).where(hi.notna(), "")
    ck.reject("out_of_range:score", outside,
              "score {score} is outside the declared range {rng} of instrument {instrument!r} "
              "(params.yaml data.instrument_ranges)", rng=rng)
    unranged = sorted(set(instrument.dropna()) - set(ranges))
    if unranged:
        ck.report["instruments_without_range"] = unranged
        ck.note(f"instruments without a declared range (scores not range-checked): "
                f"{', '.join(unranged)}; declare them in params.yaml data.instrument_ranges")


def validate_adoption(raw: pd.DataFrame, ctx: Context) -> TableOutcome:
    """Programme adoption dates of municipalities (``team_id`` missing) or teams.

    (municipality as given, team_id, programme) is the key. When two municipalities
    that merged by the classification year both adopted a programme as a whole, the
    merged municipality adopted it at the earliest of their dates: the later rows are
    dropped after validation and the report lists them.
    """
    ck = TableCheck(TABLES["adoption"], raw)
    ck.parse_columns()
    v = ck.values
    ck.check_unique(("municipality", "team_id", "programme"))
    mapped = _municipality(ck, ctx)
    team_key = make_key(v["municipality"], v["team_id"])
    unknown = (team_key.notna() & ~team_key.isin(ctx.team_keys)).to_numpy() & ck.ok
    ck.reject("unknown_team:team_id", unknown,
              "team_id {team_id!r} (municipality {municipality}, key {key}) is the team of "
              "no spell in trajectories or caseworker_assignments", key=team_key)
    out = pd.DataFrame(
        {
            "municipality": mapped,
            "team_key": team_key,
            "programme": v["programme"],
            "adoption_date": v["adoption_date"],
        }
    )
    for name, col in ck.extras(out).items():
        out[name] = col
    kept, rejects = ck.finish(out)
    key = ["municipality", "team_key", "programme"]
    order = kept.assign(_row=np.arange(len(kept))).sort_values(["adoption_date", "_row"])
    later = order.duplicated(key, keep="first")
    if later.any():
        dropped = order.loc[later, key + ["adoption_date"]]
        ck.report["merged_adoptions"] = [
            {"municipality": r.municipality, "programme": r.programme,
             "dropped_date": f"{r.adoption_date:%Y-%m-%d}"}
            for r in dropped.itertuples()
        ]
        ck.note(f"{int(later.sum())} adoption rows of municipalities merged by "
                f"{ctx.codes.year} dropped: the merged municipality keeps the earliest date")
        kept = order[~later].sort_values("_row")
    kept = kept.drop(columns="_row", errors="ignore").reset_index(drop=True)
    ck.report["rows_written"] = len(kept)
    return TableOutcome(kept, rejects, ck.report)


def validate_shocks(raw: pd.DataFrame, ctx: Context) -> TableOutcome:
    """External labour-market events; ``shock_id`` unique, municipality known."""
    ck = TableCheck(TABLES["shocks"], raw)
    ck.parse_columns()
    v = ck.values
    ck.check_unique(("shock_id",))
    mapped = _municipality(ck, ctx)
    out = pd.DataFrame(
        {
            "shock_id": v["shock_id"],
            "municipality": mapped,
            "date": v["date"],
            "type": v["type"],
            "jobs": v["jobs"],
            "description": v["description"],
        }
    )
    for name, col in ck.extras(out).items():
        out[name] = col
    kept, rejects = ck.finish(out)
    ck.report["rows_written"] = len(kept)
    ck.report["types"] = counts(kept["type"])
    return TableOutcome(kept, rejects, ck.report)
