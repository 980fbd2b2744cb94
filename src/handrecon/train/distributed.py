"""Distributed plumbing for `torchrun`: process group set-up from the environment, resumable
sharded sampling (seeded streams for on-the-fly data are `handrecon.data.stream`).

Launch with torchrun (no launcher of our own)::

    torchrun --nproc_per_node=4 -m handrecon.cli train CONFIG.yaml

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without them the run is a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from handrecon.registry import ConfigError
from handrecon.utils.distributed import all_gather_object, barrier, end_group

__all__ = ["DistInfo", "ResumableDistributedSampler", "all_gather_object", "all_reduce_mean", "barrier",
           "broadcast_object", "end_group", "init_distributed"]


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Read torchrun's environment, pick the device and start the process group if ``WORLD_SIZE > 1``.

    Backend: NCCL on CUDA, gloo on CPU. Each process uses GPU ``LOCAL_RANK``.
    """
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda:
        if not torch.cuda.is_available():
            raise ConfigError("train.device is 'cuda' but no CUDA device is available; use train.device=auto or cpu")
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(backend=backend, device_id=dev if use_cuda else None)
    return DistInfo(rank, world, local, dev)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ranks (identity when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        x = x.clone()
        dist.all_reduce(x)
        x /= dist.get_world_size()
    return x


class ResumableDistributedSampler(DistributedSampler):
    """`DistributedSampler` that can start part-way through an epoch (``set_start(n)`` skips the
    first ``n`` indices of this rank's shard), for exact mid-epoch resume without reading the
    skipped samples. The permutation depends only on ``seed`` and the epoch, not on the rank
    count, so the union of all ranks' batches is the same data a single process would see.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.start = 0

    def set_start(self, n: int) -> None:
        self.start = n

    def __iter__(self) -> Iterator[int]:
        return iter(list(super().__iter__())[self.start :])

    def __len__(self) -> int:
        return self.num_samples - self.start
