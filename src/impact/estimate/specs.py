"""Named model specifications (``params.yaml`` → ``specifications``) and the headline choice.

Each specification is one model: a block (``quality``, ``adoption``, ``shock``), an
estimator, and optional overrides of the shared sections (fixed effects, client controls,
sample, inference, cluster level). DVC runs one stage per specification
(``estimate@<name>``, a ``foreach`` over the section), so a changed specification reruns
only itself (and the shared quality pass, ``quality_sums``, which rewrites only its
folder). ``headline`` names, per block, the specification that feeds
``reports/metrics.json``; the report reads exactly the specifications named in params,
never a folder listing (DVC leaves removed cells behind).

>>> specs = parse_specifications({"q": {"block": "quality", "estimator": "iv"}})
>>> specs["q"].estimator
'iv'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from impact.estimate.params import (
    CATEGORICAL_CONTROLS, NUMERIC_CONTROLS, ClusterOption, EstimateParams, InferenceOption,
    QualityFeOption, _check_choice, _check_keys, _str_list,
)

__all__ = ["BLOCKS", "ESTIMATORS", "HEADLINE_ESTIMATORS", "Specification", "parse_headline",
           "parse_specifications"]

Block = Literal["quality", "adoption", "shock"]
BLOCKS = ("quality", "adoption", "shock")
#: estimators per block
ESTIMATORS: dict[str, tuple[str, ...]] = {
    "quality": ("iv", "ols", "hazard_cloglog", "hazard_logit"),
    "adoption": ("imputation", "twfe", "cs_never", "cs_notyet", "sunab", "bacon"),
    "shock": ("imputation",),
}
#: the estimators that estimate the data contract's estimands and may feed metrics.json:
#: error-free quality needs the measurement-error correction (ols and the hazards use one
#: noisy measurement); the adoption ATT is person-month weighted and shock-robust only in
#: the imputation estimator (CS / Sun-Abraham / Bacon weight balanced cells equally,
#: TWFE is biased under staggered timing)
HEADLINE_ESTIMATORS: dict[str, tuple[str, ...]] = {
    "quality": ("iv",), "adoption": ("imputation",), "shock": ("imputation",)}
#: estimators with their own inference (clustered by unit): no cluster/inference override
_OWN_INFERENCE = ("cs_never", "cs_notyet", "sunab", "bacon")
#: estimators without a wild bootstrap: inference may not be forced to wild
_NO_WILD = ("twfe", "ols", "hazard_cloglog", "hazard_logit")
#: quality samples: all person-months measured twice, or only spells that start in the
#: window (inflow; left-truncated stock spells excluded)
SampleOption = Literal["all", "inflow"]


@dataclass(frozen=True)
class Specification:
    """One named model; None means "as the shared section says"."""

    name: str
    block: Block
    estimator: str
    fixed_effects: QualityFeOption | None = None
    controls: tuple[str, ...] | None = None
    sample: SampleOption = "all"
    inference: InferenceOption | None = None
    cluster: ClusterOption | None = None
    #: quality only: caseworker and team value-added (empirical Bayes, MixedLM) beside it
    value_added: bool = False
    #: adoption ``sunab`` only: Rambachan-Roth sensitivity of its event study
    sensitivity: bool = False
    description: str = ""

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> "Specification":
        key = f"specifications.{name}"
        if not isinstance(d, Mapping):
            raise ValueError(f"{key}={d!r} must be a mapping with at least block and estimator")
        _check_keys(key, d, [f.name for f in dataclasses.fields(cls) if f.name != "name"])
        for req in ("block", "estimator"):
            if req not in d:
                raise ValueError(f"{key} lacks '{req}' (e.g. block: quality, estimator: iv)")
        d = dict(d)
        _check_choice(f"{key}.block", d["block"], BLOCKS)
        _check_choice(f"{key}.estimator", d["estimator"], ESTIMATORS[d["block"]])
        if d.get("controls") is not None:
            d["controls"] = _str_list(f"{key}.controls", d["controls"],
                                      CATEGORICAL_CONTROLS + NUMERIC_CONTROLS)
        out = cls(name=name, **d)
        if out.fixed_effects is not None:
            _check_choice(f"{key}.fixed_effects", out.fixed_effects, QualityFeOption)
        _check_choice(f"{key}.sample", out.sample, SampleOption)
        if out.inference is not None:
            _check_choice(f"{key}.inference", out.inference, InferenceOption)
        if out.cluster is not None:
            _check_choice(f"{key}.cluster", out.cluster, ClusterOption)
        if out.block != "quality":
            for opt in ("fixed_effects", "controls"):
                if getattr(out, opt) is not None:
                    raise ValueError(f"{key}.{opt} applies to quality models only "
                                     f"(this one is block {out.block})")
            if out.sample != "all":
                raise ValueError(f"{key}.sample={out.sample!r}: {out.block} models run on "
                                 "municipality-month cells; only 'all' is allowed")
        if out.estimator in _OWN_INFERENCE and (out.cluster or out.inference):
            raise ValueError(f"{key}: estimator {out.estimator} clusters by the adoption "
                             "unit with its own inference; remove cluster/inference")
        if out.estimator in _NO_WILD and out.inference == "wild":
            raise ValueError(f"{key}.inference='wild': estimator {out.estimator} has no wild "
                             "bootstrap (iv and imputation have); use cluster or auto")
        if not isinstance(out.value_added, bool):
            raise ValueError(f"{key}.value_added={out.value_added!r} must be true or false")
        if out.value_added and out.block != "quality":
            raise ValueError(f"{key}.value_added applies to quality models only")
        if not isinstance(out.sensitivity, bool):
            raise ValueError(f"{key}.sensitivity={out.sensitivity!r} must be true or false")
        if out.sensitivity and (out.block, out.estimator) != ("adoption", "sunab"):
            raise ValueError(f"{key}.sensitivity needs the joint event-study covariance of "
                             "estimator sunab (block adoption)")
        if not isinstance(out.description, str):
            raise ValueError(f"{key}.description must be a string")
        return out

    def apply(self, base: EstimateParams) -> EstimateParams:
        """The shared parameters with this specification's overrides."""
        est = base.estimate
        changes = {k: v for k, v in (("quality_fe", self.fixed_effects),
                                     ("controls", self.controls),
                                     ("inference", self.inference),
                                     ("cluster", self.cluster)) if v is not None}
        return dataclasses.replace(base, estimate=dataclasses.replace(est, **changes))

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if out["controls"] is not None:
            out["controls"] = list(out["controls"])
        return out


def parse_specifications(d: Mapping[str, Any] | None) -> dict[str, Specification]:
    """Validate the ``specifications`` section; names are kept in their given order."""
    if not isinstance(d, Mapping) or not d:
        raise ValueError("specifications must be a non-empty mapping of name -> "
                         "{block, estimator, ...}")
    out = {}
    for name, spec in d.items():
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"specification name {name!r} must be letters, digits, '_' or "
                             "'-' (it names a DVC stage and a folder)")
        out[name] = Specification.from_dict(name, spec)
    return out


def parse_headline(d: Mapping[str, Any] | None, specs: Mapping[str, Specification]
                   ) -> dict[str, str | None]:
    """Validate ``headline``: per block the specification feeding metrics.json (or null)."""
    d = dict(d or {})
    _check_keys("headline", d, BLOCKS)
    out: dict[str, str | None] = {}
    for block in BLOCKS:
        name = d.get(block)
        if name is None:
            candidates = [s.name for s in specs.values() if s.block == block]
            if candidates:
                raise ValueError(f"headline.{block} is not set; name one of "
                                 f"{', '.join(candidates)}")
            out[block] = None
            continue
        if name not in specs:
            raise ValueError(f"headline.{block}={name!r} is not a specification "
                             f"(defined: {', '.join(specs)})")
        if specs[name].block != block:
            raise ValueError(f"headline.{block}={name!r} is a {specs[name].block} model")
        if specs[name].estimator not in HEADLINE_ESTIMATORS[block]:
            raise ValueError(
                f"headline.{block}={name!r} uses estimator {specs[name].estimator!r}, which "
                f"does not estimate the data contract's {block} estimand; a headline uses "
                f"{' or '.join(HEADLINE_ESTIMATORS[block])} (with any fixed effects, "
                "controls, sample or inference)")
        out[block] = name
    return out
