"""``params.yaml`` loaded into frozen, validated objects before any data is read.

Each section belongs to the package that reads it and is parsed by that package's own
``*Params.from_dict``; this module checks the top level and assembles the sections, so a
typo anywhere in ``params.yaml`` stops a stage with a message naming the key, the value
and what is allowed, before a single row is read.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

__all__ = ["ConfigError", "Params", "load_params", "check_keys"]

SECTIONS = (
    "seed", "simulate", "data", "panel", "quality", "adoption", "shock", "estimate",
    "privacy", "specifications", "headline", "decompose", "benchmark", "grid", "compute",
    "robustness", "heterogeneity", "briefs",
)


class ConfigError(ValueError):
    """A value in params.yaml is unknown, of the wrong type or out of range."""


def check_keys(section: str, given: Mapping[str, Any], allowed: set[str] | tuple[str, ...]) -> None:
    """Raise ConfigError for a key of ``section`` that is not in ``allowed``."""
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ConfigError(
            f"params.yaml: unknown key {section}.{unknown[0]} "
            f"(allowed keys in '{section}': {', '.join(sorted(allowed))})"
        )


@contextmanager
def _as_config_error(section: str):
    """Report a section parser's ValueError as a ConfigError naming the section."""
    try:
        yield
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"params.yaml [{section}]: {exc}") from exc


def _section(raw: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"params.yaml: section '{name}' must be a mapping, got {value!r}")
    return dict(value)


@dataclass(frozen=True)
class Params:
    """The whole of params.yaml; each property parses one section on first use."""

    raw: Mapping[str, Any]

    @property
    def seed(self) -> int:
        seed = self.raw.get("seed", 20261124)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"params.yaml: seed must be a non-negative integer, got {seed!r}")
        return seed

    def section(self, name: str) -> dict[str, Any]:
        return _section(self.raw, name)

    @property
    def simulate(self):
        from impact.simulate import SimulateParams

        with _as_config_error("simulate"):
            return SimulateParams.from_dict(self.section("simulate"))

    @property
    def data(self):
        from impact.validate.params import DataParams

        with _as_config_error("data"):
            return DataParams.from_dict(self.section("data"))

    @property
    def window(self) -> tuple[str, str]:
        panel = self.panel
        return panel.start, panel.end

    @property
    def panel(self):
        from impact.panel import PanelParams

        shock = self.section("shock")
        kwargs: dict[str, Any] = {}
        if "instrument" in self.section("quality"):
            kwargs["quality_instrument"] = self.section("quality")["instrument"]
        if "programme" in self.section("adoption"):
            kwargs["programme"] = self.section("adoption")["programme"]
        if "type" in shock:
            kwargs["shock_type"] = shock["type"]
        if "event_window" in shock:
            kwargs["shock_event_window"] = tuple(shock["event_window"])
        with _as_config_error("panel"):
            return PanelParams.from_dict(self.section("panel"), **kwargs)

    @property
    def estimate(self):
        from impact.estimate import EstimateParams

        with _as_config_error("estimate"):
            return EstimateParams.from_dict(
                estimate=self.section("estimate"),
                quality=self.section("quality"),
                adoption=self.section("adoption"),
                shock=self.section("shock"),
                seed=self.seed,
            )

    @property
    def specifications(self):
        """{name: Specification} of the ``specifications`` section, in the given order."""
        from impact.estimate.specs import parse_specifications

        with _as_config_error("specifications"):
            return parse_specifications(self.raw.get("specifications"))

    @property
    def headline(self) -> dict:
        """{block: specification name or None} of the ``headline`` section."""
        from impact.estimate.specs import parse_headline

        specs = self.specifications
        with _as_config_error("headline"):
            return parse_headline(self.section("headline"), specs)

    @property
    def privacy(self):
        from impact.report import PrivacyParams

        with _as_config_error("privacy"):
            return PrivacyParams.from_dict(self.section("privacy"))

    @property
    def decompose(self):
        from impact.decompose.params import DecomposeParams

        with _as_config_error("decompose"):
            return DecomposeParams.from_dict(self.section("decompose"))

    @property
    def benchmark(self):
        from impact.benchmark.params import BenchmarkParams

        with _as_config_error("benchmark"):
            return BenchmarkParams.from_dict(self.section("benchmark"))

    @property
    def grid(self):
        from impact.sweep.grid import GridParams

        with _as_config_error("grid"):
            return GridParams.from_dict(self.section("grid"))

    @property
    def compute(self):
        from impact.compute import ComputeParams

        with _as_config_error("compute"):
            return ComputeParams.from_dict(self.section("compute"))

    @property
    def robustness(self):
        from impact.robustness.summary import RobustnessParams

        with _as_config_error("robustness"):
            return RobustnessParams.from_dict(self.section("robustness"))

    @property
    def heterogeneity(self):
        from impact.heterogeneity.params import HeterogeneityParams

        with _as_config_error("heterogeneity"):
            return HeterogeneityParams.from_dict(self.section("heterogeneity"))

    @property
    def briefs(self):
        from impact.brief.params import BriefParams

        with _as_config_error("briefs"):
            return BriefParams.from_dict(self.section("briefs"))

    def decompose_specification(self):
        """The quality specification the decomposition and benchmark use (``decompose.
        specification``, else ``headline.quality``), checked to be a linear model with
        region x month effects."""
        specs = self.specifications
        name = self.decompose.specification or self.headline.get("quality")
        if name is None:
            raise ConfigError("params.yaml: decompose.specification is null and there is no "
                              "headline.quality specification to decompose")
        if name not in specs:
            raise ConfigError(f"params.yaml: decompose.specification={name!r} is not in "
                              f"specifications (defined: {', '.join(specs)})")
        spec = specs[name]
        est = spec.apply(self.estimate)
        if spec.block != "quality" or spec.estimator not in ("iv", "ols"):
            raise ConfigError(f"params.yaml: decompose.specification={name!r} must be a quality "
                              f"specification with estimator iv or ols (it is {spec.block} "
                              f"{spec.estimator})")
        if est.estimate.quality_fe != "region_month" or spec.sample != "all":
            raise ConfigError(f"params.yaml: decompose.specification={name!r} must use "
                              "fixed_effects region_month and sample all: municipality x month "
                              "effects would absorb the labour market the decomposition "
                              "separates")
        return name, spec, est

    def validate_all(self) -> "Params":
        """Parse every section (fail fast); returns self."""
        self.seed
        for name in ("simulate", "data", "panel", "estimate", "privacy", "headline",
                     "decompose", "benchmark", "grid", "compute", "robustness", "heterogeneity",
                     "briefs"):
            getattr(self, name)
        return self


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read params.yaml and check its top-level sections."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: file not found (run from the project root)")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    check_keys("<top level>", raw, SECTIONS)
    return Params(raw=raw)
