"""The one exception for input that breaks the data contract structurally.

It lives in :mod:`impact.ingest` (the first layer) so that readers and validators raise
the same class; :mod:`impact.validate` re-exports it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ContractError"]


class ContractError(Exception):
    """Input breaks the data contract in a way that stops the pipeline.

    Structural faults: a missing required file, an unreadable file, a missing required
    column, a column of the wrong type throughout, duplicate keys, or a share of
    rejected rows above ``data.max_reject_share``. The message names the file or table,
    the column, the value seen and what was expected.

    Attributes
    ----------
    table : str or None
        The contract table concerned, when there is one.
    column : str or None
        The column concerned, when there is one.
    report : dict or None
        The data-quality report built so far, when the fault was found after the rows
        were checked (a reject share above the threshold), so that a stage can still
        write it for the user to read.
    """

    def __init__(
        self,
        message: str,
        *,
        table: str | None = None,
        column: str | None = None,
        report: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.table = table
        self.column = column
        self.report = report
