"""``labour_market``: indicators per area and period, expanded to months.

Steps, each reported:

1. ``area`` is a municipality code when it looks like one (``GM0363``, ``0363``,
   ``363``; normalised and mapped to the classification year), else a region code
   (upper-cased). (area, period, indicator) must be unique as given (after
   normalisation): a repeat is a structural fault.
2. Rows of municipalities that merged by the classification year fall on one
   (area, period, indicator): their values are averaged (unweighted).
3. A quarterly or yearly value holds for each of its months. Where an area has both a
   finer and a coarser value for one month (``2020-03`` and ``2020-Q1``), the finer one
   is kept.
4. Areas in neither ``municipalities`` nor its regions are kept (the file may cover the
   whole country while the study covers a few regions) and counted; months of the
   window missing from a series are counted, never filled here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from impact.ingest.contract import TABLES
from impact.validate import parse
from impact.validate.check import TableCheck, show
from impact.validate.context import Context, TableOutcome

__all__ = ["validate_labour_market", "expand_months"]

_MUNI_LIKE = r"^(?:GM)?\s*\d{1,4}$"


def expand_months(start: pd.Series, n_months: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Row positions repeated ``n_months`` times and the first day of each month."""
    n = n_months.to_numpy(dtype="int64")
    pos = np.repeat(np.arange(len(n)), n)
    offset = np.arange(len(pos)) - np.repeat(np.cumsum(n) - n, n)
    first = start.to_numpy().astype("datetime64[M]")[pos] + offset.astype("timedelta64[M]")
    return pos, first.astype("datetime64[us]")


def validate_labour_market(raw: pd.DataFrame, ctx: Context) -> TableOutcome:
    ck = TableCheck(TABLES["labour_market"], raw)
    ck.parse_columns()
    v = ck.values
    if ck.n == 0:
        raise ck.error(None, "has no rows; expected indicators per area and period")
    area_txt = v["area"].str.upper()
    muni_like = area_txt.str.match(_MUNI_LIKE).fillna(False)
    code, _ = parse.municipality_code(area_txt.where(muni_like))
    v["area"] = code.where(muni_like, area_txt).astype("str")
    ck.check_unique(("area", "period", "indicator"))
    ck.count_normalised("area")
    area = ck.map_codes("area", ctx.codes)
    out = pd.DataFrame(
        {
            "area": area,
            "period": v["period"],
            "indicator": v["indicator"],
            "value": v["value"],
            "_start": v["period_start"],
            "_months": v["period_months"],
        }
    )
    for name, col in ck.extras(("area", "month", "indicator", "value")).items():
        out[name] = col
    kept, rejects = ck.finish(out)
    kept = _average_merged(kept, ck, ctx.codes.year)
    table = _to_months(kept, ck)
    _coverage(table, ctx, ck)
    ck.report["rows_written"] = len(table)
    return TableOutcome(table, rejects, ck.report)


def _average_merged(kept: pd.DataFrame, ck: TableCheck, year: int) -> pd.DataFrame:
    key = ["area", "period", "indicator"]
    dup = kept.duplicated(key, keep=False)
    if not dup.any():
        return kept
    groups = kept.loc[dup, key].drop_duplicates()
    mean = kept.groupby(key, sort=False)["value"].transform("mean")
    kept = kept.assign(value=mean).drop_duplicates(key, keep="first").reset_index(drop=True)
    ck.report["merged_averaged"] = {
        "rows": int(dup.sum()), "values": len(groups),
        "areas": sorted(groups["area"].unique().tolist()),
    }
    ck.note(
        f"{int(dup.sum())} rows of municipalities merged by {year} fall on "
        f"{len(groups)} (area, period, indicator) values after mapping; averaged"
    )
    return kept


def _to_months(kept: pd.DataFrame, ck: TableCheck) -> pd.DataFrame:
    pos, month = expand_months(kept["_start"], kept["_months"])
    base = ("area", "period", "indicator", "value", "_start", "_months")
    extra = [c for c in kept.columns if c not in base]
    months = pd.DataFrame(
        {
            "area": kept["area"].to_numpy()[pos],
            "month": month,
            "indicator": kept["indicator"].to_numpy()[pos],
            "value": kept["value"].to_numpy()[pos],
            "_n": kept["_months"].to_numpy(dtype="int64")[pos],
        }
    )
    for c in extra:
        months[c] = kept[c].to_numpy()[pos]
    months = months.astype({"area": "str", "indicator": "str", "value": "float64"})
    months = months.sort_values(["area", "indicator", "month", "_n"], kind="stable")
    coarser = months.duplicated(["area", "indicator", "month"], keep="first")
    if coarser.any():
        ck.report["months_from_finer_period"] = int(coarser.sum())
        ck.note(f"{int(coarser.sum())} area-months have both a finer and a coarser value "
                "(e.g. 2020-03 and 2020-Q1); the finer one is kept")
        months = months[~coarser]
    return months.drop(columns="_n").reset_index(drop=True)


def _coverage(table: pd.DataFrame, ctx: Context, ck: TableCheck) -> None:
    areas = pd.Series(table["area"].unique(), dtype="str")
    unknown = areas[~areas.isin(ctx.known | ctx.regions)].sort_values()
    if len(unknown):
        ck.report["areas_not_in_municipalities"] = {
            "areas": len(unknown), "first": unknown.head(5).tolist(),
        }
        ck.note(f"{len(unknown)} areas are neither a municipality nor a region of "
                f"municipalities (e.g. {show(unknown, 3)}); kept")
    n_window = (ctx.end.year - ctx.start.year) * 12 + ctx.end.month - ctx.start.month + 1
    inside = table[(table["month"] >= ctx.start) & (table["month"] <= ctx.end)]
    per_series = inside.groupby(["indicator", "area"]).size()
    series = table[["indicator", "area"]].drop_duplicates()
    have = per_series.reindex(pd.MultiIndex.from_frame(series), fill_value=0)
    missing = n_window - have
    by_indicator = {}
    for indicator, miss in missing.groupby(level="indicator"):
        gaps = miss[miss > 0]
        by_indicator[str(indicator)] = {
            "areas": int(len(miss)),
            "areas_with_missing_months": int(len(gaps)),
            "missing_months": int(gaps.sum()),
            "first": [f"{a}: {int(n)} months" for (_, a), n in gaps.head(3).items()],
        }
        covered = set(miss.index.get_level_values("area"))
        no_series = sorted(ctx.known - covered)
        by_indicator[str(indicator)]["municipalities_without_series"] = len(no_series)
        if len(gaps):
            ck.note(
                f"{indicator}: {len(gaps)} of {len(miss)} areas miss months inside the window "
                f"({int(gaps.sum())} area-months, e.g. "
                + ", ".join(by_indicator[str(indicator)]["first"])
                + "); not filled (the panel leaves them empty)"
            )
    ck.report["coverage_in_window"] = by_indicator
