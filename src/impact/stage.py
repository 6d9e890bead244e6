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


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Call ``main``; on a user-facing error print ``impact <stage>: <message>`` and exit 2."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s", stream=sys.stderr)
    # a data issue every model meets (a constant labour-market column, say) is said once,
    # not once per model (code that counts warnings records them with its own filter)
    warnings.simplefilter("once")
    try:
        main()
    except _user_error_types() as exc:
        print(f"impact {name}: error: {exc}", file=sys.stderr)
        sys.exit(2)
