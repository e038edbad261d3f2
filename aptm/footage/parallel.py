"""Overlapping person detection with the rest of indexing: `map_ahead` runs a function (the detector) on the items
of a stream in worker threads, a bounded number of items ahead of the caller, and hands the results back in the
stream's order, so the caller's own work (tracking, encoding, writing) goes on while the next pictures are searched
for people. OpenCV and torch release the GIL in their heavy calls, so threads use every core without copying frames
between processes. Imports only the standard library."""

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

Item = TypeVar("Item")


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system reports it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def map_ahead(function: Callable[[Item], Any], items: Iterable[Item], workers: int,
              ahead: int | None = None) -> Iterator[tuple[Item, Any]]:
    r"""
    `(item, function(item))` for each of `items`, in their order. With one worker, `function` runs in the calling
    thread, one item at a time (the sequential path); with more, in that many threads, on up to `ahead` items beyond
    the one last handed back. The results are the same either way; `function` must be safe to call from several
    threads at once. `items` is always iterated in the calling thread. An exception from `function` is raised when
    its item's turn comes; closing the iterator early cancels the items not started and waits for those running.

    Args:
        function (`Callable`): the work per item.
        items (`Iterable`): the stream.
        workers (`int`): threads that run `function` (1: none, run it in the calling thread).
        ahead (`int`, *optional*): items submitted and not yet handed back, at most (default `4 * workers`): bounds
            the memory held (decoded frames) and how far the workers run ahead.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if ahead is not None and ahead < 1:
        raise ValueError(f"ahead must be at least 1, got {ahead}")
    if workers == 1:
        for item in items:
            yield item, function(item)
        return
    ahead = ahead or 4 * workers
    pool = ThreadPoolExecutor(workers, thread_name_prefix="aptm-footage")
    pending = deque()
    try:
        for item in items:
            pending.append((item, pool.submit(function, item)))
            if len(pending) > ahead:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
