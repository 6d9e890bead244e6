"""``params.yaml`` → ``heterogeneity``: pre-specified client groups and what is estimated per group.

A dimension names a person-month column and its groups, either as lists of values
(``levels``) or as inclusive numeric ranges (``bands``; ``null`` = open end)::

    ladder_step: {column: ladder_step, levels: {"1": [1], "3-4": [3, 4]}}
    age:         {column: age, bands: {"<25": [null, 24], "25-34": [25, 34]}}

A person-month in no group of a dimension (e.g. an unrecorded ladder step) is left out of
that dimension's models. Groups are fixed before the data are seen: the data-driven check
(``cddf``) is reported beside them, never instead of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd

from impact.config import ConfigError, check_keys
from impact.distinct import factorize

__all__ = ["GroupDimension", "HeterogeneityParams", "DEFAULT_GROUPS", "OUTCOMES"]

_RANGE = 4096  # integers coded through a table of their range when it is this short
_CACHE = 64    # sets of distinct values (and integer tables) whose levels a dimension keeps

#: outcome name -> person-month indicator column (exit in that month)
OUTCOMES: dict[str, str] = {"work": "exit_work", "education": "exit_education",
                            "any": "exit_any"}
Weights = Literal["rademacher", "webb"]

DEFAULT_GROUPS: dict[str, dict[str, Any]] = {
    "ladder_step": {"column": "ladder_step",
                    "levels": {"1": [1], "2": [2], "3-4": [3, 4], "5-6": [5, 6]}},
    "age": {"column": "age", "bands": {"<25": [None, 24], "25-34": [25, 34], "35-44": [35, 44],
                                       "45-54": [45, 54], "55+": [55, None]}},
    "education": {"column": "education_level",
                  "levels": {"low": ["low"], "medium": ["medium"], "high": ["high"]}},
    "household": {"column": "household",
                  "levels": {"single": ["single"], "single parent": ["single_parent"],
                             "couple": ["couple", "couple_children"]}},
    "duration": {"column": "duration", "bands": {"0-5": [0, 5], "6-11": [6, 11],
                                                 "12-23": [12, 23], "24-59": [24, 59],
                                                 "60+": [60, None]}},
    "prior_benefit": {"column": "prior_benefit_months",
                      "bands": {"none": [0, 0], "1-24": [1, 24], "25+": [25, None]}},
}


@dataclass(frozen=True)
class GroupDimension:
    """One pre-specified grouping: ``labels[h]`` is defined by ``rules[h]``.

    ``kind`` ``levels``: a rule is a tuple of values; ``bands``: (low, high), inclusive,
    None = open.
    """

    name: str
    column: str
    kind: Literal["levels", "bands"]
    labels: tuple[str, ...]
    rules: tuple[tuple, ...]
    #: the levels of each set of distinct values seen (``_set_levels``) and of integer
    #: ranges (``_int_table``), this dimension's own: not compared, so equal dimensions
    #: whose rules match differently as text (1 and True) never share them
    _seen: dict = field(default_factory=dict, compare=False, repr=False)

    def codes(self, values: pd.Series | np.ndarray) -> np.ndarray:
        """Group index (0..H-1) of each value; -1 for a value in no group."""
        v = pd.Series(values).reset_index(drop=True)
        ints = _plain_integers(v)
        if ints is not None:
            # integers in a short range (ages, durations, steps): the level of every
            # integer from the batch's least to its largest, then one gather (the masks
            # or the hashing over every row took 1.0-2.1 ms a national batch, this
            # 0.4-0.55). Bands: a table costs what the rows do, up to as many; levels:
            # a kept table of at most ``_RANGE`` integers (``_int_table``)
            lo, hi = int(ints.min()), int(ints.max())
            if hi - lo <= (max(len(ints), _RANGE) if self.kind == "bands" else _RANGE):
                # (signed: in int64, where x - lo cannot wrap; unsigned cannot either)
                at = (ints.astype("int64") if ints.dtype.kind == "i" else ints) - lo
                if self.kind == "bands":   # the float64 values the general path compares
                    range_ = np.arange(lo, hi + 1, dtype=ints.dtype).astype("float64")
                    return self._bands(range_)[at]
                return self._int_table(lo, hi, ints.dtype)[at]
        if self.kind == "bands":
            return self._bands(pd.to_numeric(v, errors="coerce").to_numpy(dtype="float64"))
        # match on the distinct values only (a few), then gather: a value matches as
        # text ("low", "3") or, for numbers, numerically (3 = 3.0)
        codes, uniq = factorize(v, use_na_sentinel=True)   # text in runs by runs
        return self._set_levels(uniq)[codes]  # code -1 (missing) takes the last slot

    def _bands(self, x: np.ndarray) -> np.ndarray:
        """The band of each float64 value (the first that holds it), -1 in none."""
        out = np.full(len(x), -1, dtype="int64")
        for h, (lo, hi) in enumerate(self.rules):
            m = np.isfinite(x) & (out < 0)
            if lo is not None:
                m &= x >= lo
            if hi is not None:
                m &= x <= hi
            out[m] = h
        return out

    def _int_table(self, lo: int, hi: int, dtype) -> np.ndarray:
        """The level of each integer lo..hi held in ``dtype``, from a table kept in
        ``_seen`` and widened as batches need (to at most ``_RANGE`` + 1 integers). In
        an integer column each value is matched on its own (its text, its number), so a
        table of more integers than a batch holds gives the batch's own levels."""
        key = ("ints", str(np.dtype(dtype)))
        a, b = lo, hi
        if key in self._seen:
            t0, table = self._seen[key]
            if t0 <= lo and hi < t0 + len(table):
                return table[lo - t0:hi - t0 + 1]
            if max(hi, t0 + len(table) - 1) - min(lo, t0) <= _RANGE:
                a, b = min(lo, t0), max(hi, t0 + len(table) - 1)
        table = self._levels(pd.Series(np.arange(a, b + 1, dtype=dtype)))[:-1]
        self._remember(key, (a, table))
        return table[lo - a:hi - a + 1]

    def _set_levels(self, uniq) -> np.ndarray:
        """The group index of each of the distinct values ``uniq``, -1 in the last slot
        (for a missing value's code -1), kept for the next batch with the same *set* of
        distinct values (in ``_seen``, keyed by their dtype and the set of their (type,
        text, value): 1, 1.0, "1", 0.0 and -0.0 are values of their own). The set, not
        each value: matching a set at once can give a value another level than matching
        it alone (the text of 2^53 + 1 is a number exactly alone and rounded beside a
        word); and not the batch's order of them, which changed almost every batch."""
        try:
            items = [(type(x), str(x), x) for x in uniq.tolist()]
            key = (str(getattr(uniq, "dtype", "")), frozenset(items))
            by = self._seen.get(key)
        except TypeError:   # a value that cannot be hashed (a list): no cache
            return self._levels(pd.Series(uniq))
        if by is None:
            by = dict(zip(items, self._levels(pd.Series(uniq))[:-1].tolist()))
            self._remember(key, by)
        level = np.empty(len(items) + 1, dtype="int64")
        level[:-1] = [by[i] for i in items]
        level[-1] = -1
        return level

    def _remember(self, key, value) -> None:
        if len(self._seen) >= _CACHE:   # distinct sets vary batch to batch: keep a few
            self._seen.clear()
        self._seen[key] = value

    def _levels(self, u: pd.Series) -> np.ndarray:
        text = u.astype(str)
        num = pd.to_numeric(u, errors="coerce")
        level = np.full(len(u) + 1, -1, dtype="int64")  # last slot: missing values
        for h, vals in enumerate(self.rules):
            hit = text.isin([str(x) for x in vals]).to_numpy(dtype=bool).copy()
            nums = [float(x) for x in vals
                    if isinstance(x, (int, float)) and not isinstance(x, bool)]
            if nums:
                hit |= num.isin(nums).fillna(False).to_numpy(dtype=bool)
            level[:-1][hit & (level[:-1] < 0)] = h
        return level


def _dimension(name: str, spec: Any) -> GroupDimension:
    where = f"heterogeneity.groups.{name}"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"params.yaml: {where} must be a mapping with 'column' and "
                          f"'levels' or 'bands', got {spec!r}")
    check_keys(where, spec, {"column", "levels", "bands"})
    column = spec.get("column")
    if not isinstance(column, str) or not column:
        raise ConfigError(f"params.yaml: {where}.column must name a person-month column, "
                          f"got {column!r}")
    kinds = [k for k in ("levels", "bands") if k in spec]
    if len(kinds) != 1:
        raise ConfigError(f"params.yaml: {where} needs exactly one of 'levels' or 'bands'")
    kind = kinds[0]
    groups = spec[kind]
    if not isinstance(groups, Mapping) or len(groups) < 2:
        raise ConfigError(f"params.yaml: {where}.{kind} must map at least two group labels "
                          f"to their {'values' if kind == 'levels' else '[low, high]'}, "
                          f"got {groups!r}")
    labels, rules = [], []
    for label, rule in groups.items():
        if not isinstance(rule, (list, tuple)) or not rule:
            raise ConfigError(f"params.yaml: {where}.{kind}.{label} must be a list, got {rule!r}")
        if kind == "levels" and any(isinstance(v, (list, dict)) for v in rule):
            raise ConfigError(f"params.yaml: {where}.levels.{label} must be a list of values "
                              f"(text or numbers), not of lists, got {rule!r}")
        if kind == "bands":
            ok = len(rule) == 2 and all(
                r is None or (isinstance(r, (int, float)) and not isinstance(r, bool))
                for r in rule)
            if not ok or (None not in rule and rule[0] > rule[1]):
                raise ConfigError(f"params.yaml: {where}.bands.{label} must be [low, high] "
                                  f"numbers (null = open, low <= high), got {rule!r}")
        labels.append(str(label))
        rules.append(tuple(rule))
    return GroupDimension(name, column, kind, tuple(labels), tuple(rules))


@dataclass(frozen=True)
class HeterogeneityParams:
    """Parameters of the ``heterogeneity`` stage.

    Attributes
    ----------
    groups : the pre-specified dimensions (see module notes); default
        :data:`DEFAULT_GROUPS`.
    outcomes : exits analysed per group: ``work``, ``education``, ``any``.
    blocks : effects estimated per group: ``quality`` (the headline 2SLS with group
        interactions) and ``adoption`` (the imputation ATT per group).
    draws : bootstrap draws of the Romano-Wolf step-down adjustment.
    weights : multiplier weights of that bootstrap (``rademacher`` | ``webb``).
    cddf_splits : sample splits of the data-driven check of the quality effect on exit to
        work (0 = off).
    cddf_groups : sorted groups (quantiles of the predicted effect) of that check.
    """

    groups: tuple[GroupDimension, ...] = field(
        default_factory=lambda: tuple(_dimension(k, v) for k, v in DEFAULT_GROUPS.items()))
    outcomes: tuple[str, ...] = ("work", "education", "any")
    blocks: tuple[str, ...] = ("quality", "adoption")
    draws: int = 1999
    weights: Weights = "rademacher"
    cddf_splits: int = 5
    cddf_groups: int = 4

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "HeterogeneityParams":
        check_keys("heterogeneity", d, {"groups", "outcomes", "blocks", "draws", "weights",
                                        "cddf_splits", "cddf_groups"})
        kw: dict[str, Any] = {}
        if d.get("groups") is not None:
            g = d["groups"]
            if not isinstance(g, Mapping) or not g:
                raise ConfigError("params.yaml: heterogeneity.groups must map dimension names "
                                  f"to their groups, got {g!r}")
            kw["groups"] = tuple(_dimension(str(k), v) for k, v in g.items())
        for key, allowed in (("outcomes", tuple(OUTCOMES)), ("blocks", ("quality", "adoption"))):
            if key in d:
                v = d[key]
                if (not isinstance(v, (list, tuple)) or not v
                        or any(x not in allowed for x in v) or len(set(v)) != len(v)):
                    raise ConfigError(f"params.yaml: heterogeneity.{key} must be a non-empty "
                                      f"list of distinct values from {', '.join(allowed)}; "
                                      f"got {v!r}")
                kw[key] = tuple(v)
        for key, lo, hi in (("draws", 99, 10**6), ("cddf_splits", 0, 1000),
                            ("cddf_groups", 2, 10)):
            if key in d:
                v = d[key]
                if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                    raise ConfigError(f"params.yaml: heterogeneity.{key} must be an integer in "
                                      f"[{lo}, {hi}], got {v!r}")
                kw[key] = v
        if "weights" in d:
            if d["weights"] not in ("rademacher", "webb"):
                raise ConfigError("params.yaml: heterogeneity.weights must be rademacher or "
                                  f"webb, got {d['weights']!r}")
            kw["weights"] = d["weights"]
        return cls(**kw)


def _plain_integers(v: pd.Series) -> np.ndarray | None:
    """The values of ``v`` when it holds NumPy integers (no missing value can be among
    them) and is not empty, else None."""
    dtype = v.dtype
    if not isinstance(dtype, np.dtype) or dtype.kind not in "iu" or len(v) == 0:
        return None
    return v.to_numpy()
