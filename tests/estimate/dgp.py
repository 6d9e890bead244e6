"""The lean DGP for estimator tests: a re-export of :mod:`impact.simulate.lean`."""

from impact.simulate.lean import *  # noqa: F401,F403
from impact.simulate.lean import _dur_band  # noqa: F401
