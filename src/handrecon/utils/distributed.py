"""Which process this is in a distributed run, and the object collectives every layer uses (the
one rank helper; `train.distributed` sets up training's process groups and samplers,
`data.stream` shards its samples by rank, `infer` and `eval` shard their inputs).

A single process never imports torch here: a process group exists only once torch is imported
(`_group_api`), and `start_cpu_group` imports ``torch.distributed`` only to join one under torchrun."""

from __future__ import annotations

import atexit
import importlib
import os
import sys
from types import ModuleType
from typing import Any


def _group_api() -> ModuleType | None:
    """``torch.distributed`` if torch is imported and it is available, else None."""
    dist = sys.modules.get("torch.distributed")
    return dist if dist is not None and dist.is_available() else None


def current_rank() -> tuple[int, int]:
    """(rank, world_size): from the process group if started, else from torchrun's environment
    ($RANK, $WORLD_SIZE), else (0, 1)."""
    dist = _group_api()
    if dist is not None and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def start_cpu_group() -> tuple[int, int]:
    """Under torchrun (``WORLD_SIZE`` > 1), join the process group over gloo if not joined yet
    (inference and evaluation: CPU collectives of Python objects); (rank, world_size).

    The group is destroyed at interpreter exit (`end_group`): left to the interpreter's
    finalisation, gloo's worker threads can abort the process (SIGABRT, "terminate called without
    an active exception") after all the work is done."""
    rank, world = current_rank()
    if world > 1:
        dist = importlib.import_module("torch.distributed")  # only a multi-process run needs torch
        if dist.is_available() and not dist.is_initialized():
            dist.init_process_group("gloo")
            atexit.register(end_group)
    return current_rank()


def end_group() -> None:
    """Destroy the process group if one is up (a no-op otherwise; safe to call twice)."""
    dist = _group_api()
    if dist is not None and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    dist = _group_api()
    if dist is not None and dist.is_initialized():
        dist.barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj`` as a list indexed by rank (``[obj]`` when not distributed)."""
    dist = _group_api()
    if dist is None or not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
