"""Collect the named specifications' estimates: one tidy table, a specification summary
and the headline blocks, for exactly the specifications params.yaml names."""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

__all__ = ["SPEC_COLUMNS", "collect_specifications", "headline_blocks"]

#: columns of reports/tables/specifications.csv
SPEC_COLUMNS = ("specification", "block", "estimator", "headline", "estimate", "std_error",
                "ci_low", "ci_high", "p_value", "naive_pp", "n_clusters", "ci_method",
                "fixed_effects", "controls", "sample", "inference", "cluster", "description")
_EFFECT = {"quality": "effect_pp", "adoption": "att_pp", "shock": "effect_pp"}


def collect_specifications(results: Mapping[str, tuple[pd.DataFrame, Mapping[str, Any]]],
                           specs: Mapping[str, Any], headline: Mapping[str, str | None]
                           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tidy table of every specification, one summary row per specification).

    Parameters
    ----------
    results
        name -> (tidy estimates, headline dict as the estimate stage wrote it).
    specs
        name -> ``impact.estimate.specs.Specification``, in params order.
    headline
        block -> the specification name feeding metrics.json.

    Returns
    -------
    tidy : DataFrame
        ``specification`` then the estimate stage's tidy columns, specifications in
        params order.
    summary : DataFrame
        ``SPEC_COLUMNS``; estimate etc. are the block's headline numbers (null when the
        specification could not be estimated).
    """
    frames, summary = [], []
    chosen = {name for name in headline.values() if name}
    for name, spec in specs.items():
        tidy, head = results[name]
        frames.append(tidy.assign(specification=name)[["specification", *tidy.columns]])
        block = (head or {}).get(spec.block) or {}
        summary.append({
            "specification": name, "block": spec.block, "estimator": spec.estimator,
            "headline": name in chosen, "estimate": block.get(_EFFECT[spec.block]),
            **{k: block.get(k) for k in ("std_error", "ci_low", "ci_high", "p_value",
                                         "naive_pp", "n_clusters", "ci_method")},
            "fixed_effects": spec.fixed_effects, "sample": spec.sample,
            "controls": None if spec.controls is None else " ".join(spec.controls),
            "inference": spec.inference, "cluster": spec.cluster,
            "description": spec.description})
    tidy = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    table = pd.DataFrame(summary, columns=list(SPEC_COLUMNS))
    for c in ("estimate", "std_error", "ci_low", "ci_high", "p_value", "naive_pp"):
        table[c] = pd.to_numeric(table[c]).astype("float64")
    table["n_clusters"] = pd.to_numeric(table["n_clusters"]).astype("Int64")
    return tidy, table


def headline_blocks(results: Mapping[str, tuple[pd.DataFrame, Mapping[str, Any]]],
                    headline: Mapping[str, str | None]) -> dict[str, Any]:
    """{block: headline dict or None} from the specifications named in ``headline``."""
    return {block: (None if name is None else (results[name][1] or {}).get(block))
            for block, name in headline.items()}
