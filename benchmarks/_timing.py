"""Timing loop shared by the benchmark scripts (importable because each script's folder is on sys.path)."""

from __future__ import annotations

import time
from typing import Callable


def run_times(fn: Callable[[], object], repeats: int, warmup: int = 0) -> list[float]:
    """Wall seconds of `repeats` calls of `fn()`, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def fresh_times(detector, fn: Callable[[], object], repeats: int, warmup: int = 0) -> list[float]:
    """`run_times` of fn() with the detector's kept output dropped before each call, so that every
    call runs its network: a detector returns its last output again for the same pixels
    (`Detector.forget`), which would time a lookup."""
    return run_times(lambda: detector.forget() or fn(), repeats, warmup)
