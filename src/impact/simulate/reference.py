"""Real CBS figures the synthetic country is calibrated to (Bron: CBS, CC BY 4.0).

:func:`load_reference` takes the raw CBS frames from ``data/reference/`` (keyed by file
stem, as read with ``pd.read_csv(..., dtype=str)`` or with inferred types) and returns a
:class:`Reference`: the 342 municipalities of 2023 with their real names, provinces,
labour-market regions and populations, the real 2016-2017 bijstand stock, inflow and
outflow to work mapped onto the 2023 codes with the CBS lineage, and the national monthly
unemployment rate and bijstand count.

The synthetic clients are the data contract's: a client is the benefit unit. CBS counts
the municipal figures (83450NED, 83747NED, 84066NED) in persons, both partners of a couple,
and the national benefits (37789ksz) in benefits. The municipal figures are taken for ages
15 to the AOW age (whose clients can flow out to work) and turned into benefit units with
one national factor: the benefits under the AOW age per recipient of that age in 2016-2017
(about 0.86; the number of benefits there is about 0.78 of all recipients aged 15 or older).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

__all__ = ["REFERENCE_FILES", "Reference", "load_reference"]

MUNIS = "nl_gemeenten_2023_2026_provincie_corop_arbeidsmarktregio"
BIJSTAND = "cbs_bijstand_reintegratie_gemeenten_2015_2017_long"
LINEAGE = "cbs_gemeentelijke_herindelingen_lineage"
UNEMPLOYMENT = "cbs_80590ned_werkloosheid_nl_2003_2026"
BENEFITS = "cbs_37789ksz_uitkeringen_nl_1998_2026_x1000"

#: The files under ``data/reference/`` that :func:`load_reference` needs.
REFERENCE_FILES: tuple[str, ...] = tuple(f"{s}.csv" for s in (MUNIS, BIJSTAND, LINEAGE,
                                                              UNEMPLOYMENT, BENEFITS))

# Code changes without a merger (a new name and code), absent from the lineage file.
_RENAMES = {"GM1921": "GM1940",  # De Friese Meren -> De Fryske Marren (2015)
            "GM0241": "GM1945"}  # Groesbeek -> Berg en Dal (2016)
REFERENCE_YEARS = (2016, 2017)
_WORKING_AGE = "15 jaar tot AOW-leeftijd"
_U_COL = "Werkloosheidspercentage - Seizoengecorrigeerd (%)"
_B_COL = "Bijstandsuitkeringen tot de AOW-leeftijd"


@dataclass(frozen=True)
class Reference:
    """Real figures for calibration.

    Attributes
    ----------
    municipalities : DataFrame
        One row per 2023 municipality: ``municipality, name, region, province,
        population`` and the real yearly means over 2016-2017 of ``stock`` (bijstand
        clients), ``inflow`` and ``work_exits`` (outflow to work), in benefit units under
        the AOW age.
    real : DataFrame
        ``municipality, year, stock, inflow, work_exits`` for 2015-2017 (2023 codes), in
        the same units.
    unemployment : Series
        National seasonally adjusted unemployment rate (%), 15-75, indexed by month
        ``year*12 + month-1``.
    bijstand : Series
        National number of bijstand benefits under the AOW age (x1000), same index.
    benefits_per_recipient : float
        The factor from CBS persons aged 15 to the AOW age to benefit units (2016-2017).
    """

    municipalities: pd.DataFrame
    real: pd.DataFrame
    unemployment: pd.Series
    bijstand: pd.Series
    benefits_per_recipient: float


def load_reference(frames: Mapping[str, pd.DataFrame]) -> Reference:
    """Build the :class:`Reference` from the raw CBS frames.

    Parameters
    ----------
    frames : mapping of str to DataFrame
        The files of :data:`REFERENCE_FILES`, keyed by file stem (a ``.csv`` suffix in a
        key is ignored), read as strings or with inferred types.

    Returns
    -------
    Reference

    Raises
    ------
    ValueError
        When a file is missing.
    """
    fr = {Path(k).stem if k.endswith(".csv") else k: v for k, v in frames.items()}
    missing = [f for f in (MUNIS, BIJSTAND, LINEAGE, UNEMPLOYMENT, BENEFITS) if f not in fr]
    if missing:
        raise ValueError(f"reference: missing CBS file(s) {', '.join(m + '.csv' for m in missing)}; "
                         f"expected keys {', '.join(REFERENCE_FILES)} (by file stem)")
    g = fr[MUNIS]
    munis = pd.DataFrame({
        "municipality": g["gemeentecode"].astype(str),
        "name": g["gemeentenaam"].astype(str).str.replace(r" \(gemeente\)$", "", regex=True),
        "region": g["arbeidsmarktregio_code"].astype(str),
        "province": g["provincienaam"].astype(str),
        "population": pd.to_numeric(g["inwoners_1jan_2023"]).astype("int64"),
    })
    persons = _real_bijstand(fr[BIJSTAND], fr[LINEAGE], set(munis["municipality"]))
    benefits = _monthly(fr[BENEFITS], _B_COL)
    unit = _benefits_per_recipient(benefits, persons)
    real = persons.assign(**{c: persons[c] * unit for c in ("stock", "inflow", "work_exits")})
    ref = real[real["year"].isin(REFERENCE_YEARS)].groupby("municipality")[
        ["stock", "inflow", "work_exits"]].mean()
    munis = munis.join(ref, on="municipality")
    if munis[["stock", "inflow", "work_exits"]].isna().any().any():
        bad = munis.loc[munis["stock"].isna(), "municipality"].tolist()
        raise ValueError(f"reference: no CBS bijstand figures map onto {bad[:5]}")
    return Reference(munis.sort_values("municipality", ignore_index=True), real,
                     _monthly(fr[UNEMPLOYMENT], _U_COL), benefits, unit)


def _benefits_per_recipient(benefits: pd.Series, persons: pd.DataFrame) -> float:
    """Benefits under the AOW age (37789ksz, monthly) per recipient of that age (the
    municipal tables' yearly figure, summed over municipalities), over 2016-2017."""
    months = np.arange(REFERENCE_YEARS[0] * 12, (REFERENCE_YEARS[-1] + 1) * 12)
    if not np.isin(months, benefits.index).all():
        raise ValueError(f"reference: the CBS benefits file lacks monthly {_B_COL!r} for "
                         f"{REFERENCE_YEARS[0]}-{REFERENCE_YEARS[-1]}")
    n_benefits = 1000 * series_at(benefits, months).mean()
    in_years = persons["year"].isin(REFERENCE_YEARS)
    n_persons = persons.loc[in_years, "stock"].sum() / len(REFERENCE_YEARS)
    ratio = n_benefits / n_persons if n_persons > 0 else np.nan
    if not 0.5 < ratio <= 1.0:  # a benefit unit is one person or a couple
        raise ValueError(f"reference: {n_benefits:,.0f} bijstand benefits under the AOW age a "
                         f"month against {n_persons:,.0f} recipients of that age in "
                         f"{REFERENCE_YEARS[0]}-{REFERENCE_YEARS[-1]}: the files do not match")
    return float(ratio)


def _monthly(df: pd.DataFrame, col: str) -> pd.Series:
    p = df["Perioden"].astype(str)
    rows = df[p.str[4:6] == "MM"]
    idx = rows["Perioden"].str[:4].astype(int) * 12 + rows["Perioden"].str[6:8].astype(int) - 1
    s = pd.Series(pd.to_numeric(rows[col], errors="coerce").to_numpy(), index=idx.to_numpy())
    return s.dropna().sort_index()


def _lineage_map(lineage: pd.DataFrame, current: set[str]) -> dict[str, dict[str, float]]:
    """Old code -> {2023 code: share of its inhabitants}, following chains of mergers."""
    lin = lineage.assign(inwoners=pd.to_numeric(lineage["inwoners"], errors="coerce").fillna(0))
    step: dict[str, dict[str, float]] = {}
    for old, grp in lin.groupby("code_oud"):
        tot = grp["inwoners"].sum()
        w = grp["inwoners"] / tot if tot > 0 else pd.Series(1 / len(grp), index=grp.index)
        step[old] = dict(zip(grp["code_nieuw"], w))
    for old, new in _RENAMES.items():
        step.setdefault(old, {new: 1.0})

    memo: dict[str, dict[str, float]] = {}

    def resolve(code: str, seen: frozenset = frozenset()) -> dict[str, float]:
        if code in current:
            return {code: 1.0}
        if code in memo:
            return memo[code]
        out: dict[str, float] = {}
        for nxt, w in step.get(code, {}).items():
            if nxt in seen:
                continue  # a code reused later: never follow a cycle
            for c, v in resolve(nxt, seen | {code}).items():
                out[c] = out.get(c, 0.0) + w * v
        memo[code] = out
        return out

    return {code: resolve(code) for code in step}


def _real_bijstand(b: pd.DataFrame, lineage: pd.DataFrame, current: set[str]) -> pd.DataFrame:
    gm = b["Regio_code"].astype(str).str.startswith("GM")
    t = b[(b["Leeftijd"].astype(str) == _WORKING_AGE) & gm]
    if t.empty:
        raise ValueError(f"reference: no municipal rows with Leeftijd {_WORKING_AGE!r} in the "
                         f"CBS bijstand file")
    cols = {"Bijstandsontvangers_2": "stock", "Instroom_4": "inflow", "UitstroomNaarWerk_8": "work_exits"}
    t = pd.DataFrame({"code": t["Regio_code"].astype(str).to_numpy(),
                      "year": pd.to_numeric(t["Jaar"]).astype(int).to_numpy(),
                      **{v: pd.to_numeric(t[k], errors="coerce").to_numpy(float) for k, v in cols.items()}})
    mapping = _lineage_map(lineage, current)
    pairs = [(code, code, 1.0) if code in current else None for code in t["code"].unique()]
    pairs = [x for x in pairs if x] + [(old, new, w) for old, tgt in mapping.items()
                                        if old not in current for new, w in tgt.items()]
    link = pd.DataFrame(pairs, columns=["code", "municipality", "w"])
    out = t.merge(link, on="code")
    vals = list(cols.values())
    out[vals] = out[vals].mul(out["w"], axis=0)
    out = out.groupby(["municipality", "year"], as_index=False)[vals].sum()
    return out.astype({"stock": float, "inflow": float, "work_exits": float})


def series_at(s: pd.Series, months: np.ndarray) -> np.ndarray:
    """Values of a monthly series at ``months``; months outside it take the nearest end."""
    idx = np.clip(months, s.index.min(), s.index.max())
    full = s.reindex(np.arange(s.index.min(), s.index.max() + 1)).interpolate().to_numpy()
    return full[idx - s.index.min()]
