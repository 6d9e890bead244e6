"""Caseworker and team value-added: empirical-Bayes shrinkage, and a MixedLM beside it.

Notes
-----
Unit j (caseworker or team of the month) of person-month (i, t) in region r:

    y_it = 100 * exit_work_it = X_it'g + d_r,t + theta_j(i,t) + e_it

X: client covariates (``controls``; categorical ones as dummies, duration bands for
duration dependence) and the municipal labour-market columns ``lm_*_muni``. No
municipality effects: value-added is relative to the region-month. ``g`` is estimated
*within units* (unit and region x month effects projected out on unit x month cells by
``pmreg.cell_demean``), so clients sorted to good units do not load unit quality onto the
covariates (Chetty, Friedman and Rockoff 2014, AER 104(9), sec. II);
``covariates="pooled"`` leaves the unit effects out (Kane and Staiger 2008, NBER 14607).
With r = (y - X'g) minus its region-month mean, S_js and n_js the residual sum and
person-months of spell s with unit j (m_j spells, n_j person-months):

    raw_j = sum_s S_js / n_j,   V_j = phi / n_j,
    phi = sum_js (S_js - n_js raw_j)^2 / sum_j (n_j - sum_s n_js^2 / n_j).

V_j is the spell-clustered sampling variance (months of one spell are dependent: one exit
ends it) pooled over units into phi per person-month, so it neither collapses for small
units that saw no exit nor moves with raw_j. ``noise="unit"``: each unit's own
m_j/(m_j - 1) sum_s (S_js - n_js raw_j)^2 / n_j^2 (phi / n_j when m_j < 2). Signal
variance s2: maximum likelihood of raw_j ~ N(0, s2 + V_j) (precision-weighted moments,
Morris 1983, JASA 78(381)); prior mean 0 = the region-month average. Posterior:

    lambda_j = s2 / (s2 + V_j),  eb_j = lambda_j raw_j,  sd_j = sqrt(lambda_j V_j),

interval eb_j -/+ z_(1-alpha/2) sd_j (the estimation error of s2 and g is ignored).
MixedLM (statsmodels, REML, no fixed effects) on unit x spell-block sums (spells in
``_BLOCKS`` blocks by spell code, so each row's variance is close to proportional to its
person-months): S_jk / sqrt(n_jk) = sqrt(n_jk) b_j + u_jk, Var u = phi, b_j ~ N(0, s2);
its BLUP is lambda_j raw_j with its own REML s2 and phi.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats
from statsmodels.regression.mixed_linear_model import MixedLM, MixedLMParams

from impact.estimate.frames import age_band, duration_band, lm_controls, month_index, warn
from impact.estimate.linalg import independent_columns
from impact.estimate.params import CATEGORICAL_CONTROLS, DEFAULT_CONTROLS, _check_choice
from impact.estimate.pmreg import cell_demean
from impact.estimate.results import row

__all__ = ["ValueAddedResult", "value_added", "signal_variance", "mixedlm_blups",
           "value_added_rows", "publishable_teams"]

Level = Literal["caseworker", "team"]
KEYS = {"caseworker": "caseworker_key", "team": "team_key"}
_BLOCKS = 10
_SUMMARY_TERMS = ("signal_sd", "signal_sd_split", "mean_shrinkage", "noise_var_pm",
                  "mixedlm_signal_sd", "corr_eb_mixedlm")


@dataclass(frozen=True)
class ValueAddedResult:
    """Value-added of one level (pp). ``units``, internal (caseworker rows are personnel
    data), one row per unit sorted by it: unit, municipality (modal), n_person_months,
    n_spells, n_clients, n_caseworkers, raw_va, noise_var, shrinkage, eb_va, eb_sd,
    ci_low, ci_high, mixedlm_va. ``summary``: level, n_units, signal_sd, mean_shrinkage,
    noise_var_pm (phi), signal_sd_split (from the covariance of each unit's odd- and
    even-coded spells' means, no noise model), mixedlm_signal_sd, mixedlm_noise_var_pm,
    corr_eb_mixedlm, n_person_months, n_spells, n_dropped_no_unit, n_dropped_missing."""

    level: str
    units: pd.DataFrame
    summary: dict[str, Any]


def _codes(values) -> np.ndarray:
    return pd.factorize(values, use_na_sentinel=False)[0].astype("int64")


def _pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Code of each row's distinct (a, b) pair (a, b >= 0), and the first row of each."""
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
    A = np.empty((len(s), len(cols)), order="F")  # column-major, as pmreg expects
    for j, c in enumerate(cols):
        A[:, j] = c[0] == c[1] if isinstance(c, tuple) else c.to_numpy("float64", na_value=np.nan)
    A[:, 0] *= 100.0
    return A, np.isfinite(A).all(axis=1)


def _residuals(A: np.ndarray, unit: np.ndarray, rm: np.ndarray, within: bool) -> np.ndarray:
    """y - X'g (g within units, or pooled), minus its region-month mean; A is overwritten."""
    cell, first = _pairs(unit, rm) if within else _pairs(rm, rm)
    cells = pd.DataFrame({"unit": unit[first], "regmonth": rm[first]})
    n_c = np.bincount(cell).astype("float64")
    before = np.stack([np.bincount(cell, a) for a in A.T], 1) / n_c[:, None]
    cell_demean(A, cells, cell, ["unit", "regmonth"] if within else ["regmonth"])
    G = A.T @ A
    ex = np.arange(1, A.shape[1])
    d = np.sqrt(np.maximum(np.diag(G)[ex], 1e-300))
    ex = ex[independent_columns(G[np.ix_(ex, ex)] / np.outer(d, d))] if ex.size else ex
    v = np.zeros(A.shape[1])
    v[0] = 1.0
    if ex.size:
        v[ex] = -np.linalg.solve(G[np.ix_(ex, ex)], G[ex, 0])
    u = A @ v  # demeaned y - X'g; add back its removed (cell-constant) projection
    u += (before @ v - np.bincount(cell, u) / n_c)[cell]
    return u - (np.bincount(rm, u) / np.bincount(rm))[rm]


def signal_variance(raw: np.ndarray, noise: np.ndarray) -> float:
    """Maximum-likelihood s2 >= 0 of raw_j ~ N(0, s2 + noise_j) (Morris 1983).

    Parameters
    ----------
    raw, noise : numpy.ndarray
        Unit estimates and their sampling variances (> 0).

    Returns
    -------
    float
        The root of sum_j (raw_j^2 - s2 - V_j) / (s2 + V_j)^2 = 0, or 0 when the
        noise explains all the dispersion.
    """
    nll = lambda s2: np.sum(np.log(s2 + noise) + raw ** 2 / (s2 + noise))  # noqa: E731
    hi = float(max(np.max(raw ** 2), 1e-12))
    s2 = optimize.minimize_scalar(nll, bounds=(0.0, hi), method="bounded",
                                  options={"xatol": 1e-10 * hi}).x
    return 0.0 if nll(0.0) <= nll(s2) else float(s2)


def mixedlm_blups(S: np.ndarray, n: np.ndarray, group: np.ndarray, n_units: int,
                  ratio: float, fixed: bool = False) -> tuple[np.ndarray, float, float]:
    """Random-intercept MixedLM on aggregates (module Notes), statsmodels REML.

    Parameters
    ----------
    S, n : numpy.ndarray
        Residual sum and person-months of each aggregate row.
    group : numpy.ndarray
        Unit code (0 .. n_units - 1) of each row.
    ratio : float
        s2 / phi to start from or, with ``fixed=True``, to plug in (only phi is fitted).

    Returns
    -------
    (BLUP per unit, s2, phi)
    """
    z = np.sqrt(n)[:, None]
    model = MixedLM(S / z[:, 0], np.zeros((len(S), 0)), groups=group, exog_re=z)
    start = MixedLMParams.from_components(np.zeros(0), cov_re=np.array([[ratio]]))
    free = MixedLMParams.from_components(np.zeros(0), cov_re=np.zeros((1, 1))) if fixed else None
    fit = model.fit(reml=True, start_params=start, free=free, method=["lbfgs"])
    s2, blup = float(np.asarray(fit.cov_re)[0, 0]), np.zeros(n_units)
    if s2 > 0:
        re = fit.random_effects
        blup[list(re)] = [v.iloc[0] for v in re.values()]
    return blup, s2, float(fit.scale)


def value_added(person_months: pd.DataFrame, level: Level = "caseworker", *,
                controls: Sequence[str] = DEFAULT_CONTROLS, lm: Sequence[str] | None = None,
                covariates: Literal["within", "pooled"] = "within",
                noise: Literal["pooled", "unit"] = "pooled", alpha: float = 0.05,
                mixedlm: bool = True) -> ValueAddedResult:
    """Empirical-Bayes value-added of caseworkers or teams (equations: module Notes).

    Parameters
    ----------
    person_months : pandas.DataFrame
        The panel (docs/architecture.md); not modified. Needs exit_work, region,
        municipality, spell_id, t (or month), the level's key and the controls' columns;
        client_id (and caseworker_key) for the counts ``publishable_teams`` checks.
    level : {"caseworker", "team"}
        Unit: ``caseworker_key`` or ``team_key`` of the month. Rows without one are
        dropped (``EstimationWarning``; ``summary["n_dropped_no_unit"]``).
    controls : sequence of str
        Client covariates (``estimate.controls`` vocabulary). ``ladder_step`` is left out
        by default: caseworkers move clients up the ladder (a bad control).
    lm : sequence of str, optional
        Labour-market columns (``frames.lm_controls``); None = every complete ``lm_*_muni``.
    covariates : {"within", "pooled"}
        Covariate coefficients within units (CFR 2014) or without unit effects.
    noise : {"pooled", "unit"}
        Sampling variance: pooled spell-clustered phi / n_j, or each unit's own.
    alpha : float
        1 - coverage of the posterior intervals.
    mixedlm : bool
        Also fit the statsmodels MixedLM (``mixedlm_va``, ``corr_eb_mixedlm``).

    Returns
    -------
    ValueAddedResult

    Raises
    ------
    ValueError
        An unknown option, a missing column (named), or no person-month left.
    """
    for name, value, allowed in (("level", level, tuple(KEYS)), ("noise", noise, ("pooled", "unit")),
                                 ("covariates", covariates, ("within", "pooled"))):
        _check_choice(name, value, allowed)
    key, pm = KEYS[level], person_months
    need = ["exit_work", "region", "municipality", "spell_id", key] + [
        {"age_band": "age", "duration_band": "duration"}.get(c, c) for c in controls]
    missing = [c for c in dict.fromkeys(need) if c not in pm] + (
        [] if "t" in pm or "month" in pm else ["t (or month)"])
    if missing:
        raise ValueError(f"value_added: person_months lacks column(s) {missing}; add them "
                         f"or leave them out of `controls` (given: {list(controls)})")
    has_key = pm[key].notna().to_numpy()
    if not has_key.all():
        warn(f"value_added: {int((~has_key).sum())} person-months without {key} dropped")
    s = pm.loc[has_key] if not has_key.all() else pm
    A, ok = _design(s, controls, lm)
    if not ok.all():
        warn(f"value_added: {int((~ok).sum())} person-months with missing controls dropped")
        s, A = s.loc[ok], np.asfortranarray(A[ok])
    if len(s) == 0:
        raise ValueError(f"value_added: no person-month with a {key} and complete controls")
    t = s["t"].to_numpy("int64") if "t" in s else month_index(s["month"]).astype("int64")
    rm = _pairs(_codes(s["region"]), t - t.min())[0]
    unit, names = pd.factorize(s[key], sort=True)
    r = _residuals(A, unit, rm, covariates == "within")
    del A
    spell = _codes(s["spell_id"])
    inv, first = _pairs(unit, spell)  # (unit, spell) aggregates S_js, n_js
    S, n = np.bincount(inv, r), np.bincount(inv).astype("float64")
    g, J = unit[first], len(names)
    n_j, m_j = np.bincount(g, n, J), np.bincount(g, minlength=J)
    raw = np.bincount(g, S, J) / n_j
    ss = np.bincount(g, (S - n * raw[g]) ** 2, J)
    phi = ss.sum() / np.sum(n_j - np.bincount(g, n ** 2, J) / n_j)
    V = phi / n_j if noise == "pooled" else np.where(
        m_j >= 2, ss / n_j ** 2 * m_j / np.maximum(m_j - 1, 1), phi / n_j)
    s2 = signal_variance(raw, V)
    lam = s2 / (s2 + V)
    eb, sd, zc = lam * raw, np.sqrt(lam * V), stats.norm.ppf(1 - alpha / 2)

    def distinct(col: str) -> np.ndarray:
        if col == key or col not in s:
            return np.full(J, 1.0 if col == key else np.nan)
        return np.bincount(unit[_pairs(unit, _codes(s[col]))[1]], minlength=J).astype(float)

    mc, m_names = pd.factorize(s["municipality"])
    um, um_first = _pairs(unit, mc)
    modal = pd.DataFrame({"u": unit[um_first], "m": mc[um_first], "n": np.bincount(um)})
    modal = modal.sort_values(["u", "n"], kind="stable").drop_duplicates("u", keep="last")
    units = pd.DataFrame({
        "unit": np.asarray(names), "municipality": np.asarray(m_names)[modal["m"].to_numpy()],
        "n_person_months": n_j.astype("int64"), "n_spells": m_j, "n_clients": distinct("client_id"),
        "n_caseworkers": distinct("caseworker_key"), "raw_va": raw, "noise_var": V,
        "shrinkage": lam, "eb_va": eb, "eb_sd": sd, "ci_low": eb - zc * sd,
        "ci_high": eb + zc * sd, "mixedlm_va": np.nan})
    half = 2 * g + spell[first] % 2  # split-sample check of s2: odd / even spell codes
    n_h = np.bincount(half, n, 2 * J).reshape(J, 2)
    mean_h = np.bincount(half, S, 2 * J).reshape(J, 2) / np.maximum(n_h, 1)
    both = (n_h > 0).all(axis=1)
    cov = np.average(mean_h[both, 0] * mean_h[both, 1], weights=n_j[both]) if both.any() else np.nan
    summary = {"level": level, "n_units": J, "n_person_months": int(n_j.sum()),
               "n_spells": int(len(S)), "n_dropped_no_unit": int((~has_key).sum()),
               "n_dropped_missing": int((~ok).sum()), "signal_sd": float(np.sqrt(s2)),
               "mean_shrinkage": float(lam.mean()), "noise_var_pm": float(phi),
               "signal_sd_split": float(np.sqrt(max(cov, 0.0))), "covariates": covariates,
               "noise": noise, "controls": list(controls), "mixedlm_signal_sd": np.nan,
               "mixedlm_noise_var_pm": np.nan, "corr_eb_mixedlm": np.nan}
    if mixedlm and J > 1:
        b_inv, b_first = _pairs(g, spell[first] % _BLOCKS)
        try:
            blup, s2_m, phi_m = mixedlm_blups(np.bincount(b_inv, S), np.bincount(b_inv, n),
                                              g[b_first], J, max(s2, 1e-3 * np.median(V)) / phi)
        except (np.linalg.LinAlgError, ValueError) as err:
            warn(f"value_added: MixedLM failed ({err}); mixedlm_va left empty")
        else:
            units["mixedlm_va"] = blup
            ok_corr = np.std(blup) > 0 and np.std(eb) > 0
            summary.update(mixedlm_signal_sd=float(np.sqrt(s2_m)), mixedlm_noise_var_pm=phi_m,
                           corr_eb_mixedlm=float(np.corrcoef(blup, eb)[0, 1]) if ok_corr else np.nan)
    return ValueAddedResult(level, units, summary)


def value_added_rows(result: ValueAddedResult) -> list[dict[str, Any]]:
    """Tidy rows (``results.row``) of the summary, model ``quality_value_added_<level>``:
    ``_SUMMARY_TERMS`` that were estimated (pp; noise_var_pm in pp^2 per person-month).
    No standard errors: they describe the distribution of unit effects."""
    sm = result.summary
    est = (f"EB shrinkage (covariates {sm['covariates']}, noise {sm['noise']}); "
           "MixedLM statsmodels REML on unit x spell-block sums")
    return [row(f"quality_value_added_{result.level}", term, sm[term], n_obs=sm["n_person_months"],
                n_clusters=sm["n_units"], estimator=est, vcov="spell-clustered unit noise")
            for term in _SUMMARY_TERMS if np.isfinite(sm[term])]


def publishable_teams(result: ValueAddedResult, min_clients: int = 10,
                      min_caseworkers: int = 2) -> pd.DataFrame:
    """Team rows resting on enough clients and caseworkers to leave the pipeline.

    Parameters
    ----------
    result : ValueAddedResult
        Team level; caseworker value-added is a personnel assessment and stays internal.
    min_clients : int
        Least distinct clients per team (``privacy.min_cell``).
    min_caseworkers : int
        Least distinct caseworkers per team, so no team figure is one caseworker's.

    Returns
    -------
    pandas.DataFrame
        team_key, municipality, n_clients, eb_va, eb_sd, ci_low, ci_high. The other
        disclosure rules, and whether team keys may be shown, are the caller's decision.

    Raises
    ------
    ValueError
        A caseworker-level result, a bad threshold, or unknown client/caseworker counts.
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
