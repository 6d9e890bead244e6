"""Accumulators of the engine (:mod:`.engine`): columns that grow by appending rows, and
the heterogeneity truth's sums per level of every client grouping."""

from __future__ import annotations

import numpy as np

__all__ = ["GROUP_DIMS", "GROUP_STATS"]

#: grouping dimensions of the heterogeneity truth (person-month columns of the panel)
GROUP_DIMS = ("ladder_step", "age", "sex", "education_level", "household", "duration",
              "prior_benefit_months")
#: rows of each dimension's sums: person-months, then probability differences of exit to
#: work, to education and of any exit
GROUP_STATS = ("person_months", "work", "education", "any")


class _Store:
    """Columns that grow by appending rows."""

    def __init__(self, dtypes: dict[str, str]):
        self.n, self.cap = 0, 1 << 14
        self.cols = {k: np.zeros(self.cap, dtype=v) for k, v in dtypes.items()}

    def add(self, **values: np.ndarray) -> np.ndarray:
        n = len(next(iter(values.values())))
        while self.n + n > self.cap:
            self.cap *= 2
            for k, v in self.cols.items():
                self.cols[k] = np.concatenate([v, np.zeros_like(v)])
        ids = np.arange(self.n, self.n + n)
        for k, v in values.items():
            self.cols[k][ids] = v
        self.n += n
        return ids

    def __getitem__(self, k: str) -> np.ndarray:
        return self.cols[k][: self.n]


class _Groups:
    """Sums per level of every grouping dimension, for each block.

    ``age`` and ``duration`` change from month to month: a month costs one
    ``np.bincount`` per statistic over both codes side by side in one small index space
    (a capacity per dimension, doubled when a larger code appears). The five dimensions
    fixed within a spell (intake ladder step, sex, education, household, prior benefit
    months) are summed per spell first (the engine keeps those sums aligned with the
    active spells) and binned once at the end (:meth:`add_spells`).
    """

    MONTHLY = ("age", "duration")
    FIXED = ("ladder_step", "sex", "education_level", "household", "prior_benefit_months")

    def __init__(self, blocks: tuple[str, ...]):
        self.cap = {"age": 128, "duration": 512}
        self.sums = {b: {d: np.zeros((len(GROUP_STATS), self.cap[d])) for d in self.MONTHLY}
                     for b in blocks}

    def index(self, age: np.ndarray, dur: np.ndarray) -> np.ndarray:
        """``(2, n)`` int64 positions of the person-months' age and duration codes."""
        idx = np.vstack([np.asarray(age, dtype=np.int64), np.asarray(dur, dtype=np.int64)])
        top = idx.max(axis=1) if idx.shape[1] else np.zeros(2, np.int64)
        for d, m in zip(self.MONTHLY, top):
            if m >= self.cap[d]:
                new = max(2 * self.cap[d], int(m) + 1)
                for b in self.sums:
                    old = self.sums[b][d]
                    self.sums[b][d] = np.hstack([old, np.zeros((old.shape[0], new - old.shape[1]))])
                self.cap[d] = new
        idx[1] += self.cap["age"]
        return idx

    def add(self, block: str, idx: np.ndarray, diffs: tuple[np.ndarray, ...]) -> None:
        """Add person-months (columns of ``idx``) and their probability differences."""
        size, flat = self.cap["age"] + self.cap["duration"], idx.ravel()
        rows = [np.bincount(flat, minlength=size).astype(float)]
        rows += [np.bincount(flat, weights=np.tile(x, 2), minlength=size) for x in diffs]
        m = np.vstack(rows)
        self.sums[block]["age"] += m[:, :self.cap["age"]]
        self.sums[block]["duration"] += m[:, self.cap["age"]:]

    def add_spells(self, block: str, codes: dict[str, np.ndarray], sums: np.ndarray) -> None:
        """Per-spell sums (GROUP_STATS x spells) binned by the spells' fixed levels."""
        for d in self.FIXED:
            c = np.asarray(codes[d], dtype=np.int64)
            self.sums[block][d] = np.vstack([np.bincount(c, weights=row) for row in sums])

    def result(self) -> dict[str, dict[str, np.ndarray]]:
        """block -> dimension of :data:`GROUP_DIMS` -> (GROUP_STATS x level codes) sums."""
        return {b: {d: sums[d] for d in GROUP_DIMS} for b, sums in self.sums.items()}
