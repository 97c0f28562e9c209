"""Run one function over many items in threads, and build many objects at once. Standard library only:
the agent imports it too."""

from __future__ import annotations

import gc
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator

MAX_PARALLEL = 32


def parallel(function: Callable, items: list, workers: int = MAX_PARALLEL) -> list:
    """``[function(item) for item in items]``, in up to ``workers`` threads, in order."""
    if not items:
        return []
    pool = ThreadPoolExecutor(max_workers=min(workers, len(items)))
    try:
        return list(pool.map(function, items))
    finally:
        # On Ctrl-C, do not wait for workers that may poll a long INSTALL.sh: the
        # caller exits, and every node picks up where it was on the next run.
        pool.shutdown(wait=False, cancel_futures=True)


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a bulk read builds its records.

    Reading 100,000 rows builds a few hundred thousand objects that hold no cycles, and
    their allocations alone trigger collector passes over all of them: measured, a third of
    ``status`` at 100,000 rows. Reference counting still frees everything; the collector
    runs again afterwards (left off if it was off).
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
