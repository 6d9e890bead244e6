"""Caseworker and team value-added: empirical-Bayes shrinkage, with a MixedLM beside it.

Notes
-----
Unit j (the caseworker or team of the month), person-month (i, t), region r:

    y_it = 100 * exit_work_it = X_it'g + d_rt + theta_j(i,t) + e_it

X: client covariates (``controls``; duration bands give duration dependence) and the
``lm_*_muni`` labour market. No municipality effects: value-added is relative to the
region-month. g is estimated *within units* (unit and region x month effects projected
out on unit x month cells by ``pmreg.cell_demean``) so that clients sorted to good units
do not load unit quality onto the covariates (Chetty, Friedman and Rockoff 2014, AER
104(9)); ``covariates="pooled"`` omits the unit effects (Kane and Staiger 2008). With
r = y - X'g minus its region-month mean, and S_js, n_js the residual sum and
person-months of spell s with unit j:

    raw_j = sum_s S_js / n_j,   V_j = phi / n_j,
    phi = sum_js (S_js - n_js raw_j)^2 / sum_j (n_j - sum_s n_js^2 / n_j),

a spell-clustered sampling variance (one exit ends a spell) pooled over units;
``noise="unit"``: each unit's own m_j/(m_j-1) sum_s (S_js - n_js raw_j)^2 / n_j^2.
Signal variance s2: maximum likelihood of raw_j ~ N(0, s2 + V_j) (Morris 1983, JASA 78).
Posterior (prior mean 0, the region-month average; no drift, unlike CFR):

    lambda_j = s2 / (s2 + V_j),  eb_j = lambda_j raw_j,  sd_j = sqrt(lambda_j V_j),

interval eb_j -/+ z_(1-alpha/2) sd_j. MixedLM (statsmodels' REML model, no fixed
effects, solved in closed form by ``mixedlm_blups`` and tested against it) on
sums over unit x spell block k (``_BLOCKS`` blocks by spell code): S_jk / sqrt(n_jk) =
sqrt(n_jk) b_j + u_jk, Var u = phi, b_j ~ N(0, s2); its BLUP is lambda_j raw_j with its
own s2 and phi. Choices and their evidence: docs/methods.md, "Value-added".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
from scipy import special

from impact.estimate.frames import age_band, duration_band, lm_controls, month_index, warn
from impact.estimate.linalg import independent_columns, scatter_dummies
from impact.estimate.params import CATEGORICAL_CONTROLS, DEFAULT_CONTROLS, _check_choice
from impact.estimate.pmreg import cell_demean
from impact.estimate.quality import _codes
from impact.estimate.results import row
from impact.estimate.variance_components import mixedlm_blups, signal_variance

__all__ = ["UnitSpells", "ValueAddedResult", "value_added", "signal_variance", "mixedlm_blups",
           "spell_result", "value_added_rows", "value_added_reads", "publishable_teams"]

KEYS = {"caseworker": "caseworker_key", "team": "team_key"}


def value_added_reads(columns, controls: Sequence[str]) -> list[str]:
    """The person-month columns (of ``columns``, in their order) ``value_added`` reads for
    either level: the outcome, the keys, region and municipality, spells, clients, months,
    the controls' source columns and the labour-market columns."""
    need = {"exit_work", "region", "municipality", "spell_id", "client_id", "t", "month",
            *KEYS.values()} | {{"age_band": "age", "duration_band": "duration"}.get(c, c)
                               for c in controls}
    return [c for c in columns if c in need or c.startswith("lm_")]


_BLOCKS = 10
_SUMMARY_TERMS = ("signal_sd", "signal_sd_split", "mean_shrinkage", "noise_var_pm",
                  "mixedlm_signal_sd", "corr_eb_mixedlm")


@dataclass(frozen=True)
class ValueAddedResult:
    """Value-added of one level, in pp. ``units`` (internal: caseworker rows are personnel
    data), one row per unit: unit, municipality (modal), n_person_months, n_spells,
    n_clients, n_caseworkers, raw_va, noise_var, shrinkage, eb_va, eb_sd, ci_low, ci_high,
    mixedlm_va. ``summary``: level, n_units, signal_sd, mean_shrinkage, noise_var_pm (phi),
    signal_sd_split (from the covariance of the means of each unit's odd and even spell
    codes: no noise model), mixedlm_signal_sd, mixedlm_noise_var_pm, corr_eb_mixedlm,
    n_person_months, n_spells, n_dropped_no_unit, n_dropped_missing and the options."""

    level: str
    units: pd.DataFrame
    summary: dict[str, Any]


def _pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Code of each row's (a, b) pair (a, b >= 0) and the first row of each code."""
    codes = _codes(a.astype("int64") * (int(b.max(initial=0)) + 1) + b)
    # codes count up in order of first appearance: a first row raises the running max
    return codes, np.flatnonzero(np.diff(np.maximum.accumulate(codes), prepend=-1) > 0)


def _design(s: pd.DataFrame, controls: Sequence[str], lm) -> tuple[np.ndarray, np.ndarray]:
    """A = [y, numeric and labour-market controls, dummies (modal level out)], finite rows."""
    cols: list[Any] = [pd.to_numeric(s["exit_work"])]
    for c in controls:
        if c in ("age_band", "duration_band") or c in CATEGORICAL_CONTROLS:
            codes = _codes(age_band(s["age"]) if c == "age_band" else duration_band(
                s["duration"]) if c == "duration_band" else s[c])
            counts = np.bincount(codes)
            cols += [(codes, k) for k in np.flatnonzero(counts) if k != np.argmax(counts)]
        else:
            cols.append(pd.to_numeric(s[c], errors="coerce"))
    cols += [pd.to_numeric(s[c], errors="coerce") for c in lm_controls(s, lm)]
    n = len(s)
    A = np.zeros((n, len(cols)), order="F")  # column-major, as pmreg expects
    dummies: dict[int, tuple[np.ndarray, list[tuple[int, int]]]] = {}  # one entry per control
    for j, c in enumerate(cols):
        if isinstance(c, tuple):
            dummies.setdefault(id(c[0]), (c[0], []))[1].append((int(c[1]), j))
        else:
            A[:, j] = c.to_numpy("float64", na_value=np.nan)
    for codes, levels in dummies.values():  # a control's dummies in one scatter
        scatter_dummies(A, codes, dict(levels))
    A[:, 0] *= 100.0
    ok = np.ones(len(s), dtype=bool)
    for a in A.T:  # column by column: A is column-major
        ok &= np.isfinite(a)
    return A, ok


def _residuals(A: np.ndarray, unit: np.ndarray, rm: np.ndarray, within: bool) -> np.ndarray:
    """y - X'g (g within units, or pooled), minus its region-month mean; A is overwritten."""
    cell, first = _pairs(unit, rm) if within else _pairs(rm, rm)
    cells = pd.DataFrame({"unit": unit[first], "regmonth": rm[first]})
    n_c = np.bincount(cell).astype("float64")
    before = np.stack([np.bincount(cell, a) for a in A.T], 1) / n_c[:, None]
    cell_demean(A, cells, cell, ["unit", "regmonth"] if within else ["regmonth"])
    G, v = A.T @ A, np.eye(A.shape[1])[0]
    ex = np.arange(1, A.shape[1])
    d = np.sqrt(np.maximum(np.diag(G)[ex], 1e-300))
    ex = ex[independent_columns(G[np.ix_(ex, ex)] / np.outer(d, d))] if ex.size else ex
    if ex.size:
        v[ex] = -np.linalg.solve(G[np.ix_(ex, ex)], G[ex, 0])
    u = A @ v  # demeaned y - X'g; add back the (cell-constant) projection removed from it
    u += (before @ v - np.bincount(cell, u) / n_c)[cell]
    return u - (np.bincount(rm, u) / np.bincount(rm))[rm]


def value_added(person_months: pd.DataFrame, level: Literal["caseworker", "team"] = "caseworker",
                *, controls: Sequence[str] = DEFAULT_CONTROLS, lm: Sequence[str] | None = None,
                covariates: Literal["within", "pooled"] = "within",
                noise: Literal["pooled", "unit"] = "pooled", alpha: float = 0.05,
                mixedlm: bool = True) -> ValueAddedResult:
    """Empirical-Bayes value-added of caseworkers or teams (equations: module Notes).

    Parameters
    ----------
    person_months : pandas.DataFrame
        The panel, not modified: exit_work, region, municipality, spell_id, t (or month),
        the level's key, the controls' columns; client_id for ``n_clients``.
    level : {"caseworker", "team"}
        ``caseworker_key`` or ``team_key`` of the month; rows without one are dropped
        (``EstimationWarning``, ``summary["n_dropped_no_unit"]``).
    controls : sequence of str
        Client covariates (``estimate.controls`` names); ``ladder_step`` is out by default
        as caseworkers move clients up the ladder (a bad control).
    lm : sequence of str, optional
        Labour-market columns (``frames.lm_controls``); None: every complete ``lm_*_muni``.
    covariates : {"within", "pooled"}
        Covariate coefficients within units (CFR 2014) or without unit effects.
    noise : {"pooled", "unit"}
        Sampling variance phi / n_j, or each unit's own clustered variance.
    alpha : float
        1 - coverage of the intervals.
    mixedlm : bool
        Also fit the MixedLM (``mixedlm_va``, ``corr_eb_mixedlm``).

    Returns
    -------
    ValueAddedResult

    Raises
    ------
    ValueError
        An unknown option, a missing column (named), or too little data left.
    """
    pm = person_months
    key = check_inputs(pm.columns, level, controls, covariates, noise)
    has_key = pm[key].notna().to_numpy()
    if not has_key.all():
        warn(f"value_added: {int((~has_key).sum())} person-months without {key} dropped")
    s = pm.loc[has_key] if not has_key.all() else pm
    A, ok = _design(s, controls, lm)
    if not ok.all():
        warn(f"value_added: {int((~ok).sum())} person-months missing exit_work or "
             "controls dropped")
        s, A = s.loc[ok], np.asfortranarray(A[ok])
    t = s["t"].to_numpy("int64") if "t" in s else month_index(s["month"]).astype("int64")
    unit, names = pd.factorize(s[key], sort=True)
    spell, J = _codes(s["spell_id"]), len(names)
    inv, first = _pairs(unit, spell)  # (unit, spell) rows: S_js, n_js
    g, n = unit[first], np.bincount(inv).astype("float64")
    _check_df(g, n, J, level)
    r = _residuals(A, unit, _pairs(_codes(s["region"]), t - t.min())[0], covariates == "within")
    del A

    def distinct(col: str) -> np.ndarray:
        if col == key or col not in s:
            return np.full(J, 1.0 if col == key else np.nan)
        return np.bincount(unit[_pairs(unit, _codes(s[col]))[1]], minlength=J).astype(float)

    mc, m_names = pd.factorize(s["municipality"])
    um, um_first = _pairs(unit, mc)
    modal = pd.DataFrame({"u": unit[um_first], "m": mc[um_first], "n": np.bincount(um)})
    modal = modal.sort_values(["u", "n"], kind="stable").drop_duplicates("u", keep="last")
    spells = UnitSpells(np.asarray(names), g, spell[first], n, np.bincount(inv, r),
                        np.asarray(m_names)[modal["m"].to_numpy()], distinct("client_id"),
                        distinct("caseworker_key"), int((~has_key).sum()), int((~ok).sum()))
    return spell_result(spells, level, controls=controls, covariates=covariates, noise=noise,
                        alpha=alpha, mixedlm=mixedlm)


def check_inputs(columns, level: str, controls: Sequence[str], covariates: str,
                 noise: str) -> str:
    """The level's key column, after checking the options and that ``columns`` (the
    person-months') hold what ``value_added`` reads (ValueError naming what is missing)."""
    for name, value, allowed in (("level", level, tuple(KEYS)),
                                 ("noise", noise, ("pooled", "unit")),
                                 ("covariates", covariates, ("within", "pooled"))):
        _check_choice(name, value, allowed)
    columns = set(columns)
    key = KEYS[level]
    need = ["exit_work", "region", "municipality", "spell_id", key] + [
        {"age_band": "age", "duration_band": "duration"}.get(c, c) for c in controls]
    missing = [c for c in dict.fromkeys(need) if c not in columns] + (
        [] if "t" in columns or "month" in columns else ["t (or month)"])
    if missing:
        raise ValueError(f"value_added: person_months lacks column(s) {missing}; add them "
                         f"or leave them out of `controls` (given: {list(controls)})")
    return key


def _check_df(g: np.ndarray, n: np.ndarray, J: int, level: str) -> None:
    n_j = np.bincount(g, n, J)
    if not np.sum(n_j - np.bincount(g, n ** 2, J) / n_j) > 0:
        raise ValueError(f"value_added: no {level} has two spells with complete data; the "
                         "sampling variance is not identified")


@dataclass(frozen=True)
class UnitSpells:
    """What value-added needs of the person-months, per unit x spell pair (in order of
    first appearance): its unit code ``g`` (0..J-1 in ``names`` order), spell code
    (order of first appearance of the spells), person-months ``n`` and residual sum ``S``;
    per unit its modal municipality and distinct clients and caseworkers; the rows
    dropped for want of a unit and for missing values."""

    names: np.ndarray
    g: np.ndarray
    spell: np.ndarray
    n: np.ndarray
    S: np.ndarray
    municipality: np.ndarray
    n_clients: np.ndarray
    n_caseworkers: np.ndarray
    n_dropped_no_unit: int
    n_dropped_missing: int


def spell_result(sp: UnitSpells, level: str, *, controls: Sequence[str], covariates: str,
                 noise: str, alpha: float, mixedlm: bool) -> ValueAddedResult:
    """Shrinkage, intervals, the split-sample check and the MixedLM from the unit x spell
    sums (module notes): the part of ``value_added`` after the residuals."""
    J, g, n, S = len(sp.names), sp.g, sp.n, sp.S
    n_j, m_j = np.bincount(g, n, J), np.bincount(g, minlength=J)
    df = np.sum(n_j - np.bincount(g, n ** 2, J) / n_j)
    raw = np.bincount(g, S, J) / n_j
    ss = np.bincount(g, (S - n * raw[g]) ** 2, J)
    phi = ss.sum() / df
    V = phi / n_j if noise == "pooled" else np.where(
        m_j >= 2, ss / n_j ** 2 * m_j / np.maximum(m_j - 1, 1), phi / n_j)
    s2 = signal_variance(raw, V)
    lam = s2 / (s2 + V)
    eb, sd, zc = lam * raw, np.sqrt(lam * V), special.ndtri(1 - alpha / 2)  # = scipy.stats.norm.ppf
    units = pd.DataFrame({
        "unit": sp.names, "municipality": sp.municipality,
        "n_person_months": n_j.astype("int64"), "n_spells": m_j, "n_clients": sp.n_clients,
        "n_caseworkers": sp.n_caseworkers, "raw_va": raw, "noise_var": V,
        "shrinkage": lam, "eb_va": eb, "eb_sd": sd, "ci_low": eb - zc * sd,
        "ci_high": eb + zc * sd, "mixedlm_va": np.nan})
    half = 2 * g + sp.spell % 2  # split-sample check of s2: odd / even spell codes
    n_h = np.bincount(half, n, 2 * J).reshape(J, 2)
    m_h = np.bincount(half, S, 2 * J).reshape(J, 2) / np.maximum(n_h, 1)
    both = (n_h > 0).all(axis=1)
    cov = np.average(m_h[both, 0] * m_h[both, 1], weights=n_j[both]) if both.any() else np.nan
    summary = {"level": level, "n_units": J, "n_person_months": int(n_j.sum()),
               "n_spells": int(len(S)), "n_dropped_no_unit": sp.n_dropped_no_unit,
               "n_dropped_missing": sp.n_dropped_missing, "signal_sd": float(np.sqrt(s2)),
               "mean_shrinkage": float(lam.mean()), "noise_var_pm": float(phi),
               "signal_sd_split": float(np.sqrt(max(cov, 0.0))), "covariates": covariates,
               "noise": noise, "controls": list(controls), "mixedlm_signal_sd": np.nan,
               "mixedlm_noise_var_pm": np.nan, "corr_eb_mixedlm": np.nan}
    if mixedlm and J > 1:
        b_inv, b_first = _pairs(g, sp.spell % _BLOCKS)
        blup, s2_m, phi_m = mixedlm_blups(np.bincount(b_inv, S), np.bincount(b_inv, n),
                                          g[b_first], J, max(s2, 1e-3 * np.median(V)) / phi)
        units["mixedlm_va"] = blup
        summary.update(mixedlm_signal_sd=float(np.sqrt(s2_m)), mixedlm_noise_var_pm=phi_m,
                       corr_eb_mixedlm=float(np.corrcoef(blup, eb)[0, 1])
                       if np.std(blup) > 0 and np.std(eb) > 0 else np.nan)
    return ValueAddedResult(level, units, summary)


def value_added_rows(result: ValueAddedResult) -> list[dict[str, Any]]:
    """Tidy rows (``results.row``) of the summary, model ``quality_value_added_<level>``:
    the ``_SUMMARY_TERMS`` that were estimated (pp; noise_var_pm in pp^2 per
    person-month). No standard errors: they describe the distribution of unit effects."""
    sm = result.summary
    est = (f"EB shrinkage (covariates {sm['covariates']}, noise {sm['noise']}); "
           "MixedLM REML (closed form) on unit x spell-block sums")
    return [row(f"quality_value_added_{result.level}", term, sm[term], n_obs=sm["n_person_months"],
                n_clusters=sm["n_units"], estimator=est, vcov="spell-clustered unit noise")
            for term in _SUMMARY_TERMS if np.isfinite(sm[term])]


def publishable_teams(result: ValueAddedResult, min_clients: int = 10,
                      min_caseworkers: int = 2) -> pd.DataFrame:
    """Team rows resting on at least ``min_clients`` distinct clients (``privacy.min_cell``)
    and ``min_caseworkers`` caseworkers (so that no team figure is one caseworker's).

    Returns team_key, municipality, n_clients, eb_va, eb_sd, ci_low, ci_high; the other
    disclosure rules, and whether team keys may be shown, stay the caller's decision.

    Raises
    ------
    ValueError
        A caseworker-level result (a personnel assessment: internal only), a threshold
        below 1, or unknown client counts (no client_id in the panel).
    """
    if result.level != "team":
        raise ValueError(f"publishable_teams: level={result.level!r}; caseworker value-added "
                         "is a personnel assessment and stays internal (use level='team')")
    for name, v in (("min_clients", min_clients), ("min_caseworkers", min_caseworkers)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"publishable_teams: {name}={v!r} must be an integer >= 1")
    u = result.units
    if u[["n_clients", "n_caseworkers"]].isna().any().any():
        raise ValueError("publishable_teams: the panel had no client_id or caseworker_key, "
                         "so client and caseworker counts are unknown")
    keep = (u["n_clients"] >= min_clients) & (u["n_caseworkers"] >= min_caseworkers)
    cols = ["unit", "municipality", "n_clients", "eb_va", "eb_sd", "ci_low", "ci_high"]
    return u.loc[keep, cols].rename(columns={"unit": "team_key"}).reset_index(drop=True)
