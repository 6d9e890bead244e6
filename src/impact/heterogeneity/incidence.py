"""Cumulative incidence of exits by client group: competing risks from person-month counts.

Three steps, each a plain function on frames or DuckDB relations (never paths):

1. :func:`incidence_counts` aggregates the person-month panel to one row per group and
   duration (months since the true start of the spell): person-months at risk, exits to
   work, to education and of any kind, and the distinct clients at risk. In DuckDB it is
   one pass, out of core (two hash aggregates that spill beyond the connection's
   ``memory_limit``, see :func:`impact.panel.connect`) and linear in person-months; a
   pandas engine gives the same table for small frames.
2. :func:`cumulative_incidence` turns the counts into the discrete-time Aalen-Johansen
   estimate of the cumulative incidence function (CIF) of each exit type, with
   delta-method standard errors and pointwise intervals.
3. :func:`suppress_incidence` applies the project's disclosure rule (``privacy.min_cell``).

Estimator
---------
Exits are competing risks: ``work``, ``education`` and ``other`` (= any exit that is not
to work or education). At duration ``d`` (0 = the start month) let ``n(d)`` be the
person-months at risk and ``e_k(d)`` the exits of type ``k``. The cause-specific discrete
hazards and the survival are::

    h_k(d) = e_k(d) / n(d),   h(d) = sum_k h_k(d) = e_any(d) / n(d)
    S(d)   = prod_{s <= d} (1 - h(s)),            S(-1) = 1
    F_k(d) = sum_{s <= d} S(s - 1) h_k(s)                      (the CIF)

``F_work + F_education + F_other = 1 - S`` at every ``d``; the row ``outcome = any`` is
``1 - S``. ``F_k(d)`` is the probability that a spell has ended by the end of month ``d``
(of its duration) with an exit of type ``k``.

Left truncation. A spell that began before the panel window enters the risk set at the
duration it has in the window's first month (``duration > 0``), so ``n(d)`` counts every
spell under observation at duration ``d``, delayed entries included. This is the standard
product-limit treatment of delayed entry; it assumes *independent* delayed entry (the
hazard at ``d`` of a spell observed from ``d`` on equals that of one observed from its
start) and independent (non-informative) censoring at the window's end. Durations
without anyone at risk are simply absent (they contribute no factor); if a group has no
one at risk at ``d = 0`` its curve is conditional on reaching its first observed duration.

Standard errors (delta method)
------------------------------
Conditional on the risk sets, the exits at each ``d`` are taken as multinomial,
``(e_1, e_2, e_3, n - e_any) ~ Mult(n(d); h_1, h_2, h_3, 1 - h)``, independently across
``d``, so ``Cov(h_j, h_l) = (h_j [j = l] - h_j h_l) / n(d)``. For a horizon ``D >= d``::

    dF_k(D)/dh_j(d) = S(d-1) [j = k] - a(d),   a(d) = (F_k(D) - F_k(d)) / (1 - h(d))

(the second term: ``h_j(d)`` lowers ``S(s-1)`` for every later ``s`` through the factor
``1 - h(d)``; it is the same for every cause ``j``). The quadratic form ``g' Cov g`` per
``d`` simplifies to::

    Var F_k(D) = sum_{d <= D} [ h_k (1 - h_k) S(d-1)^2
                                - 2 h_k S(d-1) (F_k(D) - F_k(d))
                                + h / (1 - h) (F_k(D) - F_k(d))^2 ] / n(d)

(all ``h`` at ``d``; the last term is 0 when ``h(d) = 1``, its limit). For ``k = any``
(``h_k = h``) this reduces to Greenwood's formula ``S(D)^2 sum h / ((1 - h) n)``. It is
conditional on the risk sets and treats the months of one spell, and the spells of one
client, as independent contributions -- the usual Greenwood/Aalen-type assumption; it
ignores dependence between repeated spells of one client. Intervals are Wald intervals
``F +/- z_{1-alpha/2} SE`` clipped to ``[0, 1]`` (degenerate ``[0, 0]`` where ``F = 0``).
"""

from __future__ import annotations

from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
from scipy import stats

from impact.disclosure.suppress import secondary

__all__ = [
    "COUNT_COLUMNS", "INCIDENCE_COLUMNS", "OUTCOMES", "IncidenceInputError",
    "incidence_counts", "cumulative_incidence", "suppress_incidence",
]

#: Columns of :func:`incidence_counts` (``exits_education`` only with an education column).
COUNT_COLUMNS = ("group", "duration", "at_risk", "clients", "exits_work", "exits_education",
                 "exits_any", "group_clients")
#: Columns of :func:`cumulative_incidence` (``suppressed`` added by :func:`suppress_incidence`).
INCIDENCE_COLUMNS = ("group", "duration", "outcome", "cif", "std_error", "ci_low", "ci_high",
                     "at_risk", "clients", "cum_exits", "group_clients")
#: Outcomes, in output order; ``education`` is left out when the counts have no education.
OUTCOMES = ("work", "education", "other", "any")
ALL_LABEL = "all"
_VIEW = "_impact_incidence_pm"


class IncidenceInputError(ValueError):
    """The person-months or the counts break an assumption of the estimator."""


# --------------------------------------------------------------------------- counts


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _counts_sql(group_col: str | None, max_duration: int, client_col: str,
                exit_cols: dict[str, str | None]) -> str:
    g = _ident(group_col) if group_col else "NULL"
    w, a = _ident(exit_cols["work"]), _ident(exit_cols["any"])
    e = _ident(exit_cols["education"]) if exit_cols["education"] else "0"
    # a row is invalid when an exit flag is not 0/1 (NULL included) or work + education > any
    bad = (f"NOT coalesce({w} IN (0, 1) AND {e} IN (0, 1) AND {a} IN (0, 1) "
           f"AND {w} + {e} <= {a}, false)")
    return f"""
        WITH cm AS (  -- one row per group x duration x client: person-month sized, spills
            SELECT {g} AS g, duration AS d, {_ident(client_col)} AS client,
                count(*) AS n, sum({w}) AS w, sum({e}) AS e, sum({a}) AS a,
                count_if({bad}) AS bad
            FROM {_VIEW}
            WHERE duration <= {int(max_duration)}
            GROUP BY ALL
        )
        SELECT g, d, grouping(d) AS total_row,
            sum(n)::BIGINT AS at_risk, count(DISTINCT client)::BIGINT AS clients,
            sum(w)::BIGINT AS exits_work, sum(e)::BIGINT AS exits_education,
            sum(a)::BIGINT AS exits_any, sum(bad)::BIGINT AS bad
        FROM cm
        GROUP BY GROUPING SETS ((g, d), (g))
    """


def _counts_duckdb(data: Any, con, group_col, max_duration, client_col, exit_cols) -> pd.DataFrame:
    if isinstance(data, duckdb.DuckDBPyRelation):
        rel = data
    else:
        con = con if con is not None else duckdb.connect()
        rel = con.from_df(data) if isinstance(data, pd.DataFrame) else con.from_arrow(data)
    missing = {group_col, client_col, "duration", *exit_cols.values()} - {None} - set(rel.columns)
    if missing:
        raise IncidenceInputError(f"person-months lack the column(s) {sorted(missing)}")
    out = rel.query(_VIEW, _counts_sql(group_col, max_duration, client_col, exit_cols)).df()
    if group_col is None:
        out["g"] = None
    totals = out[out["total_row"] == 1]
    cells = out[out["total_row"] == 0].drop(columns="total_row")
    cells = cells.merge(totals[["g", "clients"]].rename(columns={"clients": "group_clients"}),
                        on="g", how="left", validate="many_to_one")
    return cells


def _counts_pandas(data: Any, group_col, max_duration, client_col, exit_cols) -> pd.DataFrame:
    if isinstance(data, duckdb.DuckDBPyRelation):
        data = data.df()
    elif not isinstance(data, pd.DataFrame):
        data = data.to_pandas()
    missing = {group_col, client_col, "duration", *exit_cols.values()} - {None} - set(data.columns)
    if missing:
        raise IncidenceInputError(f"person-months lack the column(s) {sorted(missing)}")
    pm = data.loc[data["duration"] <= max_duration]
    flags = {k: pm[c] if c else pd.Series(0, index=pm.index) for k, c in exit_cols.items()}
    ok = pd.Series(True, index=pm.index)
    for v in flags.values():
        ok &= v.isin([0, 1]).fillna(False).astype(bool)
    ok &= (flags["work"].fillna(9) + flags["education"].fillna(9) <= flags["any"].fillna(-1))
    frame = pd.DataFrame({
        "g": pm[group_col] if group_col else None, "d": pm["duration"],
        "client": pm[client_col], "w": flags["work"], "e": flags["education"],
        "a": flags["any"], "bad": (~ok).astype("int64"),
    })
    by = frame.groupby(["g", "d"], dropna=False, sort=False)
    cells = by.agg(at_risk=("d", "size"), clients=("client", "nunique"), exits_work=("w", "sum"),
                   exits_education=("e", "sum"), exits_any=("a", "sum"), bad=("bad", "sum"))
    cells = cells.reset_index()
    per_group = (frame.groupby("g", dropna=False, sort=False)["client"].nunique()
                 .rename("group_clients").reset_index())
    return cells.merge(per_group, on="g", how="left", validate="many_to_one")


def _label(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _finish_counts(cells: pd.DataFrame, group_col: str | None, missing_group: str,
                   missing_label: str, has_education: bool) -> pd.DataFrame:
    """Shared by both engines: checks, group labels, order and types."""
    if len(cells) and cells["bad"].sum() > 0:
        raise IncidenceInputError(
            f"{int(cells['bad'].sum())} person-month(s) have exit flags that are not 0/1 or with "
            "exit_work + exit_education > exit_any")
    if len(cells) and (cells["d"] < 0).any():
        raise IncidenceInputError("negative durations in the person-months")
    if group_col is None:
        cells = cells.assign(group=ALL_LABEL, _na=False)
    else:
        isna = cells["g"].isna().to_numpy()
        if missing_group == "drop":
            cells, isna = cells.loc[~isna], isna[~isna]
        labels = [missing_label if m else _label(v) for v, m in zip(cells["g"], isna)]
        if isna.any() and missing_label in {lab for lab, m in zip(labels, isna) if not m}:
            raise IncidenceInputError(f"{group_col} has the value {missing_label!r} and missing "
                                      "values; pass another missing_label")
        cells = cells.assign(group=labels, _na=isna)
    # natural order of the group values, missing last, then duration
    cells = cells.sort_values(["_na", "g", "d"], kind="mergesort").rename(columns={"d": "duration"})
    cols = [c for c in COUNT_COLUMNS if has_education or c != "exits_education"]
    out = cells[cols].reset_index(drop=True)
    out["group"] = out["group"].astype(str)
    for c in cols[1:]:
        out[c] = out[c].astype("int64")
    return out


def incidence_counts(
    person_months: Any,
    group_col: str | None = None,
    max_duration: int = 120,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    engine: Literal["duckdb", "pandas"] = "duckdb",
    missing_group: Literal["own", "drop"] = "own",
    missing_label: str = "missing",
    education_col: str | None = "exit_education",
    work_col: str = "exit_work",
    any_col: str = "exit_any",
    client_col: str = "client_id",
) -> pd.DataFrame:
    """Person-months at risk and exits by group and duration (one row per group x duration).

    Parameters
    ----------
    person_months
        The panel's person-months (architecture.md, "Panel"): a DuckDB relation (aggregated
        on its own connection, with that connection's memory limit), a pandas DataFrame or
        an Arrow table. Needs ``duration``, ``client_id``, ``exit_work``, ``exit_any``,
        ``exit_education`` (unless ``education_col=None``) and ``group_col``. One row per
        spell and month at risk is assumed (not checked: duplicates would count twice).
    group_col
        Column of the client group (categorical: ``ladder_step``, ``education_level``,
        ``household``, ...; band continuous ones such as ``age`` first). None: one group
        labelled ``"all"``.
    max_duration
        Durations above it are **dropped**. Nothing is lost for ``d <= max_duration``: the
        estimate at ``d`` only uses the risk sets at ``0..d`` (pooling the tail into one row
        would not be a one-month step and is not offered).
    con
        Connection for pandas / Arrow input (bounded by ``impact.panel.connect``); default
        a fresh in-memory connection. Ignored for a relation.
    engine
        ``"duckdb"`` (default; out of core, linear in person-months) or ``"pandas"`` (small
        frames, tests; a relation is fetched whole).
    missing_group
        Person-months whose group value is missing: ``"own"`` (default) keeps them as a
        group labelled ``missing_label`` (listed last), so the groups still add up to all
        spells and missingness stays visible; ``"drop"`` leaves them out.
    education_col
        The exit-to-education flag; None when the panel has none: the table then has no
        ``exits_education`` column and ``other`` (in :func:`cumulative_incidence`)
        includes exits to education.
    work_col, any_col, client_col
        Other column names, for panels that spell them differently.

    Returns
    -------
    pandas.DataFrame
        :data:`COUNT_COLUMNS`: ``group`` (string; the value as text, whole floats without
        ``.0``), ``duration`` (int, only durations with someone at risk), ``at_risk``
        (person-months, i.e. spells at risk, at that duration), ``clients`` (distinct
        clients among them), ``exits_work``, ``exits_education``, ``exits_any``,
        ``group_clients`` (distinct clients of the group over durations
        ``0..max_duration``; the same on every row of a group). Ordered by group (natural
        order of the values, missing last), then duration.

    Raises
    ------
    IncidenceInputError
        A column is missing, a duration is negative, an exit flag is not 0/1, or
        ``exit_work + exit_education > exit_any`` in some person-month (checked on the
        person-months with ``duration <= max_duration``, the ones aggregated).
    """
    if isinstance(max_duration, bool) or not isinstance(max_duration, (int, np.integer)) \
            or max_duration < 0:
        raise ValueError(f"max_duration must be an integer >= 0, got {max_duration!r}")
    if missing_group not in ("own", "drop"):
        raise ValueError(f"missing_group must be 'own' or 'drop', got {missing_group!r}")
    exit_cols = {"work": work_col, "education": education_col, "any": any_col}
    if engine == "duckdb":
        cells = _counts_duckdb(person_months, con, group_col, max_duration, client_col, exit_cols)
    elif engine == "pandas":
        cells = _counts_pandas(person_months, group_col, max_duration, client_col, exit_cols)
    else:
        raise ValueError(f"engine must be 'duckdb' or 'pandas', got {engine!r}")
    return _finish_counts(cells, group_col, missing_group, missing_label, education_col is not None)


# --------------------------------------------------------------------------- estimator


def _delta_variance(h_k: np.ndarray, h: np.ndarray, n: np.ndarray, s_prev: np.ndarray,
                    f: np.ndarray) -> np.ndarray:
    """``Var F_k(D)`` for every ``D`` (module docstring), O(len^2) and exact in form."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_n = np.where(n > 0, 1.0 / n, 0.0)
        ratio = np.where(h < 1, h / (1 - h), 0.0)  # the term vanishes when h = 1 (F flat after)
    diff = f[:, None] - f[None, :]  # [D, d] = F(D) - F(d)
    lower = np.tril(np.ones_like(diff, dtype=bool))
    term = (h_k * (1 - h_k) * s_prev**2)[None, :] - 2 * (h_k * s_prev)[None, :] * diff \
        + ratio[None, :] * diff**2
    var = np.where(lower, term * inv_n[None, :], 0.0).sum(axis=1)
    return np.clip(var, 0.0, None)


def _check_counts(counts: pd.DataFrame) -> bool:
    need = {"group", "duration", "at_risk", "clients", "exits_work", "exits_any"}
    missing = need - set(counts.columns)
    if missing:
        raise IncidenceInputError(f"counts lack the column(s) {sorted(missing)}")
    has_edu = "exits_education" in counts.columns
    c = counts
    edu = c["exits_education"] if has_edu else 0
    if counts.duplicated(["group", "duration"]).any():
        raise IncidenceInputError("counts have a group and duration twice")
    bad = ((c["exits_work"] < 0) | (c["exits_any"] > c["at_risk"])
           | (c["exits_work"] + edu > c["exits_any"]) | (c["clients"] > c["at_risk"]))
    if has_edu:
        bad |= c["exits_education"] < 0
    if bad.any():
        raise IncidenceInputError(f"{int(bad.sum())} count row(s) are inconsistent (exits < 0, "
                                  "work + education > any, any > at_risk or clients > at_risk)")
    return has_edu


def cumulative_incidence(counts: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Discrete-time Aalen-Johansen cumulative incidence per group, with delta-method SEs.

    Parameters
    ----------
    counts
        :func:`incidence_counts` output (or the same columns from elsewhere); rows with
        ``at_risk = 0`` contribute nothing. ``group_clients`` is carried along if present.
    alpha
        Intervals are ``1 - alpha`` (default 95%), pointwise.

    Returns
    -------
    pandas.DataFrame
        :data:`INCIDENCE_COLUMNS`, one row per group, outcome (``work``, ``education``,
        ``other``, ``any``; no ``education`` without ``exits_education``) and duration,
        in that order: ``cif`` (probability, 0..1, of having left by the end of month
        ``duration`` through that outcome; ``any`` = 1 - S), ``std_error``,
        ``ci_low``/``ci_high`` (clipped to [0, 1]), ``at_risk`` and ``clients`` at that
        duration, ``cum_exits`` (exits of that outcome at durations ``<= duration``, the
        numerator behind the point), ``group_clients`` (if in ``counts``).
        See the module docstring for the estimator, its assumptions and the variance.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    has_edu = _check_counts(counts)
    z = stats.norm.ppf(1 - alpha / 2)
    outcomes = [o for o in OUTCOMES if has_edu or o != "education"]
    carry = "group_clients" in counts.columns
    pieces = []
    for group, g in counts.groupby("group", sort=False):
        g = g.sort_values("duration", kind="mergesort")
        n = g["at_risk"].to_numpy(dtype="float64")
        ev = {"work": g["exits_work"].to_numpy(dtype="float64"),
              "any": g["exits_any"].to_numpy(dtype="float64")}
        ev["education"] = (g["exits_education"].to_numpy(dtype="float64") if has_edu
                           else np.zeros(len(g)))
        ev["other"] = ev["any"] - ev["work"] - ev["education"]
        with np.errstate(divide="ignore", invalid="ignore"):
            hz = {k: np.where(n > 0, v / n, 0.0) for k, v in ev.items()}
        surv = np.cumprod(1 - hz["any"])
        s_prev = np.r_[1.0, surv[:-1]]
        for outcome in outcomes:
            cif = 1 - surv if outcome == "any" else np.cumsum(s_prev * hz[outcome])
            var = _delta_variance(hz[outcome], hz["any"], n, s_prev, cif)
            se = np.sqrt(var)
            piece = pd.DataFrame({
                "group": group, "duration": g["duration"].to_numpy(), "outcome": outcome,
                "cif": cif, "std_error": se,
                "ci_low": np.clip(cif - z * se, 0, 1), "ci_high": np.clip(cif + z * se, 0, 1),
                "at_risk": g["at_risk"].to_numpy(), "clients": g["clients"].to_numpy(),
                "cum_exits": np.cumsum(ev[outcome]).round().astype("int64"),
            })
            if carry:
                piece["group_clients"] = g["group_clients"].to_numpy()
            pieces.append(piece)
    cols = [c for c in INCIDENCE_COLUMNS if carry or c != "group_clients"]
    if not pieces:
        return pd.DataFrame(columns=cols)
    out = pd.concat(pieces, ignore_index=True)[cols]
    out["group"] = out["group"].astype(str)
    out["outcome"] = out["outcome"].astype(str)
    return out


# --------------------------------------------------------------------------- disclosure


def suppress_incidence(incidence: pd.DataFrame, min_cell: int, *,
                       secondary_outcomes: bool = True) -> pd.DataFrame:
    """Disclosure control of :func:`cumulative_incidence` output (``privacy.min_cell``).

    The project's rule is that every count and every numerator of a rate rests on at least
    ``min_cell``. Here:

    1. Groups with fewer than ``min_cell`` distinct clients overall (``group_clients``)
       are dropped entirely.
    2. A point (group, outcome, duration) is blanked when fewer than ``min_cell`` clients
       are at risk at that duration (all outcomes of that duration), or when its
       numerator, ``cum_exits`` of that outcome, is between 1 and ``min_cell - 1``.
       ``cum_exits = 0`` is published (``cif = 0``): nobody's exit is counted, and the
       statement "no exit of this type yet" rests on a risk set of at least ``min_cell``
       clients.
    3. Secondary (``secondary_outcomes``, default on): where ``any`` is published the
       three exit types add up to it (counts and CIFs alike), so one blank type could be
       recovered by subtraction; when exactly one of work/education/other is blank at a
       point, the published one with the fewest exits (the earlier in outcome order on
       ties) is blanked too (:func:`impact.disclosure.suppress.secondary`).

    Blanked points keep their row: ``cif``, ``std_error``, ``ci_low``, ``ci_high`` become
    NaN and ``at_risk``, ``clients``, ``cum_exits`` NA (nullable Int64); the new boolean
    column ``suppressed`` flags them.

    Not covered (decide at publication): differences between consecutive durations
    (``cum_exits(d) - cum_exits(d - 1)`` are the month's exits and may be small), and
    totals published in *other* tables (an overall curve beside group curves).
    """
    if isinstance(min_cell, bool) or not isinstance(min_cell, (int, np.integer)) or min_cell < 1:
        raise ValueError(f"min_cell must be an integer >= 1, got {min_cell!r}")
    if "group_clients" not in incidence.columns:
        raise IncidenceInputError("suppress_incidence needs group_clients (from incidence_counts)")
    out = incidence.loc[incidence["group_clients"] >= min_cell].reset_index(drop=True).copy()
    hide = np.array((out["clients"] < min_cell)
                    | ((out["cum_exits"] > 0) & (out["cum_exits"] < min_cell)), dtype=bool)
    if secondary_outcomes and len(out):
        parts = out["outcome"].isin(["work", "education", "other"]).to_numpy()
        key = out[["group", "duration"]].astype(str).agg("\x1f".join, axis=1).to_numpy()
        any_shown = pd.Series(~hide[(out["outcome"] == "any").to_numpy()],
                              index=key[(out["outcome"] == "any").to_numpy()])
        use = parts & any_shown.reindex(key).fillna(False).to_numpy(dtype=bool)
        idx = np.flatnonzero(use)
        # order within a point: work, education, other (rows are in that outcome order)
        rank = out["outcome"].map({"work": 0, "education": 1, "other": 2}).to_numpy()
        idx = idx[np.lexsort((rank[idx], key[idx]))]
        hide[idx] = secondary(hide[idx], key[idx],
                              out["cum_exits"].to_numpy(dtype="float64")[idx])
    for c in ("cif", "std_error", "ci_low", "ci_high"):
        out[c] = out[c].astype("float64").mask(hide)
    for c in ("at_risk", "clients", "cum_exits"):
        out[c] = out[c].astype("Int64").mask(hide)
    out["suppressed"] = hide
    return out

