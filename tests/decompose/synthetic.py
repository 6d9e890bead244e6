"""A small person-month panel with a linear, fully known data-generating process.

Shared by the decomposition and benchmark tests. The monthly exit-to-work probability of
person-month i (municipality m, region r, month t) is linear in planted terms::

    p_i = base + level_m + lambda_rt                       (levels, region x month effect)
          + beta_edu[education_i] + beta_prior * prior_i   (client composition)
          + gamma * u_mt                                   (municipal unemployment, %)
          + lift * 1[0 <= e_i <= 11]                       (shock, e = event month)
          + theta * q_ct                                   (caseworker's true quality)
          + programme * 1[t >= adoption_m]                 (programme after adoption)

and ``exit_work ~ Bernoulli(p_i)``. ``quality_a`` and ``quality_b`` are the caseworker's
true quality plus independent measurement errors (one per caseworker and calendar year),
``quality_score`` their mean. Every knob that moves a factor of the decomposition between
years is planted in chosen municipalities: the share of highly educated clients
(``mix_change``), a shock (``shocks``), the programme (``adoptions``) and a trend in
caseworker quality (``quality_trend``). The municipalities' quality can be made to run
against their prosperity (``quality_vs_prosperity`` > 0: where unemployment is high the
caseworkers are better).

``truth["terms"]`` holds each person-month's planted terms in percentage points, grouped
as the decomposition groups them (they add up to 100 p exactly); ``truth["by_muni_year"]``
their means per municipality and year. The region x month effects are normalised as the
model normalises them (person-month-weighted mean zero within each region, the
municipality level carrying the rest), so even the country's split between composition
and labour market is comparable.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

__all__ = ["EDUCATION", "make_panel", "planted_means"]

#: education levels and their planted effect on p (low is the reference)
EDUCATION = {"low": 0.0, "medium": 0.01, "high": 0.03, "unknown": -0.005}

DEFAULT_MIX = {0: 0.12, 4: -0.10, 8: 0.10}           # change in share 'high' per year
DEFAULT_SHOCKS = {2: "2020-04", 7: "2021-03"}         # event month per municipality index
DEFAULT_ADOPTIONS = {1: "2019-10", 3: "2020-01", 6: "2020-07", 10: "2021-01"}
DEFAULT_QTREND = {3: 0.35, 5: 0.35, 9: -0.35}         # quality units per year


def _t(text: str) -> int:
    y, m = text.split("-")
    return int(y) * 12 + int(m) - 1


def make_panel(seed: int, n_munis: int = 12, n_regions: int = 3, months: int = 36,
               start: str = "2019-01", clients: int = 150, caseworkers: int = 6,
               mix_change: dict | None = None, shocks: dict | None = None,
               adoptions: dict | None = None, quality_trend: dict | None = None,
               quality_vs_prosperity: float = 0.6, small: tuple = (), small_size: float = 0.03,
               single_cw_team: tuple = (), theta: float = 0.01, programme: float = 0.01,
               lift: float = 0.02, gamma: float = -0.003, beta_prior: float = -0.0002,
               base: float = 0.085, level_sd: float = 0.005,
               ) -> tuple[pd.DataFrame, dict]:
    """Person-month panel and its truth (module notes).

    ``small``: municipality indices whose caseload is ``small_size`` times the others'
    (disclosure tests). ``single_cw_team``: municipality indices that get a third team
    ``T03`` with a single caseworker. Dictionaries are keyed by municipality index
    (0..n_munis-1); indices beyond ``n_munis`` are ignored.
    """
    rng = np.random.default_rng(seed)
    mix = {k: v for k, v in (DEFAULT_MIX if mix_change is None else mix_change).items()
           if k < n_munis}
    shk = {k: _t(v) for k, v in (DEFAULT_SHOCKS if shocks is None else shocks).items()
           if k < n_munis}
    ado = {k: v for k, v in (DEFAULT_ADOPTIONS if adoptions is None else adoptions).items()
           if k < n_munis}
    qtr = {k: v for k, v in (DEFAULT_QTREND if quality_trend is None else quality_trend).items()
           if k < n_munis}
    t0 = _t(start)
    M, T = n_munis, months
    codes = np.array([f"GM{101 + 37 * i:04d}" for i in range(M)], dtype=object)
    region_of = np.array([f"AM{1 + i % n_regions:02d}" for i in range(M)], dtype=object)
    reg_idx = np.arange(M) % n_regions

    # municipality characteristics
    u_level = np.linspace(3.0, 9.0, M)[rng.permutation(M)]          # unemployment, %
    z_u = (u_level - u_level.mean()) / u_level.std()
    mu_q = quality_vs_prosperity * z_u + 0.2 * rng.standard_normal(M)
    level = level_sd * rng.standard_normal(M)
    size = np.where(np.isin(np.arange(M), small), small_size, 1.0) * rng.uniform(0.8, 1.2, M)
    high0 = rng.uniform(0.12, 0.2, M)
    prior_mean = rng.uniform(15, 30, M)

    # municipality x month: caseload, unemployment; region x month effects
    tm = np.arange(T)
    u_slope = 0.4 * rng.standard_normal(M)
    u_ar = np.zeros((M, T))
    e = 0.25 * rng.standard_normal((M, T))
    for k in range(T):
        u_ar[:, k] = (0.7 * u_ar[:, k - 1] if k else 0.0) + e[:, k]
    u_mt = (u_level[:, None] + u_slope[:, None] * (tm[None, :] - T / 2) / 12
            + 0.3 * np.sin(2 * np.pi * (t0 + tm)[None, :] / 12) + u_ar)
    phase = rng.uniform(0, 2 * np.pi, n_regions)
    lam_rt = (0.008 * np.sin(2 * np.pi * (t0 + tm)[None, :] / 12 + phase[:, None])
              + 0.004 * rng.standard_normal(n_regions)[:, None] * (tm[None, :] - T / 2) / 12
              + 0.002 * rng.standard_normal((n_regions, T)))
    n_mt = rng.poisson(clients * size[:, None] * np.ones((1, T)))
    n_mt = np.maximum(n_mt, 1)

    # rows
    cell_m = np.repeat(np.arange(M), T)
    cell_t = np.tile(tm, M)
    cnt = n_mt.ravel()
    mi = np.repeat(cell_m, cnt)
    ti = np.repeat(cell_t, cnt)
    n = len(mi)
    k = np.arange(n) - np.repeat(np.cumsum(cnt) - cnt, cnt)       # slot within its cell
    year = (t0 + ti) // 12
    yrel = year - (t0 // 12)

    # clients: a slot keeps its client for six months; the client's caseworker and team
    block = ti // 6
    n_cw = np.full(M, caseworkers)
    n_cw[list(single_cw_team)] = caseworkers + 1
    cw = k % n_cw[mi]
    team = np.where(cw >= caseworkers, 2, (cw >= caseworkers // 2).astype(int))
    client_id = (pd.Series(codes[mi]) + "-" + pd.Series(block).astype(str) + "-"
                 + pd.Series(k).astype(str))

    # caseworker quality: true level (+ trend), measured twice a year with noise
    n_cw_max = caseworkers + 1
    q_cw = mu_q[:, None] + 0.5 * rng.standard_normal((M, n_cw_max))
    trend = np.array([qtr.get(i, 0.0) for i in range(M)])
    q_true = q_cw[mi, cw] + trend[mi] * (ti - T / 2) / 12
    Y = (T - 1 + t0 % 12) // 12 + 1
    err_a = 0.4 * rng.standard_normal((M, n_cw_max, Y))
    err_b = 0.4 * rng.standard_normal((M, n_cw_max, Y))
    qa = q_true + err_a[mi, cw, yrel]
    qb = q_true + err_b[mi, cw, yrel]

    # clients' characteristics
    mix_v = np.array([mix.get(i, 0.0) for i in range(M)])
    p_high = np.clip(high0[mi] + mix_v[mi] * (ti - T / 2) / 12, 0.01, 0.8)
    r = rng.uniform(size=n)
    edu = np.where(r < p_high, "high", np.where(r < p_high + 0.3, "medium",
                   np.where(r < p_high + 0.4, "unknown", "low")))
    prior = rng.poisson(prior_mean[mi]).astype("int64")
    beta_edu = pd.Series(EDUCATION).reindex(edu).to_numpy()

    # events
    g = np.array([_t(ado[i]) if i in ado else np.nan for i in range(M)])
    post = np.isfinite(g[mi]) & (t0 + ti >= np.nan_to_num(g[mi], nan=1e9))
    s = np.array([shk.get(i, np.nan) for i in range(M)], dtype="float64")
    ev = (t0 + ti) - s[mi]
    ev = np.where(np.isfinite(ev) & (ev >= -12) & (ev <= 24), ev, np.nan)
    shocked = np.isfinite(ev) & (ev >= 0) & (ev <= 11)

    # planted probability, its terms normalised as the model normalises them
    lam_i = lam_rt[reg_idx[mi], ti]
    w_rt = np.bincount(reg_idx[mi] * T + ti, minlength=n_regions * T).reshape(n_regions, T)
    shift = (lam_rt * w_rt).sum(axis=1) / w_rt.sum(axis=1)               # per region
    comp_x = beta_edu + beta_prior * prior
    terms = pd.DataFrame({
        "composition": 100 * (base + level[mi] + shift[reg_idx[mi]] + comp_x),
        "labour_market": 100 * (lam_i - shift[reg_idx[mi]] + gamma * u_mt[mi, ti]),
        "shocks": 100 * lift * shocked,
        "quality": 100 * (theta * q_true + programme * post),
    })
    p = terms.sum(axis=1).to_numpy() / 100
    if not (p.min() > 0.005 and p.max() < 0.2):
        raise ValueError(f"synthetic: p outside (0.005, 0.2): {p.min():.4f}..{p.max():.4f}")
    score = (qa + qb) / 2
    terms["quality_measured"] = 100 * (theta * score + programme * post)
    terms["quality_true_mean"] = q_true
    terms["expected"] = 100 * (base + lam_i + comp_x + gamma * u_mt[mi, ti] + lift * shocked)
    terms["p"] = p
    exit_work = (rng.uniform(size=n) < p).astype("int8")

    ado_date = np.array([None if np.isnan(v) else dt.date(int(v) // 12, int(v) % 12 + 1, 1)
                         for v in g], dtype=object)
    pm = pd.DataFrame({
        "client_id": client_id.to_numpy(dtype=object),
        "municipality": codes[mi],
        "region": region_of[mi],
        "t": (t0 + ti).astype("int32"),
        "exit_work": exit_work,
        "quality_score": score,
        "quality_a": qa,
        "quality_b": qb,
        "age": rng.integers(18, 67, n).astype("int32"),
        "duration": (rng.exponential(24, n)).astype("int32"),
        "sex": np.where(rng.uniform(size=n) < 0.53, "F", "M").astype(object),
        "education_level": edu.astype(object),
        "household": rng.choice(np.array(["single", "single_parent", "couple"], dtype=object),
                                n, p=[0.6, 0.25, 0.15]),
        "prior_benefit_months": prior,
        "left_truncated": (rng.uniform(size=n) < 0.5).astype("int8"),
        "lm_unemployment_rate_muni": u_mt[mi, ti],
        "adoption_month": ado_date[mi],
        "shock_event_time": ev,
        "caseworker_key": (pd.Series(codes[mi]) + ":KM"
                           + pd.Series(cw + 1).map("{:03d}".format)).to_numpy(dtype=object),
        "team_key": (pd.Series(codes[mi]) + ":T"
                     + pd.Series(team + 1).map("{:02d}".format)).to_numpy(dtype=object),
    })
    terms.insert(0, "municipality", pm["municipality"].to_numpy())
    terms.insert(1, "year", year)
    terms.insert(2, "t", pm["t"].to_numpy())
    munis = pd.DataFrame({
        "municipality": codes, "region": region_of, "name": [f"Gemeente {i}" for i in range(M)],
        "level": level, "unemployment": u_mt.mean(axis=1), "quality_mu": mu_q,
        "size": size, "mix_change": mix_v, "quality_trend": trend,
        "adoption_t": g, "shock_t": s,
    })
    truth = {
        "params": {"base": base, "beta_education": dict(EDUCATION), "beta_prior": beta_prior,
                   "gamma": gamma, "theta": theta, "lift": lift, "shock_months": (0, 11),
                   "programme": programme},
        "munis": munis,
        "lambda": pd.DataFrame(lam_rt - shift[:, None],
                               index=[f"AM{1 + j:02d}" for j in range(n_regions)],
                               columns=t0 + tm),
        "terms": terms,
        "by_muni_year": terms.groupby(["municipality", "year"]).mean(numeric_only=True),
    }
    return pm, truth


def planted_means(truth: dict, first: int, last: int, by_municipality: bool = True
                  ) -> pd.DataFrame:
    """Means of the planted terms over months first..last (inclusive), per municipality
    (or over all person-months, ``by_municipality=False``)."""
    terms = truth["terms"]
    sel = terms[(terms["t"] >= first) & (terms["t"] <= last)]
    cols = [c for c in sel.columns if c not in ("municipality", "year", "t")]
    if by_municipality:
        return sel.groupby("municipality")[cols].mean()
    return sel[cols].mean().to_frame().T
