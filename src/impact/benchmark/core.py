"""The fair benchmark: each unit's outflow against what its clients and labour market predict.

Notes
-----
**Expected rate.** The decomposition model (``impact.decompose``) gives the quality
effect theta and the programme's event-time effects tau. The benchmark model takes them
out of the outcome, ``y~ = 100 exit_work - theta q - tau'a`` (q the measured quality:
its error is independent of the regressors, so the fit stays consistent), and fits
``y~`` on the client controls, the municipal labour-market indicators, the shock bins and
region x month effects, *without* municipality effects: a municipality's indicator
levels (its prosperity, as far as the indicators see it) count as labour market, not as
merit. A unit's expected rate is the mean prediction over its person-months in the
compared period, plus one constant that makes the expected exits of all units add up to
the observed ones (indirect standardisation: national O/E = 1).

**Funnel.** O/E with Spiegelhalter's (2005) exact Poisson limits at 95% and 99.8% for
the unit's expected count, widened by the Winsorised multiplicative overdispersion
factor when it exceeds 1 (``benchmark.overdispersion``).

**Quality contribution.** theta times the unit's mean measured quality relative to the
national (person-month-weighted) mean, after empirical-Bayes shrinkage: the noise
variance of each unit's mean comes from the split audit halves (caseworker-clustered,
pooled over units), the between-unit variance by moments, and the shrinkage factor is
the reliability of the unit's mean (``impact.benchmark.stats``). Interval and rank
intervals from joint draws: theta from the decomposition model's wild cluster bootstrap,
each unit's true mean quality from its normal posterior.

**Ranks** (1 = best) among published units: naive by the observed rate (draws from its
binomial sampling distribution), adjusted by the quality contribution, and by O/E (draws
of O from Poisson(O)). Intervals are per unit, 95% (Goldstein and Spiegelhalter 1996).

**Disclosure.** A unit is published only with at least ``privacy.min_cell`` distinct
clients and exits to work in the period; a team also needs
``benchmark.team_min_caseworkers`` caseworkers. Secondary suppression then hides the
smallest other unit wherever one hidden unit could be recovered from a published total
(a municipality among all, a team within its municipality).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from impact.benchmark.params import BenchmarkParams
from impact.disclosure.suppress import secondary
from impact.benchmark.stats import (
    funnel_limits, overdispersion, rank_intervals, ranks, shrink_means, split_half_noise,
)
from impact.benchmark.expected import ExpectedModel, expected_by, fit_expected
from impact.decompose.design import build_design
from impact.estimate.frames import warn
from impact.estimate.params import EstimateParams

__all__ = ["BenchmarkResult", "ExpectedModel", "MUNICIPALITY_COLUMNS", "TEAM_COLUMNS",
           "YEAR_COLUMNS", "benchmark_units", "expected_by", "fit_expected", "funnel_curve",
           "run_benchmark"]


def funnel_curve(expected_exits: np.ndarray, phi: float, points: int = 200) -> pd.DataFrame:
    """Funnel limits on a geometric grid spanning the units' expected counts."""
    e = expected_exits[np.isfinite(expected_exits) & (expected_exits > 0)]
    if len(e) == 0:
        return pd.DataFrame(columns=["expected_exits", "low95", "high95", "low998", "high998"])
    grid = np.geomspace(max(e.min() / 1.5, 1.0), e.max() * 1.5, points)
    lim = funnel_limits(grid, phi=phi)
    return pd.concat([pd.DataFrame({"expected_exits": grid}), lim], axis=1)


@dataclass
class UnitInputs:
    """What the benchmark table of a set of units reads from the person-months, per unit
    (sorted labels): the expected-rate frame (``expected_by``), distinct clients and
    caseworkers, the margin each unit adds up to (None: the national total), the measured
    quality's sum and count, and the rows for the split-half noise (``unit``, caseworker,
    ``a``, ``b``, weight; None without the quality halves)."""

    labels: np.ndarray
    expected: pd.DataFrame
    clients: np.ndarray
    caseworkers: np.ndarray
    margin: np.ndarray | None
    qsum: np.ndarray | None
    qn: np.ndarray | None
    halves: tuple | None


def unit_inputs(pm: pd.DataFrame, unit_col: str, rows: np.ndarray, model: ExpectedModel,
                margin_col: str | None = None) -> UnitInputs:
    """:class:`UnitInputs` of the units in ``pm[unit_col]`` over ``rows``."""
    codes, labels = pd.factorize(pm[unit_col].astype("string").fillna(""), sort=True)
    U = len(labels)
    out = expected_by(pm, model, codes, U, rows)
    sel = rows & (codes >= 0) & (pm[unit_col].notna().to_numpy())
    # distinct clients and caseworkers per unit, counted on integer codes (a missing
    # caseworker, code -1, is not one)
    client = pd.factorize(pm["client_id"])[0]
    cw = pd.factorize(pm["caseworker_key"])[0]
    clients = (pd.DataFrame({"u": codes[sel], "c": client[sel]})
               .drop_duplicates().groupby("u").size().reindex(range(U), fill_value=0))
    cws = (pd.DataFrame({"u": codes[sel], "c": cw[sel]}).query("c >= 0")
           .drop_duplicates().groupby("u").size().reindex(range(U), fill_value=0))
    margin = None
    if margin_col is not None:
        first = pd.Series(pm[margin_col].to_numpy()[sel]).groupby(codes[sel]).first()
        margin = first.reindex(range(U)).astype(str).to_numpy()
    qsum = qn = halves = None
    if {"quality_score", "quality_a", "quality_b", "caseworker_key"} <= set(pm.columns):
        q = pd.to_numeric(pm["quality_score"], errors="coerce").to_numpy(dtype="float64")
        qok = sel & np.isfinite(q)
        qn = np.bincount(codes[qok], minlength=U).astype("float64")
        qsum = np.bincount(codes[qok], weights=q[qok], minlength=U)
        a = pd.to_numeric(pm["quality_a"], errors="coerce").to_numpy(dtype="float64")
        b = pd.to_numeric(pm["quality_b"], errors="coerce").to_numpy(dtype="float64")
        hok = sel & np.isfinite(a) & np.isfinite(b)
        halves = (codes[hok], pm["caseworker_key"].astype(str).to_numpy()[hok], a[hok], b[hok],
                  np.ones(int(hok.sum())))
    return UnitInputs(np.asarray(labels, dtype=object), out, clients.to_numpy(),
                      cws.to_numpy(), margin, qsum, qn, halves)


def benchmark_units(pm: pd.DataFrame, unit_col: str, rows: np.ndarray, model: ExpectedModel,
                    theta: float, theta_psi: np.ndarray, bparams: BenchmarkParams,
                    min_cell: int, seed: int, min_caseworkers: int = 1,
                    margin_col: str | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The benchmark table of the units in ``pm[unit_col]`` over ``rows`` (module notes).

    ``theta`` is the quality effect and ``theta_psi`` (G,) its cluster influence rows
    from the decomposition model. Returns the table (one row per unit, sorted by unit)
    and facts (phi, tau2, ...). Units adding up to a published total (all units to the
    national total; teams, with ``margin_col="municipality"``, to their municipality) get
    secondary suppression: no group is left with exactly one hidden unit.
    """
    return unit_table(unit_inputs(pm, unit_col, rows, model, margin_col), unit_col, theta,
                      theta_psi, bparams, min_cell, seed, min_caseworkers)


def unit_table(inp: UnitInputs, unit_col: str, theta: float, theta_psi: np.ndarray,
               bparams: BenchmarkParams, min_cell: int, seed: int, min_caseworkers: int = 1
               ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`benchmark_units` from the units' :class:`UnitInputs`."""
    labels = inp.labels
    U = len(labels)
    out = inp.expected.copy()
    out.insert(0, unit_col, labels)
    clients = inp.clients
    publish = ((clients >= min_cell) & (out["exits_work"].to_numpy() >= min_cell)
               & (inp.caseworkers >= min_caseworkers) & (labels != ""))
    margin = np.zeros(U, dtype="int64") if inp.margin is None else inp.margin
    publish = ~secondary(~publish, margin, clients)
    out["expected_exits"] = out["expected_rate_pp"] * out["person_months"] / 100
    out["oe_ratio"] = out["exits_work"] / out["expected_exits"]

    # funnel
    O, E = out["exits_work"].to_numpy(), out["expected_exits"].to_numpy()
    pub_e = publish & np.isfinite(E) & (E > 0)
    phi_hat = overdispersion(O[pub_e], E[pub_e])[0] if pub_e.sum() >= 3 else float("nan")
    phi = max(phi_hat, 1.0) if bparams.overdispersion and np.isfinite(phi_hat) else 1.0
    lim = funnel_limits(np.where(pub_e, E, np.nan), phi=phi)
    for c in lim.columns:
        out[f"funnel_{c}"] = lim[c].to_numpy()
    r = out["oe_ratio"]
    out["funnel_signal"] = np.select(
        [r > out["funnel_high998"], r > out["funnel_high95"],
         r < out["funnel_low998"], r < out["funnel_low95"]],
        ["above_998", "above_95", "below_998", "below_95"], "within")

    # quality: split-half noise, shrinkage, contribution
    rng = np.random.default_rng(seed)
    B = bparams.n_draws
    q_parts = _quality_parts(inp, publish) if np.isfinite(theta) else None
    if q_parts is None:  # no quality effect or no split halves: no contribution
        qbar, shrunk, mu = np.full(U, np.nan), None, np.nan
        shrunk_q, rel, post = np.full(U, np.nan), np.full(U, np.nan), np.full(U, np.nan)
    else:
        qbar, shrunk = q_parts
        mu = float(shrunk.attrs["mu"])  # person-month-weighted mean of the published units
        shrunk_q, rel = shrunk["shrunk"].to_numpy(), shrunk["reliability"].to_numpy()
        post = shrunk["posterior_var"].to_numpy()
    out["quality_mean"] = qbar
    out["quality_shrunk"] = shrunk_q
    out["quality_reliability"] = rel
    out["quality_contribution_pp"] = theta * (shrunk_q - mu)
    W = rng.choice(np.array([-1.0, 1.0]), size=(B, len(theta_psi)))  # wild (Rademacher)
    theta_d = theta + W @ np.nan_to_num(theta_psi)
    q_d = shrunk_q[None, :] + np.sqrt(post)[None, :] * rng.standard_normal((B, U))
    contrib_d = theta_d[:, None] * (q_d - mu)
    lo, hi = np.full(U, np.nan), np.full(U, np.nan)
    has = publish & np.isfinite(out["quality_contribution_pp"].to_numpy())
    if has.any():
        lo[has], hi[has] = np.percentile(contrib_d[:, has], [2.5, 97.5], axis=0)
    out["quality_ci_low"], out["quality_ci_high"] = lo, hi

    # ranks among published units
    obs = out["observed_rate_pp"].to_numpy() / 100
    nn = out["person_months"].to_numpy()
    naive_sd = np.sqrt(np.maximum(obs * (1 - obs), 0) / np.maximum(nn, 1))
    naive_d = obs + naive_sd * rng.standard_normal((B, U))
    oe_d = rng.poisson(np.nan_to_num(O), (B, U)) / np.where(E > 0, E, np.nan)
    for name, point, draws in (("naive", obs, naive_d),
                               ("quality", out["quality_contribution_pp"].to_numpy(), contrib_d),
                               ("oe", out["oe_ratio"].to_numpy(), oe_d)):
        ok = publish & np.isfinite(point)
        out[f"rank_{name}"] = np.nan
        out[f"rank_{name}_low"] = np.nan
        out[f"rank_{name}_high"] = np.nan
        if ok.any():
            out.loc[ok, f"rank_{name}"] = ranks(point[ok])
            ri = rank_intervals(draws[:, ok])
            out.loc[ok, f"rank_{name}_low"] = ri["rank_low"].to_numpy()
            out.loc[ok, f"rank_{name}_high"] = ri["rank_high"].to_numpy()
    out["clients"] = clients
    out["published"] = publish
    attrs = shrunk.attrs if shrunk is not None else {}
    facts = {"overdispersion_phi": None if not np.isfinite(phi_hat) else float(phi_hat),
             "phi_applied": float(phi), "quality_tau2": _num(attrs.get("tau2")),
             "quality_national_mean": _num(mu), "quality_effect_pp": _num(theta),
             "noise_c_hat": _num(attrs.get("c_hat")),
             "units": int(U), "published_units": int(publish.sum())}
    return out, facts


def _num(v) -> float | None:
    return float(v) if v is not None and np.isfinite(v) else None


def _quality_parts(inp: UnitInputs, publish: np.ndarray
                   ) -> tuple[np.ndarray, pd.DataFrame] | None:
    """Each unit's mean measured quality and its empirical-Bayes shrinkage (None when the
    panel has no split audit halves or no unit with two measured caseworkers)."""
    if inp.halves is None:
        return None
    U = len(inp.labels)
    qn = inp.qn
    qbar = inp.qsum / np.where(qn > 0, qn, np.nan)
    try:
        noise = split_half_noise(*inp.halves)
    except ValueError as exc:
        warn(f"benchmark: no quality contribution ({exc})")
        return None
    nv = noise["noise_var"].reindex(range(U)).to_numpy()
    try:  # fewer than two published units (no team with enough caseworkers, say)
        shrunk = shrink_means(np.where(publish, qbar, np.nan), nv, weights=qn)
    except ValueError as exc:
        warn(f"benchmark: no quality contribution ({exc})")
        return None
    shrunk.attrs["c_hat"] = noise.attrs.get("c_hat")
    return qbar, shrunk


#: published columns of reports/tables/benchmark.csv (one row per municipality)
MUNICIPALITY_COLUMNS = [
    "municipality", "name", "region", "published", "clients", "person_months", "exits_work",
    "expected_exits", "observed_rate_pp", "expected_rate_pp", "oe_ratio",
    "funnel_low95", "funnel_high95", "funnel_low998", "funnel_high998", "funnel_signal",
    "quality_mean", "quality_shrunk", "quality_reliability", "quality_contribution_pp",
    "quality_ci_low", "quality_ci_high",
    "rank_naive", "rank_naive_low", "rank_naive_high",
    "rank_quality", "rank_quality_low", "rank_quality_high",
    "rank_oe", "rank_oe_low", "rank_oe_high",
]
TEAM_COLUMNS = ["team", "municipality"] + [c for c in MUNICIPALITY_COLUMNS[3:]]
YEAR_COLUMNS = ["municipality", "name", "year", "person_months", "observed_rate_pp",
                "expected_rate_pp", "oe_ratio"]
#: values hidden on a row that is not published (the identifiers and the flag stay)
_HIDDEN = [c for c in MUNICIPALITY_COLUMNS if c not in ("municipality", "name", "region",
                                                         "published")]


@dataclass
class BenchmarkResult:
    municipalities: pd.DataFrame
    teams: pd.DataFrame
    years: pd.DataFrame
    curve: pd.DataFrame
    facts: dict[str, Any]


def theta_tau(coefs: pd.DataFrame) -> tuple[float, dict[str, float]]:
    """The quality effect (NaN without one) and the programme bins' coefficients (by
    column name) of the decomposition model's coefficient table."""
    theta_rows = coefs.loc[coefs["term"] == "quality", "estimate"]
    theta = float(theta_rows.iloc[0]) if len(theta_rows) else float("nan")
    q = coefs[(coefs["factor"] == "quality") & (coefs["term"] != "quality")]
    return theta, dict(zip(q["term"], q["estimate"].astype(float)))


def run_benchmark(pm: pd.DataFrame, munis: pd.DataFrame, coefs: pd.DataFrame,
                  theta_psi: np.ndarray, params: EstimateParams, bparams: BenchmarkParams,
                  min_cell: int) -> BenchmarkResult:
    """Municipality, team and municipality-year tables (module notes).

    ``coefs`` is the decomposition model's coefficient table (term, factor, estimate) and
    ``theta_psi`` the quality effect's cluster influence rows.
    """
    theta, tau = theta_tau(coefs)
    t = pm["t"].to_numpy(dtype="int64")
    period = bparams.window(int(t.min()), int(t.max()))
    rows = (t >= period.first) & (t <= period.last)
    if not rows.any():
        raise ValueError(f"benchmark.period={bparams.period!r}: no person-month of the panel "
                         f"falls in it")
    model = fit_expected(pm, build_design(pm, params), theta, tau, params, rows)
    m_in = unit_inputs(pm, "municipality", rows, model)
    has_team = pm["team_key"].notna().to_numpy() if "team_key" in pm else np.zeros(len(pm), bool)
    t_in = (unit_inputs(pm[has_team].reset_index(drop=True), "team_key", rows[has_team], model,
                        margin_col="municipality") if has_team.any() else None)
    # municipality x calendar year, for the overview (the same model and constant)
    codes, labels = pd.factorize(pm["municipality"].astype(str), sort=True)
    years = t // 12
    y0 = int(years.min())
    ny = int(years.max()) - y0 + 1
    key = codes * ny + (years - y0)
    by = expected_by(pm, model, key, len(labels) * ny, np.ones(len(pm), bool))
    by["municipality"] = np.repeat(np.asarray(labels, dtype=object), ny)
    by["year"] = np.tile(np.arange(y0, y0 + ny), len(labels))
    by["clients"] = (pd.DataFrame({"k": key, "c": pm["client_id"].to_numpy()}).drop_duplicates()
                     .groupby("k").size().reindex(range(len(by)), fill_value=0).to_numpy())
    return assemble(m_in, t_in, by, munis, theta, theta_psi, params, bparams, min_cell,
                    period)


def assemble(m_in: UnitInputs, t_in: UnitInputs | None, by: pd.DataFrame, munis: pd.DataFrame,
             theta: float, theta_psi: np.ndarray, params: EstimateParams,
             bparams: BenchmarkParams, min_cell: int, period) -> BenchmarkResult:
    """The benchmark's tables from the inputs of the municipalities and the teams (None:
    no team) and the municipality-year frame ``by`` (``expected_by`` with municipality,
    year and distinct clients)."""
    m, facts = unit_table(m_in, "municipality", theta, theta_psi, bparams, min_cell,
                          params.seed)
    info = munis.drop_duplicates("municipality").set_index("municipality")
    m.insert(1, "name", m["municipality"].map(info["name"]).fillna(""))
    m.insert(2, "region", m["municipality"].map(info["region"]).fillna(""))
    m.loc[~m["published"], _HIDDEN] = np.nan
    m.loc[~m["published"], "funnel_signal"] = "suppressed"

    if t_in is not None:
        tm, tfacts = unit_table(t_in, "team_key", theta, theta_psi, bparams, min_cell,
                                params.seed + 1, bparams.team_min_caseworkers)
        tm = tm[tm["published"]].rename(columns={"team_key": "team"})
        tm.insert(1, "municipality", tm["team"].str.split(":", n=1).str[0])
        facts["teams"] = {k: tfacts[k] for k in ("units", "published_units", "quality_tau2",
                                                 "overdispersion_phi")}
    else:
        tm = pd.DataFrame(columns=TEAM_COLUMNS)

    by = by.copy()
    by["name"] = by["municipality"].map(info["name"]).fillna("")
    by["oe_ratio"] = by["observed_rate_pp"] / by["expected_rate_pp"]
    by = by[by["person_months"] > 0]
    small = (by["exits_work"] < min_cell) | (by["clients"] < min_cell)
    by.loc[small, ["person_months", "observed_rate_pp", "expected_rate_pp", "oe_ratio"]] = np.nan

    pub = m["published"].to_numpy()
    curve = funnel_curve(m.loc[pub, "expected_exits"].to_numpy(dtype="float64"),
                         facts["phi_applied"])
    facts["period"] = period.label if period.label != "window" else "window"
    return BenchmarkResult(m, tm.reset_index(drop=True), by.reset_index(drop=True), curve, facts)
