"""Issue 9: with no planted difference between groups, the heterogeneity (equality) test
rejects at about its nominal rate over repeated simulations.

Design: one lean synthetic panel (20 municipalities; a quality effect of 1.5 pp in every
ladder group), the outcome redrawn 200 times from its true probabilities (``p_true``), so
the test's size is checked conditional on the design, as the clusters are few. Each
replication runs the production path: the interaction 2SLS (``fit_pm_multi``) and the
equality test with Hotelling's reference distribution, as ``heterogeneity.run`` uses it.
Monte Carlo standard error of a 5% rate over 200 draws: 1.5 points.
"""

import numpy as np
import pandas as pd

from impact.estimate import EstimateParams
from impact.estimate.multiplicity import equality_test
from impact.estimate.pmreg import cell_demean, fe_df, fit_pm_multi
from impact.estimate.quality import quality_frame
from impact.heterogeneity.params import HeterogeneityParams
from impact.simulate.lean import simulate

REPS, ALPHA = 200, 0.05


def test_equality_test_size_without_planted_differences():
    sim = simulate(seed=11, n_muni=20, n_months=36, caseload=150)
    pm = sim.person_months
    dim = {d.name: d for d in HeterogeneityParams().groups}["ladder_step"]
    codes = dim.codes(pm["ladder_step"])
    H = len(dim.labels)
    rng = np.random.default_rng(20261201)
    p = pm["p_true"].to_numpy() / 100
    ys = pd.DataFrame({f"y{r}": (rng.random(len(pm)) < p).astype("int8") for r in range(REPS)})
    pm = pd.concat([pm, ys], axis=1)
    extra = {}
    for h in range(H):
        d = (codes == h).astype(float)
        extra[f"qa#{h}"] = pm["quality_a"].to_numpy() * d
        extra[f"qb#{h}"] = pm["quality_b"].to_numpy() * d
        if h:
            extra[f"D#{h}"] = d
    A, names, exog, cells, code, cl = quality_frame(
        pm, EstimateParams(), outcomes={f"y{r}": f"y{r}" for r in range(REPS)}, extra=extra)
    fe = ["municipality", "regmonth"]
    df_fe = fe_df(cells, fe, cells["municipality"].to_numpy())
    cell_demean(A, cells, code, fe)
    base = [n for n in names if not n.startswith("y")]
    xs, zs = [f"qa#{h}" for h in range(H)], [f"qb#{h}" for h in range(H)]
    dums = [f"D#{h}" for h in range(1, H)]
    reject, raw_reject = 0, 0
    for r in range(REPS):
        cols = [names.index(f"y{r}")] + [names.index(n) for n in base]
        fit = fit_pm_multi(np.asfortranarray(A[:, cols]), [f"y{r}"] + base, f"y{r}", xs,
                           exog + dums, zs, cl, df_fe)
        reject += equality_test(fit.coef, fit.V, fit.n_clusters - 1, hotelling=True).p_value < ALPHA
        raw_reject += equality_test(fit.coef, fit.V, fit.n_clusters - 1).p_value < ALPHA
    rate = reject / REPS
    mc_se = np.sqrt(ALPHA * (1 - ALPHA) / REPS)
    print(f"equality test rejection rate: Hotelling {rate:.3f}, F(q, G-1) {raw_reject / REPS:.3f}")
    assert abs(rate - ALPHA) < 3 * mc_se, rate
