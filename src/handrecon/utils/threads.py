"""Work running ahead on a thread pool, in order: how the folder, video and evaluation runners
overlap reading, the network and writing."""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator


def prefetch(pool: ThreadPoolExecutor, fn: Callable[[Any], Any], items: Iterable[Any], ahead: int) -> Iterator[Any]:
    """fn(item) for each item, in order, computed by `pool` at most `ahead` items in advance (so
    decoding a long folder never holds more than `ahead` images in memory, and a pool of N
    threads keeps N batches going through a network). `items` is drawn on the calling thread."""
    pending: deque[Future] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) > ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
