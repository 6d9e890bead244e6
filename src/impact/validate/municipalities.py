"""``municipalities``: the reference list every other table's codes are checked against."""

from __future__ import annotations

import numpy as np
import pandas as pd

from impact.ingest.contract import TABLES
from impact.validate.check import TableCheck
from impact.validate.context import Context, TableOutcome

__all__ = ["validate_municipalities"]


def validate_municipalities(raw: pd.DataFrame, ctx: Context) -> TableOutcome:
    """Type, normalise and map the municipality list; merged municipalities collapse.

    Codes must be unique after normalisation (a structural fault otherwise). Rows whose
    codes map to one municipality of the classification year (a list of 2016 read in
    2026) become one row: the continuing municipality's row if it is listed (else the
    most populous one) gives name, region and province, the lineage the name of a new
    code; populations add up. Fills ``ctx.known`` and ``ctx.regions``.
    """
    ck = TableCheck(TABLES["municipalities"], raw)
    ck.parse_columns()
    v = ck.values
    if ck.n == 0:
        raise ck.error(None, "has no rows; expected one row per municipality")
    ck.count_normalised("municipality")
    ck.check_unique(("municipality",))
    mapped = ck.map_codes("municipality", ctx.codes)
    out = pd.DataFrame(
        {
            "municipality": mapped,
            "name": v["name"],
            "region": v["region"].str.upper(),
            "province": v["province"],
            "population": v["population"],
            "_given": v["municipality"],
        }
    )
    for name, col in ck.extras(out).items():
        out[name] = col
    kept, rejects = ck.finish(out)
    kept = _collapse(kept, ck, ctx)
    ck.report["rows_written"] = len(kept)
    ctx.known = set(kept["municipality"])
    ctx.regions = set(kept["region"].dropna())
    ck.report["regions"] = len(ctx.regions)
    return TableOutcome(kept, rejects, ck.report)


def _collapse(kept: pd.DataFrame, ck: TableCheck, ctx: Context) -> pd.DataFrame:
    multi = kept["municipality"].duplicated(keep=False)
    if not multi.any():
        return kept.drop(columns="_given")
    order = kept.assign(
        _continuing=(kept["_given"] == kept["municipality"]).astype(int),
        _pop=kept["population"].astype("float64").fillna(-1),
        _row=np.arange(len(kept)),
    ).sort_values(["municipality", "_continuing", "_pop", "_row"], ascending=[True, False, False, True])
    first = order.drop_duplicates("municipality").set_index("municipality")
    groups = order[order["municipality"].duplicated(keep=False)].groupby("municipality", sort=True)
    merged = []
    for code, grp in groups:  # one iteration per merged municipality (a handful)
        regions = sorted(set(grp["region"].dropna()))
        merged.append({"municipality": code, "from": sorted(grp["_given"]), "regions": regions})
        if len(regions) > 1:
            ck.note(f"{code}: merged rows have regions {regions}; kept {first.at[code, 'region']}")
        if first.at[code, "_given"] != code and code in ctx.codes.names.index:
            first.at[code, "name"] = ctx.codes.names[code]
    population = kept.groupby("municipality")["population"].sum(min_count=1)
    first["population"] = population.reindex(first.index).astype("Int64")
    ck.report["merged_rows"] = merged
    out = first.reset_index()
    order_cols = [c for c in kept.columns if c != "_given"]
    first_row = kept.reset_index(drop=True).reset_index().groupby("municipality")["index"].min()
    out = out.assign(_pos=out["municipality"].map(first_row)).sort_values("_pos")
    return out[order_cols].reset_index(drop=True)
