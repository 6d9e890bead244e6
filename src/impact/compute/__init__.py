"""Parallel maps for embarrassingly parallel work (grid cells, leave-one-out refits,
placebo draws): all local cores by default, a Dask cluster when one is named.

One code path: both run through a ``concurrent.futures.Executor`` (a process pool on
this machine, or ``dask.distributed.Client.get_executor()``), and results come back in
the order of the inputs, so the output does not depend on where the work ran.

The scheduler is ``params.yaml`` -> ``compute.scheduler`` or, when that is null, the
environment variable ``IMPACT_DASK_SCHEDULER`` (e.g. ``tcp://10.0.0.5:8786``);
``compute.workers`` caps the local processes (null = all cores).
"""

from __future__ import annotations

import os
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from tqdm.auto import tqdm

from impact.config import ConfigError, check_keys

__all__ = ["ComputeParams", "executor", "parallel_map"]

ENV = "IMPACT_DASK_SCHEDULER"


@dataclass(frozen=True)
class ComputeParams:
    """``compute`` section: ``scheduler`` (a Dask scheduler address or null) and
    ``workers`` (local processes; null = all cores, 1 = in this process)."""

    scheduler: str | None = None
    workers: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ComputeParams":
        check_keys("compute", d, {"scheduler", "workers"})
        out = cls(**d)
        if out.scheduler is not None and not isinstance(out.scheduler, str):
            raise ConfigError(f"params.yaml: compute.scheduler must be an address such as "
                              f"tcp://host:8786 or null, got {out.scheduler!r}")
        w = out.workers
        if w is not None and (isinstance(w, bool) or not isinstance(w, int) or w < 1):
            raise ConfigError(f"params.yaml: compute.workers must be an integer >= 1 or "
                              f"null, got {w!r}")
        return out

    def address(self) -> str | None:
        return self.scheduler or os.environ.get(ENV) or None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Serial(Executor):
    """In-process executor (workers = 1): same interface, no pickling."""

    def map(self, fn, *iterables, timeout=None, chunksize=1):  # noqa: ARG002
        return map(fn, *iterables)

    def submit(self, fn, /, *args, **kwargs) -> Future:
        """``fn(*args, **kwargs)`` run now; its result, or its error, in a done future."""
        f: Future = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 (raised again by ``f.result()``)
            f.set_exception(exc)
        return f


@contextmanager
def executor(params: ComputeParams | None = None, client: Any = None) -> Iterator[Executor]:
    """The executor the parameters name: a given Dask ``client``, a Dask cluster at the
    configured address, a local process pool, or this process (one worker)."""
    params = params or ComputeParams()
    if client is not None:
        yield client.get_executor()
        return
    address = params.address()
    if address:
        try:
            from dask.distributed import Client
        except ImportError as exc:  # pragma: no cover - dask is a dependency
            raise ConfigError("a Dask scheduler is named but dask.distributed is not "
                              "installed") from exc
        with Client(address) as c:
            yield c.get_executor()
        return
    workers = params.workers or os.cpu_count() or 1
    if workers == 1:
        yield _Serial()
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield pool


def parallel_map(fn: Callable[[Any], Any], items: Sequence[Any] | Iterable[Any],
                 params: ComputeParams | None = None, client: Any = None,
                 desc: str | None = None) -> list[Any]:
    """``[fn(x) for x in items]`` on the configured executor, in input order, with a
    progress bar (on a terminal; silent in logs)."""
    items = list(items)
    with executor(params, client) as ex:
        futures = [ex.submit(fn, x) for x in items] if not isinstance(ex, _Serial) else None
        if futures is None:
            return [fn(x) for x in tqdm(items, desc=desc, disable=None)]
        return [f.result() for f in tqdm(futures, desc=desc, disable=None)]
