"""``reports/metrics.json``: the headline numbers, exactly as the data contract says."""

from __future__ import annotations

import math
from typing import Any, Mapping

import pandas as pd

__all__ = ["CONTRACT_KEYS", "build_metrics", "check_metrics", "publication_estimates"]

#: The keys each block of metrics.json must carry (data contract, "Outputs").
CONTRACT_KEYS: dict[str, tuple[str, ...]] = {
    "data": ("spells", "person_months", "rejected_rows"),
    "quality": ("effect_pp", "std_error", "ci_low", "ci_high", "naive_pp", "reliability"),
    "adoption": ("att_pp", "std_error", "ci_low", "ci_high", "naive_pp"),
    "shock": ("effect_pp", "std_error", "ci_low", "ci_high", "naive_pp"),
}


class MetricsError(ValueError):
    """A headline block lacks a contract key or holds a non-number."""


def _number(block: str, key: str, value: Any) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "item"):
        raise MetricsError(f"metrics.{block}.{key} must be a number, got {value!r}")
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def build_metrics(
    headline: Mapping[str, Mapping[str, Any] | None],
    data_counts: Mapping[str, int],
) -> dict[str, Any]:
    """Assemble metrics.json from the estimate headline and the data counts.

    Parameters
    ----------
    headline
        ``{"quality": {...} | None, "adoption": ..., "shock": ...}`` as written by the
        estimate stage. A block is ``None`` when its input table is absent; it stays
        ``null`` in the output, never zero.
    data_counts
        ``spells`` and ``person_months`` of the analysed panel, ``rejected_rows`` of the
        validation.

    Returns
    -------
    dict
        The contract's four blocks, contract keys first, extra keys (``estimator``,
        ``ci_method``, ``n_clusters``, ...) kept.

    Raises
    ------
    MetricsError
        When a present block lacks a contract key or a value is not a number.
    """
    out: dict[str, Any] = {"data": {}}
    for key in CONTRACT_KEYS["data"]:
        if key not in data_counts:
            raise MetricsError(f"metrics.data.{key} is missing from the data counts")
        out["data"][key] = int(data_counts[key])
    for block in ("quality", "adoption", "shock"):
        values = headline.get(block)
        if values is None:
            out[block] = None
            continue
        missing = [k for k in CONTRACT_KEYS[block] if k not in values]
        if missing:
            raise MetricsError(f"metrics.{block} lacks the contract key(s) {missing}")
        entry: dict[str, Any] = {key: _number(block, key, values[key]) for key in CONTRACT_KEYS[block]}
        for key, value in values.items():
            if key not in entry:  # extra keys (estimator, ci_method, windows, ...) kept as given
                entry[key] = value
        out[block] = entry
    return out


def check_metrics(metrics: Mapping[str, Any]) -> list[str]:
    """Return the contract violations of a metrics dict (empty when it conforms)."""
    problems = []
    for block, keys in CONTRACT_KEYS.items():
        if block not in metrics:
            problems.append(f"block '{block}' missing")
            continue
        values = metrics[block]
        if values is None:
            if block == "data":
                problems.append("block 'data' is null")
            continue
        for key in keys:
            value = values.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                problems.append(f"{block}.{key} is not numeric: {value!r}")
    return problems


def publication_estimates(tidy: pd.DataFrame) -> pd.DataFrame:
    """The tidy estimate table as published, in a stable order.

    Regression coefficients and their aggregates are not cells: each rests on every
    person-month of its model. Every model here pools whole municipalities over months,
    so none rests on fewer clients than ``privacy.min_cell``; count tables and briefs get
    their own disclosure control.
    """
    sort_cols = [c for c in ("specification", "model", "term", "cohort", "rel_time")
                 if c in tidy.columns]
    return tidy.sort_values(sort_cols, kind="mergesort", na_position="first").reset_index(drop=True)
