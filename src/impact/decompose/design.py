"""The regressors of the decomposition model, one factor each, for every person-month.

The model is the headline quality model (``impact.estimate.quality``): a person-month
linear probability model with municipality and region x month effects, client controls,
municipal labour-market indicators, 3-month shock bins, adoption event-time bins and the
caseworker's quality. Here its columns are built for *all* person-months (the fit uses
the measured ones, the decomposition averages over all) and each column is tagged with
the factor of the decomposition it belongs to:

- ``composition``: client controls (age, sex, education, household, duration, ...);
- ``labour_market``: the municipal indicators ``lm_*_muni`` (the region x month effects
  are added by the model);
- ``shocks``: the event-time bins of ``shock.type`` around its date;
- ``quality``: the caseworker's measured quality and the adoption event-time bins.

Categorical columns are kept as integer codes with their labels, so a dummy is named by
its label (``education_level[high]``), the same on any subset of rows; the left-out
level is the one most frequent in the fitted sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from impact.estimate.frames import adoption_bin, age_band, duration_band, lm_controls, month_index
from impact.estimate.linalg import scatter_dummies
from impact.estimate.params import CATEGORICAL_CONTROLS, EstimateParams

__all__ = ["FACTORS", "Design", "build_design"]

#: the model-based factors, in the order tables list them (the residual comes last)
FACTORS = ("composition", "labour_market", "shocks", "quality")


@dataclass
class Design:
    """Per-row regressors of all person-months, tagged by factor.

    Attributes
    ----------
    numeric : dict name -> float array (n,)
    cats : dict variable -> (codes (n,) int, labels array)
    factor_of : dict column or variable name -> factor
    columns : the model's regressor names after :meth:`choose_levels` (numeric first,
        then one dummy ``var[label]`` per kept level)
    """

    numeric: dict[str, np.ndarray]
    cats: dict[str, tuple[np.ndarray, np.ndarray]]
    factor_of: dict[str, str]
    columns: list[str] = field(default_factory=list)
    _dummy: dict[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        for v in self.numeric.values():
            return len(v)
        for codes, _ in self.cats.values():
            return len(codes)
        return 0

    def choose_levels(self, rows: np.ndarray) -> list[str]:
        """Fix the columns: each categorical's most frequent level on ``rows`` is left out."""
        cols = list(self.numeric)
        self._dummy = {}
        for var, (codes, labels) in self.cats.items():
            counts = np.bincount(codes[rows], minlength=len(labels))
            present = np.flatnonzero(counts)
            if len(present) == 0:
                continue
            ref = present[np.argmax(counts[present])]
            for lv in present[present != ref]:
                name = f"{var}[{labels[lv]}]"
                cols.append(name)
                self._dummy[name] = (var, int(lv))
        self.columns = cols
        return cols

    def factor(self, column: str) -> str:
        return self.factor_of[self._dummy[column][0] if column in self._dummy else column]

    def column(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """One regressor on ``rows`` (all rows when None) as float64."""
        if name in self._dummy:
            var, lv = self._dummy[name]
            codes = self.cats[var][0]
            return (codes if rows is None else codes[rows]) == lv
        v = self.numeric[name]
        return v if rows is None else v[rows]

    def matrix(self, rows: np.ndarray, lead: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
        """Column-major matrix of ``lead`` columns (already on ``rows``) then the regressors."""
        names = list(lead) + self.columns
        n = int(np.count_nonzero(rows)) if rows.dtype == bool else len(rows)
        A = np.zeros((n, len(names)), order="F")
        dummies: dict[str, dict[int, int]] = {}  # variable -> {level: column}
        for j, name in enumerate(names):
            if name in lead:
                A[:, j] = lead[name]
            elif name in self._dummy:
                var, lv = self._dummy[name]
                dummies.setdefault(var, {})[lv] = j
            else:
                A[:, j] = self.column(name, rows)
        # each categorical variable's dummies in one scatter (one gather of its codes)
        for var, cols in dummies.items():
            scatter_dummies(A, self.cats[var][0][rows], cols)
        return A, names

    def group_sums(self, group: np.ndarray, n_groups: int) -> np.ndarray:
        """(n_groups x len(columns)) sums of each regressor over the rows of each group
        (rows with a negative group are skipped)."""
        ok = group >= 0
        g = group[ok]
        out = np.zeros((n_groups, len(self.columns)))
        col = {c: j for j, c in enumerate(self.columns)}
        for name in self.numeric:
            if name in col:
                out[:, col[name]] = np.bincount(g, weights=self.numeric[name][ok], minlength=n_groups)
        for var, (codes, labels) in self.cats.items():
            L = len(labels)
            counts = np.bincount(g * L + codes[ok], minlength=n_groups * L).reshape(n_groups, L)
            for name, (v, lv) in self._dummy.items():
                if v == var:
                    out[:, col[name]] = counts[:, lv]
        return out


def _label_codes(values) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes over sorted labels (stable across row subsets); missing -> 'unknown'.

    The labels are the values as strings. Only the distinct values are turned into
    strings (2.9 million floats: 2.7 s -> 0.1 s; a panel column is best given as its
    Series, whose Arrow strings factorise in C); the codes are those of factorising the
    whole column as strings, sorted (tests/decompose/test_design.py)."""
    raw, uniq = pd.factorize(pd.Series(values), use_na_sentinel=True)
    text = pd.Series(uniq).astype("string").fillna("unknown")
    names = np.asarray(text, dtype=object)
    if (raw < 0).any():
        names = np.append(names, "unknown")
    labels, pos = np.unique(names.astype(str), return_inverse=True)
    return pos[raw].astype("int64"), np.asarray(labels, dtype=object)


def _band_codes(values: np.ndarray, band) -> tuple[np.ndarray, np.ndarray]:
    """``_label_codes(band(values))`` with ``band`` given the distinct values only (a
    label per row, made and factorised as text, took 13 ms a batch of 131,072 rows)."""
    raw, uniq = pd.factorize(values, use_na_sentinel=False)   # a missing value banded too
    codes, labels = _label_codes(band(np.asarray(uniq)))
    return codes[raw], labels


#: categoricals coded by their integer values (labels sorted as numbers, not as text)
INT_CODED = ("adoption_bin", "shock_bin")


def build_design(pm: pd.DataFrame, params: EstimateParams, lm: list[str] | None = None
                 ) -> Design:
    """The decomposition model's regressors for every row of ``pm`` (see module notes).

    ``lm``: the labour-market columns to use as they are; None: those of
    ``frames.lm_controls`` (complete and not constant on ``pm``)."""
    numeric: dict[str, np.ndarray] = {}
    cats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    factor_of: dict[str, str] = {}
    for c in params.estimate.controls:
        if c == "age_band":
            cats[c] = _band_codes(pm["age"].to_numpy(), age_band)
        elif c == "duration_band":
            cats[c] = _band_codes(pm["duration"].to_numpy(), duration_band)
        elif c in CATEGORICAL_CONTROLS:
            cats[c] = _label_codes(pm[c])
        else:
            numeric[c] = pd.to_numeric(pm[c], errors="coerce").to_numpy(dtype="float64")
        factor_of[c] = "composition"
    for c in (lm_controls(pm, params.estimate.lm_controls) if lm is None else lm):
        numeric[c] = pd.to_numeric(pm[c], errors="coerce").to_numpy(dtype="float64")
        factor_of[c] = "labour_market"
    t = pm["t"].to_numpy(dtype="int64")
    if "adoption_month" in pm:
        g = month_index(pm["adoption_month"])
        codes = adoption_bin(t - g, params.adoption.anticipation_months)
        cats["adoption_bin"] = _int_codes(codes)
        factor_of["adoption_bin"] = "quality"
    if "shock_event_time" in pm:
        e = pd.to_numeric(pm["shock_event_time"], errors="coerce").to_numpy(dtype="float64")
        codes = np.where(np.isfinite(e), np.floor(np.nan_to_num(e) / 3), -9999).astype("int64")
        cats["shock_bin"] = _int_codes(codes)
        factor_of["shock_bin"] = "shocks"
    return Design(numeric, cats, factor_of)


def _int_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` (codes over the sorted values) with only
    the distinct values sorted: factorised by hashing, then ranked (the sort of every row
    took 24 of a national benchmark's 316 profiled seconds)."""
    raw, uniq = pd.factorize(np.asarray(values), use_na_sentinel=False)
    order = np.argsort(uniq, kind="stable")
    rank = np.empty(len(order), dtype="int64")
    rank[order] = np.arange(len(order))
    return rank[raw], np.asarray([str(v) for v in np.asarray(uniq)[order]], dtype=object)
