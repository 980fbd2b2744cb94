"""Which process this is in a distributed run (the one rank helper; `train.distributed` starts and
stops process groups, `data.stream` shards its samples by rank)."""

from __future__ import annotations

import os

import torch.distributed as dist


def current_rank() -> tuple[int, int]:
    """(rank, world_size): from the process group if started, else from torchrun's environment
    ($RANK, $WORLD_SIZE), else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
