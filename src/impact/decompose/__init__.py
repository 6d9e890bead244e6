"""Decomposition of each municipality's change in outflow to work (stage ``decompose``).

``decompose`` fits the headline quality model's full set of terms, and splits the change
in the monthly exit-to-work rate between two periods into client composition, labour
market, shocks, quality (programme included) and a residual by Shapley values, with wild
cluster bootstrap intervals. See ``core`` for the method and ``docs/methods.md``.
"""

from impact.decompose.core import COMPONENTS, NATIONAL, Decomposition, decompose
from impact.decompose.params import DecomposeParams, Period, parse_period
from impact.decompose.shapley import shapley

__all__ = ["COMPONENTS", "NATIONAL", "Decomposition", "DecomposeParams", "Period",
           "decompose", "parse_period", "shapley"]
