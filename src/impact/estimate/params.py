"""Parameters of the estimate stage: frozen, validated before any data is read.

``EstimateParams.from_dict`` takes the four ``params.yaml`` sections the stage reads
(``estimate``, ``quality``, ``adoption``, ``shock``) and the top-level ``seed``. An
unknown key, a wrong type or a value out of range raises ``ValueError`` naming the key,
the value seen and what is allowed. Every key has a default, so empty sections work.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Mapping, get_args

__all__ = [
    "ADOPTION_ALTERNATIVES",
    "AdoptionParams",
    "ClusterOption",
    "InferenceOption",
    "CATEGORICAL_CONTROLS",
    "EstimateParams",
    "EstimateSection",
    "NUMERIC_CONTROLS",
    "QualityParams",
    "ShockParams",
]

# Option vocabularies: one place, one validator (`_check_choice`).
ClusterOption = Literal["municipality", "region"]
QualityFeOption = Literal["region_month", "municipality_month"]
#: auto = wild score bootstrap below ``estimate.wild_below`` clusters, else analytic
InferenceOption = Literal["auto", "cluster", "wild"]
WildWeightsOption = Literal["webb", "rademacher"]

#: Client covariates of the person-month quality model. Categorical ones are absorbed
#: as fixed effects (never dummy columns); numeric ones enter linearly.
CATEGORICAL_CONTROLS = (
    "age_band", "sex", "education_level", "household", "duration_band", "ladder_step",
)
NUMERIC_CONTROLS = ("prior_benefit_months", "left_truncated", "age", "duration")
#: values of ``adoption.alternatives`` (impact.estimate.alternatives.ALTERNATIVES)
ADOPTION_ALTERNATIVES = ("cs", "sunab", "bacon")
DEFAULT_CONTROLS = (
    "age_band", "sex", "education_level", "household", "duration_band",
    "prior_benefit_months", "left_truncated",
)


def _check_keys(section: str, given: Mapping[str, Any], allowed) -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown key {section}.{unknown[0]}={given[unknown[0]]!r} "
            f"(allowed keys in '{section}': {', '.join(sorted(allowed))})"
        )


def _check_choice(key: str, value: Any, options) -> Any:
    allowed = get_args(options) if not isinstance(options, (tuple, list)) else options
    if value not in allowed:
        raise ValueError(
            f"{key}={value!r} is not allowed (allowed: {', '.join(map(str, allowed))})")
    return value


def _int(key: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{key}={value!r} must be an integer in [{lo}, {hi}]")
    return value


def _window(key: str, value: Any, lo: int, hi: int) -> tuple[int, int]:
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) for v in value)
            or not lo <= value[0] <= value[1] <= hi):
        raise ValueError(
            f"{key}={value!r} must be two integers [first, last] with {lo} <= first <= last <= {hi}"
        )
    return int(value[0]), int(value[1])


def _str_list(key: str, value: Any, allowed=None) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(
        isinstance(v, str) for v in value
    ):
        raise ValueError(f"{key}={value!r} must be a list of strings")
    for v in value:
        if allowed is not None and v not in allowed:
            raise ValueError(
                f"{key} contains {v!r}, which is not allowed (allowed: {', '.join(allowed)})")
    return tuple(value)


@dataclass(frozen=True)
class QualityParams:
    """``quality`` section: the instrument and how reliability pairs sessions."""

    instrument: str = "fidelity_audit"
    #: two sessions of one caseworker at most this many months apart count as measuring
    #: the same true level (reliability numerator)
    reliability_max_gap_months: int = 6

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "QualityParams":
        _check_keys("quality", d, cls.__dataclass_fields__)
        out = cls(**d)
        if not isinstance(out.instrument, str) or not out.instrument:
            raise ValueError(f"quality.instrument={out.instrument!r} must be a non-empty string")
        _int("quality.reliability_max_gap_months", out.reliability_max_gap_months, 0, 120)
        return out


@dataclass(frozen=True)
class AdoptionParams:
    """``adoption`` section: programme, anticipation and the pre-trend test length."""

    programme: str = "gewogen_maatwerk"
    anticipation_months: int = 0
    #: pre-periods -pretrend_months .. -1-anticipation tested jointly (BJS 2024, Test 1)
    pretrend_months: int = 12
    #: alternative estimators reported beside the imputation headline
    #: (``impact.estimate.alternatives``): cs = Callaway-Sant'Anna, sunab = Sun-Abraham,
    #: bacon = Goodman-Bacon decomposition of TWFE; () = none
    alternatives: tuple[str, ...] = ADOPTION_ALTERNATIVES
    #: Rambachan-Roth relative-magnitude bounds (Mbar) for specifications with
    #: ``sensitivity: true``; target = the treated-weighted mean effect over event months
    #: 0..sensitivity_post_months (0 = the first month: seconds; each further month adds
    #: tens of seconds per Mbar)
    sensitivity_mbar: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)
    sensitivity_post_months: int = 0
    #: CS / Sun-Abraham / Bacon run on cell rates net of the estimated shock event-time
    #: path (``shock_event_study``), so a shock coinciding with adoption is not credited
    shock_adjust_alternatives: bool = True
    #: randomization inference for the imputation ATT: permutations of the adoption dates
    #: over units (``ri``); 0 = off (each permutation re-estimates: ~1 s on the built-in data)
    ri_permutations: int = 0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AdoptionParams":
        _check_keys("adoption", d, cls.__dataclass_fields__)
        d = dict(d)
        if "sensitivity_mbar" in d:
            v = d["sensitivity_mbar"]
            if (not isinstance(v, (list, tuple)) or not v or any(
                    isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 < x <= 10
                    for x in v)):
                raise ValueError(f"adoption.sensitivity_mbar={v!r} must be a non-empty list "
                                 "of numbers in (0, 10]")
            d["sensitivity_mbar"] = tuple(float(x) for x in v)
        if "alternatives" in d:
            alt = _str_list("adoption.alternatives", d["alternatives"], ADOPTION_ALTERNATIVES)
            if len(set(alt)) != len(alt):
                raise ValueError(f"adoption.alternatives={list(alt)!r} repeats an estimator")
            d["alternatives"] = alt
        out = cls(**d)
        if not isinstance(out.programme, str) or not out.programme:
            raise ValueError(f"adoption.programme={out.programme!r} must be a non-empty string")
        _int("adoption.anticipation_months", out.anticipation_months, 0, 36)
        _int("adoption.pretrend_months", out.pretrend_months, 0, 120)
        _int("adoption.sensitivity_post_months", out.sensitivity_post_months, 0, 120)
        _int("adoption.ri_permutations", out.ri_permutations, 0, 100_000)
        if not isinstance(out.shock_adjust_alternatives, bool):
            raise ValueError(f"adoption.shock_adjust_alternatives="
                             f"{out.shock_adjust_alternatives!r} must be true or false")
        return out


@dataclass(frozen=True)
class ShockParams:
    """``shock`` section: event type, event-study window, effect window, anticipation."""

    type: str = "business_park_opening"
    event_window: tuple[int, int] = (-12, 24)
    effect_window: tuple[int, int] = (0, 11)
    anticipation_months: int = 2

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ShockParams":
        _check_keys("shock", d, cls.__dataclass_fields__)
        d = dict(d)
        if "event_window" in d:
            d["event_window"] = _window("shock.event_window", d["event_window"], -120, 120)
        if "effect_window" in d:
            d["effect_window"] = _window("shock.effect_window", d["effect_window"], 0, 120)
        out = cls(**d)
        if not isinstance(out.type, str) or not out.type:
            raise ValueError(f"shock.type={out.type!r} must be a non-empty string")
        lo, hi = out.event_window
        if lo > -1 or hi < 0:
            raise ValueError(f"shock.event_window={list(out.event_window)!r} must include -1 and 0")
        if not (lo <= out.effect_window[0] and out.effect_window[1] <= hi):
            raise ValueError(
                f"shock.effect_window={list(out.effect_window)!r} must lie inside "
                f"shock.event_window={list(out.event_window)!r}"
            )
        _int("shock.anticipation_months", out.anticipation_months, 0, -lo)
        return out


@dataclass(frozen=True)
class EstimateSection:
    """``estimate`` section: inference and the control sets."""

    alpha: float = 0.05
    cluster: ClusterOption = "municipality"
    controls: tuple[str, ...] = DEFAULT_CONTROLS
    #: labour-market indicators (``unemployment_rate`` or ``lm_unemployment_rate_muni``);
    #: None = every ``lm_*_muni`` column without missing values in the quality sample
    lm_controls: tuple[str, ...] | None = None
    #: fixed effects beside the client's municipality in the quality model;
    #: municipality_month absorbs every municipal shock, programme and labour market
    quality_fe: QualityFeOption = "region_month"
    #: bootstrap replications for the reliability standard error (clustered by unit)
    n_boot: int = 499
    min_coverage: float = 0.9
    #: headline intervals: cluster (analytic CRV1 / BJS, t(G-1)), wild (wild score
    #: bootstrap, ``scorewild``), auto (wild when there are fewer than wild_below clusters)
    inference: InferenceOption = "auto"
    wild_below: int = 12
    wild_weights: WildWeightsOption = "webb"
    wild_draws: int = 9999

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EstimateSection":
        _check_keys("estimate", d, cls.__dataclass_fields__)
        d = dict(d)
        if "controls" in d:
            d["controls"] = _str_list(
                "estimate.controls", d["controls"], CATEGORICAL_CONTROLS + NUMERIC_CONTROLS
            )
        if d.get("lm_controls") is not None:
            d["lm_controls"] = _str_list("estimate.lm_controls", d["lm_controls"])
        out = cls(**d)
        a = out.alpha
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 < a < 0.5:
            raise ValueError(f"estimate.alpha={a!r} must be a number in (0, 0.5)")
        _check_choice("estimate.cluster", out.cluster, ClusterOption)
        _check_choice("estimate.quality_fe", out.quality_fe, QualityFeOption)
        _int("estimate.n_boot", out.n_boot, 0, 100_000)
        _check_choice("estimate.inference", out.inference, InferenceOption)
        _int("estimate.wild_below", out.wild_below, 0, 10_000)
        _check_choice("estimate.wild_weights", out.wild_weights, WildWeightsOption)
        _int("estimate.wild_draws", out.wild_draws, 99, 1_000_000)
        c = out.min_coverage
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 <= c <= 1:
            raise ValueError(f"estimate.min_coverage={c!r} must be a number in [0, 1]")
        return out


@dataclass(frozen=True)
class EstimateParams:
    """All parameters of the estimate stage."""

    estimate: EstimateSection = field(default_factory=EstimateSection)
    quality: QualityParams = field(default_factory=QualityParams)
    adoption: AdoptionParams = field(default_factory=AdoptionParams)
    shock: ShockParams = field(default_factory=ShockParams)
    seed: int = 20261124

    @classmethod
    def from_dict(
        cls,
        estimate: Mapping[str, Any] | None = None,
        quality: Mapping[str, Any] | None = None,
        adoption: Mapping[str, Any] | None = None,
        shock: Mapping[str, Any] | None = None,
        seed: int = 20261124,
    ) -> "EstimateParams":
        """Parse and validate the sections; None or {} means all defaults."""
        for name, sec in (("estimate", estimate), ("quality", quality),
                          ("adoption", adoption), ("shock", shock)):
            if sec is not None and not isinstance(sec, Mapping):
                raise ValueError(f"section '{name}'={sec!r} must be a mapping")
        return cls(
            estimate=EstimateSection.from_dict(estimate or {}),
            quality=QualityParams.from_dict(quality or {}),
            adoption=AdoptionParams.from_dict(adoption or {}),
            shock=ShockParams.from_dict(shock or {}),
            seed=_int("seed", seed, 0, 2**63 - 1),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form (for the estimates sidecar)."""
        out = asdict(self)
        for sec in out.values():
            if isinstance(sec, dict):
                for k, v in sec.items():
                    if isinstance(v, tuple):
                        sec[k] = list(v)
        return out
