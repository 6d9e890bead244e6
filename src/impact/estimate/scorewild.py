"""Wild *score* bootstrap with the null imposed, for estimators linear in the outcome.

Used for every headline estimate when the clusters are few (``estimate.wild_below``):
the person-month quality 2SLS/OLS and the imputation ATTs of adoption and shocks. These
estimators have no single WLS design that ``wild.wild_cluster_bootstrap`` could refit,
but each is linear in the outcome, so its deviation from a hypothesised value theta0
is a sum of cluster scores that are affine in theta0::

    theta_hat - theta0 = sum_g s_g(theta0),   s_g(theta0) = a_g - theta0 * c_g,
    sum_g c_g = 1,  sum_g a_g = theta_hat.

* 2SLS (and OLS, z = x) after the fixed effects and controls are partialled out (FWL):
  ``a_g = sum_{i in g} z_i y_i / z'x``, ``c_g = sum_{i in g} z_i x_i / z'x``, so that
  s_g(theta0) is the cluster's share of z'(y - theta0 x)/z'x, the score under H0.
* Imputation (Borusyak, Jaravel and Spiess 2024): theta_hat = sum_i w_i tau_i with
  treated weights w (sum 1) and the implied untreated weights v_0; under H0 that every
  treated effect equals theta0, ``a_g = sum_{g, untreated} v_0 e_0 + sum_{g, treated}
  w tau`` and ``c_g = sum_{g, treated} w`` (the residual of the Y(0) model carries no
  theta0). As BJS's conservative variance, the null residual tau - theta0 keeps effect
  heterogeneity in the scores, so the test is conservative when effects vary.

Test (Kline and Santos 2012, "A score based approach to wild bootstrap inference",
*Journal of Econometric Methods* 1(1), 23-41; restricted scores as they recommend):
``T(theta0) = |sum_g s_g| / sqrt(sum_g s_g^2)`` against the draws
``T*_b = |sum_g v_bg s_g| / sqrt(sum_g v_bg^2 s_g^2)`` with Rademacher or Webb cluster
weights v (``wild.draw_weights``: all 2^G sign vectors when G <= 10; sampled draws get
the identity draw added, so p >= 1/(B+1)). The p-value is the share of draws with
T* >= T; the (1 - alpha) interval is the set of theta0 not rejected, found by an outward
geometric scan and bisection on each side of theta_hat (the p-value need not be
monotone; each evaluation costs O(B G) since the scores are affine in theta0). Far from
theta_hat the scores tend to -theta0 c, so the p-value tends to a limit p_inf; when
p_inf > alpha no distant value is rejected and the interval is (-inf, inf). With
Rademacher weights the denominators coincide and the test is the cluster sign-flip
randomization test of the score, exact under symmetric cluster scores. The bootstrap
standard error is the sd over the draws of the score sum at theta_hat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from impact.estimate.wild import WildWeights, draw_weights

__all__ = ["ScoreWildResult", "score_wild"]


@dataclass(frozen=True)
class ScoreWildResult:
    """p-value of H0 theta = 0 and the test-inversion interval (infinite ends when the
    test rejects no value that far out); bootstrap standard error (sd over the draws of
    the score sum at theta_hat); draws and weights used."""

    p_value: float
    ci_low: float
    ci_high: float
    n_boot: int
    weights: str
    enumerated: bool
    n_clusters: int
    std_error: float = float("nan")

    def describe(self, alpha: float) -> str:
        how = "all sign vectors" if self.enumerated else f"{self.n_boot} draws"
        return (f"wild score bootstrap, null imposed (Kline-Santos 2012), {self.weights} "
                f"weights, {how}, G={self.n_clusters}; {1 - alpha:.0%} interval by test "
                "inversion")


def _pvalues(a: np.ndarray, c: np.ndarray, theta0: float, V: np.ndarray,
             V2: np.ndarray) -> float:
    s = a - theta0 * c
    den = np.sqrt((s ** 2).sum())
    if den <= 0:
        return 1.0
    t_obs = abs(s.sum()) / den
    num = np.abs(V @ s)
    den_b = np.sqrt(V2 @ (s ** 2))
    t_b = np.divide(num, den_b, out=np.zeros_like(num), where=den_b > 0)
    return float(np.mean(t_b >= t_obs * (1 - 1e-12)))


def _edge(a, c, V, V2, theta: float, step: float, alpha: float, sign: int) -> float:
    """The interval's end on one side of theta_hat.

    The p-value need not be monotone in theta0, so the accepted set is scanned outward on
    a geometric grid theta_hat + sign * step * 2^k (k = -4..60) and the end is bisected
    between the outermost accepted grid point and the next (rejected) one. The caller has
    checked that the limit of the p-value far from theta_hat rejects, so the scan ends.
    """
    grid = theta + sign * step * 2.0 ** np.arange(-4, 61)
    acc = np.array([_pvalues(a, c, t0, V, V2) > alpha for t0 in grid])
    if not acc.any():
        lo, hi = theta, grid[0]
    else:
        k = int(np.flatnonzero(acc)[-1])
        if k == len(grid) - 1:
            return float(sign * np.inf)
        lo, hi = grid[k], grid[k + 1]
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if _pvalues(a, c, mid, V, V2) > alpha:
            lo = mid
        else:
            hi = mid
        if abs(hi - lo) <= 1e-9 * max(1.0, abs(mid)):
            break
    return float(0.5 * (lo + hi))


def score_wild(a, c, *, weights: WildWeights = "webb", B: int = 9999, seed: int = 0,
               alpha: float = 0.05, scale: float | None = None) -> ScoreWildResult:
    """Wild score bootstrap test of theta = 0 and its test-inversion interval.

    Parameters
    ----------
    a, c : array (G,)
        Cluster score parts, s_g(theta0) = a_g - theta0 c_g (module notes); ``c`` is
        normalised here to sum to one and ``a`` with it.
    weights : {"rademacher", "webb"}
        Webb's six-point weights for very few clusters (Webb 2023), Rademacher otherwise.
    B : int
        Draws when the weights are not enumerated.
    seed : int
        Seed of ``np.random.default_rng``.
    alpha : float
        1 - confidence level.
    scale : float, optional
        A length scale for the interval search (e.g. the analytic standard error).

    Returns
    -------
    ScoreWildResult

    Raises
    ------
    ValueError
        Fewer than two clusters, or scores that do not depend on theta (sum c = 0).
    """
    a = np.asarray(a, dtype="float64").ravel()
    c = np.asarray(c, dtype="float64").ravel()
    if a.shape != c.shape or len(a) < 2:
        raise ValueError(f"score_wild needs a and c of one length >= 2 (clusters), got "
                         f"{a.shape} and {c.shape}")
    total = c.sum()
    if not np.isfinite(total) or abs(total) < 1e-300:
        raise ValueError("score_wild: the scores do not depend on theta (sum of c is 0)")
    a, c = a / total, c / total
    G = len(a)
    rng = np.random.default_rng(seed)
    V, enumerated = draw_weights(G, B, weights, rng)
    if not enumerated:  # the data's own draw (v = 1) counts, so p >= 1/(B+1) (boottest)
        V = np.vstack([np.ones((1, G)), V])
    V2 = V ** 2
    theta = float(a.sum())
    p0 = _pvalues(a, c, 0.0, V, V2)
    s = a - theta * c
    # bootstrap standard error: sd over draws of the score sum at theta_hat (WCU)
    se = float(np.std(V @ s))
    step = float(scale) if scale and np.isfinite(scale) and scale > 0 else max(
        float(np.sqrt((s ** 2).sum())), 1e-8 * max(1.0, abs(theta)))
    # far from theta_hat the scores tend to -theta0 c: the p-value's limit on both sides
    p_inf = _pvalues(np.zeros_like(c), c, -1.0, V, V2)
    if p_inf > alpha:  # no value far away is rejected: the confidence set is unbounded
        lo, hi = -np.inf, np.inf
    else:
        lo = _edge(a, c, V, V2, theta, step, alpha, -1)
        hi = _edge(a, c, V, V2, theta, step, alpha, +1)
    n_draws = len(V) - (0 if enumerated else 1)  # the identity draw is not a draw
    return ScoreWildResult(p0, lo, hi, n_draws, weights, enumerated, G, se)
