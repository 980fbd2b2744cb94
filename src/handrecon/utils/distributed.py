"""Which process this is in a distributed run, and the object collectives every layer uses (the
one rank helper; `train.distributed` sets up training's process groups and samplers,
`data.stream` shards its samples by rank, `infer` and `eval` shard their inputs)."""

from __future__ import annotations

import os
from typing import Any

import torch.distributed as dist


def current_rank() -> tuple[int, int]:
    """(rank, world_size): from the process group if started, else from torchrun's environment
    ($RANK, $WORLD_SIZE), else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def start_cpu_group() -> tuple[int, int]:
    """Under torchrun (``WORLD_SIZE`` > 1), join the process group over gloo if not joined yet
    (inference and evaluation: CPU collectives of Python objects); (rank, world_size)."""
    rank, world = current_rank()
    if world > 1 and dist.is_available() and not dist.is_initialized():
        dist.init_process_group("gloo")
    return current_rank()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj`` as a list indexed by rank (``[obj]`` when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
