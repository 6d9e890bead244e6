"""Publish the decomposition and the fair benchmark: their tables and figures.

The ``decompose`` and ``benchmark`` stages apply disclosure control to what they write;
this module copies their publishable tables into ``reports/tables`` and draws the
figures (``impact.report.fair_figures``) into ``reports/figures``.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

import matplotlib.pyplot as plt
import pandas as pd

from impact import io
from impact.report.figures import save_png_svg
from impact.report.fair_figures import funnel_figure, overview_figure, rank_figure
from impact.report.waterfall import Waterfalls

__all__ = ["FAIR_TABLES", "publish_fair"]

#: (stage folder, file) of the tables published as they are
FAIR_TABLES = [("decompose", "decomposition.csv"), ("benchmark", "benchmark.csv"),
               ("benchmark", "benchmark_teams.csv"), ("benchmark", "benchmark_years.csv"),
               ("benchmark", "funnel_curve.csv")]
NATIONAL = "NL01"


def _save(fig, path: Path) -> None:
    save_png_svg(fig, path)


def publish_fair(decompose: Path, benchmark: Path, tables: Path, figures: Path,
                 waterfalls: Any = "all", meanwhile: Callable[[], None] | None = None
                 ) -> dict[str, int]:
    """Copy the tables and draw the figures; returns counts of what was written.

    ``waterfalls``: ``all``, ``none`` or a list of municipality codes (the national
    waterfall is always drawn). Many waterfalls are drawn by local processes on all cores
    (never a Dask cluster: the files are written here); ``meanwhile`` (the rest of the
    report) runs in this process while they draw.
    """
    folders = {"decompose": decompose, "benchmark": benchmark}
    read = {}
    for stage, name in FAIR_TABLES:
        df = pd.read_csv(folders[stage] / name, dtype={"period_from": str, "period_to": str})
        io.write_csv(df, tables / name)
        read[name] = df
    bench, dec = read["benchmark.csv"], read["decomposition.csv"]
    curve = read["funnel_curve.csv"]
    if bench["published"].any():  # nothing to draw when every unit is suppressed
        _save(funnel_figure(bench, curve), figures / "benchmark_funnel.png")
        _save(rank_figure(bench), figures / "benchmark_ranks.png")
        _save(overview_figure(read["benchmark_years.csv"], bench),
              figures / "benchmark_overview.png")
    wf = figures / "decomposition"
    wf.mkdir(parents=True, exist_ok=True)
    codes = [c for c in dec["municipality"].drop_duplicates() if c != NATIONAL]
    if waterfalls == "none":
        codes = []
    elif waterfalls != "all":
        unknown = sorted(set(waterfalls) - set(codes))
        if unknown:
            logging.warning("decompose.waterfalls: %s not in the decomposition; skipped",
                            ", ".join(unknown))
        codes = [c for c in codes if c in set(waterfalls)]
    todo = [(code, dec[dec["municipality"] == code]) for code in [NATIONAL] + codes]
    todo = [(code, rows) for code, rows in todo if len(rows)]
    # nationally 343 figures (PNG + SVG, about 0.5 s each): a chunk per worker (each
    # worker sets the theme itself, so a figure does not depend on where it is drawn);
    # workers from 16 figures on (a worker's start-up is about 2 s)
    n = max(1, min(len(todo) // 8, os.cpu_count() or 1))
    if n == 1:
        if meanwhile:
            meanwhile()
        _draw_waterfalls((todo, wf))
    else:
        # fork: the workers inherit the loaded modules (the default start method on Linux
        # in Python 3.11; "spawn" elsewhere works too, only slower to start)
        with ProcessPoolExecutor(max_workers=n) as pool:
            futures = [pool.submit(_draw_waterfalls, (todo[i::n], wf)) for i in range(n)]
            if meanwhile:  # the rest of the report, on this process, while they draw
                meanwhile()
            for f in futures:
                f.result()
    return {"tables": len(FAIR_TABLES), "waterfalls": len(todo)}


def _draw_waterfalls(task: tuple) -> None:
    from impact.report.figures import set_theme

    set_theme()
    items, folder = task
    draw = Waterfalls()  # one figure per layout, drawn again for each municipality
    try:
        for code, rows in items:
            save_png_svg(draw.figure(rows), folder / f"{code}.png", close=False)
    finally:
        draw.close()
