"""The estimate stage's result type: one tidy table of every model, plus headline blocks.

Tidy schema (one row per coefficient or aggregate; ``TIDY_COLUMNS``):

=============  =========  ===========================================================
column         dtype      meaning
=============  =========  ===========================================================
model          str        e.g. ``quality_iv``, ``adoption_imputation``, ``shock_event_study``
term           str        coefficient or aggregate name (``att``, ``event_time``, ...)
estimate       float      in percentage points of the monthly exit-to-work probability
                          unless the term says otherwise (variances, reliability, F)
std_error      float
statistic      float      t (estimate / std_error) or the test statistic of a test row
p_value        float
ci_low/high    float      (1 - alpha) interval
rel_time       Int64      event time (months since adoption / shock), null otherwise
cohort         str        adoption cohort (YYYY-MM) or shock_id, null when pooled
n_obs          Int64      observations (person-months or cells) in the fit
n_clusters     Int64      clusters behind the standard error
estimator      str        the estimator, with its library
vcov           str        the variance estimator and small-sample convention
=============  =========  ===========================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

__all__ = ["EstimationResult", "TIDY_COLUMNS", "tidy_frame", "row", "t_inference"]

TIDY_COLUMNS = (
    "model", "term", "estimate", "std_error", "statistic", "p_value", "ci_low", "ci_high",
    "rel_time", "cohort", "n_obs", "n_clusters", "estimator", "vcov",
)
_DTYPES = {
    "model": "string", "term": "string", "estimate": "float64", "std_error": "float64",
    "statistic": "float64", "p_value": "float64", "ci_low": "float64", "ci_high": "float64",
    "rel_time": "Int64", "cohort": "string", "n_obs": "Int64", "n_clusters": "Int64",
    "estimator": "string", "vcov": "string",
}


def t_inference(estimate: float, se: float, df: float | None, alpha: float) -> dict[str, float]:
    """t statistic, two-sided p-value and interval; df None means the normal distribution."""
    if not np.isfinite(se) or se <= 0 or (df is not None and df < 1):
        return {"statistic": np.nan, "p_value": np.nan, "ci_low": np.nan, "ci_high": np.nan}
    # scipy.special, not scipy.stats: the functions scipy.stats' t and norm call (the same
    # numbers, checked to the bit for df 1..1e12), without the second of import that
    # scipy.stats adds to the start of every stage that needs nothing else from it
    from scipy import special

    tstat = estimate / se
    if df is None or not np.isfinite(df):
        crit, p = special.ndtri(1 - alpha / 2), 2 * special.ndtr(-abs(tstat))
    else:
        crit, p = special.stdtrit(df, 1 - alpha / 2), 2 * special.stdtr(df, -abs(tstat))
    return {
        "statistic": float(tstat),
        "p_value": float(p),
        "ci_low": float(estimate - crit * se),
        "ci_high": float(estimate + crit * se),
    }


def row(model: str, term: str, estimate: float, std_error: float = np.nan, *,
        df: float | None = None, alpha: float = 0.05, **extra: Any) -> dict[str, Any]:
    """One tidy row; statistic, p-value and interval from ``t_inference`` unless given."""
    out: dict[str, Any] = {"model": model, "term": term, "estimate": float(estimate),
                           "std_error": float(std_error)}
    out.update(t_inference(float(estimate), float(std_error), df, alpha))
    out.update(extra)
    return out


def tidy_frame(rows: list[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows -> a frame with exactly ``TIDY_COLUMNS`` in their fixed dtypes."""
    frame = pd.DataFrame(list(rows), columns=list(TIDY_COLUMNS))
    for col, dtype in _DTYPES.items():
        if dtype == "Int64":
            frame[col] = pd.array(
                [None if v is None or (isinstance(v, float) and np.isnan(v)) else int(v)
                 for v in frame[col]], dtype="Int64")
        elif dtype == "string":
            frame[col] = frame[col].astype("string")
        else:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    return frame.reset_index(drop=True)


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, NaN -> None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else float(value)
    return value


class OverallATTResult:
    """Shared by the public DiD results: a tidy table whose ``term == "ATT"`` row is the
    overall effect (``table`` is a dataclass field of the subclass)."""

    table: pd.DataFrame

    def tidy(self) -> pd.DataFrame:
        """A copy of the tidy table (the row ``term == "ATT"`` is the overall effect)."""
        return self.table.copy()

    @property
    def att(self) -> float:
        """The overall effect."""
        return float(self.table.loc[self.table["term"] == "ATT", "estimate"].iloc[0])


@dataclass(frozen=True)
class EstimationResult:
    """Every model of one estimate run.

    Attributes
    ----------
    tidy : pandas.DataFrame
        ``TIDY_COLUMNS``, one row per coefficient or aggregate; event-study paths
        carry ``rel_time``. Treat as read-only (``model(...)`` returns copies).
    headline : dict
        ``{"quality": {...} | None, "adoption": {...} | None, "shock": {...} | None}``
        with the data contract's metrics keys; plain floats, JSON-serialisable.
    meta : dict
        Spec (parameters), library versions, sample sizes, warnings: the JSON sidecar.
    tables : dict
        Further named tables of the run (e.g. ``value_added_team``), written beside the
        tidy table as ``<name>.parquet``; internal unless the report publishes them.
    """

    tidy: pd.DataFrame
    headline: dict[str, dict[str, Any] | None]
    meta: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = set(TIDY_COLUMNS) - set(self.tidy.columns)
        if missing:
            raise ValueError(f"tidy table lacks columns {sorted(missing)}")
        object.__setattr__(self, "headline", _plain(self.headline))
        object.__setattr__(self, "meta", _plain(self.meta))

    @property
    def models(self) -> list[str]:
        """Model names in the order they were estimated."""
        return list(dict.fromkeys(self.tidy["model"].tolist()))

    def model(self, name: str) -> pd.DataFrame:
        """A copy of the tidy rows of one model."""
        if name not in self.models:
            raise KeyError(f"no model {name!r}; models: {', '.join(self.models)}")
        return self.tidy[self.tidy["model"] == name].reset_index(drop=True).copy()

    def compare(self, terms: Mapping[str, str]) -> pd.DataFrame:
        """Side by side: ``{model: term}`` -> one row per model with estimate, SE, CI."""
        rows = []
        for m, term in terms.items():
            sub = self.model(m)
            sub = sub[(sub["term"] == term) & sub["rel_time"].isna() & sub["cohort"].isna()]
            if not sub.empty:
                rows.append(sub.iloc[0])
        cols = ["model", "term", "estimate", "std_error", "ci_low", "ci_high", "n_obs",
                "estimator", "vcov"]
        return pd.DataFrame(rows, columns=list(TIDY_COLUMNS))[cols].reset_index(drop=True)

    def summary(self) -> str:
        """Human-readable headline blocks and the aggregate rows of every model."""
        lines = []
        for block, values in self.headline.items():
            if values is None:
                lines.append(f"{block}: not estimated (input table absent)")
                continue
            keys = [k for k in ("effect_pp", "att_pp", "std_error", "ci_low", "ci_high",
                                "naive_pp", "reliability") if k in values]
            lines.append(f"{block}: " + ", ".join(
                f"{k}={values[k]:.4g}" if isinstance(values[k], float) else f"{k}={values[k]}"
                for k in keys))
        agg = self.tidy[self.tidy["rel_time"].isna() & self.tidy["cohort"].isna()]
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            lines.append(agg[["model", "term", "estimate", "std_error", "ci_low", "ci_high",
                              "n_obs"]].to_string(index=False))
        return "\n".join(lines)
