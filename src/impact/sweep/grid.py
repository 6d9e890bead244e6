"""The specification grid of params.yaml (section ``grid``): axes, cells and their names.

Every cell is one DVC stage ``sweep@<cell>`` (a ``matrix`` over the axes in dvc.yaml)
writing ``data/sweep/<cell>/``. DVC leaves a removed value's folders behind, so readers
take the cell names from :meth:`GridParams.cells`, never from a folder listing.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from impact.config import ConfigError, check_keys

__all__ = ["AXES", "GridParams", "cell_name"]

#: axis -> allowed values (the order of the axes is the order of a cell's name parts)
AXES: dict[str, tuple[str, ...]] = {
    "estimator": ("imputation", "twfe"),
    "outcome": ("month", "within_6", "within_12"),
    "fixed_effects": ("region_month", "month"),
    "sample": ("all", "no_crisis", "inflow", "age_25_54"),
    "controls": ("full", "none"),
    "inference": ("cluster", "wild"),
}


def cell_name(cell: Mapping[str, str]) -> str:
    """``imputation-month-region_month-all-full-cluster``: the axis values joined by '-' in
    axis order,
    as DVC names the matrix stage (``sweep@<name>``) and its folder."""
    return "-".join(str(cell[a]) for a in AXES)


@dataclass(frozen=True)
class GridParams:
    """Axes of the programme-effect specification sweep (each a list of values).

    Attributes
    ----------
    estimator : imputation (Borusyak-Jaravel-Spiess) | twfe (plain two-way FE)
    outcome : month (monthly exit-to-work rate) | within_6 | within_12 (share of the
        month's intake exiting to work within 6 / 12 months; intake cohorts)
    fixed_effects : region_month | month (national calendar months)
    sample : all | no_crisis (COVID months Apr 2020 - May 2021 dropped) | inflow (spells
        starting in the window) | age_25_54
    controls : full (client mix and municipal labour-market indicators) | none
    inference : cluster (analytic, t(G-1)) | wild (wild score bootstrap; imputation only)
    crisis : first and last month of the crisis dropped by ``no_crisis``
    """

    estimator: tuple[str, ...] = ("imputation", "twfe")
    outcome: tuple[str, ...] = ("month", "within_6", "within_12")
    fixed_effects: tuple[str, ...] = ("region_month", "month")
    sample: tuple[str, ...] = ("all", "no_crisis")
    controls: tuple[str, ...] = ("full",)
    inference: tuple[str, ...] = ("cluster",)
    crisis: tuple[str, str] = ("2020-04", "2021-05")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GridParams":
        check_keys("grid", d, set(AXES) | {"crisis"})
        kw: dict[str, Any] = {}
        for axis, allowed in AXES.items():
            if axis not in d:
                continue
            v = d[axis]
            if not isinstance(v, list) or not v or len(set(map(str, v))) != len(v):
                raise ConfigError(f"params.yaml: grid.{axis} must be a non-empty list of "
                                  f"distinct values from {', '.join(allowed)}; got {v!r}")
            bad = [x for x in v if x not in allowed]
            if bad:
                raise ConfigError(f"params.yaml: grid.{axis}: {bad[0]!r} is not allowed "
                                  f"(allowed: {', '.join(allowed)})")
            kw[axis] = tuple(v)
        if "crisis" in d:
            c = d["crisis"]
            if (not isinstance(c, list) or len(c) != 2
                    or not all(isinstance(x, str) and len(x) == 7 for x in c) or c[0] > c[1]):
                raise ConfigError(f"params.yaml: grid.crisis must be [YYYY-MM, YYYY-MM], "
                                  f"got {c!r}")
            kw["crisis"] = tuple(c)
        return cls(**kw)

    def cells(self) -> list[dict[str, str]]:
        """Every combination of the axes, in the order DVC's matrix expands them."""
        axes = [getattr(self, a) for a in AXES]
        return [dict(zip(AXES, combo)) for combo in itertools.product(*axes)]

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) for k, v in asdict(self).items()}
