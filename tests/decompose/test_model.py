"""The decomposition model's fit (impact.decompose.model.fit_model) against references.

- Coefficients and the CRV1 covariance psi'psi against pyfixest ``feols`` with both fixed
  effects absorbed (IV and OLS), and against 2SLS / OLS with explicit dummy columns
  solved directly by numpy (no demeaning, no FWL).
- The fixed effects: alpha_m + lambda_rt reproduce the dummy regression's fitted cell
  values, and lambda has person-month-weighted mean zero within each region.
- The bootstrap: the linear map (coef + psi'w, FE + FE_dw w) equals a refit of the model
  on y* = fitted + w_g sqrt(ssc) u (u the raw residual; fit.resid = sqrt(ssc) u).

Tolerances: everything compared is closed-form least squares in double precision on a
well-conditioned design (24k rows, ~130 parameters), so coefficients, fixed effects and
the linear-map bootstrap must agree to 1e-8 (relative to the quantity's scale); the
covariance to 1e-6 relative.

Small-sample convention (checked, not assumed): psi'psi equals pyfixest's default CRV1,
ssc = G/(G-1) * (N-1)/(N-K), with K = the regressors plus the region x month levels; the
municipality effects, nested in the municipality clusters, are not counted (fixest's
"nonnested" rule).
"""

import warnings

import numpy as np
import pandas as pd
import pyfixest as pf
import pytest

from impact.decompose.design import build_design
from impact.decompose.model import fit_model
from impact.estimate.params import EstimateParams

from .synthetic import make_panel

PARAMS = EstimateParams.from_dict(estimate={"controls": ["education_level",
                                                         "prior_benefit_months"]})
TOL = 1e-8


@pytest.fixture(scope="module")
def panel():
    pm, _ = make_panel(7, clients=60)
    return pm


def _matrix(pm, estimator):
    """The model's column-major matrix, as impact.decompose.core builds it."""
    d = build_design(pm, PARAMS)
    rows = np.ones(len(pm), bool)
    d.choose_levels(rows)
    lead = {"y": 100.0 * pm["exit_work"].to_numpy(dtype="float64")}
    if estimator == "iv":
        lead["quality"] = pm["quality_a"].to_numpy(dtype="float64")
        lead["quality_b"] = pm["quality_b"].to_numpy(dtype="float64")
    elif estimator == "ols":
        lead["quality"] = pm["quality_score"].to_numpy(dtype="float64")
    return d.matrix(rows, lead)


def _fit(pm, A, names, estimator, municipality_effects=True):
    x = None if estimator == "none" else "quality"
    inst = "quality_b" if estimator == "iv" else None
    return fit_model(np.asfortranarray(A.copy()), names, "y", x, inst,
                     pm["municipality"].to_numpy(), pm["region"].to_numpy(),
                     pm["t"].to_numpy(), pm["municipality"].to_numpy(),
                     municipality_effects=municipality_effects)


def _frame(pm, A, names):
    safe = {n: f"c{i}" for i, n in enumerate(names)}
    df = pd.DataFrame(A, columns=[safe[n] for n in names])
    df["municipality"] = pm["municipality"].to_numpy()
    df["regmonth"] = (pm["region"] + ":" + pm["t"].astype(str)).to_numpy()
    return df, safe


def _dummy_fit(pm, A, names, estimator, municipality_effects=True):
    """2SLS / OLS with explicit dummies (every region-month; every municipality but the
    first of its region), solved directly. Returns (coef by name, FE part per row)."""
    df, _ = _frame(pm, A, names)
    rm = pd.get_dummies(df["regmonth"], dtype=float).to_numpy()
    parts = [rm]
    if municipality_effects:
        first = pm.groupby("region")["municipality"].transform("min")
        parts.append(pd.get_dummies(pm["municipality"].where(pm["municipality"] != first),
                                    dtype=float).to_numpy())
    D = np.hstack(parts)
    col = {n: i for i, n in enumerate(names)}
    exog = [n for n in names if n not in ("y", "quality", "quality_b")]
    lead = [] if estimator == "none" else ["quality"]
    X = np.hstack([A[:, [col[n] for n in lead + exog]], D])
    Z = X.copy()
    if estimator == "iv":
        Z[:, 0] = A[:, col["quality_b"]]
    gram = X.T @ X
    d = np.sqrt(np.diag(gram))
    assert np.linalg.matrix_rank(gram / np.outer(d, d)) == X.shape[1]  # full rank
    b = np.linalg.solve(Z.T @ X, Z.T @ A[:, col["y"]])
    k = len(lead) + len(exog)
    return dict(zip(lead + exog, b[:k])), D @ b[k:]


@pytest.mark.parametrize("estimator", ["iv", "ols"])
def test_coefficients_and_crv1_equal_pyfixest(panel, estimator):
    A, names = _matrix(panel, estimator)
    fit = _fit(panel, A, names, estimator)
    df, safe = _frame(panel, A, names)
    exog = " + ".join(safe[n] for n in fit.names[1:])
    q = safe["quality"]
    formula = (f"{safe['y']} ~ {exog} | municipality + regmonth | {q} ~ {safe['quality_b']}"
               if estimator == "iv" else f"{safe['y']} ~ {q} + {exog} | municipality + regmonth")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pf.feols(formula, data=df, vcov={"CRV1": "municipality"})
    order = [safe[n] for n in fit.names]
    assert (fit.coef != 0).all()  # no column dropped: every coefficient is compared
    np.testing.assert_allclose(fit.coef, ref.coef()[order].to_numpy(), rtol=TOL)
    V = pd.DataFrame(ref._vcov, index=ref._coefnames, columns=ref._coefnames)
    V = V.loc[order, order].to_numpy()
    scale = np.sqrt(np.outer(np.diag(V), np.diag(V)))
    np.testing.assert_allclose(fit.vcov / scale, V / scale, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fit.vcov, fit.psi.T @ fit.psi, rtol=1e-12)
    np.testing.assert_allclose(fit.se, ref.se()[order].to_numpy(), rtol=1e-6)
    # the convention, written out: K = regressors + region x month levels, municipality
    # effects (nested in the clusters) not counted
    N, G = len(panel), panel["municipality"].nunique()
    K = len(fit.names) + df["regmonth"].nunique()
    assert float(np.ravel(ref._ssc)[0]) == pytest.approx(G / (G - 1) * (N - 1) / (N - K),
                                                         rel=1e-12)
    assert fit.n_obs == N and list(fit.clusters) == list(pd.unique(panel["municipality"]))


@pytest.mark.parametrize("estimator", ["iv", "ols"])
def test_fixed_effects_reproduce_dummy_regression(panel, estimator):
    A, names = _matrix(panel, estimator)
    fit = _fit(panel, A, names, estimator)
    coef, fe = _dummy_fit(panel, A, names, estimator)
    np.testing.assert_allclose(fit.coef, [coef[n] for n in fit.names], rtol=TOL)
    rm = (panel["region"] + ":" + panel["t"].astype(str)).to_numpy()
    got = (pd.Series(fit.alpha, index=fit.munis).reindex(panel["municipality"]).to_numpy()
           + pd.Series(fit.lam, index=fit.regmonths).reindex(rm).to_numpy())
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, fe, rtol=0, atol=TOL * np.abs(fe).max())
    # lambda: person-month-weighted mean zero within each region
    n_rm = pd.Series(rm).value_counts().reindex(fit.regmonths).to_numpy()
    region = pd.Series(fit.regmonths).str.split(":").str[0].to_numpy()
    for r in np.unique(region):
        s = region == r
        assert abs(np.average(fit.lam[s], weights=n_rm[s])) < 1e-10
    assert sorted(fit.munis) == sorted(panel["municipality"].unique())
    assert len(fit.regmonths) == len(np.unique(rm))


def test_region_month_effects_only(panel):
    """The benchmark's variant: no quality column, no municipality effects."""
    A, names = _matrix(panel, "none")
    fit = _fit(panel, A, names, "none", municipality_effects=False)
    coef, fe = _dummy_fit(panel, A, names, "none", municipality_effects=False)
    np.testing.assert_allclose(fit.coef, [coef[n] for n in fit.names], rtol=TOL)
    assert np.all(fit.alpha == 0)
    rm = (panel["region"] + ":" + panel["t"].astype(str)).to_numpy()
    got = pd.Series(fit.lam, index=fit.regmonths).reindex(rm).to_numpy()
    np.testing.assert_allclose(got, fe, rtol=0, atol=TOL * np.abs(fe).max())
    df, safe = _frame(panel, A, names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pf.feols(f"{safe['y']} ~ {' + '.join(safe[n] for n in fit.names)} | regmonth",
                       data=df, vcov={"CRV1": "municipality"})
    order = [safe[n] for n in fit.names]
    np.testing.assert_allclose(fit.coef, ref.coef()[order].to_numpy(), rtol=TOL)
    np.testing.assert_allclose(fit.se, ref.se()[order].to_numpy(), rtol=1e-6)


@pytest.mark.parametrize("estimator,municipality_effects",
                         [("iv", True), ("ols", True), ("none", False)])
def test_linear_map_bootstrap_equals_refit(panel, estimator, municipality_effects):
    A, names = _matrix(panel, estimator)
    fit = _fit(panel, A, names, estimator, municipality_effects)
    col = {n: i for i, n in enumerate(names)}
    y = A[:, col["y"]]
    rm = (panel["region"] + ":" + panel["t"].astype(str)).to_numpy()
    fe = (pd.Series(fit.alpha, index=fit.munis).reindex(panel["municipality"]).to_numpy()
          + pd.Series(fit.lam, index=fit.regmonths).reindex(rm).to_numpy())
    X = A[:, [col[n] for n in fit.names]]
    fitted = X @ fit.coef + fe
    raw = y - fitted
    # fit.resid is the raw residual times sqrt(ssc), the CRV1 factor (as psi)
    N, G, K = len(y), len(fit.clusters), len(fit.names)
    ssc = G / (G - 1) * (N - 1) / (N - K - len(fit.regmonths))
    np.testing.assert_allclose(fit.resid, np.sqrt(ssc) * raw, rtol=0,
                               atol=1e-9 * np.abs(raw).max())
    rng = np.random.default_rng(2024)
    for _ in range(2):
        w = rng.choice([-1.0, 1.0], size=G)
        ystar = fitted + w[fit.cluster_code] * fit.resid   # = fitted + w_g sqrt(ssc) u
        Astar = A.copy()
        Astar[:, col["y"]] = ystar
        refit = _fit(panel, Astar, names, estimator, municipality_effects)
        assert list(refit.regmonths) == list(fit.regmonths)
        assert list(refit.munis) == list(fit.munis)
        moved = fit.coef + fit.coef_dw() @ w
        np.testing.assert_allclose(refit.coef, moved, rtol=0,
                                   atol=TOL * np.abs(moved).max())
        for got, base, dw in ((refit.lam, fit.lam, fit.lam_dw),
                              (refit.alpha, fit.alpha, fit.alpha_dw)):
            want = base + dw @ w
            np.testing.assert_allclose(got, want, rtol=0,
                                       atol=TOL * max(np.abs(want).max(), 1.0))
        # and the map is not trivially zero
        assert np.abs(fit.coef_dw() @ w).max() > 1e-3


@pytest.mark.parametrize("estimator", ["iv", "ols"])
def test_jackknife_equals_refits_without_each_cluster(panel, estimator):
    """The leave-one-cluster-out deviations (coefficients and fixed effects) equal true
    refits of the model without each municipality: raw cross products minus the
    fixed-effect projection recomputed for the cluster's region (FWL at the cell level).
    A downdate of the demeaned cross products alone (the first version) was off by up to
    a factor 3 for the indicator and adoption-bin coefficients."""
    A, names = _matrix(panel, estimator)
    fit = fit_model(np.asfortranarray(A.copy()), names, "y", "quality",
                    "quality_b" if estimator == "iv" else None,
                    panel["municipality"].to_numpy(), panel["region"].to_numpy(),
                    panel["t"].to_numpy(), panel["municipality"].to_numpy(), jackknife=True)
    G = len(fit.clusters)
    scale = np.sqrt((G - 1) / G)
    muni = panel["municipality"].to_numpy()
    lam = pd.Series(fit.lam, index=fit.regmonths)
    alpha = pd.Series(fit.alpha, index=fit.munis)
    for g, label in enumerate(fit.clusters):
        keep = muni != label
        f = _fit(panel[keep], A[keep], names, estimator)
        dev = scale * (f.coef - fit.coef)
        assert np.max(np.abs(dev - fit.jack[g])) < TOL * np.max(np.abs(fit.coef)), label
        lam_g = pd.Series(f.lam, index=f.regmonths)
        ours = (lam + fit.lam_jack[:, g] / scale).reindex(lam_g.index)
        assert np.max(np.abs(ours - lam_g)) < TOL * np.max(np.abs(fit.lam)), label
        alpha_g = pd.Series(f.alpha, index=f.munis)
        ours = (alpha + fit.alpha_jack[:, g] / scale).reindex(alpha_g.index)
        assert np.max(np.abs(ours - alpha_g)) < TOL * np.max(np.abs(fit.alpha)), label
