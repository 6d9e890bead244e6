"""The ``briefs`` section of params.yaml."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from impact.config import ConfigError, check_keys

__all__ = ["BriefParams"]

_CODE = re.compile(r"^GM\d{4}$")


@dataclass(frozen=True)
class BriefParams:
    """Which policy briefs the ``publish`` stage writes.

    Attributes
    ----------
    municipalities
        ``auto`` (the largest published municipalities by person-months, ``auto_count`` of
        them), ``all`` (every published one; slow at national scale), ``none``, or a list
        of CBS codes (``[GM0363, GM0599]``). The national brief is always written.
    auto_count
        How many municipalities ``auto`` picks (at most 5, as the design asks).
    languages
        Brief languages: ``nl`` and/or ``en``.
    pdf
        Also write the PDF of each brief (Typst).
    """

    municipalities: Any = "auto"
    auto_count: int = 4
    languages: tuple[str, ...] = ("nl", "en")
    pdf: bool = True

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BriefParams":
        check_keys("briefs", d, {"municipalities", "auto_count", "languages", "pdf"})
        m = d.get("municipalities", "auto")
        if isinstance(m, str):
            if m not in ("auto", "all", "none"):
                raise ConfigError(f"params.yaml: briefs.municipalities must be auto, all, none "
                                  f"or a list of codes like [GM0363], got {m!r}")
        elif isinstance(m, list):
            bad = [c for c in m if not isinstance(c, str) or not _CODE.match(c)]
            if bad:
                raise ConfigError(f"params.yaml: briefs.municipalities: {bad!r} are not CBS "
                                  f"municipality codes (GM followed by 4 digits)")
            m = tuple(m)
        else:
            raise ConfigError(f"params.yaml: briefs.municipalities must be auto, all, none or a "
                              f"list of codes, got {m!r}")
        n = d.get("auto_count", 4)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 5:
            raise ConfigError(f"params.yaml: briefs.auto_count must be an integer 1..5, got {n!r}")
        langs = d.get("languages", ["nl", "en"])
        if not isinstance(langs, list) or not langs or any(x not in ("nl", "en") for x in langs):
            raise ConfigError(f"params.yaml: briefs.languages must be a non-empty list of nl "
                              f"and en, got {langs!r}")
        pdf = d.get("pdf", True)
        if not isinstance(pdf, bool):
            raise ConfigError(f"params.yaml: briefs.pdf must be true or false, got {pdf!r}")
        return cls(m, n, tuple(dict.fromkeys(langs)), pdf)

    def codes(self, published: list[str], person_months: list[float]) -> list[str]:
        """The municipalities to write, among the published ones (in the given order)."""
        if self.municipalities == "none":
            return []
        if self.municipalities == "all":
            return list(published)
        if self.municipalities == "auto":
            order = sorted(zip(published, person_months), key=lambda t: (-t[1], t[0]))
            return sorted(c for c, _ in order[: self.auto_count])
        return list(self.municipalities)
