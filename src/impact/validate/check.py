"""The machinery every table validator shares: columns, typing, rejects, report.

A :class:`TableCheck` wraps one raw table. It

1. matches column names case-insensitively to the contract (:mod:`impact.ingest.contract`)
   and raises :class:`ContractError` for a missing required column;
2. parses every contract column by its kind, rejecting rows with a bad value
   (``invalid_<kind>:<column>``), a missing value (``missing_value:<column>``) or an
   integer out of range (``out_of_range:<column>``), and raising when a column has no
   valid value at all (wrong type throughout) or is empty where values are required;
3. lets the table's validator add its own row rules with :meth:`TableCheck.reject` and
   structural checks with :meth:`TableCheck.check_unique`;
4. splits the rows into kept and rejected (:meth:`TableCheck.finish`), so that rows read
   = rows kept + rows rejected by construction, and counts everything in the report.

A rejected row carries its first failing rule in ``rule`` and every failing rule's
message in ``reason``. New rules are one :meth:`reject` call; new column kinds one
parser in :mod:`impact.validate.parse`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from impact.ingest.contract import ColumnSpec, TableSpec
from impact.ingest.errors import ContractError
from impact.validate import parse
from impact.validate.lineage import CodeMap

__all__ = ["TableCheck", "show", "counts"]

_EXPECT = {
    "municipality": "a CBS municipality code (GM0363, 0363 or 363)",
    "date": "a date YYYY-MM-DD or YYYYMMDD in 1900..2100",
    "int": "an integer",
    "number": "a number",
    "period": "a period YYYY-MM, YYYY-Qn or YYYY",
}
_FIRST = 5  # how many example values a message shows


def show(values: pd.Series | np.ndarray | list, n: int = _FIRST, distinct: bool = True) -> str:
    """The first ``n`` (distinct) values, quoted, for a message."""
    vals = pd.Series(values)
    if distinct:
        vals = vals.drop_duplicates()
    return ", ".join("missing" if _isna(v) else repr(v) for v in vals.head(n))


class TableCheck:
    """One raw table on its way to a validated table.

    Parameters
    ----------
    spec : TableSpec
        The table's contract.
    raw : DataFrame
        The table as read. It is never modified.
    source : str
        The file name, for messages (defaults to ``raw.attrs['source']`` or the table).
    """

    def __init__(self, spec: TableSpec, raw: pd.DataFrame, source: str | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.source = source or raw.attrs.get("source")
        self.raw = self._match_columns(raw)
        self.n = len(self.raw)
        self.values: dict[str, pd.Series] = {}
        # per row, its first rule and its reasons: made at the first reject (two arrays of
        # objects, 330 MB for the 20.6 million rows of a national progress table)
        self._rule: np.ndarray | None = None
        self._reason: np.ndarray | None = None
        self.report: dict[str, Any] = {
            "source": self.source,
            "rows_read": self.n,
            "extra_columns": list(self.extra_columns),
            "missing_optional_columns": [],
            "notes": [],
        }

    # -- structure ----------------------------------------------------------------------

    def where(self, column: str | None = None) -> str:
        """``"table 'x' (x.csv), column 'c'"`` for messages."""
        text = f"table '{self.name}'" + (f" ({self.source})" if self.source else "")
        return f"{text}, column '{column}'" if column else text

    def error(self, column: str | None, message: str) -> ContractError:
        return ContractError(f"{self.where(column)}: {message}", table=self.name, column=column)

    def _match_columns(self, raw: pd.DataFrame) -> pd.DataFrame:
        names = [str(c).strip().lower() for c in raw.columns]
        seen: dict[str, str] = {}
        for orig, low in zip(raw.columns, names):
            if low in seen:
                raise self.error(
                    low, f"appears twice ({seen[low]!r} and {orig!r}); column names are "
                    "case-insensitive, so expected one column of that name",
                )
            seen[low] = str(orig)
        df = raw.set_axis(names, axis=1).reset_index(drop=True)
        have = set(names)
        for col in self.spec.columns:
            if col.required and col.name not in have:
                raise self.error(
                    col.name,
                    f"required column is missing (columns seen: {', '.join(map(repr, raw.columns))}; "
                    f"expected columns: {', '.join(self.spec.names)})",
                )
        self.extra_columns = tuple(c for c in names if c not in self.spec.names)
        return df

    # -- typing -------------------------------------------------------------------------

    def parse_columns(self) -> None:
        """Type every contract column (see module docstring); fills :attr:`values`."""
        for col in self.spec.columns:
            if col.name not in self.raw.columns:
                self.report["missing_optional_columns"].append(col.name)
                self.values[col.name] = self._empty(col)
                continue
            self.values[col.name] = self._parse(col)

    def _empty(self, col: ColumnSpec) -> pd.Series:
        dtype = {"date": parse.DATE_DTYPE, "int": "Int64", "number": "float64"}.get(col.kind, "str")
        return pd.Series(pd.NA if dtype == "Int64" else None, index=self.raw.index, dtype=dtype)

    def _parse(self, col: ColumnSpec) -> pd.Series:
        raw = self.raw[col.name]
        kind = col.kind
        if kind == "text":
            out, bad = parse.text(raw), np.zeros(self.n, dtype=bool)
        elif kind == "municipality":
            out, bad = parse.municipality_code(raw)
        elif kind == "date":
            out, bad = parse.date(raw)
        elif kind == "int":
            out, bad = parse.integer(raw)
        elif kind == "number":
            out, bad = parse.number(raw)
        elif kind == "category":
            out, bad = parse.category(raw, col.allowed)
        elif kind == "period":
            frame, bad = parse.period(raw)
            self.values["period_start"] = frame["start"]
            self.values["period_months"] = frame["n_months"]
            out = frame["period"]
        else:  # pragma: no cover - the contract only uses the kinds above
            raise ValueError(f"unknown column kind {kind!r}")
        missing = out.isna().to_numpy() & ~bad
        present = ~missing
        if bad.any() and bad.sum() == present.sum():
            expected = _EXPECT.get(kind) or f"one of {', '.join(col.allowed)}"
            raise self.error(
                col.name,
                f"no valid value in any of its {int(present.sum())} filled rows "
                f"(values seen: {show(raw[bad])}); expected {expected}",
            )
        if bad.any():
            expected = _EXPECT.get(kind) or f"one of {', '.join(col.allowed)}"
            self.reject(f"invalid_{kind}:{col.name}", bad,
                        f"{col.name} = {{{col.name}!r}} is not {expected}")
        if missing.any() and col.fill_null is not None:
            out = out.where(~missing, col.fill_null)
            self.report.setdefault("filled_missing", {})[col.name] = int(missing.sum())
        elif missing.any() and not col.nullable:
            if missing.all() and self.n:
                raise self.error(col.name, f"is empty in all {self.n} rows; expected values")
            self.reject(f"missing_value:{col.name}", missing, f"{col.name} is missing")
        if kind == "int" and (col.min is not None or col.max is not None):
            lo = -np.inf if col.min is None else col.min
            hi = np.inf if col.max is None else col.max
            v = out.to_numpy(dtype="float64", na_value=np.nan)
            outside = ~np.isnan(v) & ((v < lo) | (v > hi))
            rng = f"{col.min}..{col.max}" if col.max is not None else f">= {col.min}"
            self.reject(f"out_of_range:{col.name}", outside,
                        f"{col.name} = {{{col.name}}} is outside {rng}")
        return out

    # -- rules --------------------------------------------------------------------------

    def reject(self, rule: str, mask: np.ndarray | pd.Series, reason: str, **extra: pd.Series) -> int:
        """Reject the rows of ``mask`` for ``rule``.

        ``reason`` is a template filled per rejected row with :meth:`str.format` from
        the raw values of the row (``{start_date}``) and the columns in ``extra``
        (parsed values, e.g. ``mapped=...``). Returns the number of rows newly marked.
        """
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return 0
        idx = np.flatnonzero(mask)
        fields = {c: parse.text(self.raw[c].iloc[idx]).tolist()
                  for c in self.raw.columns if "{" + c in reason}
        for k, v in extra.items():
            fields[k] = pd.Series(v).iloc[idx].tolist()
        texts = [
            reason.format(**{k: ("" if _isna(v[i]) else v[i]) for k, v in fields.items()})
            for i in range(len(idx))
        ]
        if self._rule is None:
            self._rule = np.full(self.n, None, dtype=object)
            self._reason = np.full(self.n, None, dtype=object)
        new = self._rule[idx] == None  # noqa: E711 - elementwise on an object array
        self._rule[idx[new]] = rule
        old = self._reason[idx]
        self._reason[idx] = [t if o is None else f"{o}; {t}" for o, t in zip(old, texts)]
        return int(new.sum())

    @property
    def ok(self) -> np.ndarray:
        """Rows not rejected so far."""
        if self._rule is None:
            return np.ones(self.n, dtype=bool)
        return self._rule == None  # noqa: E711

    def check_unique(self, columns: tuple[str, ...], values: dict[str, pd.Series] | None = None) -> None:
        """Raise ContractError when the (parsed) key ``columns`` repeat.

        Rows whose key is incomplete are skipped when every key column is required
        (a missing value there is rejected already); a nullable key column (adoption's
        ``team_id``) takes part with its missing value.
        """
        vals = values or self.values
        key = pd.DataFrame({c: vals[c] for c in columns})
        required = [c for c in columns if not self.spec.column(c).nullable] if all(
            c in self.spec.names for c in columns) else list(columns)
        complete = key[required].notna().all(axis=1)
        dup = key.duplicated(keep=False) & complete
        if dup.any():
            rows = np.flatnonzero(dup.to_numpy())
            first = key.iloc[rows[0]]
            filled = key.astype(object).where(key.notna(), "\0")
            same = np.flatnonzero((filled == filled.iloc[rows[0]]).all(axis=1).to_numpy())
            shown = ", ".join(
                f"{c}={'missing' if _isna(first[c]) else repr(first[c])}" for c in columns
            )
            given = "; ".join(
                f"{c} as given: {show(self.raw[c].iloc[same], distinct=False)}"
                for c in columns if c in self.raw.columns
                and parse.text(self.raw[c].iloc[same]).nunique(dropna=False) > 1
            )
            raise self.error(
                ", ".join(columns),
                f"duplicate key: {int(dup.sum())} rows share their ({', '.join(columns)}) "
                f"with another row, first {shown} in data rows {show(same + 1, 3)}"
                + (f" ({given})" if given else "") + "; expected each key once",
            )

    # -- municipality codes -------------------------------------------------------------

    def map_codes(self, column: str, codes: CodeMap, key: str | None = None,
                  given: pd.Series | None = None) -> pd.Series:
        """Map the normalised codes of ``column`` (or ``given``, codes parsed from it) to
        the classification year and report the mappings applied (old → new with row
        counts) under ``merger_mappings``, labelled ``key`` or ``column``."""
        given = self.values[column] if given is None else given
        mapped = codes.map(given)
        changed = (given != mapped) & given.notna()
        if changed.any():
            counts = (
                pd.DataFrame({"from": given[changed], "to": mapped[changed]})
                .value_counts().sort_index().reset_index(name="rows")
            )
            counts["from_name"] = counts["from"].map(codes.names)
            counts["to_name"] = counts["to"].map(codes.names)
            counts.insert(0, "column", key or column)
            self.report.setdefault("merger_mappings", []).extend(
                counts.astype(object).where(counts.notna(), None).to_dict("records")
            )
        return mapped

    def count_normalised(self, column: str) -> None:
        """Report how many codes of ``column`` were written otherwise than GM + 4 digits."""
        raw = parse.text(self.raw[column])
        n = int((raw.notna() & (raw != self.values[column])).sum())
        if n:
            self.report.setdefault("codes_normalised", {})[column] = n

    def require_known(self, column: str, mapped: pd.Series, known: set[str], what: str) -> None:
        """Reject rows whose mapped code is not in ``known``."""
        unknown = (mapped.notna() & ~mapped.isin(known)).to_numpy() & self.ok
        self.reject(
            f"unknown_municipality:{column}", unknown,
            f"{column} {{{column}!r}} ({{given}}; {{mapped}} in {what}) is not in municipalities",
            given=self.values[column], mapped=mapped,
        )

    # -- result -------------------------------------------------------------------------

    def note(self, text: str) -> None:
        self.report["notes"].append(text)

    def finish(self, out: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Split ``out`` (typed, one row per raw row) into kept rows and the rejects.

        Returns the kept rows (index reset) and the rejects: the raw values as text,
        ``row`` (1-based data row in the file), ``rule`` and ``reason``.
        """
        if len(out) != self.n:  # pragma: no cover - a validator bug, not a user error
            raise RuntimeError(f"{self.name}: typed table has {len(out)} rows, raw {self.n}")
        ok = self.ok
        # no row rejected: the rows as they are (a filter copies every column: 1.1 GB for
        # a national progress table)
        kept = (out if self._rule is None else out.loc[ok]).reset_index(drop=True)
        bad = np.flatnonzero(~ok)
        rule = self._rule[bad] if self._rule is not None else np.array([], dtype=object)
        reason = self._reason[bad] if self._reason is not None else np.array([], dtype=object)
        rejects = pd.DataFrame(
            {c: parse.text(self.raw[c].iloc[bad]).reset_index(drop=True) if len(bad)
             else pd.Series([], dtype="str") for c in self.raw.columns}
        )
        rejects.insert(0, "row", pd.Series(bad + 1, dtype="int64"))
        rejects["rule"] = pd.Series(rule, dtype="str")
        rejects["reason"] = pd.Series(reason, dtype="str")
        by_rule = pd.Series(rule, dtype=object).value_counts().sort_index()
        self.report.update(
            rows_kept=int(ok.sum()),
            rows_rejected=int(len(bad)),
            reject_share=float(len(bad) / self.n) if self.n else 0.0,
            rejected_by_rule={str(k): int(v) for k, v in by_rule.items()},
            rejected_examples=_examples(rejects),
        )
        if self.report["rows_kept"] + self.report["rows_rejected"] != self.n:  # pragma: no cover
            raise RuntimeError(f"{self.name}: rows kept + rejected != rows read")
        return kept, rejects

    def extras(self, written: pd.DataFrame | tuple[str, ...] = ()) -> dict[str, pd.Series]:
        """The extra (non-contract) columns, kept as given; text-like ones as ``str``.

        Raises ContractError when an extra column has the name of a column validate
        writes (``written``), e.g. a ``caseworker_key`` in a raw trajectories file.
        """
        names = set(written.columns if isinstance(written, pd.DataFrame) else written)
        out = {}
        for c in self.extra_columns:
            if c in names:
                raise self.error(
                    c, "is not a contract column but has the name of a column validate "
                    "writes; rename or drop it"
                )
            s = self.raw[c]
            out[c] = parse.text(s) if s.dtype == object else s
        return out


def _examples(rejects: pd.DataFrame, n: int = 3) -> dict[str, list[str]]:
    """The first ``n`` rejected rows of each rule as ``'row 5: <reason>'`` (file order).

    Reasons quote the offending values, identifiers included, for the analyst's terminal
    (``impact check``); the validate stage masks identifiers before the report goes to
    ``reports/`` (:func:`impact.validate.result.mask_identifiers`).
    """
    if not len(rejects):
        return {}
    first = rejects.groupby("rule", sort=True).head(n)
    out: dict[str, list[str]] = {}
    for rule, row, reason in zip(first["rule"], first["row"], first["reason"]):
        out.setdefault(str(rule), []).append(f"row {int(row)}: {reason}")
    return dict(sorted(out.items()))


def counts(values: pd.Series) -> dict[str, int]:
    """Value counts as a plain, sorted dict (for the JSON report)."""
    return {str(k): int(n) for k, n in values.value_counts().sort_index().items()}


def _isna(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False
