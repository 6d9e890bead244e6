"""Data-driven check of quality-effect heterogeneity: CDDF's BLP, GATES and CLAN.

Notes
-----
The pre-specified groups (``heterogeneity.quality``) test one dimension at a time. This
module asks the agnostic question of Chernozhukov, Demirer, Duflo and Fernández-Val
(2018, NBER WP 24678; Econometrica, "Generic machine learning inference on heterogeneous
treatment effects in randomized experiments"; CDDF): does a predictor of the quality
effect built on one half of the data predict heterogeneity on the other half? It is a
robustness view reported *beside* the pre-specified groups, never instead of them.

**Adaptation to a continuous, instrumented treatment.** The treatment is the true process
quality q* of the month's caseworker, seen through two independent half-measurements
(``quality_a``, ``quality_b``), with the headline's controls, fixed effects and
clustering (``estimate.quality.quality_frame``). The conditional quality effect is
beta(x) in

    100 y_i = beta(x_i) q*_i + x_i'delta + controls + FE + u_i,

x the client characteristics of every pre-specified dimension (the group dummies).
CDDF's "treatment minus propensity" becomes ``quality_a`` instrumented by ``quality_b``
(errors-in-variables correction, as in the headline); every interaction ``quality_a x w``
is instrumented by ``quality_b x w``. For s = 1..S splits of the *clusters* (by default
municipalities; halves of clusters are independent, halves of rows within a cluster are
not) into Aux and Main:

1. *Proxy (Aux).* The interaction 2SLS of y on ``quality_a`` and ``quality_a x x_j``
   (instruments ``quality_b``, ``quality_b x x_j``), the x_j main effects among the
   controls, gives s(x) = b0 + sum_j b_j x_j, x_j the dummies of every dimension's groups
   with the first group of each dimension left out. Person-months in no group of a
   dimension (e.g. education "unknown") get a level "(none)" of their own, so the sample
   is the headline's. Why linear: the characteristics are the pre-specified group
   dummies (a few dozen), so an additive interaction model is the transparent IV analogue
   of CDDF's ML proxy; IV forests are not available here, and CDDF's inference is valid
   for *any* proxy learnt on Aux (a poor proxy costs power, not size). It cannot pick up
   interactions between dimensions. Collinearity does not bite (one level left out per
   dimension, ~20 dummies, ~10^6 rows per half): no ridge penalty. A level absent from
   Aux (its instrument is a zero column) is dropped by ``fit_pm_multi`` and gets b_j = 0,
   i.e. is predicted like the reference group.
2. *Main.* S_i = s(x_i), centred at its person-month mean on Main.
   **BLP**: 2SLS of y on ``quality_a`` and ``quality_a (S - mean S)`` (instruments
   ``quality_b``, ``quality_b (S - mean S)``), x main effects among the controls (they span
   S itself). **GATES**: K quantile groups G_k of S (cut points the person-month
   quantiles of S on Main; a value equal to a cut point goes to the lower group), 2SLS of
   y on ``quality_a 1{G_k}`` (instruments ``quality_b 1{G_k}``) with the G_k and x main
   effects among the controls; plus the difference top (k = K) minus bottom (k = 1).
   **CLAN**: the share of each group of each dimension among the person-months of the top
   and of the bottom group, and their difference.

**Estimands** (conditional on the Aux half, i.e. on the proxy; tilde = residual after the
controls, fixed effects and x main effects). (beta1, beta2) solve the moment conditions

    E[ z~ q* (beta(x) - beta1 - beta2 (S(x) - mean S)) ] = 0,  z in {q_b, q_b (S - mean S)}.

With omega(x) the identifying variation of quality within characteristic cell x (the
covariance of q_b~ with q*, i.e. the first-stage strength, given x) this is the
omega-weighted best linear predictor of beta(x) by S(x):
beta2 = Cov_w(beta(X), S(X)) / Var_w(S(X)) and beta1 = E_w[beta(X)] + beta2 (E_w S - mean S),
w = omega x person-months. When quality is as good as randomly assigned to clients within
municipality-months (the headline's identifying assumption) and x does not predict how
much a client's caseworker varies, omega is constant: beta2 is the person-month BLP slope
(beta2 = 1 if S were the true effect function, 0 if S is unrelated to it; beta2 > 0 with a
small p: the proxy predicts heterogeneity), and beta1 the average quality effect on Main
(close to the pooled 2SLS on Main). Likewise gamma_k = E_w[beta(X) | S(X) in the k-th
quantile range]: the same estimand as a pre-specified group's effect in
``heterogeneity.quality``, for groups formed by the proxy. CLAN: E[x | G_K] - E[x | G_1],
person-month weighted. (Sorting of clients to caseworkers by characteristic, e.g. the
built-in simulation's ``assignment_sorting``, moves omega, not the validity of the tests.)
Read CLAN only when BLP or GATES find heterogeneity: the proxy sorts person-months by
their characteristics by construction, so top and bottom differ in composition, and
"significantly" so in a single split, even when the proxy is pure noise (the splits then
disagree on the sign and the medians mean little).

**Inference per split**: CRV1 with the headline's small-sample factor (``fit_pm_multi``),
t(G_Main - 1); CLAN differences by the same CRV1 on the regression of the characteristic
on the top indicator within top and bottom. **Aggregation over splits** (CDDF sec. 4):
point estimates and interval bounds are the medians over splits of the split estimates
and of the split intervals computed at level 1 - 2 alpha, so the median interval has level
at least 1 - alpha; p-values are min(1, 2 x median split p). With an even number of splits
the median is the mean of the two middle values. Conservative by construction: under no
heterogeneity the aggregated test rejects at most at about the nominal rate.

**Disclosure**: a GATES group is published when every split's group holds at least
``min_cell`` distinct clients (``n_clients`` is the minimum over splits); the top-bottom
row needs both; a CLAN row needs both groups published and at least ``min_cell`` clients
*with that characteristic* in each of top and bottom in every split (a share is a count
in disguise); BLP needs ``min_cell`` clients on Main. ``publication_view`` blanks what is
not published.

**Performance**: the quality matrix is built once (``quality_frame`` with the dimensions'
group codes and the client as per-row ``extra`` columns), its rows sorted by cluster.
One pass over the rows, a cluster at a time, gives the raw (not demeaned) cluster blocks
of the Gram matrix of the Aux model's columns and their sums per cell x cluster pair
(``cgram.cluster_grams_by``). Every half is a set of clusters, so its blocks are a
subset of these, and projecting out the half's own cell fixed effects (the region x
month effects differ by half) is a correction at the level of the cell x cluster pairs
(``cgram.demean_grams``): the Aux fits read no row. On Main the proxy's columns
q (S - mean S) are combinations of Aux columns (their blocks M'C_gM); only the GATES
columns are built from the rows, per outcome, and crossed with the others. Memory: the
full matrix plus one cluster's rows of the Aux columns. Measured on the default data (2.9
million person-months, 5 splits, one outcome, one BLAS thread): 16 s, where demeaning
each half's rows took 35 s (the same numbers to 1e-12).

Modules: ``quality`` (the splits, the proxy on Aux and the fits on Main), ``programme``
(the same for the programme effect, from person-month imputation), ``split``
(one split's BLP, GATES and CLAN rows), ``tables`` (aggregation over splits, disclosure,
the publication view); everything is importable from here.
"""

from impact.heterogeneity.cddf.programme import cddf_programme
from impact.heterogeneity.cddf.quality import cddf_quality
from impact.heterogeneity.cddf.tables import (
    NONE_LEVEL, CDDFResult, aggregate_splits, publication_view, split_inference,
)

__all__ = ["CDDFResult", "NONE_LEVEL", "aggregate_splits", "cddf_programme", "cddf_quality",
           "publication_view", "split_inference"]
