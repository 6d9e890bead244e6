"""Run a stage script: user-facing errors become one clear message and a non-zero exit."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Callable

__all__ = ["run_stage", "UserError"]


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


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Call ``main``; on a user-facing error print ``impact <stage>: <message>`` and exit 2."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    from impact.io import system_allocator

    system_allocator()  # Arrow's freed memory reusable by numpy (``io.system_allocator``)
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
