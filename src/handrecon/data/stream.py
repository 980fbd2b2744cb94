"""On-the-fly synthetic data: an `IterableDataset` that renders inside the DataLoader workers.

    ds = SyntheticStream(preset("crop"), seed=0, num=100_000, transform=CropTrainingTransform())
    loader = DataLoader(ds, batch_size=32, num_workers=4)

Sample indices are dealt round-robin over every (DDP rank, DataLoader worker) pair: the stream
with global id ``g = rank * num_workers + worker`` out of ``G = world_size * num_workers`` renders
indices ``g, g + G, g + 2G, ...`` of epoch `epoch` (set with `set_epoch`), where epoch e covers
indices ``[e * num, (e + 1) * num)``. Index i is rendered exactly as `handrecon synth --seed seed`
would write sample i, so the stream and a written dataset agree. The transform gets its own
Generator seeded by (seed, i, 1): deterministic for a given index whatever the worker layout.
Each worker process makes its own renderer context on its first sample (render.gl keeps one
context per process), and limits torch to one thread.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from handrecon.data.schema import Sample
from handrecon.data.synth.config import SynthConfig


def dist_rank_world() -> tuple[int, int]:
    """(rank, world_size) of this process: torch.distributed if initialised, else $RANK/$WORLD_SIZE, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class SyntheticStream(IterableDataset):
    """Renders synthetic samples on the fly.

    cfg: a SynthConfig (see data.synth.preset). seed: dataset seed. num: samples per epoch over
    all ranks and workers (None: endless). transform: None (yield `Sample`s) or a callable
    ``transform(sample, rng) -> anything`` (e.g. `CropTrainingTransform()`).
    backgrounds: optional folder of background images. backend: renderer backend.
    """

    def __init__(self, cfg: SynthConfig, seed: int = 0, num: int | None = None,
                 transform: Callable[[Sample, np.random.Generator], Any] | None = None,
                 backgrounds: str | os.PathLike | None = None, backend: str | None = None) -> None:
        super().__init__()
        if num is not None and num <= 0:
            raise ValueError(f"num must be positive or None, got {num}")
        self.cfg, self.seed, self.num = cfg, int(seed), num
        self.transform = transform
        self.backgrounds = str(backgrounds) if backgrounds else None
        self.backend = backend
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select epoch `epoch` (indices [epoch*num, (epoch+1)*num)); call before iterating."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.num is None:
            raise TypeError("an endless SyntheticStream (num=None) has no length")
        rank, world = dist_rank_world()
        return len(range(rank, self.num, world))

    def indices(self) -> range:
        """The sample indices this (rank, worker) renders in the current epoch."""
        rank, world = dist_rank_world()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        g, G = rank * workers + worker, world * workers
        start = self.epoch * self.num if self.num is not None else 0
        stop = start + self.num if self.num is not None else 2**62
        return range(start + g, stop, G)

    def __iter__(self) -> Iterator[Any]:
        from handrecon.data.synth.engine import get_engine

        if get_worker_info() is not None:
            torch.set_num_threads(1)
        engine = get_engine(self.cfg, self.backgrounds, self.backend)
        for i in self.indices():
            sample = engine.sample(i, self.seed)
            if self.transform is None:
                yield sample
            else:
                yield self.transform(sample, np.random.default_rng([self.seed, i, 1]))


class CropTrainingTransform:
    """`CropAugment(crop=HandCrop(size), **augment)` followed by `to_tensors`: a stream/loader
    transform giving collatable dicts (a class, so it pickles into spawned workers)."""

    def __init__(self, size: int = 224, **augment: Any) -> None:
        from handrecon.data.transforms import CropAugment, HandCrop

        self.augment = CropAugment(crop=HandCrop(size=size), **augment)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> dict:
        from handrecon.data.transforms import to_tensors

        return to_tensors(self.augment(sample, rng))
