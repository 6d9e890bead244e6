"""Vectorised parsers for the contract's column kinds.

Each parser takes a raw column (strings from CSV; native types from Parquet, SPSS,
Stata or Excel; mixed ``object`` from Excel) and returns the typed column beside a
boolean mask of *bad* entries: present in the file but not a valid value of the kind.
Missing entries are never bad; rules about missing values belong to the caller.

Raw columns have few distinct values next to their length (codes, dates, categories),
so most parsers work on the distinct values (``pd.factorize``) and broadcast back: a
million-row column costs one hash pass plus the parse of a few thousand strings.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable

import numpy as np
import pandas as pd
from pandas.api import types as pdt

__all__ = [
    "text",
    "municipality_code",
    "date",
    "integer",
    "number",
    "category",
    "period",
    "DATE_MIN",
    "DATE_MAX",
]

#: Plausible dates; anything outside is a typo (``0202-01-01``, ``9999-12-31``).
DATE_MIN = pd.Timestamp("1900-01-01")
DATE_MAX = pd.Timestamp("2100-12-31")
DATE_DTYPE = "datetime64[us]"

_GM = r"^(?:GM)?\s*(\d{1,4})$"
_ISO = r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]00:00(?::00(?:\.0+)?)?)?$"
_COMPACT = r"^(\d{4})(\d{2})(\d{2})$"


def _by_uniques(s: pd.Series, parse: Callable[[pd.Series], pd.Series | pd.DataFrame]):
    """Apply ``parse`` to the distinct non-missing values of ``s`` and broadcast back.

    ``parse`` gets the distinct values (index ``0..k-1``) and returns a Series or
    DataFrame on the same index; missing entries of ``s`` come back missing.
    """
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    parsed = parse(pd.Series(uniques, dtype=s.dtype if s.dtype != object else object))
    out = parsed.reindex(codes)  # -1 (missing) is not in the index: NA
    return out.set_axis(s.index)


def _object_to_text(value) -> str | None:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        if np.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (dt.date, np.datetime64)):
        ts = pd.Timestamp(value)
        return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def text(s: pd.Series) -> pd.Series:
    """Any raw column as pandas ``str``: stripped, empty strings missing.

    Integral floats (how SPSS, Stata and Excel store numeric identifiers) print without
    ``.0``; dates print as ``YYYY-MM-DD``.
    """
    if pdt.is_bool_dtype(s.dtype):
        out = s.astype("object").where(s.notna(), None).map(_object_to_text, na_action="ignore")
    elif pdt.is_string_dtype(s.dtype) and s.dtype != object:
        out = s.str.strip()
    elif pdt.is_integer_dtype(s.dtype):
        out = s.astype("Int64").astype("str")
    elif pdt.is_float_dtype(s.dtype):
        v = s.to_numpy(dtype="float64", na_value=np.nan)
        integral = np.isfinite(v) & (np.floor(v) == v) & (np.abs(v) < 2**53)
        as_int = pd.Series(np.where(integral, v, 0).astype("int64"), index=s.index).astype("str")
        out = as_int.where(integral, pd.Series(v, index=s.index).astype("str"))
        out = out.mask(np.isnan(v))
    elif pdt.is_datetime64_any_dtype(s.dtype):
        out = s.dt.strftime("%Y-%m-%d")
    else:
        out = _by_uniques(s, lambda u: u.map(_object_to_text).astype("str").str.strip())
    out = out.astype("str")
    return out.mask(out == "")  # (a comparison: six times faster than str.len on Arrow's)


def municipality_code(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """CBS municipality codes normalised to ``GM`` + 4 digits.

    ``'GM0363'``, ``'gm0363'``, ``'0363'``, ``'363'``, ``363`` and ``363.0`` all give
    ``'GM0363'``. Anything else (``'GM12345'``, ``'Amsterdam'``) is bad.
    """
    t = text(s)

    def parse(u: pd.Series) -> pd.Series:
        digits = u.str.upper().str.extract(_GM, expand=False)
        return ("GM" + digits.str.zfill(4)).astype("str")

    out = _by_uniques(t, parse).astype("str")
    bad = (t.notna() & out.isna()).to_numpy()
    return out, bad


def _ymd(parts: pd.DataFrame) -> pd.Series:
    """Year/month/day text columns 0, 1, 2 to dates; impossible dates are NaT."""
    frame = pd.DataFrame(
        {k: pd.to_numeric(parts[i], errors="coerce") for i, k in enumerate(("year", "month", "day"))}
    )
    ok = frame.notna().all(axis=1)
    out = pd.Series(pd.NaT, index=parts.index, dtype=DATE_DTYPE)
    if ok.any():
        out[ok] = pd.to_datetime(frame[ok].astype("int64"), errors="coerce").astype(DATE_DTYPE)
    return out


def _parse_date_text(u: pd.Series) -> pd.Series:
    u = u.astype("str").str.strip()
    out = pd.to_datetime(u, format="%Y-%m-%d", errors="coerce").astype(DATE_DTYPE)
    rest = out.isna() & u.notna()
    if rest.any():  # YYYYMMDD, or ISO with a midnight time part
        parts = u[rest].str.extract(_ISO).fillna(u[rest].str.extract(_COMPACT))
        out[rest] = _ymd(parts)
    return out


def _parse_date_mixed(u: pd.Series) -> pd.Series:
    """Distinct values of an ``object`` column: native dates and text side by side."""
    native = u.map(lambda v: isinstance(v, (dt.date, np.datetime64))).astype(bool)
    out = pd.Series(pd.NaT, index=u.index, dtype=DATE_DTYPE)
    if native.any():
        out[native] = pd.to_datetime(u[native].map(pd.Timestamp)).dt.normalize().astype(DATE_DTYPE)
    if (~native).any():
        out[~native] = _parse_date_text(text(u[~native]))
    return out


def date(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Dates: ISO ``YYYY-MM-DD`` (a midnight time part is allowed), ``YYYYMMDD`` as text
    or integer, or a native date/datetime (a time of day is dropped). Impossible dates
    (``2021-02-30``) and dates outside 1900..2100 are bad."""
    if pdt.is_datetime64_any_dtype(s.dtype):
        out = s.dt.tz_localize(None) if getattr(s.dt, "tz", None) is not None else s
        out = out.dt.normalize().astype(DATE_DTYPE)
        present = s.notna()
    elif s.dtype == object:
        present = text(s).notna()
        out = _by_uniques(s.where(present), _parse_date_mixed)
    else:
        t = text(s)
        present = t.notna()
        out = _by_uniques(t, _parse_date_text)
    out = out.astype(DATE_DTYPE)
    out = out.where((out >= DATE_MIN) & (out <= DATE_MAX))
    bad = (present & out.isna()).to_numpy()
    return out, bad


def number(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Finite floats; text that is not a number (or is ``inf``) is bad."""
    if pdt.is_numeric_dtype(s.dtype) and not pdt.is_bool_dtype(s.dtype):
        v = s.astype("float64")
        present = s.notna()
    else:
        t = text(s)
        present = t.notna()
        v = _by_uniques(t, lambda u: pd.to_numeric(u, errors="coerce")).astype("float64")
    arr = v.to_numpy(dtype="float64", na_value=np.nan)
    v = v.where(np.isfinite(arr))
    bad = (present & v.isna()).to_numpy()
    return v, bad


def integer(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Nullable ``Int64``; a non-integral or non-numeric value is bad."""
    v, bad = number(s)
    arr = v.to_numpy(dtype="float64", na_value=np.nan)
    integral = np.isfinite(arr) & (np.floor(arr) == arr) & (np.abs(arr) < 2**53)
    bad = bad | (~np.isnan(arr) & ~integral)
    out = pd.Series(np.where(integral, arr, 0).astype("int64"), index=s.index, dtype="Int64")
    return out.mask(~integral), bad


def category(s: pd.Series, allowed: tuple[str, ...]) -> tuple[pd.Series, np.ndarray]:
    """Values of ``allowed``, matched case-insensitively, in their canonical spelling."""
    t = text(s)
    canon = {a.lower(): a for a in allowed}
    out = _by_uniques(t, lambda u: u.str.lower().map(canon)).astype("str")
    bad = (t.notna() & out.isna()).to_numpy()
    return out, bad


_PERIOD = r"^(\d{4})(?:-(\d{1,2})|-Q([1-4])|)$"


def _parse_period(u: pd.Series) -> pd.DataFrame:
    m = u.str.upper().str.extract(_PERIOD)
    year = pd.to_numeric(m[0], errors="coerce").astype("Int64")
    month = pd.to_numeric(m[1], errors="coerce").astype("Int64")
    quarter = pd.to_numeric(m[2], errors="coerce").astype("Int64")
    ok = year.notna() & (month.isna() | month.between(1, 12))
    first = month.fillna((quarter - 1) * 3 + 1).fillna(1)
    n_months = pd.Series(12, index=u.index, dtype="Int64")
    n_months[quarter.notna()] = 3
    n_months[month.notna()] = 1
    ys = year.astype("str")
    canon = ys.copy()
    canon[quarter.notna()] = ys + "-Q" + quarter.astype("str")
    canon[month.notna()] = ys + "-" + month.astype("str").str.zfill(2)
    start = pd.Series(pd.NaT, index=u.index, dtype=DATE_DTYPE)
    if ok.any():
        start[ok] = pd.to_datetime(
            pd.DataFrame({"year": year[ok], "month": first[ok], "day": 1}).astype("int64")
        ).astype(DATE_DTYPE)
    return pd.DataFrame(
        {
            "period": canon.where(ok).astype("str"),
            "start": start,
            "n_months": n_months.where(ok),
        }
    )


def period(s: pd.Series) -> tuple[pd.DataFrame, np.ndarray]:
    """Labour-market periods ``YYYY-MM``, ``YYYY-Qn`` (any case) or ``YYYY``.

    Returns
    -------
    DataFrame
        ``period`` (canonical text: ``2020-03``, ``2020-Q1``, ``2020``), ``start``
        (first day of its first month, date) and ``n_months`` (1, 3 or 12), missing
        where the period is missing or bad; index of ``s``.
    ndarray of bool
        Bad entries.
    """
    t = text(s)
    out = _by_uniques(t, _parse_period)
    out = out.astype({"period": "str", "start": DATE_DTYPE, "n_months": "Int64"})
    bad = (t.notna() & out["period"].isna()).to_numpy()
    return out, bad
