"""Estimators: quality effect (errors-in-variables IV), reliability, programme adoption
(imputation), local shocks (event study) and the naive numbers, in one tidy result.

>>> params = EstimateParams.from_dict(estimate={}, quality={}, adoption={}, shock={}, seed=1)
>>> res = estimate_all(person_months, cells, quality, adoption, shocks, params)  # doctest: +SKIP
>>> res.tidy, res.headline, res.meta                                             # doctest: +SKIP

Models in ``res.tidy`` (column ``model``; terms in brackets):

- ``quality_iv`` [quality, first_stage_F]: 2SLS, quality_a instrumented by quality_b
  (``quality``); ``quality_ols`` [quality]: uncorrected OLS on quality_score;
  ``quality_reliability`` [reliability, inter_rater_reliability, var_true, var_session,
  var_rater, var_total] (``reliability``); ``quality_naive`` [mean_score] (``naive``).
- ``adoption_imputation`` [att; att by cohort; event_time by rel_time, including
  anticipation months; pretrend_bin; pretrend_wald_F] (``adoption``); ``adoption_twfe``
  [adopted]; ``adoption_naive`` [post_minus_pre].
- with ``adoption.alternatives`` (default all), on the balanced, unweighted unit x month
  cells (``alternatives``): ``adoption_cs_never`` and ``adoption_cs_notyet`` [att;
  att_dynamic; att_e by rel_time] (Callaway-Sant'Anna); ``adoption_sunab`` [att;
  att_e by rel_time]; ``adoption_bacon`` [twfe; <comparison type>; weight:<type>]
  (Goodman-Bacon). Never part of the headline; a failing one warns and is left out.
- ``shock_event_study`` [effect; effect by shock_id (cohort); event_time by rel_time;
  pretrend_bin; pretrend_wald_F] (``shock``); ``shock_naive`` [post_minus_pre].

Each module's docstring states its estimating equation, variance and small-sample
convention; the ``vcov`` column repeats the convention per row.
"""

from __future__ import annotations

import platform
import warnings
from importlib.metadata import version

import pandas as pd

from impact.estimate.adoption import adoption_cells, estimate_adoption
from impact.estimate.alternatives import adoption_alternatives
from impact.estimate.frames import EstimationWarning, shock_events
from impact.estimate.params import EstimateParams
from impact.estimate.results import TIDY_COLUMNS, EstimationResult, tidy_frame
from impact.estimate.shock import estimate_shock
from impact.estimate.run import quality_block, run_specification  # noqa: E402  (uses the above)

__all__ = ["EstimateParams", "EstimationResult", "EstimationWarning", "TIDY_COLUMNS",
           "estimate_all", "publishable", "run_specification", "versions"]


def versions() -> dict[str, str]:
    """Python and library versions for the estimates sidecar."""
    out = {"python": platform.python_version()}
    for lib in ("numpy", "pandas", "scipy", "pyfixest", "moderndid", "statsmodels"):
        try:
            out[lib] = version(lib)
        except Exception:  # pragma: no cover - metadata missing
            out[lib] = "unknown"
    return out


def publishable(block: str, head: dict | None, min_coverage: float) -> dict | None:
    """The headline block, or None (with a warning) when it does not estimate its estimand.

    A block needs at least two clusters for any clustered interval, and must cover at least
    ``estimate.min_coverage`` of the estimand's person-months: cells that cannot be imputed
    (no comparable untreated cell) would otherwise silently change what is averaged.
    """
    if head is None:
        return None
    if (head.get("n_clusters") or 0) < 2:
        warnings.warn(EstimationWarning(
            f"{block}: only {head.get('n_clusters')} cluster(s); no clustered interval is "
            f"possible, so the {block} block is null (use a finer estimate.cluster)"))
        return None
    cov = head.get("coverage_share")
    if cov is not None and cov < min_coverage:
        warnings.warn(EstimationWarning(
            f"{block}: only {cov:.1%} of the estimand's person-months could be imputed "
            f"(estimate.min_coverage = {min_coverage:.0%}); the {block} block is null"))
        return None
    return head


def estimate_all(person_months: pd.DataFrame, cells: pd.DataFrame,
                 quality: pd.DataFrame | None, adoption: pd.DataFrame | None,
                 shocks: pd.DataFrame | None, params: EstimateParams) -> EstimationResult:
    """Run every estimator and collect one tidy table and the headline blocks.

    Parameters
    ----------
    person_months, cells : pandas.DataFrame
        The panel stage's outputs (docs/architecture.md, "Panel").
    quality, adoption, shocks : pandas.DataFrame or None
        Validated optional tables; None when absent.
    params : EstimateParams

    Returns
    -------
    EstimationResult
        ``headline[block]`` is None when its input is absent: quality without a quality
        table or without person-months measured twice (quality_a and quality_b);
        adoption without rows for ``adoption.programme``; shock without events of
        ``shock.type`` in the panel's municipalities.
    """
    rows: list[dict] = []
    headline: dict[str, dict | None] = {"quality": None, "adoption": None, "shock": None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EstimationWarning)
        if quality is not None and not quality.empty:
            q_rows, headline["quality"] = quality_block(person_months, quality, params)
            if headline["quality"] is not None:
                rows += q_rows

        frame = adoption_cells(cells, person_months, adoption, params.adoption.programme)
        events = shock_events(shocks, params.shock.type)
        alt_meta: dict = {}
        if frame is not None:
            a_rows, headline["adoption"] = estimate_adoption(frame, events, params)
            rows += a_rows
            if params.adoption.alternatives:
                alt_rows, alt_meta = adoption_alternatives(
                    frame, params.adoption.alternatives, params.estimate.alpha)
                rows += alt_rows

        if not events.empty:
            s_rows, headline["shock"] = estimate_shock(cells, person_months, events, params)
            rows += s_rows
        for block in ("adoption", "shock"):
            headline[block] = publishable(block, headline[block], params.estimate.min_coverage)
    messages = [str(w.message) for w in caught if issubclass(w.category, EstimationWarning)]
    for w in caught:  # re-emit so callers and logs still see them
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    meta = {"params": params.to_dict(), "versions": versions(), "warnings": messages,
            "n_person_months": int(len(person_months)), "n_cells": int(len(cells)),
            "adoption_alternatives": alt_meta}
    return EstimationResult(tidy_frame(rows), headline, meta)
