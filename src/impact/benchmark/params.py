"""The ``benchmark`` section of params.yaml."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from impact.config import ConfigError, check_keys
from impact.decompose.params import Period, parse_period

__all__ = ["BenchmarkParams"]


@dataclass(frozen=True)
class BenchmarkParams:
    """Parameters of the ``benchmark`` stage.

    Attributes
    ----------
    period : ``window`` (the whole study window) or one period (``YYYY``, ``YYYY-Qn``,
        ``YYYY-MM:YYYY-MM``) over which units are compared.
    n_draws : simulation draws behind the intervals of the quality contribution and the
        rank intervals.
    overdispersion : widen the funnel limits by Spiegelhalter's multiplicative
        overdispersion factor when it exceeds 1.
    team_min_caseworkers : a team is published only with at least this many caseworkers
        (besides ``privacy.min_cell`` clients and exits), so no team figure is one
        caseworker's.
    """

    period: str = "window"
    n_draws: int = 2000
    overdispersion: bool = True
    team_min_caseworkers: int = 3

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BenchmarkParams":
        check_keys("benchmark", d, {"period", "n_draws", "overdispersion",
                                    "team_min_caseworkers"})
        out = cls(**d)
        if out.period != "window":
            parse_period(out.period, "benchmark.period")
        for key, lo in (("n_draws", 100), ("team_min_caseworkers", 1)):
            v = getattr(out, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ConfigError(f"params.yaml: benchmark.{key} must be an integer >= {lo}, "
                                  f"got {v!r}")
        if not isinstance(out.overdispersion, bool):
            raise ConfigError("params.yaml: benchmark.overdispersion must be true or false, "
                              f"got {out.overdispersion!r}")
        return out

    def window(self, t_min: int, t_max: int) -> Period:
        """The compared period, given the panel's first and last month."""
        if self.period == "window":
            return Period("window", t_min, t_max)
        return parse_period(self.period, "benchmark.period")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
