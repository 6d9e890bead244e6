"""Group ids of rows by several key columns, by hashing: what
``DataFrame.groupby(keys).ngroup()`` gives, without a multi-column sort."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["group_index", "sorted_codes"]


def sorted_codes(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Codes 0..k-1 of ``values`` in ascending order of the values (as a sorted
    ``np.unique``'s inverse), by hashing: a sort of the k distinct values, not of all n."""
    codes, uniq = pd.factorize(values)
    rank = np.empty(len(uniq), np.int64)
    rank[np.argsort(np.asarray(uniq), kind="stable")] = np.arange(len(uniq))
    return rank[codes], len(uniq)


def group_index(keys: Sequence[np.ndarray], sort: bool = True) -> tuple[np.ndarray, int]:
    """Group id of each row for several key columns, and the number of groups.

    ``sort``: groups numbered in lexicographic order of the keys (as
    ``DataFrame.groupby(keys, sort=True).ngroup()``); False: in order of first appearance
    (cheaper, and a gather of one row per group is then sequential).

    Each key is coded (``sorted_codes``, or ``pd.factorize`` unsorted; small non-negative
    integers as they are) and the codes combined in mixed radix, recoded to the groups
    present whenever the product of the radices would leave int64 (which keeps the
    order). Raises on a missing value (groupby would leave such rows out).
    """
    code = sorted_codes if sort else (lambda v: (lambda c, u: (c, len(u)))(*pd.factorize(v)))
    n = len(keys[0]) if len(keys) else 0
    gid = np.zeros(n, np.int64)
    size = 1
    for k in keys:
        k = np.asarray(k)
        if k.dtype.kind == "f" and np.isnan(k).any():
            raise ValueError("group_index: a key has missing values")
        if k.dtype.kind in "iub" and (n == 0 or (k.min() >= 0 and k.max() < 1 << 20)):
            c, r = k.astype(np.int64), (int(k.max()) + 1 if n else 1)
        else:
            c, r = code(k)
        if size * r >= 1 << 62:  # keep the radix product in int64: recode what is present
            gid, size = code(gid)
        gid = gid * r + c
        size *= max(r, 1)
    if n == 0:
        return gid, 0
    return code(gid)
