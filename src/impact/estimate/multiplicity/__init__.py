"""Inference on a family of H group effects from one clustered model: joint Wald tests,
multiplicity-adjusted p-values and empirical-Bayes shrinkage towards the overall effect.

Used for effects estimated separately per pre-specified client group (e.g. ladder step
1, 2, 3-4, 5-6) from one interaction model with municipality-clustered inference.

Conventions (as every estimator here hands them over): for the H estimates ``est`` a
*cluster score matrix* ``S`` (G x H, one row per cluster) with ``V = S.T @ S`` their
covariance, small-sample factors already folded in (CRV1: ``linalg.crv1_parts`` gives
``SB`` and ``factor``, and ``S = sqrt(factor) * SB``); intervals and tests use t(G-1),
joint tests F(q, G-1). All functions are pure NumPy/SciPy on arrays; the tests and the
adjustment return frozen dataclasses.

* ``equality_test`` / ``zero_test``: cluster-robust Wald F tests of H0 b_1 = ... = b_H and
  H0 b = 0 (``WaldResult``).
* ``romano_wolf`` / ``westfall_young``: family-wise adjusted p-values of H0_h: b_h = null_h
  from a multiplier (wild) bootstrap of the cluster scores, step-down (Romano and Wolf
  2005) or single-step max-T (Westfall and Young 1993) (``MaxTResult``);
  ``bootstrap_t`` gives the draws behind them and ``max_t_adjust`` runs the same
  step-down on any other draws (e.g. WCR t's from ``wild.wild_cluster_bootstrap``, which
  keep the family-wise error near nominal with few clusters where the score draws do not;
  see ``romano_wolf``).
* ``shrink_to_overall``: normal-normal empirical Bayes of the group effects towards the
  overall effect, tau^2 by Paule-Mandel (``ShrinkResult``); ``paule_mandel`` is the
  estimating equation on its own.

Modules: ``wald`` (the Wald tests), ``maxt`` (bootstrap max-T adjustment), ``shrink``
(empirical Bayes); everything is importable from here.
"""

from impact.estimate.multiplicity.maxt import (
    MaxTResult, bootstrap_t, max_t_adjust, romano_wolf, westfall_young,
)
from impact.estimate.multiplicity.shrink import ShrinkResult, paule_mandel, shrink_to_overall
from impact.estimate.multiplicity.wald import (
    RANK_RTOL, WaldResult, equality_test, wald_test, zero_test,
)

__all__ = ["WaldResult", "equality_test", "zero_test", "wald_test", "MaxTResult",
           "bootstrap_t", "max_t_adjust", "romano_wolf", "westfall_young", "ShrinkResult",
           "paule_mandel", "shrink_to_overall", "RANK_RTOL"]
