"""Resident memory and CPU time of a process tree, and the machine's memory (Linux
``/proc``; elsewhere the functions return 0 or None and callers go without).

Used by ``impact repro`` (a stage's peak, to keep stages run side by side within a memory
budget) and by the benchmark harness (``benchmarks/scale.py``).
"""

from __future__ import annotations

import os

__all__ = ["tree_rss_kb", "tree_usage", "physical_memory_mb", "default_memory_mb"]


def _tree(root: int) -> list[tuple[int, int]]:
    """(resident pages, CPU ticks) of process ``root`` and each of its descendants (empty
    where ``/proc`` is not there). CPU ticks are ``/proc/<pid>/stat``'s user and system
    time of the process and of its children that ended and were waited for (so a child's
    time stays in the tree after it ends)."""
    children: dict[int, list[int]] = {}
    usage: dict[int, tuple[int, int]] = {}
    try:
        entries = [d for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return []
    for d in entries:
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{d}/statm") as f:
                pages = int(f.read().split()[1])
            ppid = int(fields[1])
            ticks = sum(int(v) for v in fields[11:15])   # utime stime cutime cstime
        except (OSError, ValueError, IndexError):
            continue
        usage[int(d)] = (pages, ticks)
        children.setdefault(ppid, []).append(int(d))
    out, todo, seen = [], [root], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        if p in usage:
            out.append(usage[p])
        todo += children.get(p, [])
    return out


def tree_rss_kb(root: int) -> int:
    """Summed resident memory (kB) of process ``root`` and its descendants (0 where
    ``/proc`` is not there). Stages that work in parallel processes hold the sum."""
    return tree_usage(root)[0]


def tree_usage(root: int) -> tuple[int, float]:
    """``(resident kB, CPU seconds)`` of process ``root`` and its descendants: memory
    now, and the user and system time they have used so far (with that of descendants
    that ended and were waited for). ``(0, 0.0)`` where ``/proc`` is not there."""
    tree = _tree(root)
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(p for p, _ in tree) * page_kb, sum(t for _, t in tree) / tick)


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
