"""The variance components of value-added (``impact.estimate.value_added``): the
signal variance of unit estimates with known sampling variances (Morris 1983), and the
random-intercept MixedLM beside it, statsmodels' REML model in closed form."""

from __future__ import annotations

import numpy as np
from scipy import optimize

__all__ = ["signal_variance", "mixedlm_blups"]


def signal_variance(raw: np.ndarray, noise: np.ndarray) -> float:
    """Maximum-likelihood s2 >= 0 of raw_j ~ N(0, s2 + noise_j) (Morris 1983): the root
    of sum_j (raw_j^2 - s2 - noise_j) / (s2 + noise_j)^2 = 0 (precision-weighted
    moments), or 0. ``raw``, ``noise`` (> 0): unit estimates and sampling variances."""
    nll = lambda s2: np.sum(np.log(s2 + noise) + raw ** 2 / (s2 + noise))  # noqa: E731
    hi = float(max(np.max(raw ** 2), 1e-12))
    s2 = optimize.minimize_scalar(nll, bounds=(0.0, hi), method="bounded",
                                  options={"xatol": 1e-10 * hi}).x
    return 0.0 if nll(0.0) <= nll(s2) else float(s2)


def mixedlm_blups(S: np.ndarray, n: np.ndarray, group: np.ndarray, n_units: int,
                  ratio: float, fixed: bool = False) -> tuple[np.ndarray, float, float]:
    """The random-intercept MixedLM (``value_added``'s module notes) on rows with residual
    sum ``S``, person-months ``n`` and unit code ``group`` (0 .. n_units - 1): statsmodels'
    ``MixedLM(S/sqrt(n), no fixed effects, groups, exog_re=sqrt(n))`` fitted by REML, in
    closed form. ``fixed=True``: the ratio gamma = s2 / phi is ``ratio``, only phi is
    fitted; else ``ratio`` is not needed (the optimum is found on a grid, not from a
    start). Returns (BLUP per unit, s2, phi).

    With rows y = S/sqrt(n), z = sqrt(n), unit j's covariance is phi (I + gamma z z'),
    so by the matrix determinant lemma and Sherman-Morrison, with a_j = sum z^2 = n_j,
    b_j = sum z y = S_j, Q_j = sum y^2 and N rows,

        -2 log L = N log phi + sum_j log(1 + gamma a_j)
                   + (1/phi) sum_j (Q_j - gamma b_j^2 / (1 + gamma a_j)) + N log 2 pi.

    Without fixed effects REML is this likelihood (no X'V^-1X term, N - 0 degrees of
    freedom). phi profiles out as R(gamma) / N, R the sum above; gamma >= 0 maximises
    -N log R - sum_j log(1 + gamma a_j), found on a log grid of 20 points a decade and
    refined by the root of its derivative; the BLUP is gamma b_j / (1 + gamma a_j).
    statsmodels' own fit loops over the units in Python at every step of its optimiser
    (25 s for the 21,000 caseworkers nationally); ``tests/estimate/test_value_added.py``
    checks this against it (likelihood, estimates, BLUPs)."""
    g = np.asarray(group, dtype=np.int64)
    n = np.asarray(n, dtype=np.float64)
    S = np.asarray(S, dtype=np.float64)
    a = np.bincount(g, n, n_units)
    b = np.bincount(g, S, n_units)
    Q = float(np.sum(S * S / n))
    N = len(S)
    has = a > 0
    a, b = a[has], b[has]

    def r(gam: float) -> float:   # R(gamma)
        return Q - float(np.sum(gam * b * b / (1 + gam * a)))

    def nll(gam: float) -> float:
        return N * np.log(max(r(gam), 1e-300)) + float(np.sum(np.log1p(gam * a)))

    def slope(gam: float) -> float:   # d nll / d gamma
        d = 1 + gam * a
        return -N * float(np.sum(b * b / (d * d))) / max(r(gam), 1e-300) + float(np.sum(a / d))

    if fixed:
        gam = float(ratio)
    else:
        scale = 1.0 / float(np.median(a)) if len(a) else 1.0
        grid = scale * np.logspace(-8, 8, 321)
        vals = [nll(float(x)) for x in grid]
        i = int(np.argmin(vals))
        gam = float(grid[i])
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
        if 0 < i < len(grid) - 1 and slope(lo) < 0 < slope(hi):
            gam = optimize.brentq(slope, lo, hi, xtol=1e-14 * hi, rtol=1e-14)
        if nll(0.0) <= nll(gam):   # s2 = 0 on the boundary
            gam = 0.0
    phi = r(gam) / N
    blup = np.zeros(n_units)
    blup[has] = gam * b / (1 + gam * a)
    return blup, gam * phi, phi
