"""Map municipality codes to one classification year with the CBS merger lineage.

The lineage (``data/reference/cbs_gemeentelijke_herindelingen_lineage.csv``) has one row
per (dissolved code, receiving code) with the inhabitants that moved. A code dissolved
into one successor maps to it; a code split over several maps to the successor that
received most inhabitants (ties: most hectares, then the lower code). Chains are
followed forward in time (Nieuw-Lekkerland → Molenwaard in 2013 → Molenlanden in 2019)
up to the classification year.

Classification year ``Y`` means the municipal division of 1 January ``Y`` (CBS'
"gemeentelijke indeling op 1 januari"): a dissolution dated on or before that day is
applied, a later one is not (Weesp, dissolved 24 March 2022, is still a municipality in
2022 and part of Amsterdam from 2023).

A few CBS rows record where a dissolved municipality's own former parts came from (2011:
Breukelen → Breukelen, Breukelen → Kockengen, which was itself dissolved in 1989). A
successor that maps back to the code itself or that no longer existed on that date
cannot receive anything and is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from impact.ingest.errors import ContractError
from impact.validate import parse

__all__ = ["CodeMap", "build_code_map"]

_NEEDED = ("code_oud", "code_nieuw", "inwoners")


@dataclass(frozen=True)
class CodeMap:
    """Old code → code of the classification year.

    Attributes
    ----------
    year : int
        The classification year.
    mapping : pd.Series
        Index: dissolved codes (``GM`` + 4 digits); values: their code in ``year``.
        Codes not in the index map to themselves.
    names : pd.Series
        Name of each code as written in the lineage (index: code), for reports.
    """

    year: int
    mapping: pd.Series
    names: pd.Series

    def map(self, codes: pd.Series) -> pd.Series:
        """Map normalised codes; codes the lineage does not dissolve stay as they are."""
        mapped = codes.map(self.mapping)
        return mapped.fillna(codes).astype("str")


def _lineage_frame(lineage: pd.DataFrame) -> pd.DataFrame:
    df = lineage.rename(columns=lambda c: str(c).strip().lower())
    missing = [c for c in _NEEDED if c not in df.columns]
    if missing or not {"opgeheven_per", "jaar_opheffing"} & set(df.columns):
        raise ContractError(
            f"lineage: column {(missing or ['opgeheven_per'])[0]!r} is missing "
            f"(has: {', '.join(map(str, df.columns))}); expected the CBS lineage columns "
            "code_oud, code_nieuw, inwoners and opgeheven_per or jaar_opheffing",
            table="lineage",
        )
    old, bad_old = parse.municipality_code(df["code_oud"])
    new, bad_new = parse.municipality_code(df["code_nieuw"])
    if bad_old.any() or bad_new.any():
        i = int(np.flatnonzero(bad_old | bad_new)[0])
        raise ContractError(
            f"lineage: row {i + 1} has code_oud={df['code_oud'].iloc[i]!r}, "
            f"code_nieuw={df['code_nieuw'].iloc[i]!r}; expected CBS codes GM + 4 digits",
            table="lineage",
        )
    when = pd.Series(pd.NaT, index=df.index, dtype=parse.DATE_DTYPE)
    if "opgeheven_per" in df.columns:
        txt = parse.text(df["opgeheven_per"])
        parts = txt.str.extract(r"^(\d{1,2})-(\d{1,2})-(\d{4})$")
        when = parse._ymd(parts[[2, 1, 0]].set_axis([0, 1, 2], axis=1))
        iso, _ = parse.date(df["opgeheven_per"].where(when.isna()))
        when = when.fillna(iso)
    if "jaar_opheffing" in df.columns:
        year = parse.integer(df["jaar_opheffing"])[0]
        from_year = pd.to_datetime(
            pd.DataFrame({"year": year.fillna(1900), "month": 1, "day": 1})
        ).astype(parse.DATE_DTYPE).where(year.notna())
        when = when.fillna(from_year)
    inhabitants = pd.to_numeric(parse.text(df["inwoners"]), errors="coerce").fillna(0)
    hectare = (
        pd.to_numeric(parse.text(df["hectare"]), errors="coerce").fillna(0)
        if "hectare" in df.columns else pd.Series(0.0, index=df.index)
    )
    out = pd.DataFrame(
        {
            "old": old, "new": new, "when": when, "inhabitants": inhabitants,
            "hectare": hectare,
            "name_old": parse.text(df["naam_oud"]) if "naam_oud" in df else pd.NA,
            "name_new": parse.text(df["naam_nieuw"]) if "naam_nieuw" in df else pd.NA,
        }
    )
    if out["when"].isna().any():
        i = int(np.flatnonzero(out["when"].isna().to_numpy())[0])
        raise ContractError(
            f"lineage: row {i + 1} ({out['old'].iloc[i]}) has no readable dissolution date; "
            "expected opgeheven_per as DD-MM-YYYY or jaar_opheffing as a year",
            table="lineage",
        )
    return out


_CACHE: dict[tuple, CodeMap] = {}


def build_code_map(lineage: pd.DataFrame, classification_year: int) -> CodeMap:
    """Build the mapping of every code dissolved on or before 1 January of the year.

    Parameters
    ----------
    lineage : DataFrame
        The CBS lineage as read (columns case-insensitive; codes in any form
        :func:`impact.validate.parse.municipality_code` accepts).
    classification_year : int

    Returns
    -------
    CodeMap

    Raises
    ------
    ContractError
        When the lineage lacks a needed column or has an unreadable code or date.
    """
    key = (tuple(map(str, lineage.columns)),
           int(pd.util.hash_pandas_object(lineage.astype("str"), index=False).sum()),
           int(classification_year))
    if key not in _CACHE:
        if len(_CACHE) >= 8:  # a run uses one; tests and sweeps a few
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = _build(lineage, classification_year)
    return _CACHE[key]


def _build(lineage: pd.DataFrame, classification_year: int) -> CodeMap:
    df = _lineage_frame(lineage)
    cutoff = pd.Timestamp(classification_year, 1, 1)
    names = pd.concat(
        [df.set_index("old")["name_old"], df.set_index("new")["name_new"]]
    ).dropna()
    names = names[~names.index.duplicated(keep="last")].sort_index()

    dissolved = df.groupby("old")["when"].min()
    steps = df[(df["when"] <= cutoff) & (df["old"] != df["new"])].copy()
    gone_before = steps["new"].map(dissolved)
    steps = steps[~(gone_before < steps["when"])]  # receiver dissolved earlier: not a real successor
    steps = steps.sort_values(
        ["old", "inhabitants", "hectare", "new"], ascending=[True, False, False, True]
    ).drop_duplicates("old")
    step_to = steps.set_index("old")["new"]
    step_when = steps.set_index("old")["when"]

    current = step_to.copy()
    current_when = step_when.copy()
    for _ in range(len(step_to) + 1):  # each pass follows one more link of every chain
        nxt = current.map(step_to)
        nxt_when = current.map(step_when)
        advance = nxt.notna() & (nxt_when > current_when)
        if not advance.any():
            break
        current = current.where(~advance, nxt)
        current_when = current_when.where(~advance, nxt_when)
    mapping = current.astype("str").sort_index()
    mapping.index = mapping.index.astype("str")
    return CodeMap(year=classification_year, mapping=mapping, names=names.astype("str"))
