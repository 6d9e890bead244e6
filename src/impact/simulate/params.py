"""``params.yaml`` → ``simulate``: the built-in synthetic country's knobs.

One frozen dataclass, :class:`SimulateParams`, owns the section. ``from_dict({})`` is the
default preset. Keys that depend on the preset (``regions``, ``start``, ``end``,
``burn_in_years``, ``scale``, ``park_share``) may be left ``null`` to take the preset's value; a value
given explicitly wins over the preset. Everything else has one default, whatever the
preset.

Effect sizes are on the log-odds scale of the monthly exit-to-work hazard (a multinomial
logit with the competing exits), quality on the 0-10 scale of the ``fidelity_audit``
instrument. The truth the pipeline must recover is not these coefficients but the
estimands of the data contract, computed by the simulator in percentage points
(``SimulatedCountry.truth``).

Two keys are not plain numbers: ``quality_coef_ladder`` is ``null`` (every spell has
``quality_coef``) or a mapping intake ladder step (1..6) -> log-odds per quality point of
exit to work for spells with that intake step (steps not listed, and an unrecorded step,
keep ``quality_coef``); it is held as a sorted tuple of ``(step, coef)`` pairs and
:meth:`SimulateParams.to_dict` writes it with string keys (``{"3": 0.25}``) so that it
survives JSON. ``progress`` is a boolean (write the optional ``progress`` table).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

__all__ = ["SimulateParams", "PRESETS", "DEFAULT_PARAMS_YAML"]

PRESETS: dict[str, dict[str, Any]] = {
    # three labour-market regions, 31 municipalities (Nijmegen, Achterhoek, Zwolle)
    "default": {"regions": ("AM08", "AM09", "AM36"), "start": "2016-01", "end": "2023-12",
                "burn_in_years": 10, "scale": 1.0},
    # one region, 12 municipalities (Holland Rijnland), 4 years, 60% of the real inflow;
    # half the municipalities get a business park, so that shocks are estimable at all
    "small": {"regions": ("AM19",), "start": "2018-01", "end": "2021-12",
              "burn_in_years": 10, "scale": 0.6, "park_share": 0.5},
    # all 342 municipalities (regions = None means every region)
    "national": {"regions": None, "start": "2014-01", "end": "2023-12",
                 "burn_in_years": 10, "scale": 1.0},
}

_MONTH = re.compile(r"^(19|20)\d\d-(0[1-9]|1[0-2])$")
_REGION = re.compile(r"^AM\d\d$")

# name -> (kind, low, high); kinds: prob (0..1), float, int, corr, bool, ladder (a mapping
# step 1..6 -> float in [low, high], or null)
_NUMERIC: dict[str, tuple[str, float, float]] = {
    "burn_in_years": ("int", 1, 40),
    "scale": ("float", 0.001, 20.0),
    "caseload": ("float", 10.0, 400.0),
    "team_size": ("float", 2.0, 20.0),
    "caseworker_turnover": ("prob", 0.0, 0.5),
    "reassignment_rate": ("prob", 0.0, 0.5),
    "assignment_sorting": ("prob", 0.0, 1.0),
    "quality_mean": ("float", 2.0, 8.0),
    "quality_muni_sd": ("float", 0.0, 2.0),
    "quality_team_sd": ("float", 0.0, 2.0),
    "quality_caseworker_sd": ("float", 0.0, 2.0),
    "quality_drift_sd": ("float", 0.0, 2.0),
    "quality_coef": ("float", -2.0, 2.0),
    "quality_prosperity_corr": ("corr", -1.0, 1.0),
    "audit_interval_months": ("int", 1, 24),
    "audit_session_sd": ("float", 0.0, 3.0),
    "audit_rater_sd": ("float", 0.0, 3.0),
    "audit_rater_bias_sd": ("float", 0.0, 3.0),
    "adoption_share": ("prob", 0.0, 1.0),
    "programme_quality_lift": ("float", -5.0, 5.0),
    "programme_direct": ("float", -2.0, 2.0),
    "programme_ramp_months": ("int", 1, 60),
    "adoption_near_park_prob": ("prob", 0.0, 1.0),
    "park_share": ("prob", 0.0, 1.0),
    "park_lift": ("float", -2.0, 2.0),
    "park_full_months": ("int", 1, 60),
    "park_fade_months": ("int", 0, 60),
    "park_anticipation_months": ("int", 0, 12),
    "park_spillover": ("prob", 0.0, 1.0),
    "closure_share": ("prob", 0.0, 1.0),
    "closure_drop": ("float", -2.0, 2.0),
    "placebo_share": ("prob", 0.0, 1.0),
    "cycle_coef": ("float", 0.0, 1.0),
    "covid_dip": ("float", -2.0, 2.0),
    "region_dev_sd": ("float", 0.0, 1.0),
    "local_dev_sd": ("float", 0.0, 1.0),
    "lm_local_captured": ("prob", 0.0, 1.0),
    "recession_months": ("int", 1, 120),
    "recession_depth": ("float", -2.0, 2.0),
    "repeat_share": ("prob", 0.0, 0.9),
    "quality_coef_ladder": ("ladder", -2.0, 2.0),
    "education_quality_coef": ("float", -2.0, 2.0),
    "progress": ("bool", 0, 1),
    "progress_review_months": ("int", 1, 24),
    "ladder_up_base": ("float", -10.0, 10.0),
    "ladder_up_quality": ("float", -2.0, 2.0),
    "ladder_up_programme": ("float", -5.0, 5.0),
    "goal_base": ("float", -10.0, 10.0),
    "goal_quality": ("float", -2.0, 2.0),
    "goal_programme": ("float", -5.0, 5.0),
}

#: keys whose explicit ``null`` is a value (not "take the default")
_NULLABLE = ("regions", "quality_coef_ladder")

#: planted default of ``quality_coef_ladder``: a larger quality effect at steps 3-4
DEFAULT_QUALITY_COEF_LADDER: tuple[tuple[int, float], ...] = (
    (1, 0.05), (2, 0.10), (3, 0.25), (4, 0.25), (5, 0.15), (6, 0.15))


@dataclass(frozen=True)
class SimulateParams:
    """The ``simulate`` section of ``params.yaml``, validated.

    Attributes are documented in :data:`DEFAULT_PARAMS_YAML`, which is the section as it
    appears in ``params.yaml``. ``regions`` is a tuple of arbeidsmarktregio codes, or
    ``None`` for every region (the ``national`` preset).
    """

    preset: str = "default"
    regions: tuple[str, ...] | None = PRESETS["default"]["regions"]
    start: str = "2016-01"
    end: str = "2023-12"
    burn_in_years: int = 10
    scale: float = 1.0
    caseload: float = 80.0
    team_size: float = 7.0
    caseworker_turnover: float = 0.015
    reassignment_rate: float = 0.01
    assignment_sorting: float = 0.25
    quality_mean: float = 5.5
    quality_muni_sd: float = 0.5
    quality_team_sd: float = 0.3
    quality_caseworker_sd: float = 0.7
    quality_drift_sd: float = 0.3
    quality_coef: float = 0.15
    quality_prosperity_corr: float = 0.5
    audit_interval_months: int = 3
    audit_session_sd: float = 0.6
    audit_rater_sd: float = 0.5
    audit_rater_bias_sd: float = 0.2
    adoption_share: float = 0.5
    programme_quality_lift: float = 1.0
    programme_direct: float = 0.1
    programme_ramp_months: int = 6
    adoption_near_park_prob: float = 0.7
    park_share: float = 0.25
    park_lift: float = 0.4
    park_full_months: int = 12
    park_fade_months: int = 12
    park_anticipation_months: int = 2
    park_spillover: float = 0.0
    closure_share: float = 0.1
    closure_drop: float = 0.2
    placebo_share: float = 0.1
    cycle_coef: float = 0.04
    covid_dip: float = 0.15
    region_dev_sd: float = 0.05
    local_dev_sd: float = 0.05
    lm_local_captured: float = 0.5
    recession_region: str = "auto"
    recession_start: str = "2019-01"
    recession_months: int = 18
    recession_depth: float = 0.2
    repeat_share: float = 0.2
    quality_coef_ladder: tuple[tuple[int, float], ...] | None = DEFAULT_QUALITY_COEF_LADDER
    education_quality_coef: float = 0.10
    progress: bool = True
    progress_review_months: int = 6
    ladder_up_base: float = -1.2
    ladder_up_quality: float = 0.20
    ladder_up_programme: float = 0.15
    goal_base: float = -0.8
    goal_quality: float = 0.15
    goal_programme: float = 0.10

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "SimulateParams":
        """Validate the ``simulate`` section and resolve the preset.

        Parameters
        ----------
        d : mapping or None
            The section as read from YAML. Missing keys take their defaults; the
            preset-dependent keys may be ``null`` (take the preset's value);
            ``quality_coef_ladder: null`` means no ladder-specific coefficients.

        Returns
        -------
        SimulateParams

        Raises
        ------
        ValueError
            For an unknown key or a bad value, naming the key, the value and what is
            allowed.
        """
        d = dict(d or {})
        allowed = [f.name for f in fields(cls)]
        for key in d:
            if key not in allowed:
                raise ValueError(f"simulate: unknown key {key!r} (allowed keys: {', '.join(allowed)})")
        preset = d.get("preset") or "default"
        if preset not in PRESETS:
            raise ValueError(f"simulate.preset = {preset!r}: allowed values are {', '.join(PRESETS)}")
        values: dict[str, Any] = {"preset": preset}
        for key in allowed[1:]:
            raw = d.get(key)
            if raw is None and key in PRESETS[preset]:
                raw = PRESETS[preset][key]
            if raw is None and key not in _NULLABLE:
                continue
            if raw is None and key == "quality_coef_ladder" and key not in d:
                continue  # absent: the planted default; an explicit null: homogeneous
            values[key] = _check(key, raw)
        out = cls(**values)
        if out.end < out.start:
            raise ValueError(f"simulate.end = {out.end!r} lies before simulate.start = {out.start!r}")
        return out

    def to_dict(self) -> dict[str, Any]:
        """The resolved section as plain YAML-ready values (tuples become lists)."""
        d = asdict(self)
        d["regions"] = None if self.regions is None else list(self.regions)
        d["quality_coef_ladder"] = self.quality_coef_ladder_map(str_keys=True)
        return d

    def quality_coef_ladder_map(self, str_keys: bool = False) -> dict | None:
        """``quality_coef_ladder`` as a dict step -> coefficient (``None`` when null)."""
        if self.quality_coef_ladder is None:
            return None
        return {(str(k) if str_keys else k): v for k, v in self.quality_coef_ladder}

    def quality_coef_by_step(self) -> "list[float]":
        """Log-odds per quality point of exit to work for intake steps 0..6 (0 =
        unrecorded, always ``quality_coef``)."""
        out = [self.quality_coef] * 7
        for k, v in self.quality_coef_ladder or ():
            out[k] = v
        return out

    @property
    def start_month(self) -> int:
        """First month of the window as ``year*12 + month-1``."""
        return month_index(self.start)

    @property
    def end_month(self) -> int:
        """Last month of the window as ``year*12 + month-1``."""
        return month_index(self.end)


def month_index(s: str) -> int:
    """``'YYYY-MM'`` → ``year*12 + month - 1``."""
    return int(s[:4]) * 12 + int(s[5:7]) - 1


def _check(key: str, v: Any) -> Any:
    if key == "regions":
        if v is None or v == "all":
            return None
        if isinstance(v, str) or not isinstance(v, (list, tuple)) or not v:
            raise ValueError(f"simulate.regions = {v!r}: expected a non-empty list of "
                             "arbeidsmarktregio codes like ['AM08', 'AM09'], 'all' or null")
        bad = [r for r in v if not isinstance(r, str) or not _REGION.match(r)]
        if bad:
            raise ValueError(f"simulate.regions: {bad[0]!r} is not a region code; expected 'AM' + 2 digits")
        return tuple(sorted(set(v)))
    if key in ("start", "end", "recession_start"):
        if not isinstance(v, str) or not _MONTH.match(v):
            raise ValueError(f"simulate.{key} = {v!r}: expected a month 'YYYY-MM' (1900-2099)")
        return v
    if key == "recession_region":
        if not isinstance(v, str) or not (v in ("auto", "none") or _REGION.match(v)):
            raise ValueError(f"simulate.recession_region = {v!r}: expected 'auto', 'none' "
                             "or a region code like 'AM08'")
        return v
    kind, lo, hi = _NUMERIC[key]
    if kind == "bool":
        if not isinstance(v, bool):
            raise ValueError(f"simulate.{key} = {v!r}: expected true or false")
        return v
    if kind == "ladder":
        return _check_ladder(key, v, lo, hi)
    ok_type = (isinstance(v, int) if kind == "int" else isinstance(v, (int, float)))
    if isinstance(v, bool) or not ok_type or not (lo <= v <= hi):
        what = "an integer" if kind == "int" else "a number"
        raise ValueError(f"simulate.{key} = {v!r}: expected {what} in [{lo:g}, {hi:g}]")
    return int(v) if kind == "int" else float(v)


def _check_ladder(key: str, v: Any, lo: float, hi: float) -> tuple[tuple[int, float], ...] | None:
    """A mapping ladder step 1..6 (int, or its digit string) -> number in [lo, hi]."""
    if v is None:
        return None
    if not isinstance(v, Mapping):
        raise ValueError(f"simulate.{key} = {v!r}: expected null or a mapping of ladder steps "
                         f"1..6 to numbers in [{lo:g}, {hi:g}], e.g. {{1: 0.05, 3: 0.25}}")
    out: dict[int, float] = {}
    for step, coef in v.items():
        s = step.strip() if isinstance(step, str) else step
        if isinstance(s, str) and s.isdigit():
            s = int(s)
        if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= 6:
            raise ValueError(f"simulate.{key}: key {step!r} is not a participation-ladder "
                             "step; expected an integer 1..6")
        if s in out:
            raise ValueError(f"simulate.{key}: step {s} is given twice")
        if isinstance(coef, bool) or not isinstance(coef, (int, float)) or not lo <= coef <= hi:
            raise ValueError(f"simulate.{key}[{s}] = {coef!r}: expected a number in "
                             f"[{lo:g}, {hi:g}] (log-odds per quality point)")
        out[s] = float(coef)
    return tuple(sorted(out.items())) or None


DEFAULT_PARAMS_YAML = """\
# simulate: the built-in synthetic country (stage `simulate`). Effects are on the
# log-odds scale of the monthly exit-to-work hazard; quality on the 0-10 audit scale.
# The truth to recover (in pp, as the data contract defines it) is in data/truth.json.
simulate:
  preset: default          # default (3 regions, 31 municipalities) | small (1 region) | national (342)
  regions: null            # arbeidsmarktregio codes, e.g. [AM08, AM09, AM36]; null = the preset's; 'all'
  start: null              # first month simulated in full, YYYY-MM; null = preset's (default 2016-01)
  end: null                # last month, YYYY-MM; null = preset's (default 2023-12). Keep = panel.start/end
  burn_in_years: null      # years simulated before start (left-truncated stock); null = 10
  scale: null              # multiplies the real CBS inflow and stock; null = preset's (1.0, small 0.6)
  caseload: 80             # clients per caseworker at the window start
  team_size: 7             # caseworkers per team (teams of about 4-10)
  caseworker_turnover: 0.015   # monthly probability a caseworker leaves (successor takes the caseload)
  reassignment_rate: 0.01  # monthly probability a client is moved to another caseworker
  assignment_sorting: 0.25 # share of intakes where ladder 5-6 get the better, 1-2 the worse of two caseworkers
  quality_mean: 5.5        # mean true quality (fidelity_audit scale 0-10)
  quality_muni_sd: 0.5     # sd of municipal mean quality
  quality_team_sd: 0.3     # sd of team effects
  quality_caseworker_sd: 0.7   # sd of caseworker effects
  quality_drift_sd: 0.3    # stationary sd of each caseworker's slow AR(1) drift
  quality_coef: 0.15       # log-odds of exit to work per quality point
  quality_prosperity_corr: 0.5 # corr(municipal mean quality, prosperity); negative: quality runs against it
  audit_interval_months: 3 # each caseworker is audited about this often (2 raters per session)
  audit_session_sd: 0.6    # session deviation shared by both raters
  audit_rater_sd: 0.5      # rater error per score
  audit_rater_bias_sd: 0.2 # sd of raters' persistent leniency
  adoption_share: 0.5      # share of municipalities adopting gewogen_maatwerk in the window
  programme_quality_lift: 1.0  # quality points added by the programme (after the ramp)
  programme_direct: 0.1    # direct log-odds effect of the programme (after the ramp)
  programme_ramp_months: 6 # months over which both effects build up linearly
  adoption_near_park_prob: 0.7 # adopters with a business park adopt within +-6 months of its opening
  park_share: null         # share of municipalities with a business-park opening; null = 0.25 (small 0.5)
  park_lift: 0.4           # log-odds lift of exit to work, months 0..park_full_months-1
  park_full_months: 12
  park_fade_months: 12     # then fades linearly to zero over this many months
  park_anticipation_months: 2  # hiring starts this many months before the opening
  park_spillover: 0.0      # share of the lift felt in the other municipalities of the region
  closure_share: 0.1       # share of municipalities with a plant closure
  closure_drop: 0.2        # log-odds drop of exit to work after a closure (12 months, then fades)
  placebo_share: 0.1       # share with a 'reorganisation' shock that has no effect at all
  cycle_coef: 0.04         # log-odds per point of national unemployment (CBS 80590ned, seas. adj.)
  covid_dip: 0.15          # extra national drop Apr 2020 - May 2021
  region_dev_sd: 0.05      # regional AR(1) deviations (captured by the region indicator)
  local_dev_sd: 0.05       # municipal AR(1) deviations (partly captured by the municipal indicator)
  lm_local_captured: 0.5   # variance share of the local deviations that the municipal indicator sees
  recession_region: auto   # region hit by a planted recession: auto (first region), none, or a code
  recession_start: "2019-01"
  recession_months: 18
  recession_depth: 0.2     # log-odds drop at the trough
  repeat_share: 0.2        # share of inflow that are earlier clients coming back (gap >= 4 months)
  quality_coef_ladder: {1: 0.05, 2: 0.10, 3: 0.25, 4: 0.25, 5: 0.15, 6: 0.15} # by intake step; null = quality_coef
  education_quality_coef: 0.10 # log-odds of exit to education per quality point (the programme moves it too)
  progress: true           # write the optional progress table (ladder_step, goal_reached at reviews)
  progress_review_months: 6 # a review every this many months of spell duration
  ladder_up_base: -1.2     # log-odds of a step up the ladder at a review (step 3, quality 0)
  ladder_up_quality: 0.20  # log-odds of a step up per point of mean true quality since the last review
  ladder_up_programme: 0.15 # direct log-odds of the programme on a step up (at full ramp)
  goal_base: -0.8          # log-odds that a review records goal_reached = 1 (quality 0)
  goal_quality: 0.15       # log-odds of goal_reached per point of mean true quality since the last review
  goal_programme: 0.10     # direct log-odds of the programme on goal_reached (at full ramp)
"""
