"""Publish the decomposition and the fair benchmark: their tables and figures.

The ``decompose`` and ``benchmark`` stages apply disclosure control to what they write;
this module copies their publishable tables into ``reports/tables`` and draws the
figures (``impact.report.fair_figures``) into ``reports/figures``.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import matplotlib.pyplot as plt
import pandas as pd

from impact import io
from impact.report.figures import save_png_svg
from impact.report.fair_figures import funnel_figure, overview_figure, rank_figure
from impact.report.waterfall import Waterfalls

__all__ = ["FAIR_TABLES", "publish_fair", "waterfalls_drawn"]

#: (stage folder, file) of the tables published as they are
FAIR_TABLES = [("decompose", "decomposition.csv"), ("benchmark", "benchmark.csv"),
               ("benchmark", "benchmark_teams.csv"), ("benchmark", "benchmark_years.csv"),
               ("benchmark", "funnel_curve.csv")]
NATIONAL = "NL01"


def _save(fig, path: Path) -> None:
    save_png_svg(fig, path)


def publish_fair(decompose: Path, benchmark: Path, tables: Path, figures: Path
                 ) -> dict[str, int]:
    """Copy the tables and draw the benchmark's figures (the waterfalls:
    :func:`waterfalls_drawn`); returns how many tables were written."""
    folders = {"decompose": decompose, "benchmark": benchmark}
    read = {}
    for stage, name in FAIR_TABLES:
        df = pd.read_csv(folders[stage] / name, dtype={"period_from": str, "period_to": str})
        io.write_csv(df, tables / name)
        read[name] = df
    bench, curve = read["benchmark.csv"], read["funnel_curve.csv"]
    if bench["published"].any():  # nothing to draw when every unit is suppressed
        _save(funnel_figure(bench, curve), figures / "benchmark_funnel.png")
        _save(rank_figure(bench), figures / "benchmark_ranks.png")
        _save(overview_figure(read["benchmark_years.csv"], bench),
              figures / "benchmark_overview.png")
    return {"tables": len(FAIR_TABLES)}


@contextmanager
def waterfalls_drawn(decompose: Path, figures: Path, waterfalls: Any = "all"
                     ) -> Iterator[int]:
    """Draw the waterfall of every municipality of the decomposition into
    ``figures/decomposition`` while the ``with`` block runs; yields how many, and waits
    for them at its end (raising a worker's error there).

    ``waterfalls``: ``all``, ``none`` or a list of municipality codes (the national
    waterfall is always drawn). Many waterfalls are drawn by local processes on all cores
    (never a Dask cluster: the files are written here), started before the block, so that
    the rest of the report (the block, in this process) is made beside them: nationally
    343 figures, most of the report's time, which waited for the other figures before."""
    dec = pd.read_csv(decompose / "decomposition.csv",
                      dtype={"period_from": str, "period_to": str})
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
    # about 0.45 s a figure (PNG + SVG). Workers from 16 figures on (a worker's start-up
    # is about 2 s), fed chunks of a sixteenth of each one's share: they stay busy to the
    # end, and a failing report (the block) waits only for the chunks being drawn
    n = max(1, min(len(todo) // 8, os.cpu_count() or 1))
    if n == 1:
        yield len(todo)
        _draw_here(todo, wf)
        return
    size = -(-len(todo) // (16 * n))
    # fork: the workers inherit the loaded modules (the default start method on Linux in
    # Python 3.11; "spawn" elsewhere works too, only slower to start)
    with ProcessPoolExecutor(max_workers=n, initializer=_start_worker) as pool:
        futures = [pool.submit(_draw_waterfalls, todo[i:i + size], wf)
                   for i in range(0, len(todo), size)]
        try:
            yield len(todo)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        for f in futures:
            f.result()


#: a worker's waterfalls, kept across its chunks (one figure per layout, drawn again
#: for each municipality: ``Waterfalls``); each worker sets the theme itself, so that a
#: figure does not depend on where it is drawn
_DRAWER: Waterfalls | None = None


def _start_worker() -> None:
    global _DRAWER
    from impact.report.figures import set_theme

    set_theme()
    _DRAWER = Waterfalls()


def _draw_waterfalls(items: list, folder: Path, draw: Waterfalls | None = None) -> None:
    """A chunk of (code, rows), by ``draw`` (default: the worker's)."""
    for code, rows in items:
        save_png_svg((draw or _DRAWER).figure(rows), folder / f"{code}.png", close=False)


def _draw_here(items: list, folder: Path) -> None:
    from impact.report.figures import set_theme

    set_theme()
    draw = Waterfalls()
    try:
        _draw_waterfalls(items, folder, draw)
    finally:
        draw.close()
