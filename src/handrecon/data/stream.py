"""Training-dataset helpers: seeded randomness, the one on-the-fly stream (`SeededStream`), and
several dataset folders as one (`build_datasets`).

Map-style datasets draw their augmentation from ``sample_rng(seed, epoch, index)``; endless
datasets that render while training (e.g. ``m3dhmr_stream``) subclass `SeededStream`. Either way
the numbers depend only on the keys, never on which worker or process serves a sample, so a
resumed run and any worker or rank count see identical data.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Sequence

import numpy as np
from torch.utils.data import ConcatDataset, IterableDataset, get_worker_info

from handrecon.data.loaders import build_dataset
from handrecon.utils.distributed import current_rank


def sample_rng(seed: int, *keys: int) -> np.random.Generator:
    """Independent numpy generator for a key tuple, e.g. ``sample_rng(seed, epoch, index)``."""
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


class SeededStream(IterableDataset):
    """Base for endless on-the-fly datasets sharded over ranks and DataLoader workers.

    Subclasses implement ``make_sample(rng) -> sample``. Sample ``j`` of this rank's batch ``b``
    in epoch ``e`` is drawn from ``sample_rng(seed, e, rank, b, j)``: every rank gets a distinct
    stream, the stream does not depend on ``num_workers``, and the engine's
    ``set_position(epoch, start_batch, batch_size)`` makes a resumed run continue exactly where
    the interrupted one stopped. The engine ends each epoch after ``train.steps_per_epoch``.
    """

    def __init__(self, seed: int = 0):
        super().__init__()
        self.seed = seed
        self.epoch, self.start_batch, self.batch_size = 0, 0, 1

    def set_position(self, epoch: int, start_batch: int, batch_size: int) -> None:
        self.epoch, self.start_batch, self.batch_size = epoch, start_batch, batch_size

    def make_sample(self, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rank, _ = current_rank()
        # The DataLoader takes batch k of a fresh iterator from worker k % n_workers.
        b = self.start_batch + worker
        while True:
            for j in range(self.batch_size):
                yield self.make_sample(sample_rng(self.seed, self.epoch, rank, b, j))
            b += n_workers


def build_datasets(name: str, root: str | os.PathLike | Sequence[str | os.PathLike], split: str | None = None,
                   **kw: Any) -> tuple[ConcatDataset, list[str]]:
    """`data.loaders.build_dataset` over one root or a list of roots, concatenated in the given order
    (a root listed twice is drawn twice as often). Returns the dataset and the roots as strings."""
    roots = [os.fspath(r) for r in (root if isinstance(root, (list, tuple)) else [root])]
    if not roots:
        raise ValueError(f"dataset {name!r}: empty list of roots; give at least one folder")
    return ConcatDataset([build_dataset(name, r, split, **kw) for r in roots]), roots
