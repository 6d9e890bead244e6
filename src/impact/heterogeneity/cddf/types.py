"""The group codes of every dimension as one number per row (a *type*) and the functions of
it the data-driven check uses from the file (``cddf.stream``, ``cddf.programme_stream``,
``cddf.programme_sums``): the proxy S(x) of a type and weighted quantile cut points."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from impact.heterogeneity.params import GroupDimension

__all__ = ["_Types", "_proxy", "_quantiles"]


class _Types:
    """The group codes of every dimension as one number per row (mixed radix: code i in
    0..H_i, H_i the "in no group" level) and back."""

    def __init__(self, dims: Sequence[GroupDimension]) -> None:
        self.dims = list(dims)
        self.size = np.array([len(d.labels) + 1 for d in self.dims], dtype="int64")
        if float(np.prod(self.size.astype("float64"))) >= 2.0 ** 62:
            raise ValueError("cddf: too many combinations of group levels to number")
        self.radix = np.concatenate([[1], np.cumprod(self.size)[:-1]]).astype("int64")

    def codes(self, s: pd.DataFrame) -> list[np.ndarray]:
        out = []
        for d in self.dims:
            c = d.codes(s[d.column])
            out.append(np.where(c >= 0, c, len(d.labels)).astype("int64"))
        return out

    def number(self, codes: list[np.ndarray]) -> np.ndarray:
        return sum(c * r for c, r in zip(codes, self.radix))

    def decode(self, types: np.ndarray) -> list[np.ndarray]:
        return [(types // r) % n for r, n in zip(self.radix, self.size)]


def _proxy(codes: list[np.ndarray], tables: list[np.ndarray], b0: float) -> np.ndarray:
    """S = b0 + the level coefficient of each dimension (added in the in-memory order)."""
    S = np.full(len(codes[0]), b0)
    for c, t in zip(codes, tables):
        S += t[c]
    return S


def _quantiles(S: np.ndarray, w: np.ndarray, K: int) -> np.ndarray:
    """``numpy.quantile(rows, k/K)`` (linear interpolation) for the rows that take the
    value S[i] w[i] times."""
    order = np.argsort(S, kind="stable")
    v, cum = S[order], np.cumsum(w[order])
    n = cum[-1]
    out = np.empty(K - 1)
    for i, q in enumerate(np.arange(1, K) / K):
        h = (n - 1) * q
        lo = np.floor(h)
        a = v[np.searchsorted(cum, lo + 1, side="left")]     # the order statistic lo
        b = v[np.searchsorted(cum, min(lo + 1, n - 1) + 1, side="left")]
        t = h - lo
        # numpy's lerp: from below for t < 1/2, from above otherwise
        out[i] = b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t
    return out
