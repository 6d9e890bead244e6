"""Statistical disclosure control: suppression of small cells and a scan of the outputs.

:mod:`~impact.disclosure.suppress` holds the rules the stages apply when they write
(primary suppression of cells under ``privacy.min_cell`` persons, secondary suppression so
that a hidden cell cannot be recovered from a published total); :mod:`~impact.disclosure.scan`
checks every file of the publication set afterwards, for identifiers and small cells.
"""

from impact.disclosure.scan import Finding, identifier_values, scan_outputs
from impact.disclosure.suppress import secondary, suppress_counts

__all__ = ["Finding", "identifier_values", "scan_outputs", "secondary", "suppress_counts"]
