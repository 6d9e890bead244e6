"""The ``data`` section of params.yaml."""

from __future__ import annotations

import codecs
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Mapping, get_args

__all__ = ["DataParams", "CsvSep", "DecimalMark"]

# Option vocabularies of this section (candidates for impact.literals).
CsvSep = Literal[",", ";"]
DecimalMark = Literal[".", ","]

_KEYS = ("raw_dir", "classification_year", "max_reject_share", "csv_sep", "decimal", "encoding",
         "instrument_ranges")

#: Declared scales of the built-in instruments (the simulator's and the contract's
#: examples). ``data.instrument_ranges`` in params.yaml adds to or overrides these.
DEFAULT_INSTRUMENT_RANGES: dict[str, tuple[float, float]] = {
    "fidelity_audit": (0.0, 10.0),
    "methodical_working": (1.0, 5.0),
    "dossier_review": (0.0, 10.0),
}


def _fail(key: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"data.{key} = {value!r} is not allowed (allowed: {allowed})")


@dataclass(frozen=True)
class DataParams:
    """Where the input tables are and how strict validation is.

    Attributes
    ----------
    raw_dir : str
        Folder with one file per contract table (default ``'data/simulated'``).
    classification_year : int
        Every municipality code is mapped to the municipal division of 1 January of
        this year with the CBS lineage (default 2026).
    max_reject_share : float
        In [0, 1]: validation stops when more than this share of one table's rows is
        rejected (default 0.05).
    csv_sep : {',', ';'} or None
        CSV separator; None detects it from the header (default).
    decimal : {'.', ','} or None
        CSV decimal mark; None: ',' for ';'-separated files, else '.' (default).
    encoding : str
        Text encoding of CSV files, any Python codec name (default ``'utf-8'``).
    instrument_ranges : dict of str to (float, float)
        Inclusive score range of each quality instrument; a score outside it rejects
        the row (``out_of_range:score``). Instruments not listed are not range-checked
        (the report says so). Defaults :data:`DEFAULT_INSTRUMENT_RANGES`; a params
        value adds to or overrides them per instrument.
    """

    raw_dir: str = "data/simulated"
    classification_year: int = 2026
    max_reject_share: float = 0.05
    csv_sep: CsvSep | None = None
    decimal: DecimalMark | None = None
    encoding: str = "utf-8"
    instrument_ranges: Mapping[str, tuple[float, float]] = field(
        default_factory=lambda: dict(DEFAULT_INSTRUMENT_RANGES))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None = None) -> "DataParams":
        """Validate the ``data`` section.

        Raises
        ------
        ValueError
            Naming the key, the value seen and what is allowed, for an unknown key, a
            wrong type or a value out of range.
        """
        d = dict(d or {})
        for key in sorted(d):
            if key not in _KEYS:
                raise _fail(key, d[key], f"keys {', '.join(_KEYS)}")
        raw_dir = d.get("raw_dir", cls.raw_dir)
        if not isinstance(raw_dir, str) or not raw_dir.strip():
            raise _fail("raw_dir", raw_dir, "a folder path, e.g. 'data/simulated'")
        year = d.get("classification_year", cls.classification_year)
        if isinstance(year, bool) or not isinstance(year, int) or not 1900 <= year <= 2100:
            raise _fail("classification_year", year, "an integer year in 1900..2100, e.g. 2026")
        share = d.get("max_reject_share", cls.max_reject_share)
        if (
            isinstance(share, bool) or not isinstance(share, (int, float))
            or not 0.0 <= float(share) <= 1.0
        ):
            raise _fail("max_reject_share", share, "a number in [0, 1], e.g. 0.05")
        sep = d.get("csv_sep", cls.csv_sep)
        if sep is not None and sep not in get_args(CsvSep):
            raise _fail("csv_sep", sep, "null (detect), ',' or ';'")
        dec = d.get("decimal", cls.decimal)
        if dec is not None and dec not in get_args(DecimalMark):
            raise _fail("decimal", dec, "null (detect), '.' or ','")
        enc = d.get("encoding", cls.encoding)
        try:
            if not isinstance(enc, str):
                raise LookupError
            codecs.lookup(enc)
        except LookupError:
            raise _fail("encoding", enc, "a Python codec name, e.g. 'utf-8' or 'cp1252'") from None
        ranges = _instrument_ranges(d.get("instrument_ranges"))
        return cls(
            raw_dir=raw_dir,
            classification_year=year,
            max_reject_share=float(share),
            csv_sep=sep,
            decimal=dec,
            encoding=enc,
            instrument_ranges=ranges,
        )

    def reader_options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`impact.ingest.read_raw_folder`."""
        return {"csv_sep": self.csv_sep, "decimal": self.decimal, "encoding": self.encoding}

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["instrument_ranges"] = {k: list(v) for k, v in self.instrument_ranges.items()}
        return out


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _instrument_ranges(value: Any) -> dict[str, tuple[float, float]]:
    """Defaults updated with ``data.instrument_ranges`` ({name: [low, high]})."""
    out = dict(DEFAULT_INSTRUMENT_RANGES)
    if value is None:
        return out
    allowed = "a mapping instrument: [low, high] with low <= high, e.g. {fidelity_audit: [0, 10]}"
    if not isinstance(value, Mapping):
        raise _fail("instrument_ranges", value, allowed)
    for name, rng in value.items():
        if (
            not isinstance(name, str) or not name.strip()
            or not isinstance(rng, (list, tuple)) or len(rng) != 2
            or not all(_number(v) for v in rng) or float(rng[0]) > float(rng[1])
        ):
            raise _fail(f"instrument_ranges.{name}", rng, allowed)
        out[name.strip()] = (float(rng[0]), float(rng[1]))
    return out
