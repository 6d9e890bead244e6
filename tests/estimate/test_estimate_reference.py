"""Reference tests: our own linear algebra against independent implementations.

Tolerances: coefficients and standard errors must agree to rtol 1e-6. All compared
quantities are closed-form least-squares / sandwich computations in double precision
on small data (condition numbers < 1e6), so any larger gap is a formula or design
mismatch, not rounding. Where two libraries use different small-sample conventions the
test converts explicitly, with the conversion written out.
"""

import warnings

import numpy as np
import pandas as pd
import pyfixest as pf
import pytest
import statsmodels.api as sm
from linearmodels.iv import IV2SLS

from impact.estimate import EstimateParams
from impact.estimate.adoption import adoption_cells, estimate_adoption
from impact.estimate.frames import shock_events
from impact.estimate.imputation import aggregate, impute
from impact.estimate.linalg import build_design, crv1_vcov, independent_columns, wls_fit
from impact.estimate.naive import naive_before_after, naive_quality
from impact.estimate.pmreg import cell_demean, fe_df, fit_pm
from impact.estimate.quality import quality_frame
from impact.estimate.reliability import _unit_sums, reliability_moments
from impact.estimate.shock import estimate_shock

from .dgp import simulate, staggered_cells

RTOL = 1e-6
EMPTY_EVENTS = pd.DataFrame(columns=["shock_id", "municipality", "t_event", "jobs"])


@pytest.fixture(scope="module")
def panel():
    """Unbalanced cells: 12 units in 3 regions, 20 months, random weights."""
    rng = np.random.default_rng(11)
    rows = [(u, f"R{u % 3}", t) for u in range(12) for t in range(20) if rng.random() > 0.1]
    f = pd.DataFrame(rows, columns=["unit", "region", "t"])
    f["regmonth"] = f["region"] + ":" + f["t"].astype(str)
    n = len(f)
    f["x1"] = rng.normal(size=n) + 0.1 * f["t"]
    f["x2"] = rng.normal(size=n) + (f["unit"] % 4)
    f["w"] = rng.integers(50, 500, n).astype(float)
    f["y"] = 0.5 * f["x1"] - 0.3 * f["x2"] + f["unit"] * 0.2 + rng.normal(size=n)
    return f


def test_wls_crv1_equals_pyfixest(panel):
    d = build_design(panel, ["unit", "regmonth"], ["x1", "x2"])
    fit = wls_fit(d, panel["y"].to_numpy(), panel["w"].to_numpy())
    cols = [d.x_index("x1"), d.x_index("x2")]
    V, G, _ = crv1_vcov(d, fit, panel["w"].to_numpy(), panel["unit"].to_numpy(), cols)
    ref = pf.feols("y ~ x1 + x2 | unit + regmonth", data=panel, weights="w",
                   vcov={"CRV1": "unit"}, fixef_rm="none")
    np.testing.assert_allclose(fit.coef[cols], ref.coef()[["x1", "x2"]], rtol=RTOL)
    np.testing.assert_allclose(np.sqrt(np.diag(V)), ref.se()[["x1", "x2"]], rtol=RTOL)


def test_wls_crv1_equals_statsmodels_explicit_dummies(panel):
    d = build_design(panel, ["unit", "regmonth"], ["x1", "x2"])
    fit = wls_fit(d, panel["y"].to_numpy(), panel["w"].to_numpy())
    cols = [d.x_index("x1"), d.x_index("x2")]
    V, G, df_k = crv1_vcov(d, fit, panel["w"].to_numpy(), panel["unit"].to_numpy(), cols)
    # full-rank dummies: every region-month, every unit but the first of each region
    first = panel.groupby("region")["unit"].transform("min")
    units = pd.get_dummies(panel["unit"].where(panel["unit"] != first), prefix="u", dtype=float)
    X = pd.concat([panel[["x1", "x2"]], units,
                   pd.get_dummies(panel["regmonth"], prefix="rm", dtype=float)], axis=1)
    ref = sm.WLS(panel["y"], X, weights=panel["w"]).fit(
        cov_type="cluster", cov_kwds={"groups": panel["unit"], "use_correction": True})
    assert np.linalg.matrix_rank(X.to_numpy()) == X.shape[1]
    np.testing.assert_allclose(fit.coef[cols], ref.params[["x1", "x2"]], rtol=RTOL)
    # statsmodels counts every dummy in K: (N-1)/(N-K_all); ours counts fixest's K
    N, K_all = len(panel), X.shape[1]
    conv = (N - df_k) / (N - K_all)
    np.testing.assert_allclose(np.sqrt(np.diag(V) * conv), ref.bse[["x1", "x2"]], rtol=RTOL)


@pytest.fixture(scope="module")
def small_pm():
    return simulate(seed=5, n_muni=8, n_regions=2, n_months=24, caseload=80, n_cw=4)


def _quality_reference_frame(small_pm):
    params = EstimateParams()
    A, names, exog, cells, code, cl = quality_frame(small_pm.person_months, params)
    safe = {n: f"c{i}" for i, n in enumerate(names)}
    df = pd.DataFrame(A, columns=[safe[n] for n in names])
    df["municipality"] = cells["municipality"].to_numpy()[code]
    df["regmonth"] = cells["regmonth"].to_numpy()[code]
    return A, names, exog, cells, code, cl, df, safe


def test_quality_iv_equals_pyfixest_and_linearmodels(small_pm):
    A, names, exog, cells, code, cl, df, safe = _quality_reference_frame(small_pm)
    fe = ["municipality", "regmonth"]
    df_fe = fe_df(cells, fe, cells["municipality"].to_numpy())
    cell_demean(A, cells, code, fe)
    iv = fit_pm(A, names, "y", "quality_a", exog, "quality_b", cl, df_fe)
    ols = fit_pm(A, names, "y", "quality_score", exog, None, cl, df_fe)
    rhs = " + ".join(safe[e] for e in exog)
    y, qa, qb, qs = (safe[n] for n in ("y", "quality_a", "quality_b", "quality_score"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pf.feols(f"{y} ~ {rhs} | municipality + regmonth | {qa} ~ {qb}", data=df,
                       vcov={"CRV1": "municipality"}, fixef_rm="none")
        ref_ols = pf.feols(f"{y} ~ {qs} + {rhs} | municipality + regmonth", data=df,
                           vcov={"CRV1": "municipality"}, fixef_rm="none")
    np.testing.assert_allclose([iv.coef, iv.se], [ref.coef()[qa], ref.se()[qa]], rtol=RTOL)
    np.testing.assert_allclose([ols.coef, ols.se], [ref_ols.coef()[qs], ref_ols.se()[qs]],
                               rtol=RTOL)
    # linearmodels with explicit dummies; its unadjusted clustered covariance times ours
    dummies = pd.concat([pd.get_dummies(df["municipality"], dtype=float),
                         pd.get_dummies(df["regmonth"], dtype=float)], axis=1)
    exo = pd.concat([dummies, df[[safe[e] for e in exog]]], axis=1)
    gram = exo.T @ exo  # drop redundant dummies/controls (linearmodels needs full rank)
    d = np.sqrt(np.diag(gram))
    exo = exo.iloc[:, independent_columns((gram / np.outer(d, d)).to_numpy())]
    lm = IV2SLS(df[y], exo, df[qa], df[qb]).fit(cov_type="clustered",
                                                clusters=df["municipality"], debiased=False)
    N, G = len(df), df["municipality"].nunique()
    factor = G / (G - 1) * (N - 1) / (N - iv.df_k)
    np.testing.assert_allclose(iv.coef, lm.params[qa], rtol=RTOL)
    np.testing.assert_allclose(iv.se, lm.std_errors[qa] * np.sqrt(factor), rtol=RTOL)


def test_imputation_equals_hand_calculation():
    cells, adoption, _ = staggered_cells(seed=3, n_units=12, n_months=20, cohorts=(6, 12),
                                         n_never=3)
    params = EstimateParams()
    frame = adoption_cells(cells, None, adoption, "gewogen_maatwerk")
    rows, head = estimate_adoption(frame, EMPTY_EVENTS, params)
    f = frame.assign(y=100 * frame["exits_work"] / frame["person_months"])
    f["rel"] = f["t"] - f["g"]
    un = ~(f["rel"] >= 0)
    X = pd.concat([pd.get_dummies(f["unit"], dtype=float),
                   pd.get_dummies(f["t"], prefix="t", dtype=float).iloc[:, 1:]], axis=1)
    m = sm.WLS(f.loc[un, "y"], X[un], weights=f.loc[un, "person_months"]).fit()
    tr = f[~un].assign(tau=f.loc[~un, "y"] - m.predict(X[~un]))
    att = np.average(tr["tau"], weights=tr["person_months"])
    assert head["att_pp"] == pytest.approx(att, rel=RTOL)
    by = tr.groupby("rel").apply(lambda d: np.average(d["tau"], weights=d["person_months"]),
                                 include_groups=False)
    got = {r["rel_time"]: r["estimate"] for r in rows
           if r["model"] == "adoption_imputation" and r["term"] == "event_time"}
    np.testing.assert_allclose([got[k] for k in by.index], by.to_numpy(), rtol=RTOL)


def test_bjs_variance_single_group_equals_pyfixest_did2s():
    """With one group, no leave-out and observation-weighted taubar, the BJS variance is
    Gardner's two-stage GMM variance, which pyfixest.did2s implements."""
    cells, adoption, _ = staggered_cells(seed=4, n_units=15, n_months=24, cohorts=(8, 14),
                                         n_never=4)
    frame = adoption_cells(cells, None, adoption, "gewogen_maatwerk")
    f = frame.assign(y=100 * frame["exits_work"] / frame["person_months"])
    f["treat"] = (f["t"] - f["g"]) >= 0
    p = f["person_months"].to_numpy()
    imp = impute(f, f["y"].to_numpy(), p, ["unit", "t"], [], ~f["treat"].to_numpy(),
                 f["treat"].to_numpy(), f["unit"].to_numpy(), "test")
    w = p[imp.idx1][:, None]
    est, S = aggregate(imp, w, np.zeros(len(imp.idx1)), leave_out=False, eq8=False,
                       small_sample=False)
    f["tint"] = f["t"].astype(int)
    ref = pf.did2s(f, yname="y", first_stage="~ 0 | unit + tint", second_stage="~ 0 + treat",
                   treatment="treat", cluster="unit", weights="person_months")
    coef = ref.coef().iloc[0]
    np.testing.assert_allclose(est[0], coef, rtol=RTOL)
    np.testing.assert_allclose(np.sqrt((S ** 2).sum()), ref.se().iloc[0], rtol=RTOL)


def test_shock_imputation_equals_per_event_dummy_regression(sim):
    cells = sim.cells[["municipality", "region", "month", "t", "person_months", "exits_work"]]
    params = EstimateParams()
    events = shock_events(sim.shocks, "business_park_opening")
    rows, head = estimate_shock(cells, None, events, params)
    f = cells.assign(y=100 * cells["exits_work"].astype(float) / cells["person_months"],
                     regmonth=cells["region"] + ":" + cells["t"].astype(str)).reset_index(drop=True)
    names, wts, cols = [], {}, {}
    for k, ev in events.iterrows():
        for e in range(-12, 25):
            sel = (f["municipality"] == ev.municipality) & (f["t"] - ev.t_event == e)
            if sel.any():
                cols[f"d{k}_{e + 12}"] = sel.astype(float)
                names.append(f"d{k}_{e + 12}")
                wts[(k, e)] = float(f.loc[sel, "person_months"].sum())
    f = pd.concat([f, pd.DataFrame(cols)], axis=1)
    ref = pf.feols(f"y ~ {' + '.join(names)} | municipality + regmonth", data=f,
                   weights="person_months", vcov={"CRV1": "municipality"})
    b = ref.coef()
    for k, ev in events.iterrows():
        keys = [(k, e) for e in range(0, 12) if (k, e) in wts]
        ref_k = sum(wts[q] * b[f"d{q[0]}_{q[1] + 12}"] for q in keys) / sum(wts[q] for q in keys)
        got = [r["estimate"] for r in rows if r["term"] == "effect" and r["cohort"] == ev.shock_id]
        assert got[0] == pytest.approx(ref_k, rel=RTOL)


def test_reliability_moments_equal_brute_force():
    rng = np.random.default_rng(2)
    recs = []
    for u in range(6):
        q = rng.normal()
        for s in rng.choice(30, size=4, replace=False):
            d = rng.normal(0, 0.5)
            for r in range(int(rng.integers(1, 4))):
                recs.append((f"u{u}", f"s{s}", s, q + 0.02 * s + d + rng.normal(0, 0.5)))
    m = pd.DataFrame(recs, columns=["unit", "session", "t", "score"])
    got = reliability_moments(_unit_sums(m, gap=8).to_numpy().sum(axis=0))
    x, mu = m["score"].to_numpy(), m["score"].mean()
    cross, same = [], []
    for i, a in m.iterrows():
        oth = m[(m["unit"] == a.unit) & (m["session"] != a.session) & ((m["t"] - a.t).abs() <= 8)]
        if len(oth):
            cross.append((a.score - mu) * (oth["score"].mean() - mu))
        sm_ = m[(m["session"] == a.session) & (m["unit"] == a.unit) & (m.index != i)]
        if len(sm_):
            same.append((a.score - mu) * (sm_["score"].mean() - mu))
    vt, cs, var = np.mean(cross), np.mean(same), np.mean((x - mu) ** 2)
    np.testing.assert_allclose(got, [vt / var, cs / var, vt, cs - vt, var - cs, var], rtol=1e-10)


def test_naive_numbers_equal_hand_calculation(sim):
    got, n_cw = naive_quality(sim.person_months, sim.quality, "fidelity_audit")
    q = sim.quality[(sim.quality["unit_type"] == "caseworker")
                    & (sim.quality["instrument"] == "fidelity_audit")]
    score = q.groupby("unit_key")["score"].mean()
    agg = sim.person_months.groupby("caseworker_key")["exit_work"].agg(["mean", "size"])
    agg = agg.join(score, how="inner")
    ref = sm.WLS(100 * agg["mean"], sm.add_constant(agg["score"]), weights=agg["size"]).fit()
    assert got == pytest.approx(ref.params["score"], rel=RTOL) and n_cw == len(agg)
    c = sim.cells.assign(g=np.nan)
    c.loc[c["municipality"] == "GM0001", "g"] = c["t"].min() + 20
    rel = c["t"] - c["g"]
    post, pre = c[(rel >= 0) & (rel <= 11)], c[(rel >= -12) & (rel <= -1)]
    ref = 100 * (post["exits_work"].sum() / post["person_months"].sum()
                 - pre["exits_work"].sum() / pre["person_months"].sum())
    assert naive_before_after(c, "municipality", c["g"].to_numpy()) == pytest.approx(ref)
