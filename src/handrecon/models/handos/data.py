"""Detection data of the hand detector: full images with every hand's box, registered as
``scene_boxes`` for `handrecon train`.

    data:
      train: {name: scene_boxes, kwargs: {root: .cache/detector/train, split: train, input_size: 384}}
      val:   {name: scene_boxes, kwargs: {root: .cache/detector/train, split: val, augment: false}}

Reads a folder written by ``handrecon synth --preset scene`` (any dataset in handrecon's
synthetic format). Each image is resized to a long side of `input_size` px (the detector's own
`resize_long_side`) and padded at the bottom and right to input_size x input_size, as the frozen
detector's `prepare` does with ``square=True``. Training augmentation, drawn from
``sample_rng(seed, epoch, index)`` (exact resume): horizontal flip, quarter turns (portrait
inputs), and zoom-out (the image shrunk to 50-100 % of the canvas: smaller hands). Images without
a hand are kept (they teach the detector to say nothing).

Item: ``pixel_values`` (3, S, S) ImageNet-normalised, ``labels`` {``class_labels`` (N,) zeros,
``boxes`` (N, 4) cxcywh normalised} (RT-DETR's targets), ``gt_boxes`` (N, 4) x1, y1, x2, y2 px.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from handrecon.data.loaders import build_dataset
from handrecon.data.stream import sample_rng
from handrecon.models.handos.detector import box_targets, resize_long_side
from handrecon.registry import register_dataset
from handrecon.utils.image import normalize_images


@register_dataset("scene_boxes")
class SceneBoxes(Dataset):
    """root: a synthetic-format folder; split: "all" | "train" | "val" (the last `val_shards`
    shards); input_size: the square canvas in px; augment: flips, quarter turns and zoom-out;
    limit: the first `limit` samples only; seed: the augmentation stream."""

    def __init__(self, root: str | os.PathLike, split: str = "all", val_shards: int = 1, input_size: int = 384,
                 augment: bool = True, limit: int | None = None, seed: int = 0) -> None:
        self.samples = build_dataset("synthetic", root, split, val_shards=val_shards)
        self.length = len(self.samples) if limit is None else min(int(limit), len(self.samples))
        if self.length == 0:
            raise ValueError(f"{root}: no finished shards in split {split!r}; render scenes with "
                             "`handrecon synth --preset scene`")
        self.input_size, self.augment, self.seed, self.epoch = int(input_size), augment, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        boxes = np.array([h.box for h in sample.hands], np.float64).reshape(-1, 4)
        image, s = resize_long_side(sample.image, self.input_size)
        boxes = boxes * s
        if self.augment:
            image, boxes = augment_scene(image, boxes, self.input_size, sample_rng(self.seed, self.epoch, index))
        canvas = np.zeros((self.input_size, self.input_size, 3), np.uint8)
        canvas[: image.shape[0], : image.shape[1]] = image
        keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        boxes = boxes[keep]
        return {
            "pixel_values": torch.from_numpy(normalize_images(canvas)),
            "labels": {"class_labels": torch.zeros(len(boxes), dtype=torch.long),
                       "boxes": box_targets(boxes, (self.input_size, self.input_size))},
            "gt_boxes": torch.as_tensor(boxes, dtype=torch.float32),
        }

    @staticmethod
    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        return {"pixel_values": torch.stack([i["pixel_values"] for i in items]),
                "labels": [i["labels"] for i in items], "gt_boxes": [i["gt_boxes"] for i in items]}


def augment_scene(image: np.ndarray, boxes: np.ndarray, size: int, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Flip (1/2), quarter turn (1/4) and zoom-out (1/2: shrunk to 50-100 %) of an image (h, w, 3)
    with long side <= size, and its boxes (N, 4) x1, y1, x2, y2 px."""
    h, w = image.shape[:2]
    boxes = boxes.copy()
    if rng.random() < 0.5:
        image = image[:, ::-1]
        boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
    if rng.random() < 0.25:  # a quarter turn clockwise: (x, y) -> (h - y, x)
        image = np.rot90(image, k=-1)
        boxes = np.stack([h - boxes[:, 3], boxes[:, 0], h - boxes[:, 1], boxes[:, 2]], 1)
    if rng.random() < 0.5:
        s = rng.uniform(0.5, 1.0)
        nh, nw = max(1, round(image.shape[0] * s)), max(1, round(image.shape[1] * s))
        small = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((nw, nh), Image.Resampling.BILINEAR))
        canvas = np.zeros((min(size, image.shape[0]), min(size, image.shape[1]), 3), np.uint8)
        canvas[...] = small.reshape(-1, 3).mean(0).astype(np.uint8)  # pad with the image's mean colour
        y0, x0 = int(rng.integers(0, canvas.shape[0] - nh + 1)), int(rng.integers(0, canvas.shape[1] - nw + 1))
        canvas[y0: y0 + nh, x0: x0 + nw] = small
        sx, sy = nw / image.shape[1], nh / image.shape[0]
        image = canvas
        boxes = boxes * [sx, sy, sx, sy] + [x0, y0, x0, y0]
    return np.ascontiguousarray(image), boxes
