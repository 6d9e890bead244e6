"""A small synthetic pair of the heterogeneity publication tables (``group_effects.csv``,
``heterogeneity_tests.csv``) for the tests of the forest plots and the brief section.

The groups are those of the default ``heterogeneity.groups``; effects are drawn around an
overall effect, two groups are unpublished (statistics NaN, ``published`` False, as the
publication view writes them), and the test p-values are set by the caller.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GROUPS = {
    "ladder_step": ["1", "2", "3-4", "5-6"],
    "age": ["<25", "25-34", "35-44", "45-54", "55+"],
    "education": ["low", "medium", "high"],
    "household": ["single", "single parent", "couple"],
    "duration": ["0-5", "6-11", "12-23", "24-59", "60+"],
    "prior_benefit": ["none", "1-24", "25+"],
}
OVERALL = {("quality", "work"): 0.14, ("quality", "education"): 0.02, ("quality", "any"): 0.12,
           ("adoption", "work"): 0.30, ("adoption", "education"): 0.03,
           ("adoption", "any"): 0.25}
#: (block, outcome, dimension, group) left unpublished by default
UNPUBLISHED = (("quality", "work", "ladder_step", "5-6"), ("quality", "work", "age", "55+"),
               ("adoption", "work", "ladder_step", "5-6"))


def group_tables(p_tests: dict | None = None, unpublished=UNPUBLISHED, seed: int = 3,
                 blocks=("quality", "adoption"), outcomes=("work", "education", "any"),
                 effects: dict | None = None,
                 adjusted: str = "p_romano_wolf") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(groups, tests). ``p_tests``: (block, outcome, dimension) -> the equality test's p
    (default 0.5: no difference); ``effects``: (block, outcome, dimension, group) -> a fixed
    estimate (others random around the overall effect, within 0.8 x its size).
    ``adjusted``: ``p_romano_wolf`` (the column as the issue names it) or ``p_adjusted``
    with ``adjustment`` (as the stage writes it: Romano-Wolf for quality, Holm for the
    programme)."""
    rng = np.random.default_rng(seed)
    p_tests, effects = p_tests or {}, effects or {}
    rows, tests = [], []
    for block in blocks:
        for outcome in outcomes:
            ov = OVERALL[(block, outcome)]
            ov_se = 0.2 * abs(ov) + 0.01
            for dim, labels in GROUPS.items():
                n_pub = 0
                for g in labels:
                    key = (block, outcome, dim, g)
                    pub = key not in unpublished
                    est = effects.get(key, ov + 0.8 * abs(ov) * rng.uniform(-1, 1))
                    se = abs(ov) * rng.uniform(0.25, 0.6) + 0.01
                    rel = se ** -2 / (se ** -2 + (0.3 * abs(ov) + 0.01) ** -2)
                    r = {"block": block, "outcome": outcome, "dimension": dim, "group": g,
                         "estimate": est, "std_error": se, "ci_low": est - 1.96 * se,
                         "ci_high": est + 1.96 * se, "p_value": 0.04,
                         "p_romano_wolf": min(1.0, abs(ov) / abs(est - ov + 1e-9) * 0.02)
                         if est > 2 * se else 0.6,
                         "shrunk": ov + rel * (est - ov), "shrunk_sd": se * np.sqrt(rel),
                         "reliability": rel, "overall": ov, "overall_std_error": ov_se,
                         "n_clients": float(rng.integers(40, 4000)), "published": pub,
                         "n_clusters": 31, "estimator": "iv" if block == "quality" else "imputation"}
                    if not pub:
                        for c in ("estimate", "std_error", "ci_low", "ci_high", "p_value",
                                  "p_romano_wolf", "shrunk", "shrunk_sd", "reliability",
                                  "n_clients"):
                            r[c] = np.nan
                    n_pub += pub
                    rows.append(r)
                p = p_tests.get((block, outcome, dim), 0.5)
                tests.append({"block": block, "outcome": outcome, "dimension": dim,
                              "n_groups": n_pub, "statistic": 1.0, "df_num": n_pub - 1,
                              "df_den": 30, "p_value": p, "tau2": 0.001, "overall": ov,
                              "overall_std_error": ov_se})
    groups = pd.DataFrame(rows)
    if adjusted == "p_adjusted":
        groups = groups.rename(columns={"p_romano_wolf": "p_adjusted"})
        groups.insert(groups.columns.get_loc("p_adjusted") + 1, "adjustment",
                      np.where(groups["block"] == "quality", "romano_wolf", "holm"))
    return groups, pd.DataFrame(tests)


def write_tables(tables_dir, groups: pd.DataFrame, tests: pd.DataFrame) -> None:
    """Write them as the report stage publishes them (reports/tables/)."""
    tables_dir.mkdir(parents=True, exist_ok=True)
    groups.to_csv(tables_dir / "group_effects.csv", index=False, lineterminator="\n")
    tests.to_csv(tables_dir / "heterogeneity_tests.csv", index=False, lineterminator="\n")
