"""The data-driven check (``heterogeneity.cddf``) in a second process of the stage, and what
it shares with the main one.

``analyse`` starts it first and goes on with the other parts. At national scale the
quality check is about 200 s, the programme check 100 s, the intermediate results 130 s,
the group effects 90 s and the cumulative incidence 25 s: so the second process makes the
quality check and then the incidence, and the main process the programme check, the
intermediate results and then the group effects (whose quality models wait for the
check's sums, which have come by then): the stage 394 -> 314 s, the same tables byte for
byte (docs/performance.md, twentieth round).

The quality check's first pass over the panel file holds every column the group quality
models need (``cddf.stream``: group dummies and their products with the quality halves),
so it also makes those models' sums (``stream.shared_group_sums``) and sends them through
a pipe as soon as the pass is done: the main process then makes no pass of its own for
them. Exactly one message goes through the pipe: the sums, or None when they cannot be
shared (an outcome with a missing value, no ``client_id``): then the models make their
own pass, as without the second process; the estimates are the same either way
(``tests/heterogeneity/test_shared_sums.py``). An error in the check stops the stage as
before (None is sent first, so the main process never waits on a dead pipe).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Mapping, Sequence

import pandas as pd

from impact.estimate.params import EstimateParams
from impact.heterogeneity.params import HeterogeneityParams

__all__ = ["CDDF_OUTCOMES", "CHECK_BLOCKS", "sharing"]

#: the data-driven check's outcome: exit to work (each outcome costs as much again)
CDDF_OUTCOMES = {"work": "exit_work"}
#: the blocks of the check, in the order they are made in and of its tables
CHECK_BLOCKS = ("quality", "adoption")


def _cddf_views(pm: pd.DataFrame | None, panel: str | Path | None, params: EstimateParams,
                het: HeterogeneityParams, min_cell: int, with_adoption: bool,
                say: Callable[[str], None], only: Sequence[str] | None = None,
                **share) -> list[tuple[str, dict]]:
    """The data-driven check of each block (of ``only``, default every one):
    ``[(block, publication view)]`` in block order (``CHECK_BLOCKS``). ``share``:
    ``cddf_quality_file``'s ``share`` and ``carry`` (from the file only)."""
    from impact.heterogeneity.cddf import cddf_programme, cddf_quality
    from impact.heterogeneity.cddf import publication_view as cddf_view
    from impact.heterogeneity.cddf.programme_stream import cddf_programme_file
    from impact.heterogeneity.cddf.stream import cddf_quality_file

    # for the headline outcome, exit to work (each outcome costs as much again); from
    # the file, two passes each (``cddf.stream``, ``cddf.programme_stream``)
    work = dict(CDDF_OUTCOMES)
    checks = {"quality": ("quality", True, cddf_quality_file, cddf_quality),
              "adoption": ("programme", with_adoption, cddf_programme_file, cddf_programme)}
    views = []
    for block in CHECK_BLOCKS:
        label, wanted, from_file, in_memory = checks[block]
        if block not in het.blocks or not wanted or (only is not None and block not in only):
            continue
        say(f"data-driven check, {label} ({het.cddf_splits} splits)")
        more = share if block == "quality" else {}
        res = (from_file(panel, params, het, work, min_cell=min_cell, **more)
               if panel is not None else in_memory(pm, params, het, work, min_cell=min_cell))
        views.append((block, cddf_view(res)))
    return views


_SHARE_TO = None   # in the check's process: the pipe to the main one (``_share_init``)


def _share_init(conn) -> None:
    global _SHARE_TO
    _SHARE_TO = conn


def sharing(outcomes: Mapping[str, str], send: Callable[[object], None]
            ) -> tuple[Callable, dict[str, str]]:
    """``cddf_quality_file``'s ``share`` and ``carry`` for the group quality models of
    ``outcomes`` (name -> panel column): the outcomes beyond the check's own are carried
    in its first pass, and ``send`` gets the models' sums (``stream.GroupSums``) or None
    when they cannot come from that pass (an outcome with a missing value: the models
    drop those rows, the check does not; no ``client_id`` to count clients by)."""
    carry = {f"carry#y#{o}": c for o, c in outcomes.items() if c not in CDDF_OUTCOMES.values()}
    column_of = {c: f"y#{o}" for o, c in CDDF_OUTCOMES.items()}
    column_of.update({c: n for n, c in carry.items()})

    def share(q1, tally) -> None:
        from impact.heterogeneity.stream import shared_group_sums

        sums = None
        if tally.carry_missing:
            logging.info("an outcome has missing values: the group quality models make "
                         "their own pass")
        elif tally.client_col == "client_id" and set(outcomes.values()) <= set(column_of):
            sums = shared_group_sums(q1, tally, outcomes, column_of)
        send(sums)
    return share, carry


def _cddf_in_worker(args: tuple) -> tuple[list[tuple[str, dict]], object]:
    """The data-driven check of the blocks ``only`` in its own process, then ``then =
    (function, arguments)``: ``(views, its result)``. With a pipe to the main process
    (``_share_init``), the group quality models' sums go there from the quality check's
    first pass (``sharing``): exactly one message, the sums or None, sent before ``then``
    runs."""
    panel, params, het, min_cell, with_adoption, outcomes, only, then = args
    conn, sent = _SHARE_TO, []

    def send(obj) -> None:
        conn.send(obj)
        sent.append(True)

    try:
        more = {}
        if conn is not None:
            more["share"], more["carry"] = sharing(outcomes, send)
        views = _cddf_views(None, panel, params, het, min_cell, with_adoption,
                            lambda msg: logging.info("%s (in a second process)", msg), only,
                            **more)
    finally:
        if conn is not None:
            if not sent:
                conn.send(None)
            conn.close()
    return views, then[0](*then[1])


def _receiver(conn) -> Callable[[], object]:
    """What the check's process sends (``_cddf_in_worker``), received by a thread as soon
    as it comes (so the sender never waits for this process); None if it died first."""
    import threading

    box: list = []

    def receive() -> None:
        try:
            box.append(conn.recv())
        except (EOFError, OSError):
            box.append(None)
        finally:
            conn.close()

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()

    def get():
        thread.join()
        return box[0]
    return get


