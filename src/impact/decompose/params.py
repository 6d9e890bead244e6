"""The ``decompose`` section of params.yaml, and the periods it names."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from impact.config import ConfigError, check_keys

__all__ = ["DecomposeParams", "Period", "parse_period", "consecutive_years"]

_YEAR = re.compile(r"^(\d{4})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class Period:
    """A labelled, inclusive range of month indices (year * 12 + month - 1)."""

    label: str
    first: int
    last: int


def _month(text: str, key: str) -> int:
    m = _MONTH.match(text)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ConfigError(f"params.yaml: {key}={text!r} is not a month YYYY-MM")
    return int(m.group(1)) * 12 + int(m.group(2)) - 1


def parse_period(value: Any, key: str = "decompose.periods") -> Period:
    """``YYYY``, ``YYYY-Qn``, ``YYYY-MM`` or a range ``YYYY-MM:YYYY-MM`` (inclusive)."""
    text = str(value).strip()
    if m := _YEAR.match(text):
        y = int(m.group(1))
        return Period(text, y * 12, y * 12 + 11)
    if m := _QUARTER.match(text):
        first = int(m.group(1)) * 12 + 3 * (int(m.group(2)) - 1)
        return Period(text, first, first + 2)
    if ":" in text:
        a, b = (s.strip() for s in text.split(":", 1))
        first, last = _month(a, key), _month(b, key)
        if last < first:
            raise ConfigError(f"params.yaml: {key}: period {text!r} ends before it starts")
        return Period(text, first, last)
    if _MONTH.match(text):
        t = _month(text, key)
        return Period(text, t, t)
    raise ConfigError(f"params.yaml: {key}: period {value!r} is not YYYY, YYYY-Qn, YYYY-MM "
                      "or YYYY-MM:YYYY-MM")


def consecutive_years(t_min: int, t_max: int) -> list[tuple[Period, Period]]:
    """Pairs of consecutive calendar years lying wholly inside months t_min..t_max."""
    years = [y for y in range(t_min // 12, t_max // 12 + 1)
             if y * 12 >= t_min and y * 12 + 11 <= t_max]
    return [(parse_period(str(a)), parse_period(str(b))) for a, b in zip(years, years[1:])]


@dataclass(frozen=True)
class DecomposeParams:
    """Parameters of the ``decompose`` stage.

    Attributes
    ----------
    specification : the quality specification (a name under ``specifications``) whose
        model is decomposed; it must use estimator iv or ols with region x month effects.
        None (library use) means ``headline.quality``; in params.yaml name it, since
        ``dvc.yaml`` tracks exactly that entry.
    periods : ``consecutive_years`` (every pair of consecutive calendar years inside the
        window) or a list of ``[base, comparison]`` pairs of periods.
    n_boot : wild cluster bootstrap draws for the intervals (0 = no intervals).
    waterfalls : ``all`` (a waterfall figure per municipality), ``none``, or a list of
        municipality codes. The national waterfall is always drawn.
    """

    specification: str | None = None
    periods: Any = "consecutive_years"
    n_boot: int = 999
    waterfalls: Any = "all"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DecomposeParams":
        check_keys("decompose", d, {"specification", "periods", "n_boot", "waterfalls"})
        out = cls(**d)
        if out.specification is not None and not isinstance(out.specification, str):
            raise ConfigError("params.yaml: decompose.specification must be a name under "
                              f"specifications or null, got {out.specification!r}")
        if out.periods != "consecutive_years":
            if not isinstance(out.periods, list) or not out.periods:
                raise ConfigError("params.yaml: decompose.periods must be consecutive_years "
                                  f"or a list of [base, comparison] pairs, got {out.periods!r}")
            for pair in out.periods:
                if not isinstance(pair, list) or len(pair) != 2:
                    raise ConfigError("params.yaml: decompose.periods: each entry must be a "
                                      f"pair [base, comparison], got {pair!r}")
                for p in pair:
                    parse_period(p)
        n = out.n_boot
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 100_000:
            raise ConfigError(f"params.yaml: decompose.n_boot must be an integer 0..100000, "
                              f"got {n!r}")
        w = out.waterfalls
        if not (w in ("all", "none") or (isinstance(w, list)
                                          and all(isinstance(c, str) for c in w))):
            raise ConfigError("params.yaml: decompose.waterfalls must be all, none or a list "
                              f"of municipality codes, got {w!r}")
        return out

    def pairs(self, t_min: int, t_max: int) -> list[tuple[Period, Period]]:
        """The (base, comparison) pairs, given the panel's first and last month."""
        if self.periods == "consecutive_years":
            return consecutive_years(t_min, t_max)
        return [(parse_period(a), parse_period(b)) for a, b in self.periods]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
