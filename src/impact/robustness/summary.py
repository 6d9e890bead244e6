"""Assemble the robustness checks and write the one-page summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from impact.compute import ComputeParams
from impact.config import ConfigError, check_keys
from impact.estimate.params import EstimateParams
from impact.robustness.checks import (
    COLUMNS, leave_one_out_adoption, placebo_adoption, placebo_shock, row,
)

__all__ = ["RobustnessParams", "run_robustness", "summary_markdown"]

_SAME = "same sign, significant"


@dataclass(frozen=True)
class RobustnessParams:
    """``robustness`` section: ``placebo_shift_months`` (how far placebo dates move
    back) and ``placebo_shock_type`` (a shock type known to have no effect; null = none)."""

    placebo_shift_months: int = 24
    placebo_shock_type: str | None = "reorganisation"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RobustnessParams":
        check_keys("robustness", d, {"placebo_shift_months", "placebo_shock_type"})
        out = cls(**d)
        s = out.placebo_shift_months
        if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= 120:
            raise ConfigError(f"params.yaml: robustness.placebo_shift_months must be an "
                              f"integer 1..120, got {s!r}")
        if out.placebo_shock_type is not None and not isinstance(out.placebo_shock_type, str):
            raise ConfigError("params.yaml: robustness.placebo_shock_type must be a string "
                              "or null")
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_robustness(cells: pd.DataFrame, pm: pd.DataFrame, adoption, shocks,
                   params: EstimateParams, rparams: RobustnessParams,
                   headline: dict[str, dict | None], quality_loo: pd.DataFrame | None,
                   sweep: pd.DataFrame | None, compute: ComputeParams | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(checks table, leave-one-out table) for the headline blocks (module notes of
    ``impact.robustness.checks``). ``headline`` maps block to its metrics block;
    ``quality_loo`` has cluster, quality_loo; ``sweep`` is the specification-curve table."""
    rows = []
    shift = rparams.placebo_shift_months
    ad, q, sh = headline.get("adoption"), headline.get("quality"), headline.get("shock")
    rows.append(row("placebo adoption dates", "adoption",
                    placebo_adoption(cells, pm, adoption, shocks, params, shift), "att_pp",
                    "zero", f"dates {shift} months early, months before the real date"))
    rows.append(row("placebo shock dates", "shock",
                    placebo_shock(cells, pm, shocks, params, shift), "effect_pp", "zero",
                    f"dates {shift} months early, months before the real date"))
    if rparams.placebo_shock_type:
        rows.append(row(f"placebo shock type '{rparams.placebo_shock_type}'", "shock",
                        placebo_shock(cells, pm, shocks, params, 0, rparams.placebo_shock_type),
                        "effect_pp", "zero", "events that should not move hiring"))
    if ad is not None and ad.get("pretrend_p_value") is not None:
        p = float(ad["pretrend_p_value"])
        rows.append({"check": "pre-trend test (BJS)", "block": "adoption", "estimate": None,
                     "std_error": None, "ci_low": None, "ci_high": None, "p_value": p,
                     "expect": "p > 0.05", "passes": bool(p > 0.05),
                     "note": f"joint test of the leads, {params.adoption.pretrend_months} months"})
    loo = leave_one_out_adoption(cells, pm, adoption, shocks, params, compute)
    loo.insert(0, "block", "adoption")
    if ad is not None and len(loo):
        rows.append(_loo_row("adoption", loo, ad["att_pp"]))
    if quality_loo is not None and q is not None and quality_loo["quality_loo"].notna().any():
        ql = pd.DataFrame({"block": "quality", "municipality": quality_loo["cluster"],
                           "estimate": quality_loo["quality_loo"]})
        rows.append(_loo_row("quality", ql, q["effect_pp"]))
        loo = pd.concat([loo, ql], ignore_index=True)
    if sweep is not None and ad is not None:
        base = {"estimator": "imputation", "fixed_effects": "region_month",
                "controls": "full", "inference": "cluster"}
        for outcome, sample, label in (("within_6", "all", "outcome: work within 6 months"),
                                       ("within_12", "all", "outcome: work within 12 months"),
                                       ("month", "no_crisis", "crisis months dropped"),
                                       ("month", "inflow", "inflow spells only"),
                                       ("month", "age_25_54", "ages 25-54 only")):
            r = sweep[(sweep["outcome"] == outcome) & (sweep["sample"] == sample)]
            for axis, value in base.items():
                r = r[r[axis] == value]
            if len(r) and pd.notna(r["estimate"].iloc[0]):
                h = {"x": r["estimate"].iloc[0], **{k: r[k].iloc[0] for k in
                                                    ("std_error", "ci_low", "ci_high", "p_value")}}
                rows.append(row(label, "adoption", h, "x", _SAME, "grid cell " + r["cell"].iloc[0],
                                ad["att_pp"]))
    return pd.DataFrame(rows, columns=COLUMNS), loo


def _loo_row(block: str, loo: pd.DataFrame, headline: float) -> dict[str, Any]:
    e = loo["estimate"].astype(float)
    ok = e.notna()
    same = bool((np.sign(e[ok]) == np.sign(headline)).all())
    lo, hi = loo.loc[e.idxmin(), "municipality"], loo.loc[e.idxmax(), "municipality"]
    return {"check": "leave one municipality out", "block": block, "estimate": None,
            "std_error": None, "ci_low": float(e.min()), "ci_high": float(e.max()),
            "p_value": None, "expect": "every estimate same sign", "passes": same,
            "note": f"{int(ok.sum())} refits; range {e.min():.3f} (without {lo}) to "
                    f"{e.max():.3f} (without {hi}); headline {headline:.3f}"}


_CONCLUSIONS = {
    "adoption": "The programme raised the monthly exit-to-work rate",
    "quality": "Better process quality raises the exit-to-work rate",
    "shock": "Business-park openings raised outflow to work",
}


def summary_markdown(checks: pd.DataFrame, headline: dict[str, dict | None]) -> str:
    """One page: per headline conclusion, the checks and whether it survives them."""
    lines = ["# Robustness: which conclusions survive", ""]
    keys = {"adoption": "att_pp", "quality": "effect_pp", "shock": "effect_pp"}
    for block, text in _CONCLUSIONS.items():
        head = headline.get(block)
        if head is None:
            continue
        c = checks[checks["block"] == block]
        done = c[c["passes"].notna()]
        failed = done[~done["passes"].astype(bool)]
        verdict = ("survives all" if len(done) and failed.empty else
                   f"fails {len(failed)} of" if len(done) else "has no")
        lines += [f"## {text} ({head[keys[block]]:.3f} pp, 95% CI {head['ci_low']:.3f} to "
                  f"{head['ci_high']:.3f})", "",
                  f"It {verdict} {len(done)} check{'s' if len(done) != 1 else ''}.", ""]
        for _, r in c.iterrows():
            mark = "passes" if r["passes"] is True else "FAILS" if r["passes"] is False else "n/a"
            est = ("" if pd.isna(r["estimate"]) else f"{r['estimate']:.3f} "
                   f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]; ")
            p = "" if pd.isna(r["p_value"]) else f"p = {r['p_value']:.3f}; "
            lines.append(f"- **{r['check']}** ({mark}): {est}{p}expected {r['expect']}. "
                         f"{r['note']}")
        lines.append("")
    lines += ["Checks: `reports/tables/robustness.csv`; leave-one-out estimates: "
              "`reports/tables/robustness_loo.csv`; method: docs/methods.md (Robustness).", ""]
    return "\n".join(lines)
