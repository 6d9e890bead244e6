"""Robustness of the headline conclusions (stage ``robustness``): placebos,
leave-one-municipality-out, pre-trends, alternative outcomes, crisis months dropped,
and a one-page summary of which conclusions survive. See ``checks`` and ``summary``."""

from impact.robustness.checks import COLUMNS
from impact.robustness.summary import RobustnessParams, run_robustness, summary_markdown

__all__ = ["COLUMNS", "RobustnessParams", "run_robustness", "summary_markdown"]
