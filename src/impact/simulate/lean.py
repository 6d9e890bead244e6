"""A lean data-generating process for the estimators, with known truths and the traps.

Used by the estimator tests (``tests/estimate/dgp.py`` re-exports this module) and by the
Monte Carlo validation (:mod:`impact.validation.montecarlo`, ``benchmarks/montecarlo.py``).

It writes the panel schema (person_months, cells; docs/architecture.md) and the
validated quality / adoption / shocks tables directly, without the simulate -> validate
-> panel chain, so estimator tests do not depend on those packages.

Exit to work is a linear probability (in pp) so every estimand has an exact truth:

    p = 10 + 1.5 z_m + g_rt + client effects + beta (q - 3) - 0.5 (lm_muni - 6)
        + adoption effect + shock effect,

``beta_ladder`` (optional, a mapping ladder step 1..6 -> pp per quality point) replaces
``beta`` for spells with that ladder step (quality heterogeneity, like
``simulate.quality_coef_ladder``; ladder steps here are drawn uniformly and always
recorded); the truth then adds ``quality_pp_ladder`` and ``quality_pp`` becomes the
person-month mean of the spells' slopes. Without it every draw and number is as before.

Traps:
- quality is correlated with municipal prosperity z_m (level) and with the local labour
  market (quality falls when the municipality's unemployment rises): naive slopes lie;
- quality is measured with error: sessions deviate (sd 0.35) and raters disagree (sd 0.35);
- the programme raises quality (+0.4 over the first year) and has a direct effect growing
  from 0.5 to 2.0 pp over two years (staggered), so plain TWFE is biased;
- two shocked municipalities adopt within 3 months of their business-park opening;
- shock effects scale with the park's jobs, with 2 months of anticipation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

T0 = 2018 * 12  # January 2018
W = 6  # quality window (months)
SIG_D, SIG_E = 0.35, 0.35
EDU = np.array(["low", "medium", "high", "unknown"])
HH = np.array(["single", "single_parent", "couple", "couple_children", "other"])
HH_P = np.array([0.5, 0.2, 0.1, 0.15, 0.05])
DUR_EFF = np.array([0.0, -0.6, -1.2, -1.8, -2.2])


@dataclass
class SimData:
    person_months: pd.DataFrame
    cells: pd.DataFrame
    quality: pd.DataFrame
    adoption: pd.DataFrame
    shocks: pd.DataFrame
    truth: dict = field(default_factory=dict)


def month_date(m) -> pd.DatetimeIndex:
    t = T0 + np.asarray(m)
    return pd.to_datetime(pd.DataFrame({"year": t // 12, "month": t % 12 + 1, "day": 1}))


def _dur_band(d):
    return np.searchsorted(np.array([0, 6, 12, 24, 60]), d, side="right") - 1


def shock_shape(e):
    e = np.asarray(e)
    return np.select([(e >= -2) & (e < 0), (e >= 0) & (e <= 11), (e >= 12) & (e <= 24)],
                     [0.3, 1.0, 0.5], 0.0)


def tau_direct(ell):
    return 0.5 + 1.5 * np.minimum(ell, 24) / 24


def boost(ell):
    return np.where(ell >= 0, 0.4 * np.minimum(ell + 1, 12) / 12, 0.0)


def simulate(seed: int = 0, n_muni: int = 20, n_regions: int = 4, n_months: int = 60,
             caseload: int = 300, n_cw: int = 6, adopt_share: float = 0.6, n_shocks: int = 4,
             beta: float = 1.5, team_adoption: bool = False,
             beta_ladder: dict[int, float] | None = None) -> SimData:
    rng = np.random.default_rng(seed)
    b_step = None if beta_ladder is None else np.array(
        [float(beta_ladder.get(s, beta)) for s in range(7)])
    M, T = n_muni, n_months
    codes = np.array([f"GM{j + 1:04d}" for j in range(M)])
    region = np.array([f"AM{j % n_regions + 1:02d}" for j in range(M)])
    reg_i = np.arange(M) % n_regions
    z = np.clip(rng.normal(size=M), -2, 2)
    ext = np.arange(-12, T + 12)  # extended months for measurements
    omega = np.zeros((M, len(ext)))
    for i in range(1, len(ext)):
        omega[:, i] = 0.9 * omega[:, i - 1] + rng.normal(0, 0.25, M)
    u_r = 0.5 * np.sin(2 * np.pi * ext / 24)[None, :] + rng.normal(0, 0.2, (n_regions, len(ext)))
    lm = 6 - 0.8 * z[:, None] + omega + u_r[reg_i]
    gam = 0.5 * np.sin(2 * np.pi * np.arange(T) / 12)[None, :] + rng.normal(0, 0.3, (n_regions, T))

    # adoption and shocks
    perm = rng.permutation(M)
    adopters = perm[: int(round(adopt_share * M))]
    shocked = np.concatenate([adopters[:2], perm[len(adopters):][: n_shocks - 2]])
    lo_s, lo_a = min(13, T // 3), min(12, T // 4)
    t_shock = rng.integers(lo_s, T - lo_s, size=len(shocked))
    jobs = rng.integers(200, 1500, size=len(shocked))
    g = np.full(M, np.nan)
    g[adopters] = rng.integers(lo_a, T - lo_a, size=len(adopters))
    g[adopters[:2]] = np.clip(t_shock[:2] + rng.integers(-3, 4, size=2), 1, T - 2)
    shock_of = {int(j): k for k, j in enumerate(shocked)}

    # caseworkers
    n_c = M * n_cw
    cw_m = np.repeat(np.arange(M), n_cw)
    cw_team = np.tile(np.arange(n_cw) % 2, M)
    cw_adopts = ~np.isnan(g[cw_m]) & ((cw_team == 0) | (not team_adoption))
    q0 = 3 + 0.5 * z[cw_m] + rng.normal(0, 0.6, n_c)
    slope = rng.normal(0, 0.01, n_c)
    ell_ext = ext[None, :] - g[cw_m][:, None]
    q = (q0[:, None] + slope[:, None] * (ext[None, :] - T / 2) - 0.3 * omega[cw_m]
         + np.where(cw_adopts[:, None], boost(np.nan_to_num(ell_ext, nan=-1)), 0.0))

    # spells: initial stock and monthly inflow, simulated month by month
    cols = {k: [] for k in ("sid", "m", "exit_w", "exit_a", "p", "tau")}
    n_init = np.full(M, caseload)
    sp = {"muni": np.repeat(np.arange(M), n_init)}
    n0 = len(sp["muni"])
    sp["start"] = -np.floor(rng.exponential(20, n0)).astype(int)
    next_id = [0]
    spells = []

    def new_spells(muni, start):
        n = len(muni)
        s = pd.DataFrame({"muni": muni, "start": start})
        s["sid"] = np.arange(next_id[0], next_id[0] + n)
        next_id[0] += n
        zz = z[muni]
        age0 = rng.integers(18, 63, n)
        s["birth_year"] = (T0 + start) // 12 - age0
        s["female"] = rng.random(n) < 0.5
        pl = np.clip(0.4 - 0.08 * zz, 0.1, 0.7)
        ph = np.clip(0.15 + 0.04 * zz, 0.05, 0.3)
        u = rng.random(n)
        s["edu"] = np.where(u < pl, 0, np.where(u < pl + ph, 2, np.where(u < pl + ph + 0.1, 3, 1)))
        s["hh"] = rng.choice(len(HH), n, p=HH_P)
        s["prior"] = rng.integers(0, 61, n)
        s["ladder"] = rng.integers(1, 7, n)
        s["cw"] = muni * n_cw + rng.integers(0, n_cw, n)
        spells.append(s)
        return s

    active = new_spells(sp["muni"], sp["start"])
    for m in range(T):
        if m > 0:
            k = rng.poisson(caseload * 0.07, M)
            active = pd.concat([active, new_spells(np.repeat(np.arange(M), k), np.full(k.sum(), m))],
                               ignore_index=True)
        a = active
        mu, cw = a["muni"].to_numpy(), a["cw"].to_numpy()
        dur = m - a["start"].to_numpy()
        age = (T0 + m) // 12 - a["birth_year"].to_numpy()
        ell = m - g[mu]
        adopts = cw_adopts[cw]
        b = beta if b_step is None else b_step[a["ladder"].to_numpy()]
        tau = np.where(adopts & (ell >= 0), tau_direct(np.nan_to_num(ell)) + b * boost(np.nan_to_num(ell)), 0.0)
        tau_d = np.where(adopts & (ell >= 0), tau_direct(np.nan_to_num(ell)), 0.0)
        shock = np.zeros(len(a))
        for j, k in shock_of.items():
            sel = mu == j
            shock[sel] = jobs[k] / 500 * shock_shape(m - t_shock[k])
        p = (10 + 1.5 * z[mu] + gam[reg_i[mu], m] - 0.03 * (age - 40) - 0.2 * a["female"].to_numpy()
             + np.select([a["edu"] == 0, a["edu"] == 2], [-0.7, 1.0], 0.0)
             + np.select([a["hh"] == 1, a["hh"] == 3], [-0.6, -0.3], 0.0)
             + DUR_EFF[_dur_band(dur)] - 0.01 * a["prior"].to_numpy()
             + b * (q[cw, m + 12] - 3) - 0.5 * (lm[mu, m + 12] - 6) + tau_d + shock)
        pw = np.clip(p, 0.2, 60) / 100
        u = rng.random(len(a))
        ew, ea = u < pw, u < pw + 0.03
        for key, v in (("sid", a["sid"].to_numpy()), ("m", np.full(len(a), m)), ("exit_w", ew),
                       ("exit_a", ea), ("p", p), ("tau", tau)):
            cols[key].append(v)
        active = a[~ea].reset_index(drop=True)

    rec = {k: np.concatenate(v) for k, v in cols.items()}
    sp_all = pd.concat(spells, ignore_index=True).set_index("sid")
    s = sp_all.loc[rec["sid"]]
    mu, cw, m = s["muni"].to_numpy(), s["cw"].to_numpy(), rec["m"]
    dur = m - s["start"].to_numpy()

    # quality measurements: sessions every 3 months, two raters each
    qrows, qs, qa, qb, qn = [], np.full((n_c, T), np.nan), np.full((n_c, T), np.nan), \
        np.full((n_c, T), np.nan), np.zeros((n_c, T))
    for c in range(n_c):
        sess = np.arange(-9 + rng.integers(0, 3), T + 9, 3)
        d = rng.normal(0, SIG_D, len(sess))
        e = rng.normal(0, SIG_E, (len(sess), 2))
        sc = q[c, sess + 12][:, None] + d[:, None] + e
        for i, s_m in enumerate(sess):
            for r in range(2):
                qrows.append((c, s_m, sc[i, r], f"R{cw_m[c]}_{(i + r) % 5}", q[c, s_m + 12]))
        for mm in range(T):
            near = np.abs(sess - mm) <= W
            if near.any():
                odd = near & (np.arange(len(sess)) % 2 == 0)  # session numbers 1, 3, ...
                even = near & (np.arange(len(sess)) % 2 == 1)
                qs[c, mm] = sc[near].mean()
                qn[c, mm] = 2 * near.sum()
                qa[c, mm] = sc[odd].mean() if odd.any() else np.nan
                qb[c, mm] = sc[even].mean() if even.any() else np.nan
    qdf = pd.DataFrame(qrows, columns=["c", "m", "score", "rater_id", "q_true"])
    cw_key = np.array([f"{codes[cw_m[c]]}:cw{c % n_cw}" for c in range(n_c)])
    team_key = np.array([f"{codes[cw_m[c]]}:T{cw_team[c]}" for c in range(n_c)])
    quality = pd.DataFrame({
        "unit_type": "caseworker", "unit_key": cw_key[qdf["c"]], "municipality": codes[cw_m[qdf["c"]]],
        "date": month_date(qdf["m"].to_numpy()) + pd.Timedelta(days=14),
        "instrument": "fidelity_audit", "score": qdf["score"], "rater_id": qdf["rater_id"]})
    extra = pd.DataFrame({  # another instrument and team-level rows: must be ignored
        "unit_type": ["caseworker"] * 3 + ["team"] * 2, "unit_key": [cw_key[0]] * 3 + [team_key[0]] * 2,
        "municipality": codes[0], "date": month_date([5, 5, 8, 5, 5]),
        "instrument": ["methodical_working"] * 3 + ["fidelity_audit"] * 2,
        "score": [70.0, 90.0, 10.0, 9.0, -9.0], "rater_id": None})
    quality = pd.concat([quality, extra], ignore_index=True)

    # person-months in the panel schema
    month = month_date(m)
    g_unit = np.where(cw_adopts[cw], g[mu], np.nan)
    pm = pd.DataFrame({
        "spell_id": "S" + pd.Series(rec["sid"]).astype(str), "municipality": codes[mu],
        "region": region[mu], "month": month, "t": T0 + m, "duration": dur,
        "age": (T0 + m) // 12 - s["birth_year"].to_numpy(),
        "sex": np.where(s["female"], "F", "M"), "education_level": EDU[s["edu"].to_numpy()],
        "household": HH[s["hh"].to_numpy()], "prior_benefit_months": s["prior"].to_numpy(),
        "ladder_step": s["ladder"].to_numpy(),
        "left_truncated": (s["start"].to_numpy() < 0).astype("int8"),
        "caseworker_key": cw_key[cw], "team_key": team_key[cw],
        "exit_work": rec["exit_w"].astype("int8"), "exit_any": rec["exit_a"].astype("int8"),
        "quality_score": qs[cw, m], "quality_a": qa[cw, m], "quality_b": qb[cw, m],
        "quality_n": qn[cw, m].astype("int64"),
        "lm_unemployment_rate_muni": lm[mu, m + 12],
        "lm_unemployment_rate_region": 6 + u_r[reg_i[mu], m + 12],
        "adoption_month": month_date(np.nan_to_num(g_unit, nan=0).astype(int)).where(~np.isnan(g_unit)),
        "adopted": (m >= g_unit).astype("int8"),
        "p_true": np.clip(rec["p"], 0.2, 60),  # extra column (kept by the contract): E[100 y]
        "tau_true": rec["tau"],  # extra column: the programme's effect on E[100 y] (pp)
    })
    pm.insert(1, "client_id", "C" + pm["spell_id"].str[1:])
    ev_t = np.full(len(pm), np.nan)
    ev_id = np.full(len(pm), None, dtype=object)
    for j, k in shock_of.items():
        e = m - t_shock[k]
        sel = (mu == j) & (e >= -12) & (e <= 24)
        ev_t[sel], ev_id[sel] = e[sel], f"SH{k}"
    pm["shock_id"] = pd.array(ev_id, dtype="string")
    pm["shock_event_time"] = pd.array(np.where(np.isnan(ev_t), None, ev_t), dtype="Int64")
    cells = make_cells(pm)

    adoption = pd.DataFrame({
        "municipality": codes[adopters],
        "team_key": [f"{codes[j]}:T0" if team_adoption else None for j in adopters],
        "programme": "gewogen_maatwerk",
        "adoption_date": month_date(g[adopters].astype(int)) + pd.Timedelta(days=9)})
    adoption = pd.concat([adoption, pd.DataFrame({  # another programme: must be ignored
        "municipality": [codes[perm[-1]]], "team_key": [None], "programme": ["gilde"],
        "adoption_date": month_date([3])})], ignore_index=True)
    shocks = pd.DataFrame({
        "shock_id": [f"SH{k}" for k in range(len(shocked))], "municipality": codes[shocked],
        "date": month_date(t_shock) + pd.Timedelta(days=20), "type": "business_park_opening",
        "jobs": jobs, "description": "park"})
    shocks = pd.concat([shocks, pd.DataFrame({  # another type: must be ignored
        "shock_id": ["PC1"], "municipality": [codes[perm[-1]]], "date": month_date([30]),
        "type": ["plant_closure"], "jobs": [-400], "description": ["closure"]})], ignore_index=True)

    treated = pm["adopted"].to_numpy() == 1
    in_eff = np.zeros(len(pm), bool)
    shock_eff = np.zeros(len(pm))
    for j, k in shock_of.items():
        e = m - t_shock[k]
        sel = (mu == j) & (e >= 0) & (e <= 11)
        in_eff |= sel
        shock_eff[sel] = jobs[k] / 500 * shock_shape(e[sel])
    var_q = qdf["q_true"].var(ddof=0)
    truth = {
        "quality_pp": beta if b_step is None else float(b_step[s["ladder"].to_numpy()].mean()),
        "att_pp": float(rec["tau"][treated].mean()),
        "shock_pp": float(shock_eff[in_eff].mean()),
        "reliability": float(var_q / (var_q + SIG_D ** 2 + SIG_E ** 2)),
        "share_clipped": float(np.mean((rec["p"] < 0.2) | (rec["p"] > 60))),
    }
    if b_step is not None:
        truth["quality_pp_ladder"] = {str(st): float(b_step[st]) for st in range(1, 7)}
    return SimData(pm, cells, quality, adoption, shocks, truth)


def make_cells(pm: pd.DataFrame) -> pd.DataFrame:
    """Municipality x month cells as the panel stage defines them."""
    d = pm.assign(
        person_months=1, mean_age=pm["age"], exit_work=pm["exit_work"].astype("int64"),
        exit_any=pm["exit_any"].astype("int64"), share_female=(pm["sex"] == "F") * 1.0,
        share_edu_low=(pm["education_level"] == "low") * 1.0,
        share_edu_high=(pm["education_level"] == "high") * 1.0,
        share_single_parent=(pm["household"] == "single_parent") * 1.0,
        share_couple_children=(pm["household"] == "couple_children") * 1.0,
        share_left_truncated=pm["left_truncated"] * 1.0,
        mean_prior_benefit_months=pm["prior_benefit_months"] * 1.0,
        mean_quality_score=pm["quality_score"])
    for lab, lo, hi in (("0_5", 0, 5), ("6_11", 6, 11), ("12_23", 12, 23), ("24_59", 24, 59),
                        ("60p", 60, 10**6)):
        d[f"share_dur_{lab}"] = pm["duration"].between(lo, hi) * 1.0
    means = [c for c in d.columns if c.startswith(("mean_", "share_"))] + [
        "lm_unemployment_rate_muni", "lm_unemployment_rate_region"]
    gb = d.groupby(["municipality", "region", "month", "t"], sort=True)
    out = pd.concat([gb[["person_months", "exit_work", "exit_any"]].sum()
                     .rename(columns={"exit_work": "exits_work", "exit_any": "exits_any"}),
                     gb[means].mean(), gb[["adoption_month"]].first(), gb[["adopted"]].max()],
                    axis=1).reset_index()
    return out


def staggered_cells(seed: int = 0, n_units: int = 40, n_months: int = 48,
                    cohorts=(12, 20, 28, 36), n_never: int = 4, slope: float = 0.3,
                    noise: float = 0.3, all_adopt_region: bool = False
                    ) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """Cells of a staggered design built to break plain TWFE: almost every unit adopts,
    at four dates, and the effect grows every month after adoption (0.3 (l + 1) pp).

    ``all_adopt_region``: a second region (AM02) holds the first half of the adopters and
    no never-adopter, so its last months have no untreated cell.

    Returns (cells, adoption table, true person-month-weighted ATT).
    """
    rng = np.random.default_rng(seed)
    units = np.array([f"GM{j + 1:04d}" for j in range(n_units)])
    n_treat = n_units - n_never
    g = np.full(n_units, np.nan)
    g[:n_treat] = np.resize(np.asarray(cohorts, dtype=float), n_treat)
    alpha = rng.normal(10, 2, n_units)
    lam = np.cumsum(rng.normal(0, 0.2, n_months))
    uu, mm = np.meshgrid(np.arange(n_units), np.arange(n_months), indexing="ij")
    uu, mm = uu.ravel(), mm.ravel()
    ell = mm - g[uu]
    tau = np.where(ell >= 0, slope * (np.nan_to_num(ell) + 1), 0.0)
    pm = rng.integers(200, 400, len(uu)).astype(float)
    y = alpha[uu] + lam[mm] + tau + rng.normal(0, noise, len(uu))
    region = np.where((np.arange(n_units) < n_treat // 2) & all_adopt_region, "AM02", "AM01")
    cells = pd.DataFrame({"municipality": units[uu], "region": region[uu],
                          "month": month_date(mm), "t": T0 + mm, "person_months": pm,
                          "exits_work": y * pm / 100})
    adoption = pd.DataFrame({"municipality": units[:n_treat], "team_key": None,
                             "programme": "gewogen_maatwerk",
                             "adoption_date": month_date(g[:n_treat].astype(int))})
    treated = ell >= 0
    return cells, adoption, float(np.average(tau[treated], weights=pm[treated]))
