"""Reporting: metrics.json, tidy tables and figures, rendered from the estimate outputs only."""

from impact.report.metrics import CONTRACT_KEYS, MetricsError, build_metrics, check_metrics, publication_estimates
from impact.report.params import PrivacyParams

__all__ = [
    "CONTRACT_KEYS",
    "MetricsError",
    "PrivacyParams",
    "build_metrics",
    "check_metrics",
    "publication_estimates",
]
