"""Value-added's two levels (caseworker and team) for a quality specification: from the
person-months in memory, or from the panel file, one level after the other or in two
worker processes started before the specification's own work.

Why started first: a worker process made by ``fork`` begins with a copy of everything its
parent holds (counted in each process's resident memory), and the parent of a streamed
quality specification holds 0.76 GB nationally by the time its panel summary and 2SLS are
done, where it held 0.28 GB before them. Started first, the workers begin with the
latter, and the summary and the 2SLS are made beside the two levels. The results are the
same either way: each level is deterministic and reads only the file, and the warnings
come back in the same order (tests/estimate/test_panel_columns.py).
"""

from __future__ import annotations

import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from impact.estimate.frames import warn
from impact.estimate.params import EstimateParams

__all__ = ["LEVELS", "Levels", "value_added_block"]

LEVELS = ("caseworker", "team")


def _level(args: tuple):
    """One level's value-added from the panel file, or the ValueError it raised, and the
    warnings on the way (a worker process hands both back, to be raised here in order)."""
    from impact.estimate.value_added_stream import value_added_file

    panel, level, sample, opts = args
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = value_added_file(panel, level, sample=sample, **opts)
        except ValueError as exc:
            res = exc
    return res, [(str(w.message), w.category, w.filename, w.lineno) for w in caught]


def _options(params: EstimateParams) -> dict[str, Any]:
    return dict(controls=params.estimate.controls, lm=params.estimate.lm_controls,
                alpha=params.estimate.alpha)


class Levels:
    """Both levels from the panel file ``panel``: with ``workers`` > 1 in two processes
    started now (``results`` waits for them), else one after the other in ``results``.
    ``close`` ends the processes (whatever they are doing: the caller's error path)."""

    def __init__(self, panel: Path, params: EstimateParams, sample: str, workers: int):
        self.args = [(panel, lv, sample, _options(params)) for lv in LEVELS]
        self.pool = None
        if workers > 1:
            # an executor, not ``multiprocessing.Pool``: a worker that dies (killed for
            # memory, say) raises BrokenProcessPool here instead of hanging the stage
            self.pool = ProcessPoolExecutor(max_workers=2)
            self.pending = [self.pool.submit(_level, a) for a in self.args]

    def results(self) -> list[tuple]:
        if self.pool is None:
            return [_level(a) for a in self.args]
        try:
            return [f.result() for f in self.pending]
        finally:
            self.close()

    def close(self) -> None:
        """End the workers: at once when they are still working (the executor has no
        public way before Python 3.14's ``terminate_workers``: its process table), so
        that an error of the stage is not held up by a minute of value-added."""
        if self.pool is None:
            return
        pool, self.pool = self.pool, None
        if not all(f.done() for f in self.pending):
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def value_added_block(pm: pd.DataFrame | None, params: EstimateParams,
                      levels: Levels | None = None
                      ) -> tuple[list[dict[str, Any]], dict[str, pd.DataFrame]]:
    """Caseworker and team value-added rows and unit tables (internal: personnel data):
    from ``levels`` (the panel file read in two passes per level, ``value_added_stream``)
    or, without, from ``pm`` in memory."""
    from impact.estimate.value_added import value_added, value_added_rows

    if levels is not None:
        results = levels.results()
    else:
        results = []
        for level in LEVELS:
            try:
                results.append((value_added(pm, level, **_options(params)), []))
            except ValueError as exc:
                results.append((exc, []))
    rows, tables = [], {}
    for level, (res, caught) in zip(LEVELS, results):
        for message, category, filename, lineno in caught:
            warnings.warn_explicit(message, category, filename, lineno)
        if isinstance(res, ValueError):
            warn(f"value-added ({level}) not estimated: {res}")
            continue
        rows += value_added_rows(res)
        tables[f"value_added_{level}"] = res.units
    return rows, tables
