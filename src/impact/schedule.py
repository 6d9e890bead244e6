"""Which stage ``impact repro`` starts next: the longest chain of work first, a family's
stages in batches, and within a memory budget by each stage's last peak (backfilling a
shorter stage that fits while a larger one waits). Pure functions of the plan and of
the times and peaks of the last run; ``impact.repro`` runs what they choose."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Collection

if TYPE_CHECKING:
    from impact.repro import Plan

__all__ = ["priority", "batch", "beside", "fits", "choose", "expected_peaks", "SHORT_S"]


def priority(p: Plan, times: dict[str, float]) -> dict[str, float]:
    """Seconds of work on the longest chain from each stage to the end (this stage's
    last time plus its slowest downstream chain). A stage not yet timed here counts its
    ``expected_seconds`` from dvc.yaml (1 s if none): the order of a first run."""
    down: dict[str, list[str]] = {s: [] for s in p.stages}
    for s, ups in p.upstream.items():
        for u in ups:
            down[u].append(s)
    memo: dict[str, float] = {}
    for s in reversed(p.stages):  # ``plan`` lists upstream stages first
        memo[s] = times.get(s, p.expected.get(s, 1.0)) + max((memo[d] for d in down[s]),
                                                             default=0.0)
    return memo


def batch(ready: list[str], prio: dict[str, float], jobs: int) -> list[str]:
    """The next lane's stages: the most urgent ready stage and, when it is one of a
    ``foreach``/``matrix`` family (``name@key``), the next most urgent of its ready
    siblings, a quarter of them per lane (each ``dvc`` process costs about 2 s before its
    first stage starts; smaller batches keep the lanes even at the end)."""
    first = ready[0]
    if "@" not in first:
        return [first]
    family = first.split("@")[0] + "@"
    sib = [s for s in ready if s.startswith(family)]
    return sib[:max(1, -(-len(sib) // (4 * max(jobs, 1))))]


def expected_peaks(peaks: dict[str, float], rows_at: dict[str, float],
                   rates: dict[str, float], rows: float | None) -> dict[str, float]:
    """MB each stage is expected to need with a panel of ``rows`` rows (None: not known):
    its last peak (``peaks``) when that was recorded at this size or a larger one
    (``rows_at``: the panel's rows at each stage's last run); else the larger of that
    peak and its rate (``rates``: ``meta: {expected_mb_per_million_rows: ...}`` in
    dvc.yaml, measured on national data) times the rows, and for a stage never run, the
    rate alone. A peak of unknown size (kept before sizes were) counts as one of a
    smaller panel: on a small panel its rate gives less than it, on a large one more.

    So a first run at national scale does not put the two largest stages side by side
    because nothing was known of them (heterogeneity and quality_iv went together to
    15.4 GB against a 11.8 GB budget), nor does a first national run after one on the
    built-in data, whose peaks are a hundredth of these. 10% more rows than at the record
    still count as the same size (records vary by that much from run to run). A peak of
    a larger panel stands (an upper bound: halving the data need not halve a stage's
    memory), so the first small run after a national one is planned by national peaks."""
    out = dict(peaks)
    if rows is None:
        return out
    for s, rate in rates.items():
        at = rows_at.get(s)
        if s in peaks and at is not None and rows <= 1.1 * at:
            continue
        out[s] = max(peaks.get(s, 0.0), rate * rows / 1e6)
    return out


def _need(lane: list[str], peaks: dict[str, float]) -> float:
    """MB a lane running ``lane`` is expected to need: its largest stage's last peak."""
    return max((peaks.get(s, 0.0) for s in lane), default=0.0)


def fits(lane: list[str], running: list[tuple[list[str], float]],
         peaks: dict[str, float], budget: float | None) -> bool:
    """Whether ``lane`` (a batch) may start beside ``running`` lanes ((batch, MB now) each) within
    ``budget`` MB; alone, or without a budget, always."""
    if budget is None or not running:
        return True
    held = sum(max(_need(b, peaks), now) for b, now in running)
    return held + _need(lane, peaks) <= budget


def beside(lane: list[str], held: str, running: list[tuple[list[str], float]],
           peaks: dict[str, float], budget: float | None,
           known: Collection[str] | None = None) -> bool:
    """Whether the stage ``held`` back for memory can start beside ``lane`` once the one
    running lane ends: then a backfill does not delay it, however long that lane still
    takes (the national heterogeneity stage ran 35 s past its last time while the held
    hazard kept the other lane idle for 40 s, where the short programme estimates would
    have fitted). Only with one lane running (``--jobs 2``): with more, which of them
    are still running when ``held`` is due is not known, and backfills that each leave
    it room could together leave it none. Both stages must have a recorded peak (in
    ``known``, default ``peaks``: a stage expected from its rate alone has never run, and
    its time is not known either)."""
    known = peaks if known is None else known
    if len(running) != 1 or held not in known or any(s not in known for s in lane):
        return False
    return budget is None or _need(lane, peaks) + peaks[held] <= budget


#: seconds (by the last run) up to which a stage is batched with its siblings: a batch saves
#: a ``dvc`` start (about 2 s) per stage, worth it for short stages only
SHORT_S = 30.0


def choose(ready: list[str], prio: dict[str, float], jobs: int,
           running: list[tuple[list[str], float]], peaks: dict[str, float],
           secs: Callable[[list[str]], float], horizon: Callable[[], float],
           budget: float | None, known: Collection[str] | None = None
           ) -> tuple[list[str] | None, str | None]:
    """The next lane's batch (None: none may start now) and the most urgent ready stage
    if it was held back for memory. The most urgent batch if it fits beside ``running``;
    else the first that fits and either ends before the running lanes do by the last
    run's times (``secs``, ``horizon``) or, beside one running lane, is short
    (``SHORT_S``) and leaves the one waiting room beside it (``beside``), so that it does
    not delay that one and holds back the next one by ``SHORT_S`` at most (backfilling).
    A batch never needs more memory than its first stage, and holds several stages only
    when each is short (``SHORT_S``): a batch runs its stages one after the other, so two
    long ones in one (the national run's ``quality_iv`` and hazard, 3 minutes each) would
    keep the other lane from taking one of them."""
    held, limit = None, None
    for first in ready:
        short = secs([first]) <= SHORT_S
        b = [s for s in batch([first] + [s for s in ready if s != first], prio, jobs)
             if s == first or (short and secs([s]) <= SHORT_S
                               and peaks.get(s, 0.0) <= peaks.get(first, 0.0))]
        if fits(b, running, peaks, budget) and (
                limit is None or secs(b) <= limit
                or (secs(b) <= SHORT_S and beside(b, held, running, peaks, budget, known))):
            return b, held
        if limit is None:
            held, limit = first, horizon()
    return None, held
