"""Run one function over many items in threads. Standard library only: the agent imports it too."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

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
