"""Run a stage script: user-facing errors become one clear message and a non-zero exit."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Callable

__all__ = ["run_stage", "UserError", "small_pages"]


class UserError(Exception):
    """Base for errors caused by input or params, reported without a traceback."""


def _user_error_types() -> tuple[type[BaseException], ...]:
    from impact.config import ConfigError

    types: list[type[BaseException]] = [ConfigError, UserError, FileNotFoundError]
    try:
        from impact.validate import ContractError

        types.append(ContractError)
    except ImportError:  # pragma: no cover - validate is part of the package
        pass
    from impact.report import MetricsError

    types.append(MetricsError)
    return tuple(types)


_SHOWN: set[tuple[type, str]] = set()


def _show_once(message, category, filename, lineno, file=None, line=None) -> None:
    """Log a warning once per stage, as ``[stage] Category: message``.

    The ``once`` filter alone does not hold: a warning recorded inside
    ``catch_warnings`` and re-emitted (as ``impact.estimate`` does, to count them) comes
    back after every such block, since leaving the block resets the filters' memory
    (39 copies of one message in a heterogeneity run). This keeps its own.
    """
    key = (category, str(message))
    if key in _SHOWN:
        return
    _SHOWN.add(key)
    logging.getLogger("impact").warning("%s: %s", category.__name__, message)


def small_pages() -> bool:
    """NumPy's large arrays without a request for transparent huge pages.

    NumPy asks Linux for huge pages (``madvise(MADV_HUGEPAGE)``) for every array of 4 MB or
    more. Where the kernel grants them on request only (``transparent_hugepage/enabled``
    ``madvise``, Debian's and Ubuntu's default), each first touch of such an array's memory
    gets a 2 MB page, zeroed whole, and with ``defrag`` ``madvise`` the kernel compacts
    memory first when none is free. A stage that makes and frees big arrays pays that
    again and again: the national intermediate results (``heterogeneity.progress``) made
    8,889 huge pages (17 GiB) at a peak of 8.2 GB, and the kernel's time was 44 of their
    134 CPU seconds. Without the request, measured once each: 124 -> 100 s (system 44 ->
    24 s, user 90 -> 86 s), the same table. End to end at national size:
    docs/performance.md, thirty-fifth round. (Where ``enabled`` is ``always``, the kernel
    hands out huge pages unasked; this then only spares the compaction.)

    Returns whether it was set: not when the environment says (``NUMPY_MADVISE_HUGEPAGE``,
    NumPy's own switch, an integer; then it decides), nor where NumPy has no such setting
    (off Linux the setting does nothing). The variable is set to 0 for the processes a
    stage starts: forked ones inherit the setting itself, spawned ones read the variable
    as NumPy is imported. Workers of a Dask cluster started elsewhere keep their own."""
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return False
    try:
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - NumPy 2's layout, what its import calls
        return False
    setter = getattr(multiarray, "_set_madvise_hugepage", None)
    if setter is None:  # pragma: no cover
        return False
    setter(False)
    os.environ["NUMPY_MADVISE_HUGEPAGE"] = "0"
    return True


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Call ``main``; on a user-facing error print ``impact <stage>: <message>`` and exit 2."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    from impact.io import system_allocator

    system_allocator()  # Arrow's freed memory reusable by numpy (``io.system_allocator``)
    small_pages()       # no huge page per big array (``small_pages``)
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s", stream=sys.stderr)
    # a data issue every model meets (a constant labour-market column, say) is said once,
    # not once per model (code that counts warnings records them with its own filter)
    warnings.simplefilter("once")
    warnings.showwarning = _show_once
    try:
        main()
    except _user_error_types() as exc:
        print(f"impact {name}: error: {exc}", file=sys.stderr)
        sys.exit(2)
