"""Training / validation datasets of the M3DHMR crop model, registered for `handrecon train`.

    data:
      train: {name: m3dhmr_crops, kwargs: {root: .cache/m3dhmr_cpu/train, split: train, input_size: 128}}
      val:   {name: m3dhmr_crops, kwargs: {root: .cache/m3dhmr_cpu/train, split: val, augment: false}}

* ``m3dhmr_crops``: map-style, over a folder written by ``handrecon synth`` (read through
  `handrecon.data.loaders.synthetic.SyntheticDataset`).
* ``m3dhmr_stream``: endless, renders with the synthetic engine on the fly (no folder needed).

Both apply the paper's augmentation (M3DHMR §4.2: random box scale, box rotation, box shift,
colour jitter — `data.transforms.CropAugment`), mirror left hands to right (`flip_left`), and
with ``two_views`` draw a second independent augmentation of the same image for the 2D/3D
consistency losses. Each item is exactly the batch of `handrecon.models.m3dhmr.model` (one sample):

| key            | shape       | meaning                                                              |
|----------------|-------------|----------------------------------------------------------------------|
| `image`        | (3, S, S)   | float32 ImageNet-normalised RGB crop                                  |
| `joints_2d`    | (21, 2)     | OP21 keypoints, crop pixels                                           |
| `verts_3d`     | (V, 3)      | vertices minus the wrist (OP21 joint 0), metres, crop camera frame    |
| `joints_3d`    | (21, 3)     | OP21 joints minus the wrist, metres, crop camera frame                |
| `K`            | (3, 3)      | crop camera intrinsics (crop pixels)                                  |
| `root`         | (3,)        | wrist in the crop camera frame, metres                                |
| `box`          | (4,)        | the hand's box in crop pixels (validation: the 2D PCK normaliser)     |
| `view2`        | dict        | the seven keys above for the second view (``two_views`` only)         |
| `view2_R`      | (3, 3)      | view-2 camera coords = view2_R @ view-1 camera coords                 |
| `view2_affine` | (2, 3)      | view-1 crop pixels → view-2 crop pixels                               |

Augmentation is drawn from ``sample_rng(seed, epoch, index)``: independent of workers and
processes, so resume is exact. With ``augment=False`` the crop is the deterministic centre of the
training distribution (scale = mean of the scale range, no shift/rotation/jitter) — the crop the
inference predictor takes — for validation and evaluation.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from handrecon.data.schema import Sample
from handrecon.data.stream import SeededStream, build_datasets, sample_rng
from handrecon.data.synth.config import preset as synth_preset
from handrecon.data.synth.engine import get_engine
from handrecon.data.transforms import CropAugment, HandCrop, to_tensors, two_views
from handrecon.models.m3dhmr.model import CROP_SCALE_RANGE, INPUT_SIZE
from handrecon.registry import register_dataset

BATCH_KEYS = ("image", "joints_2d", "verts_3d", "joints_3d", "K", "root", "box")


def view_tensors(sample: Sample, num_vertices: int) -> dict[str, torch.Tensor]:
    """A cropped right-hand `Sample` → the model's per-view keys (`BATCH_KEYS`)."""
    if not sample.hands or sample.hands[0].keypoints_3d is None or sample.hands[0].vertices is None:
        raise ValueError(f"sample {sample.sample_id!r} has no 3D ground truth (keypoints_3d and vertices are "
                         f"required to train M3DHMR); write the data with `handrecon synth`")
    t = to_tensors(sample, num_vertices=num_vertices)
    return {"image": t["image"], "joints_2d": t["keypoints_2d"], "verts_3d": t["vertices"],
            "joints_3d": t["joints_3d"], "K": t["K"], "root": t["root"],
            "box": torch.from_numpy(np.asarray(sample.hands[0].box, np.float32))}


class CropPipeline:
    """Sample → training item (see module docstring). Shared by the map-style and stream datasets.

    input_size: crop side S (px). scale: range of the crop side over the longest box side. shift: max
    centre offset (fraction of the side). rotation_deg: max in-plane rotation. jitter: colour
    jitter strength (0: off). two_views: add the second view. augment: False gives the
    deterministic centre crop (no view 2).
    """

    def __init__(self, input_size: int = INPUT_SIZE, scale: tuple[float, float] = CROP_SCALE_RANGE, shift: float = 0.08,
                 rotation_deg: float = 45.0, jitter: float = 0.3, two_views: bool = True,
                 augment: bool = True, num_vertices: int = 778) -> None:
        self.augment = augment
        self.two_views = two_views and augment
        self.num_vertices = num_vertices
        crop = HandCrop(size=input_size, scale=tuple(scale), shift=shift, rotation_deg=rotation_deg) if augment else \
            HandCrop(size=input_size, scale=(float(np.mean(scale)),) * 2, shift=0.0, rotation_deg=0.0)
        self.crop_augment = CropAugment(crop=crop, flip_left=True, jitter=jitter if augment else 0.0)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> dict[str, Any]:
        if not self.two_views:
            return view_tensors(self.crop_augment(sample, rng), self.num_vertices)
        tv = two_views(sample, rng, self.crop_augment)
        item = view_tensors(tv.view1, self.num_vertices)
        item["view2"] = view_tensors(tv.view2, self.num_vertices)
        item["view2_R"] = torch.from_numpy(tv.R_12.astype(np.float32))
        item["view2_affine"] = torch.from_numpy(tv.affine_12.astype(np.float32))
        return item


@register_dataset("m3dhmr_crops")
class M3DHMRCrops(Dataset):
    """M3DHMR training items from a `handrecon synth` folder (map-style).

    root: the folder, or a list of folders (concatenated; one listed twice is drawn twice as often);
    split: "all" | "train" | "val" (the last `val_shards` shards of each folder are "val");
    limit: use only the first `limit` samples (e.g. a small validation subset); seed: the
    augmentation seed. Other keyword arguments go to `CropPipeline`.
    """

    def __init__(self, root: str | os.PathLike | list[str | os.PathLike], split: str = "all", val_shards: int = 1,
                 limit: int | None = None, seed: int = 0, **pipeline: Any) -> None:
        self.samples, roots = build_datasets("synthetic", root, split, val_shards=val_shards)
        self.length = len(self.samples) if limit is None else min(int(limit), len(self.samples))
        if self.length == 0:
            raise ValueError(f"{', '.join(roots)}: no finished shards in split {split!r}; render data with "
                             f"`handrecon synth --preset crop --num N --out {roots[0]}`")
        self.pipeline = CropPipeline(**pipeline)
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        epoch = self.epoch if self.pipeline.augment else 0
        return self.pipeline(self.samples[index], sample_rng(self.seed, epoch, index))


@register_dataset("m3dhmr_stream")
class M3DHMRStream(SeededStream):
    """Endless M3DHMR training items rendered on the fly by the synthetic engine.

    preset / image_size: the synthetic preset ("crop") and its render size (H, W); backgrounds:
    optional folder of background images; seed: stream seed (each item renders the engine's sample
    with an index drawn from its own generator, then augments with the same generator). Other
    keyword arguments go to `CropPipeline`. Needs ``train.steps_per_epoch``.
    """

    def __init__(self, seed: int = 0, preset: str = "crop", image_size: tuple[int, int] | None = None,
                 backgrounds: str | None = None, **pipeline: Any) -> None:
        super().__init__(seed)
        self.cfg = synth_preset(preset, **({"image_size": tuple(image_size)} if image_size else {}))
        self.backgrounds = backgrounds
        self.pipeline = CropPipeline(**pipeline)

    def make_sample(self, rng: np.random.Generator) -> dict[str, Any]:
        engine = get_engine(self.cfg, self.backgrounds)
        return self.pipeline(engine.sample(int(rng.integers(2**62)), self.seed), rng)
