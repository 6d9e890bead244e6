"""Small table helpers shared by the estimators: months, bands, events, unit cells.

Months are integers ``t = year*12 + month - 1`` as in the panel's ``t`` column.
"""

from __future__ import annotations

from dataclasses import dataclass

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = [
    "COMPOSITION", "EstimationWarning", "composition_controls", "lm_candidates", "lm_controls",
    "lm_usable", "month_index",
    "age_band", "duration_band", "duration_band_index",
    "adoption_bin", "adoption_months", "shock_events", "event_dummies", "unit_cells",
    "unit_rows", "UnitRows",
    "rate_pp", "inflow_rows",
]

#: person-month means of covariates in ``cells.parquet`` (docs/architecture.md), used as
#: composition controls in cell-level models
COMPOSITION = (
    "mean_age", "share_female", "share_edu_low", "share_edu_high", "share_single_parent",
    "share_couple_children", "share_dur_6_11", "share_dur_12_23", "share_dur_24_59",
    "share_dur_60p", "share_left_truncated", "mean_prior_benefit_months",
)
_DUR_EDGES = (0, 6, 12, 24, 60)
_DUR_LABELS = ("0_5", "6_11", "12_23", "24_59", "60p")


class EstimationWarning(UserWarning):
    """A recoverable problem in estimation (cells dropped, a model not identified)."""


def warn(msg: str) -> None:
    warnings.warn(msg, EstimationWarning, stacklevel=3)


def inflow_rows(frame: pd.DataFrame) -> np.ndarray:
    """The rows of the ``inflow`` sample (spells starting in the window):
    ``left_truncated == 0`` as compared on the frame's column (a missing value is not 0,
    a boolean False is)."""
    return frame["left_truncated"].to_numpy() == 0


def month_index(values) -> np.ndarray:
    """Dates (datetime64, date objects or ISO strings) -> int64 ``year*12 + month - 1``."""
    d = pd.to_datetime(pd.Series(values).reset_index(drop=True), errors="coerce")
    out = (d.dt.year * 12 + d.dt.month - 1).astype("Float64")
    return out.to_numpy(dtype="float64", na_value=np.nan)


def rate_pp(exits, pm) -> np.ndarray:
    """Exit rate in percentage points (0 where there are no person-months)."""
    exits = np.asarray(exits, dtype="float64")
    pm = np.asarray(pm, dtype="float64")
    return np.divide(100.0 * exits, pm, out=np.zeros_like(exits), where=pm > 0)


def age_band(age) -> pd.Series:
    """<25, 25-34, 35-44, 45-54, 55+ (missing -> 'unknown'): a categorical Series with
    ``age``'s index and name. The distinct ages are banded and the bands spread back to
    the rows (``pd.cut`` of every row of a batch: 5.7 -> 3.6 ms, the same Series)."""
    a = pd.to_numeric(pd.Series(age), errors="coerce")
    raw, uniq = pd.factorize(a.to_numpy(dtype="float64", na_value=np.nan),
                             use_na_sentinel=False)
    bands = pd.cut(uniq, [-np.inf, 24, 34, 44, 54, np.inf],
                   labels=["lt25", "25_34", "35_44", "45_54", "55p"])
    bands = bands.add_categories("unknown").fillna("unknown")
    return pd.Series(bands.take(raw), index=a.index, name=a.name)


def duration_band(duration) -> np.ndarray:
    """Duration bands of cells.parquet: 0_5, 6_11, 12_23, 24_59, 60p."""
    return np.asarray(_DUR_LABELS)[duration_band_index(duration)]


def duration_band_index(duration) -> np.ndarray:
    """The position of each duration's band in ``duration_band``'s labels (an integer per
    row: a model's dummies are coded from it without hashing the label strings)."""
    d = pd.to_numeric(pd.Series(duration), errors="coerce").fillna(0).to_numpy()
    idx = np.searchsorted(np.asarray(_DUR_EDGES), d, side="right") - 1
    return np.clip(idx, 0, len(_DUR_LABELS) - 1)


def adoption_bin(rel: np.ndarray, anticipation: int) -> np.ndarray:
    """Event-time bins of adoption, pooled over cohorts (controls, not estimates).

    Integer codes: -9999 before the anticipation window or never adopted; -a for each
    anticipation month a; for adopted months the first month of its bin: quarters for
    months 0..35, years after that.
    """
    rel = np.asarray(rel, dtype="float64")
    out = np.full(rel.shape, -9999, dtype="int64")
    ant = (rel < 0) & (rel >= -anticipation)
    out[ant] = rel[ant].astype("int64")
    post = rel >= 0
    r = np.where(post, rel, 0.0)
    q = np.where(r < 36, np.floor(r / 3) * 3, 36 + np.floor((r - 36) / 12) * 12)
    out[post] = q[post].astype("int64")
    return out


def adoption_months(adoption: pd.DataFrame | None, programme: str
                    ) -> tuple[dict[str, int], dict[str, int]]:
    """Adoption month per municipality and per team for ``programme`` (earliest date)."""
    if adoption is None or adoption.empty:
        return {}, {}
    a = adoption[adoption["programme"].astype("string") == programme].copy()
    if a.empty:
        return {}, {}
    a["t"] = month_index(a["adoption_date"])
    a = a[np.isfinite(a["t"])]
    team = a["team_key"].astype("string") if "team_key" in a else pd.Series(pd.NA, index=a.index)
    is_team = team.notna().to_numpy()
    muni = a.loc[~is_team].groupby(a.loc[~is_team, "municipality"].astype(str))["t"].min()
    teams = a.loc[is_team].groupby(team[is_team].astype(str))["t"].min()
    return {k: int(v) for k, v in muni.items()}, {k: int(v) for k, v in teams.items()}


def shock_events(shocks: pd.DataFrame | None, shock_type: str) -> pd.DataFrame:
    """Events of ``shock_type``: shock_id, municipality, t_event, jobs (sorted by date)."""
    cols = ["shock_id", "municipality", "t_event", "jobs"]
    if shocks is None or shocks.empty:
        return pd.DataFrame(columns=cols)
    s = shocks[shocks["type"].astype("string") == shock_type]
    out = pd.DataFrame({
        "shock_id": s["shock_id"].astype(str).to_numpy(),
        "municipality": s["municipality"].astype(str).to_numpy(),
        "t_event": month_index(s["date"]),
        "jobs": pd.to_numeric(s["jobs"], errors="coerce").to_numpy() if "jobs" in s else np.nan,
    })
    out = out[np.isfinite(out["t_event"])]
    out["t_event"] = out["t_event"].astype("int64")
    return out.sort_values(["t_event", "shock_id"]).reset_index(drop=True)


def event_dummies(muni: np.ndarray, t: np.ndarray, events: pd.DataFrame,
                  window: tuple[int, int], pooled: bool, sparse: bool = False
                  ) -> tuple[np.ndarray | sp.csr_matrix, list[tuple]]:
    """Event-time indicators over ``window`` for rows (muni, t).

    pooled=True: one column per event time, summed over events (an overlap counts twice);
    pooled=False: one column per (event, event time). Returns (matrix, keys) with keys
    (event index or None, event time). All-zero columns are dropped. ``sparse``: the
    matrix as a SciPy CSR matrix with sorted column indices (the same values): a row lies
    in the windows of a few events only, and the dense per-event matrix of the national
    cells is 41,040 x 3,182 (1 GB, which the dense path also copied once).
    """
    lo, hi = window
    times = list(range(lo, hi + 1))
    n_ev = len(events)
    ncols = len(times) if pooled else n_ev * len(times)
    # each municipality's rows, in order, found once: a comparison of every row with each
    # event's municipality took 0.02 s a call on the national cells (341 of them in the
    # leave-one-out refits); a municipality that is not among the rows has none
    rows_of = pd.Series(np.arange(len(muni))).groupby(np.asarray(muni).astype(str)).indices
    none = np.zeros(0, dtype=np.int64)
    rows, cols = [none], [none]
    for k, ev in enumerate(events.itertuples(index=False)):
        r = rows_of.get(ev.municipality, none)
        e = np.asarray(t)[r] - ev.t_event
        inside = (e >= lo) & (e <= hi)
        rows.append(r[inside].astype(np.int64))
        cols.append((e[inside] - lo).astype(np.int64) + (0 if pooled else k * len(times)))
    row, col = np.concatenate(rows), np.concatenate(cols)
    nz = np.flatnonzero(np.bincount(col, minlength=ncols))   # the columns with a one
    pos = np.searchsorted(nz, col)
    keys = [(None, e) for e in times] if pooled else [(k, e) for k in range(n_ev) for e in times]
    if sparse:
        # (the COO -> CSR conversion sums repeated pairs: an overlap counts twice, as
        # np.add.at)
        M = sp.csr_matrix((np.ones(len(row)), (row, pos)), shape=(len(muni), len(nz)))
        M.sort_indices()
    else:   # column-major, as the columns taken from the full matrix were
        M = np.zeros((len(muni), len(nz)), order="F")
        np.add.at(M, (row, pos), 1.0)
    return M, [keys[i] for i in nz]


def composition_controls(frame: pd.DataFrame) -> list[str]:
    """The ``COMPOSITION`` columns of ``frame`` that are complete and not constant."""
    out = []
    for c in COMPOSITION:
        if c in frame:
            v = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype="float64")
            if v.size and np.isfinite(v).all() and np.ptp(v) > 0:
                out.append(c)
    return out


def lm_controls(frame: pd.DataFrame, wanted) -> list[str]:
    """Municipal labour-market columns: ``wanted`` names (indicator or column), or every
    complete, non-constant ``lm_*_muni`` column when ``wanted`` is None."""
    out = []
    for c in lm_candidates(frame.columns, wanted):
        v = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype="float64")
        if lm_usable(v.size > 0 and bool(np.isfinite(v).all()) and np.ptp(v) > 0, c):
            out.append(c)
    return out


def lm_candidates(columns, wanted) -> list[str]:
    """The labour-market columns ``lm_controls`` considers (of ``columns``): ``wanted``
    names resolved to columns, or every ``lm_*_muni`` column when ``wanted`` is None."""
    columns = list(columns)
    if wanted is None:
        return [c for c in columns if c.startswith("lm_") and c.endswith("_muni")]
    cands = []
    for name in wanted:
        col = name if name in columns else f"lm_{name}_muni"
        if col not in columns:
            avail = [c for c in columns if c.startswith("lm_")]
            raise ValueError(f"estimate.lm_controls: {name!r} is not in the panel "
                             f"(available: {', '.join(avail) or 'none'})")
        cands.append(col)
    return cands


def lm_usable(complete_and_varying: bool, column: str) -> bool:
    """The verdict on a labour-market column, with the warning when it is not a control."""
    if not complete_and_varying:
        warn(f"labour-market column {column} has missing values or is constant; not a control")
    return complete_and_varying


def _composition_columns(pm: pd.DataFrame) -> pd.DataFrame:
    """Per-person-month indicator columns whose cell means are ``COMPOSITION``."""
    dur = duration_band(pm["duration"])
    edu = pm["education_level"].astype("string")
    hh = pm["household"].astype("string")
    return pd.DataFrame({
        "mean_age": pd.to_numeric(pm["age"], errors="coerce").to_numpy(dtype="float64"),
        "share_female": (pm["sex"].astype("string") == "F").fillna(False).to_numpy(float),
        "share_edu_low": (edu == "low").fillna(False).to_numpy(float),
        "share_edu_high": (edu == "high").fillna(False).to_numpy(float),
        "share_single_parent": (hh == "single_parent").fillna(False).to_numpy(float),
        "share_couple_children": (hh == "couple_children").fillna(False).to_numpy(float),
        "share_dur_6_11": (dur == "6_11").astype(float),
        "share_dur_12_23": (dur == "12_23").astype(float),
        "share_dur_24_59": (dur == "24_59").astype(float),
        "share_dur_60p": (dur == "60p").astype(float),
        "share_left_truncated": pd.to_numeric(pm["left_truncated"]).to_numpy(dtype="float64"),
        "mean_prior_benefit_months": pd.to_numeric(pm["prior_benefit_months"],
                                                   errors="coerce").to_numpy(dtype="float64"),
    }, index=pm.index)


@dataclass(frozen=True)
class UnitRows:
    """The per-person-month frame that ``unit_cells`` groups (integer codes of unit,
    municipality and region, t, the counts and the composition and labour-market
    columns) with the labels of the codes: built once, it serves several groupings
    (``by``), e.g. one per client-group dimension."""

    frame: pd.DataFrame
    labels: dict[str, np.ndarray]
    sums: tuple[str, ...]
    lm: tuple[str, ...]


def unit_rows(person_months: pd.DataFrame, team_units: set[str],
              counts: tuple[str, ...] = ("exit_work",)) -> UnitRows:
    """``unit_cells``' per-person-month frame (see there)."""
    # group on integer codes (string keys over millions of rows cost seconds), then put
    # the labels back on the (few) cells
    muni_c, muni_u = pd.factorize(person_months["municipality"].astype(str))
    reg_c, reg_u = pd.factorize(person_months["region"].astype(str))
    if team_units:
        team = person_months["team_key"].astype("string")
        in_team = team.isin(list(team_units)).fillna(False).to_numpy()
        unit = np.where(in_team, "team:" + team.fillna("").astype(str).to_numpy(),
                        np.asarray(muni_u, dtype=object)[muni_c])
        unit_c, unit_u = pd.factorize(unit)
    else:
        unit_c, unit_u = muni_c, muni_u
    comp = _composition_columns(person_months)
    sums = {c.replace("exit_", "exits_", 1): pd.to_numeric(person_months[c]).to_numpy(
        dtype="float64") for c in counts}
    frame = pd.concat([pd.DataFrame({
        "unit": unit_c, "municipality": muni_c, "region": reg_c,
        "t": person_months["t"].to_numpy(dtype="int64"),
        "person_months": 1.0, **sums,
    }, index=person_months.index), comp], axis=1)
    lm = [c for c in person_months.columns if c.startswith("lm_") and c.endswith("_muni")]
    frame[lm] = person_months[lm].apply(pd.to_numeric, errors="coerce")
    return UnitRows(frame, {"unit": np.asarray(unit_u, dtype=object),
                            "municipality": np.asarray(muni_u, dtype=object),
                            "region": np.asarray(reg_u, dtype=object)},
                    tuple(sums), tuple(lm))


def unit_cells(person_months: pd.DataFrame | None, team_units: set[str],
               by: dict[str, np.ndarray] | None = None,
               counts: tuple[str, ...] = ("exit_work",),
               rows: UnitRows | None = None) -> pd.DataFrame:
    """Adopting-unit x month cells from person-months (for team-level adoption).

    The unit is the client's team when that team has its own adoption row, else the
    municipality (the rest of it). Columns: unit, municipality, region, t,
    person_months, exits_work, ``COMPOSITION`` and the ``lm_*_muni`` means.

    ``by`` splits the cells further by extra keys given per person-month (e.g. a client
    group, column ``group``); ``counts`` names the person-month indicators summed, each
    ``exit_<x>`` as ``exits_<x>``. ``rows``: ``unit_rows(person_months, team_units,
    counts)`` if already built (then ``person_months`` is not read).
    """
    if rows is None:
        rows = unit_rows(person_months, team_units, counts)
    frame = rows.frame
    keys = [frame["unit"], frame["municipality"], frame["region"], frame["t"],
            *(pd.Series(np.asarray(v), index=frame.index, name=k)
              for k, v in (by or {}).items())]
    g = frame.groupby(keys, sort=False, observed=True)
    out_sums = g[["person_months", *rows.sums]].sum()
    means = g[list(COMPOSITION) + list(rows.lm)].mean()
    out = pd.concat([out_sums, means], axis=1).reset_index()
    for c, labels in rows.labels.items():
        out[c] = labels[out[c].to_numpy()]
    # the order of sorted labels, as before (deterministic, independent of row order)
    return out.sort_values(["unit", "municipality", "region", "t", *(by or {})],
                           kind="stable").reset_index(drop=True)
