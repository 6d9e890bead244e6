"""What works for whom: effects by client group, outcomes beyond work (issue 9).

``params`` (the ``heterogeneity`` section), ``quality`` and ``adoption`` (group effects
from interaction models), ``run`` (tests, multiplicity, shrinkage; ``analyse``),
``incidence`` (competing-risks cumulative incidence), ``progress`` (intermediate
results), ``cddf`` (the data-driven check).
"""

from impact.heterogeneity.params import HeterogeneityParams
from impact.heterogeneity.run import HeterogeneityResult, analyse

__all__ = ["HeterogeneityParams", "HeterogeneityResult", "analyse"]
