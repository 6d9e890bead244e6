"""Resident memory of a process tree and of the machine (Linux ``/proc``; elsewhere the
functions return 0 or None and callers go without).

Used by ``impact repro`` (a stage's peak, to keep stages run side by side within a memory
budget) and by the benchmark harness (``benchmarks/scale.py``).
"""

from __future__ import annotations

import os

__all__ = ["tree_rss_kb", "physical_memory_mb", "default_memory_mb"]


def tree_rss_kb(root: int) -> int:
    """Summed resident memory (kB) of process ``root`` and its descendants (0 where
    ``/proc`` is not there). Stages that work in parallel processes hold the sum."""
    children: dict[int, list[int]] = {}
    pages: dict[int, int] = {}
    try:
        entries = [d for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return 0
    for d in entries:
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/statm") as f:
                pages[int(d)] = int(f.read().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    total, todo, seen = 0, [root], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += pages.get(p, 0) * page_kb
        todo += children.get(p, [])
    return total


def physical_memory_mb() -> float | None:
    """The machine's physical memory in MB (None where the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (AttributeError, ValueError, OSError):
        return None


def default_memory_mb() -> float | None:
    """Half the machine's physical memory (None where unknown): ``impact repro``'s budget
    for stages run side by side, leaving the rest to the system and the user's other work."""
    total = physical_memory_mb()
    return None if total is None else total / 2
