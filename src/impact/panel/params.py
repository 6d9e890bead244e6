"""The ``panel`` section of params.yaml, plus the few keys of other sections it reads."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from impact.config import ConfigError, check_keys

__all__ = ["PanelParams", "month_index", "month_label"]

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_INDICATOR = re.compile(r"^[a-z][a-z0-9_]*$")
_KEYS = ("start", "end", "merge_gap_days", "quality_window_months", "indicators",
         "memory_limit", "threads")
_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


def month_index(value: str) -> int:
    """``'YYYY-MM'`` -> ``year * 12 + month - 1`` (the panel's integer month ``t``)."""
    year, month = (int(x) for x in _MONTH.match(value).groups())
    return year * 12 + month - 1


def month_label(t: int) -> str:
    """Inverse of :func:`month_index`."""
    return f"{t // 12:04d}-{t % 12 + 1:02d}"


def _fail(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"params.yaml: {key} = {value!r} is not allowed (allowed: {allowed})")


def _month(key: str, value: Any) -> str:
    if hasattr(value, "year") and hasattr(value, "month"):  # a date YAML parsed for us
        value = f"{value.year:04d}-{value.month:02d}"
    if not isinstance(value, str) or not _MONTH.match(value.strip()):
        raise _fail(key, value, "a month 'YYYY-MM', e.g. '2016-01'")
    value = value.strip()
    if not 1 <= int(value[5:]) <= 12 or not 1900 <= int(value[:4]) <= 2200:
        raise _fail(key, value, "a month 'YYYY-MM' with MM in 01..12")
    return value


def _nonneg_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(key, value, "an integer >= 0")
    return value


def _name(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(key, value, "a non-empty string")
    return value


@dataclass(frozen=True)
class PanelParams:
    """Everything the panel builder reads from params.yaml, validated.

    Attributes
    ----------
    start, end : str
        ``panel.start`` / ``panel.end``: the study window, months ``'YYYY-MM'``, both
        inclusive (defaults ``'2016-01'`` .. ``'2023-12'``). Months outside are not
        analysed; an open spell is censored at the end of ``end``.
    merge_gap_days : int
        ``panel.merge_gap_days`` (default 31). Two consecutive spells of one client are
        joined into one when the number of unpaid days between them,
        ``next.start_date - previous.end_date - 1``, is **less than** this. With the
        default 31 a client back on benefit within 30 unpaid days (a short job or
        sanction that did not last a month) counts as one spell; 0 switches joining off.
    quality_window_months : int
        ``panel.quality_window_months`` (default 6): a person-month is matched to its
        caseworker's measurements dated in calendar months ``month - w .. month + w``.
    indicators : tuple of str
        ``panel.indicators`` (default unemployment_rate, vacancy_rate): labour-market
        indicators joined as ``lm_<indicator>_muni`` and ``lm_<indicator>_region``.
        Names must be lower-case identifiers (letters, digits, underscores).
    quality_instrument : str
        ``quality.instrument`` (default ``'fidelity_audit'``).
    programme : str
        ``adoption.programme`` (default ``'gewogen_maatwerk'``).
    shock_type : str
        ``shock.type`` (default ``'business_park_opening'``).
    shock_event_window : tuple of int
        ``shock.event_window`` (default ``(-12, 24)``): event times (months relative to
        the month of the shock) for which a person-month is attached to a shock.
    memory_limit : str or None
        ``panel.memory_limit`` (default ``'4GB'``): DuckDB's memory limit for the panel
        build, e.g. ``'2GB'``; beyond it joins, sorts and aggregates spill to a temporary
        folder (``impact.panel.connect``). None = DuckDB's own default, 80% of RAM.
    threads : int or None
        ``panel.threads`` (default None = all cores): DuckDB worker threads.
    """

    start: str = "2016-01"
    end: str = "2023-12"
    merge_gap_days: int = 31
    quality_window_months: int = 6
    indicators: tuple[str, ...] = ("unemployment_rate", "vacancy_rate")
    quality_instrument: str = "fidelity_audit"
    programme: str = "gewogen_maatwerk"
    shock_type: str = "business_park_opening"
    shock_event_window: tuple[int, int] = field(default=(-12, 24))
    memory_limit: str | None = "4GB"
    threads: int | None = None

    @classmethod
    def from_dict(
        cls,
        panel: Mapping[str, Any] | None = None,
        *,
        quality_instrument: str = "fidelity_audit",
        programme: str = "gewogen_maatwerk",
        shock_type: str = "business_park_opening",
        shock_event_window: Sequence[int] = (-12, 24),
    ) -> "PanelParams":
        """Validate the ``panel`` section and the keys of other sections it needs.

        Raises
        ------
        ConfigError
            (a ``ValueError``) naming the key, the value seen and what is allowed, for an
            unknown key, a wrong type or a value out of range.
        """
        panel = dict(panel or {})
        check_keys("panel", panel, _KEYS)
        start = _month("panel.start", panel.get("start", cls.start))
        end = _month("panel.end", panel.get("end", cls.end))
        if month_index(end) < month_index(start):
            raise _fail("panel.end", end, f"a month on or after panel.start = {start!r}")
        gap = _nonneg_int("panel.merge_gap_days", panel.get("merge_gap_days", cls.merge_gap_days))
        window = _nonneg_int(
            "panel.quality_window_months",
            panel.get("quality_window_months", cls.quality_window_months),
        )
        indicators = panel.get("indicators", list(cls.indicators))
        if isinstance(indicators, str) or not isinstance(indicators, Sequence):
            raise _fail("panel.indicators", indicators, "a list of indicator names")
        for name in indicators:
            if not isinstance(name, str) or not _INDICATOR.match(name):
                raise _fail(
                    "panel.indicators", name,
                    "lower-case names of letters, digits and '_', e.g. 'unemployment_rate'",
                )
        if len(set(indicators)) != len(indicators):
            raise _fail("panel.indicators", list(indicators), "a list without duplicates")
        ew = shock_event_window
        if (
            isinstance(ew, (str, bytes)) or not isinstance(ew, Sequence) or len(ew) != 2
            or any(isinstance(x, bool) or not isinstance(x, int) for x in ew) or ew[0] > ew[1]
        ):
            raise _fail("shock.event_window", ew, "two integers [first, last] with first <= last")
        memory = panel.get("memory_limit", cls.memory_limit)
        if memory is not None and (not isinstance(memory, str) or not _MEMORY.match(memory)):
            raise _fail("panel.memory_limit", memory, "a size such as '4GB' or '500MB', or null")
        threads = panel.get("threads", cls.threads)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 1):
            raise _fail("panel.threads", threads, "an integer >= 1, or null for all cores")
        return cls(
            start=start,
            end=end,
            merge_gap_days=gap,
            quality_window_months=window,
            indicators=tuple(indicators),
            quality_instrument=_name("quality.instrument", quality_instrument),
            programme=_name("adoption.programme", programme),
            shock_type=_name("shock.type", shock_type),
            shock_event_window=(int(ew[0]), int(ew[1])),
            memory_limit=memory.strip().replace(" ", "") if memory else None,
            threads=threads,
        )

    @property
    def t_start(self) -> int:
        """Integer month of ``start``."""
        return month_index(self.start)

    @property
    def t_end(self) -> int:
        """Integer month of ``end``."""
        return month_index(self.end)

    @property
    def n_months(self) -> int:
        """Number of calendar months in the window."""
        return self.t_end - self.t_start + 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (tuples as lists), without the resource settings."""
        out = asdict(self)
        del out["memory_limit"], out["threads"]  # resources, not part of the result
        out["indicators"] = list(self.indicators)
        out["shock_event_window"] = list(self.shock_event_window)
        return out
