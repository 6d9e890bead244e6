"""The static world: municipalities, labour-market paths, shocks and programme adoption.

Everything that does not depend on individual clients is drawn here, as municipality x
month arrays over the simulated months (burn-in included), before the client engine runs.

Notes
-----
The exit-to-work log-odds of a client in municipality ``m`` and month ``k`` has the
labour-market part

    lp[m, k] = a_m + cycle_k + covid_k + season_k + d_r(k) + rec_r(k) + l_obs(m, k)
               + l_unobs(m, k) - closure(m, k) + spill(m, k)

with ``a_m`` the municipality's real (CBS 2016-17) outflow-to-work ratio relative to the
country, in logs ("prosperity" is ``a_m`` standardised over all 342 municipalities),
``cycle_k = -cycle_coef * (U_k - U_2016-17)`` from the real seasonally adjusted national
unemployment rate (CBS 80590ned; months outside 2003-2026 take the nearest value),
``covid_k`` a national drop from April 2020 to May 2021, ``season_k = 0.05 cos(2 pi (month
- 4) / 12)``, ``d_r`` regional AR(1) deviations (monthly autocorrelation 0.97), ``l`` local
AR(1) deviations (0.9) split into a part the municipal unemployment indicator sees
(variance share ``lm_local_captured``) and a part it misses, and ``rec`` a planted
regional recession (sin^2-shaped). The own business park's lift ``park[m, k]`` and the
programme ramp ``ramp[m, k]`` are kept apart, since the truth switches them off.

Indicators: the regional unemployment rate is ``U_k * s_r - (d_r + rec_r) / 0.08`` (``s_r``
from the region's real bijstand density), the municipal one that times
``exp(-0.15 * relative prosperity)`` minus ``l_obs / 0.08``; shocks and the programme do
not enter the indicators.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .params import SimulateParams, month_index
from .reference import REFERENCE_YEARS, Reference, series_at

__all__ = ["World", "build_world", "LOGIT_PER_PP"]

#: log-odds of exit to work per percentage point of unemployment, used to express latent
#: labour-market deviations as indicator values (fixed, so indicators do not move with
#: ``cycle_coef``).
LOGIT_PER_PP = 0.08
_REF_MONTHS = np.arange(REFERENCE_YEARS[0] * 12, (REFERENCE_YEARS[-1] + 1) * 12)
_COVID = (month_index("2020-04"), month_index("2021-05"))


@dataclass
class World:
    """Municipality x month arrays over the simulated months ``t0 .. t0 + n_months - 1``.

    Attributes
    ----------
    munis : DataFrame
        Simulated municipalities: reference columns plus ``prosperity``, ``lm_intercept``,
        ``quality_mu`` (planted mean quality), ``region_idx``, ``adoption_k``,
        ``park_k`` (month index into the arrays, -1 = none).
    lp, park, ramp, inflow : ndarray (M, K)
        Labour-market log-odds, own-park lift, programme ramp (0..1), expected new
        (first-time) entrants.
    stock0 : ndarray (M,)
        Expected stock at the first simulated month.
    u_region, u_muni : ndarray (R, K), (M, K)
        Latent unemployment rates (%) behind the indicators.
    shocks : DataFrame
        ``m, k, type, jobs, description`` (municipality row, month index).
    local_obs, local_unobs : ndarray (M, K)
        The parts of the local deviation the municipal indicator sees and misses.
    """

    t0: int
    n_months: int
    k_start: int
    k_end: int
    munis: pd.DataFrame
    regions: list[str]
    lp: np.ndarray
    park: np.ndarray
    ramp: np.ndarray
    inflow: np.ndarray
    stock0: np.ndarray
    u_region: np.ndarray
    u_muni: np.ndarray
    u_national: np.ndarray
    shocks: pd.DataFrame
    local_obs: np.ndarray
    local_unobs: np.ndarray

    @property
    def months(self) -> np.ndarray:
        return self.t0 + np.arange(self.n_months)


def build_world(p: SimulateParams, ref: Reference, rng: np.random.Generator) -> World:
    """Draw the static world for ``p`` (see module Notes)."""
    allm = ref.municipalities
    if p.regions is None:
        munis = allm.copy()
    else:
        known = sorted(allm["region"].unique())
        bad = [r for r in p.regions if r not in known]
        if bad:
            raise ValueError(f"simulate.regions: {bad[0]!r} is not an arbeidsmarktregio; "
                             f"allowed: {', '.join(known)}")
        munis = allm[allm["region"].isin(p.regions)].copy()
    munis = munis.sort_values("municipality", ignore_index=True)
    regions = sorted(munis["region"].unique())
    munis["region_idx"] = munis["region"].map({r: i for i, r in enumerate(regions)})
    M, R = len(munis), len(regions)
    t0 = p.start_month - 12 * p.burn_in_years
    K = p.end_month - t0 + 1
    months = t0 + np.arange(K)
    k_start, k_end = p.start_month - t0, K - 1

    a = _lm_intercept(allm).reindex(munis["municipality"]).to_numpy()
    munis["lm_intercept"] = a
    munis["prosperity"] = a / _lm_intercept(allm).std()
    munis["quality_mu"] = p.quality_mean + p.quality_muni_sd * _correlated(
        munis["prosperity"].to_numpy(), p.quality_prosperity_corr, rng)

    U = series_at(ref.unemployment, months)
    u_ref = series_at(ref.unemployment, _REF_MONTHS).mean()
    national = (-p.cycle_coef * (U - u_ref) - p.covid_dip * ((months >= _COVID[0]) & (months <= _COVID[1]))
                + 0.05 * np.cos(2 * np.pi * ((months % 12) - 3) / 12))
    d_reg = _ar1(rng, R, K, 0.97, p.region_dev_sd)
    rec = np.zeros((R, K))
    rec_region = regions[0] if p.recession_region == "auto" else p.recession_region
    if rec_region in regions:
        j = month_index(p.recession_start) - t0 + np.arange(p.recession_months)
        ok = (j >= 0) & (j < K)
        shape = np.sin(np.pi * (np.arange(p.recession_months) + 0.5) / p.recession_months) ** 2
        rec[regions.index(rec_region), j[ok]] = -p.recession_depth * shape[ok]
    l_obs = _ar1(rng, M, K, 0.9, p.local_dev_sd * np.sqrt(p.lm_local_captured))
    l_unobs = _ar1(rng, M, K, 0.9, p.local_dev_sd * np.sqrt(1 - p.lm_local_captured))
    ridx = munis["region_idx"].to_numpy()

    shocks, park, spill, closure = _shocks(p, munis, ridx, rng, k_start, k_end, K)
    lp = a[:, None] + national[None, :] + (d_reg + rec)[ridx] + l_obs + l_unobs - closure + spill
    munis["park_k"] = _first_k(shocks, "business_park_opening", munis)
    munis["adoption_k"] = _adoption(p, munis, rng, k_start, k_end)
    ramp = np.zeros((M, K))
    for m, ka in enumerate(munis["adoption_k"]):
        if ka >= 0:
            ramp[m] = np.clip((np.arange(K) - ka + 1) / p.programme_ramp_months, 0, 1)

    B = series_at(ref.bijstand, months)
    F = _inflow_shape(ref, months)
    inflow = (p.scale * (1 - p.repeat_share) * munis["inflow"].to_numpy() / 12)[:, None] * F[None, :]
    stock0 = p.scale * munis["stock"].to_numpy() * B[0] / series_at(ref.bijstand, _REF_MONTHS).mean()

    dens = allm.groupby("region")["stock"].sum() / allm.groupby("region")["population"].sum()
    struct = np.sqrt(dens.reindex(regions).to_numpy() / (allm["stock"].sum() / allm["population"].sum()))
    u_region = U[None, :] * struct[:, None] - (d_reg + rec) / LOGIT_PER_PP
    rel = munis["prosperity"] - munis.groupby("region")["prosperity"].transform("mean")
    u_muni = (u_region[ridx] * np.exp(-0.15 * rel.to_numpy())[:, None]
              - l_obs / LOGIT_PER_PP)
    return World(t0, K, k_start, k_end, munis, regions, lp, park, ramp, inflow, stock0,
                 u_region, u_muni, U, shocks, l_obs, l_unobs)


def _lm_intercept(allm: pd.DataFrame) -> pd.Series:
    """Log of each municipality's real work-exit ratio over the country's, shrunk toward
    its region with 200 pseudo recipient-years (CBS counts are rounded to tens)."""
    reg = allm.groupby("region")[["work_exits", "stock"]].transform("sum")
    r_reg = reg["work_exits"] / reg["stock"]
    ratio = (allm["work_exits"] + 200 * r_reg) / (allm["stock"] + 200)
    nat = allm["work_exits"].sum() / allm["stock"].sum()
    return pd.Series(np.log(ratio / nat).to_numpy(), index=allm["municipality"].to_numpy())


def _correlated(x: np.ndarray, rho: float, rng: np.random.Generator) -> np.ndarray:
    """A standardised vector whose sample correlation with ``x`` is exactly ``rho``."""
    n = len(x)
    z = rng.standard_normal(n)
    if n < 3 or x.std() == 0:
        return z
    xs = (x - x.mean()) / x.std()
    e = z - z.mean() - xs * np.mean(xs * (z - z.mean()))
    e = e / e.std()
    return rho * xs + np.sqrt(1 - rho**2) * e


def _ar1(rng: np.random.Generator, n: int, K: int, rho: float, sd: float) -> np.ndarray:
    out = np.empty((n, K))
    out[:, 0] = rng.normal(0, sd, n)
    innov = rng.normal(0, sd * np.sqrt(1 - rho**2), (n, K))
    for k in range(1, K):
        out[:, k] = rho * out[:, k - 1] + innov[:, k]
    return out


def park_profile(e: np.ndarray, p: SimulateParams) -> np.ndarray:
    """Lift (in units of the full lift) at event time ``e`` (months since opening)."""
    A, F, D = p.park_anticipation_months, p.park_full_months, p.park_fade_months
    out = np.where((e >= -A) & (e < 0), (e + A + 1) / (A + 1), 0.0)
    out = np.where((e >= 0) & (e < F), 1.0, out)
    return np.where((e >= F) & (e < F + D), 1 - (e - F + 1) / (D + 1), out)


def _event_month(rng, n, k_start, k_end) -> np.ndarray:
    lo, hi = (k_start + 12, k_end - 12) if k_end - k_start >= 36 else (k_start, k_end)
    return rng.integers(lo, hi + 1, n)


def _shocks(p, munis, ridx, rng, k_start, k_end, K):
    M = len(munis)
    pop = munis["population"].to_numpy(float)
    rows, park, spill, closure = [], np.zeros((M, K)), np.zeros((M, K)), np.zeros((M, K))
    ks = np.arange(K)
    n_park = int(round(p.park_share * M))
    if n_park:
        who = np.sort(rng.choice(M, n_park, replace=False, p=np.sqrt(pop) / np.sqrt(pop).sum()))
        when = _event_month(rng, n_park, k_start, k_end)
        jobs = np.round(np.exp(rng.normal(np.log(400), 0.5, n_park)), -1).astype(int)
        for m, k, j in zip(who, when, jobs):
            lift = p.park_lift * float(np.clip((j / 400) ** 0.25, 0.7, 1.4)) * park_profile(ks - k, p)
            park[m] += lift
            others = (ridx == ridx[m]) & (np.arange(M) != m)
            spill[others] += p.park_spillover * lift
            rows.append((m, k, "business_park_opening", j, f"Opening bedrijventerrein ({j} banen verwacht)"))
    n_cl = int(round(p.closure_share * M))
    if n_cl:
        who = rng.choice(M, n_cl, replace=False)
        when = _event_month(rng, n_cl, k_start, k_end)
        jobs = np.round(np.exp(rng.normal(np.log(150), 0.5, n_cl)), -1).astype(int)
        for m, k, j in zip(who, when, jobs):
            e = ks - k
            closure[m] += p.closure_drop * np.where((e >= 0) & (e < 12), 1.0,
                                                    np.where((e >= 12) & (e < 24), 1 - (e - 11) / 13, 0.0))
            rows.append((m, k, "plant_closure", j, f"Sluiting productielocatie ({j} banen)"))
    n_pl = int(round(p.placebo_share * M))
    if n_pl:
        for m, k in zip(rng.choice(M, n_pl, replace=False), _event_month(rng, n_pl, k_start, k_end)):
            rows.append((m, k, "reorganisation", None, "Reorganisatie sociaal domein"))
    shocks = pd.DataFrame(rows, columns=["m", "k", "type", "jobs", "description"])
    return shocks, park, spill, closure


def _first_k(shocks: pd.DataFrame, kind: str, munis: pd.DataFrame) -> np.ndarray:
    s = shocks[shocks["type"] == kind].groupby("m")["k"].min()
    return s.reindex(np.arange(len(munis)), fill_value=-1).to_numpy()


def _adoption(p, munis, rng, k_start, k_end) -> np.ndarray:
    """Adoption month per municipality (-1 = never): park municipalities are three times
    as likely to adopt, and then adopt within +-6 months of the opening with probability
    ``adoption_near_park_prob``."""
    M = len(munis)
    out = np.full(M, -1)
    n = int(round(p.adoption_share * M))
    if n == 0:
        return out
    park_k = munis["park_k"].to_numpy()
    w = np.where(park_k >= 0, 3.0, 1.0)
    who = rng.choice(M, n, replace=False, p=w / w.sum())
    lo, hi = (k_start + 6, k_end - 6) if k_end - k_start >= 24 else (k_start, k_end)
    for m in np.sort(who):
        near = park_k[m] >= 0 and rng.random() < p.adoption_near_park_prob
        k = park_k[m] + rng.integers(-6, 7) if near else rng.integers(lo, hi + 1)
        out[m] = int(np.clip(k, k_start, k_end))
    return out


def _inflow_shape(ref: Reference, months: np.ndarray) -> np.ndarray:
    """National inflow relative to 2016-17, implied by the real bijstand count: the
    smoothed monthly change plus a 2% monthly outflow of the stock."""
    all_m = np.arange(months.min() - 2, months.max() + 3)
    B = pd.Series(series_at(ref.bijstand, all_m), index=all_m)
    implied = B.diff().rolling(5, center=True, min_periods=1).mean().bfill() + 0.02 * B
    ref_level = pd.Series(series_at(ref.bijstand, np.arange(_REF_MONTHS[0] - 2, _REF_MONTHS[-1] + 3)),
                          index=np.arange(_REF_MONTHS[0] - 2, _REF_MONTHS[-1] + 3))
    ref_implied = (ref_level.diff().rolling(5, center=True, min_periods=1).mean().bfill()
                   + 0.02 * ref_level).loc[_REF_MONTHS].mean()
    return np.clip(implied.loc[months].to_numpy() / ref_implied, 0.3, 3.0)
