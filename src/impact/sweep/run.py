"""Estimate one cell of the specification grid (stage ``sweep@<cell>``)."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from impact.estimate.frames import EstimationWarning, adoption_months, shock_events
from impact.estimate.adoption import estimate_adoption
from impact.estimate.params import EstimateParams
from impact.sweep.cells import cell_frame
from impact.sweep.cells_sql import cell_frame_sql, with_adoption
from impact.sweep.grid import AXES, GridParams, cell_name

__all__ = ["PANEL_COLUMNS", "RESULT_KEYS", "run_cell", "run_grid"]

#: keys of a cell's result.json besides the axes
RESULT_KEYS = ("estimate", "std_error", "ci_low", "ci_high", "p_value", "n_clusters",
               "n_obs", "n_treated_cells", "pretrend_p_value", "status")


def run_cell(cell: Mapping[str, str], pm: pd.DataFrame | str | Path | None,
             adoption: pd.DataFrame | None, shocks: pd.DataFrame | None,
             params: EstimateParams, grid: GridParams,
             frame: pd.DataFrame | None = None) -> dict[str, Any]:
    """The programme effect (pp) of one grid cell, with its interval and the warnings.

    ``pm``: the person-month Parquet file (aggregated by DuckDB, ``cells_sql``: the
    pipeline's way, memory bounded whatever the panel's size) or a DataFrame of it
    (aggregated in pandas, ``cells.cell_frame``; the same frame to ~1e-12). ``frame``
    instead: the cell's sample frame made already (``cells_sql.sample_frames_sql``, the
    stage ``sweep_frames@<outcome>``); ``pm`` is then not read.

    ``status`` is ``ok`` or says why the cell has no estimate (then the numbers are None).
    """
    for axis in AXES:
        if cell.get(axis) not in AXES[axis]:
            raise ValueError(f"grid cell {dict(cell)}: {axis}={cell.get(axis)!r} is not "
                             f"one of {', '.join(AXES[axis])}")
    out: dict[str, Any] = {"cell": cell_name(cell), **{a: cell[a] for a in AXES}}
    muni_t, team_t = adoption_months(adoption, params.adoption.programme)
    if not muni_t:
        why = ("team-level adoption is not in the sweep" if team_t
               else f"no adoption of {params.adoption.programme!r}")
        return {**out, **dict.fromkeys(RESULT_KEYS), "status": why, "warnings": []}
    if cell["inference"] == "wild" and cell["estimator"] != "imputation":
        return {**out, **dict.fromkeys(RESULT_KEYS),
                "status": f"no wild bootstrap for {cell['estimator']}", "warnings": []}
    # inference: the analytic interval, or the wild score bootstrap whatever the clusters
    params = dataclasses.replace(params, estimate=dataclasses.replace(
        params.estimate, inference="wild" if cell["inference"] == "wild" else "cluster"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EstimationWarning)
        if frame is not None:
            frame = with_adoption(frame, muni_t)
        else:
            make = cell_frame if isinstance(pm, pd.DataFrame) else cell_frame_sql
            frame = make(pm, cell["outcome"], cell["sample"], grid.crisis, muni_t)
        events = shock_events(shocks, params.shock.type)
        rows, head = estimate_adoption(frame, events, params, cell["fixed_effects"],
                                       controls=cell["controls"] == "full")
    messages = sorted({str(w.message) for w in caught
                       if issubclass(w.category, EstimationWarning)})
    if head is None:
        return {**out, **dict.fromkeys(RESULT_KEYS), "status": "not estimable",
                "warnings": messages}
    if cell["estimator"] == "twfe":
        r = next(r for r in rows if r["model"] == "adoption_twfe")
        est = {"estimate": r["estimate"], "std_error": r["std_error"], "ci_low": r["ci_low"],
               "ci_high": r["ci_high"], "p_value": r["p_value"]}
    else:
        est = {k: head[v] for k, v in (("estimate", "att_pp"), ("std_error", "std_error"),
                                       ("ci_low", "ci_low"), ("ci_high", "ci_high"),
                                       ("p_value", "p_value"))}
    est = {k: (float(v) if v is not None and np.isfinite(v) else None) for k, v in est.items()}
    return {**out, **est, "n_clusters": int(head["n_clusters"]), "n_obs": int(head["n_obs"]),
            "n_treated_cells": int(head["n_treated_cells"]),
            "pretrend_p_value": (float(head["pretrend_p_value"])
                                 if np.isfinite(head["pretrend_p_value"]) else None),
            "status": "ok", "warnings": messages}


def _cell_task(task: tuple) -> dict[str, Any]:
    """One cell from its sample frame, reading the other inputs from files (so a worker on
    another machine with the same paths, or another process, needs nothing but the task
    tuple)."""
    cell, frame, validated, params, grid = task
    from impact import io

    def optional(name):
        p = Path(validated) / f"{name}.parquet"
        return io.read_parquet(p) if p.exists() else None

    return run_cell(cell, None, optional("adoption"), optional("shocks"), params, grid,
                    frame=frame)


def run_grid(panel, validated, params: EstimateParams, grid: GridParams,
             compute=None, client=None) -> list[dict[str, Any]]:
    """Every cell of ``grid`` in parallel (``impact.compute.parallel_map``: local
    processes, or the Dask cluster ``compute`` or ``client`` names); results in the
    order of ``grid.cells()``, identical wherever they ran. ``panel`` is the
    person-month Parquet file, ``validated`` the folder of validated tables. The sample
    frames are made here first, one aggregation per outcome and base sample
    (``cells_sql.sample_frames_sql``, as the stages ``sweep_frames@<outcome>``); each
    task carries its cell's frame (municipalities x months rows, not the panel)."""
    from impact.compute import parallel_map
    from impact.sweep.cells_sql import sample_frames_sql

    cells = grid.cells()
    frames = {o: sample_frames_sql(panel, o, list(dict.fromkeys(c["sample"] for c in cells)),
                                   grid.crisis)
              for o in dict.fromkeys(c["outcome"] for c in cells)}
    tasks = [(cell, frames[cell["outcome"]][cell["sample"]], str(validated), params, grid)
             for cell in cells]
    return parallel_map(_cell_task, tasks, compute, client, desc="grid cells")


#: the panel columns a grid cell reads (besides the municipal indicators lm_*_muni)
PANEL_COLUMNS = ["spell_id", "municipality", "region", "t", "duration", "age", "sex",
                 "education_level", "household", "prior_benefit_months", "left_truncated",
                 "exit_work"]
