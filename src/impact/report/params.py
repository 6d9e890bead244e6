"""The ``privacy`` section of params.yaml."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from impact.config import ConfigError, check_keys


@dataclass(frozen=True)
class PrivacyParams:
    """Statistical disclosure control for everything that leaves the pipeline.

    Attributes
    ----------
    min_cell : int
        Every published statistic rests on at least this many distinct clients; every
        count and every numerator of a rate is at least this (CBS practice: 10).
    min_residual_df : int
        Every published model has at least this many residual degrees of freedom.
    """

    min_cell: int = 10
    min_residual_df: int = 10

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PrivacyParams":
        check_keys("privacy", d, {"min_cell", "min_residual_df"})
        out = cls(**d)
        for key in ("min_cell", "min_residual_df"):
            value = getattr(out, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"params.yaml: privacy.{key} must be an integer >= 1, got {value!r}"
                )
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
