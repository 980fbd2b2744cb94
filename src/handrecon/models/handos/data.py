"""Full-image training data of the HandOS family: ``scene_boxes`` (every hand's box, for the hand
detector) and ``handos_scenes`` (every hand's box, 2D and 3D keypoints and mesh, for HandOS).

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

from handrecon.data.schema import Sample
from handrecon.data.stream import build_datasets, sample_rng
from handrecon.data.transforms import appearance_shift, color_jitter
from handrecon.geometry.camera import scale_intrinsics, scale_points
from handrecon.geometry.boxes import box_targets
from handrecon.models.handos.detections import letterbox, resize_long_side
from handrecon.registry import register_dataset
from handrecon.utils.image import normalize_images


class SceneDataset(Dataset):
    """Whole images of a dataset in `data.loaders` (default: a synthetic-format folder written by
    ``handrecon synth --preset scene``). root: one folder or a list (concatenated); split: "all" | "train" | "val" (synthetic: the last
    `val_shards` shards are "val"); input_size: the square canvas in px; augment; limit: the first
    `limit` samples only; seed: the augmentation stream (``sample_rng(seed, epoch, index)``)."""

    def __init__(self, root: str | os.PathLike | list[str | os.PathLike], split: str = "all", val_shards: int = 1,
                 input_size: int = 384, augment: bool = True, limit: int | None = None, seed: int = 0,
                 source: str = "synthetic") -> None:
        kw = {"val_shards": val_shards} if source == "synthetic" else {}
        self.samples, roots = build_datasets(source, root, split, **kw)
        self.length = len(self.samples) if limit is None else min(int(limit), len(self.samples))
        if self.length == 0:
            raise ValueError(f"{', '.join(roots)}: no finished shards in split {split!r}; render scenes with "
                             "`handrecon synth --preset scene`")
        self.input_size, self.augment, self.seed, self.epoch = int(input_size), augment, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length


@register_dataset("scene_boxes")
class SceneBoxes(SceneDataset):
    """Boxes for the detector (arguments: `SceneDataset`); augment: flips, quarter turns and zoom-out,
    and with probability `color` a colour jitter (brightness, contrast and white balance ±30 %,
    saturation from 0.2, almost grey, to 1.8), then with probability `appearance` the colours
    taken away (grey or channels permuted) and a blur (`data.transforms.appearance_shift`). Only
    detectable hands (`HandAnnotation.detectable`) are targets (``labels``); ``gt_boxes`` holds
    every hand and ``gt_ignore`` marks the others, which validation ignores."""

    def __init__(self, *args: Any, color: float = 0.0, appearance: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.color, self.appearance = float(color), float(appearance)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        boxes = np.array([h.box for h in sample.hands], np.float64).reshape(-1, 4)
        detectable = np.array([h.detectable for h in sample.hands], bool)
        image, s = resize_long_side(sample.image, self.input_size)
        boxes = boxes * s
        if self.augment:
            rng = sample_rng(self.seed, self.epoch, index)
            image, boxes = augment_scene(image, boxes, self.input_size, rng)
            if self.color > 0 and rng.random() < self.color:
                image = color_jitter(image, rng, 0.3, 0.3, 0.8)
            if self.appearance > 0 and rng.random() < self.appearance:  # drawn only when asked: exact old streams
                image = appearance_shift(image, rng, max_blur=1.0)
        canvas = np.zeros((self.input_size, self.input_size, 3), np.uint8)
        canvas[: image.shape[0], : image.shape[1]] = image
        keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        boxes, ignore = boxes[keep], ~detectable[keep]
        return {
            "pixel_values": torch.from_numpy(normalize_images(canvas)),
            "labels": {"class_labels": torch.zeros(int((~ignore).sum()), dtype=torch.long),
                       "boxes": torch.as_tensor(box_targets(boxes[~ignore], (self.input_size, self.input_size)))},
            "gt_boxes": torch.as_tensor(boxes, dtype=torch.float32),
            "gt_ignore": torch.as_tensor(ignore),
        }

    @staticmethod
    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        return {"pixel_values": torch.stack([i["pixel_values"] for i in items]),
                "labels": [i["labels"] for i in items], "gt_boxes": [i["gt_boxes"] for i in items],
                "gt_ignore": [i["gt_ignore"] for i in items]}


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


@register_dataset("handos_scenes")
class HandOSScenes(SceneDataset):
    """Scenes for HandOS: the letterboxed image and every hand's labels in its pixels and camera.

    Arguments: `SceneDataset`; source: any loader of `data.loaders` with intrinsics (synthetic,
    freihand, ho3d, dexycb: the paper's 3D sets); input_size: the detector's square input. Augmentation (``sample_rng(seed, epoch, index)``, exact resume): a horizontal flip (1/2;
    the camera is mirrored with it: x -> -x in 3D, c_x -> W - 1 - c_x, so a right hand becomes a
    true left hand) and a zoom-out (1/2; the image shrunk to 50-100 % of the canvas at a random
    place, K scaled and shifted with it).

    Item: ``pixel_values`` (3, S, S), ``K`` (3, 3) input px, ``hands``: ``boxes`` (N, 4) input px,
    ``joints_2d`` (N, 21, 2) px, ``valid`` (N, 21), ``joints_3d`` (N, 21, 3) m, ``vertices``
    (N, V, 3) m (zeros where a hand has no mesh), ``has_3d`` (N,), ``sides`` N strings.
    """

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        rng = sample_rng(self.seed, self.epoch, index) if self.augment else None
        return scene_item(sample, self.input_size, rng)

    @staticmethod
    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        return {"pixel_values": torch.stack([i["pixel_values"] for i in items]),
                "K": torch.stack([i["K"] for i in items]), "hands": [i["hands"] for i in items]}


def scene_item(sample: Sample, size: int, rng: np.random.Generator | None = None) -> dict[str, Any]:
    """One `HandOSScenes` item from a sample with K (augmented when `rng` is given)."""
    if sample.K is None:
        raise ValueError(f"{sample.source} sample {sample.sample_id!r} has no intrinsics K; HandOS needs them")
    image = sample.image
    H, W = image.shape[:2]
    hands = sample.hands
    K = np.asarray(sample.K, np.float64).copy()
    j2 = np.array([h.keypoints_2d for h in hands], np.float64).reshape(-1, 21, 2)
    boxes = np.array([h.box for h in hands], np.float64).reshape(-1, 4)
    nv = next((len(h.vertices) for h in hands if h.vertices is not None), 0)
    j3 = np.array([h.keypoints_3d if h.keypoints_3d is not None else np.ones((21, 3)) for h in hands],
                  np.float64).reshape(-1, 21, 3)
    verts = np.array([h.vertices if h.vertices is not None else np.zeros((nv, 3)) for h in hands],
                     np.float64).reshape(len(hands), nv, 3)
    has_3d = np.array([h.vertices is not None and h.keypoints_3d is not None for h in hands], bool)
    sides = [h.side or "right" for h in hands]
    if rng is not None and rng.random() < 0.5:  # mirror the camera: image, 2D and 3D together
        image = image[:, ::-1]
        j2[..., 0] = W - 1 - j2[..., 0]
        boxes[:, [0, 2]] = W - 1 - boxes[:, [2, 0]]
        j3[..., 0] *= -1
        verts[..., 0] *= -1
        K[0, 2] = W - 1 - K[0, 2]
        K[0, 1] *= -1
        sides = ["left" if s == "right" else "right" for s in sides]
    canvas, s = letterbox(np.ascontiguousarray(image), size)
    K, j2 = scale_intrinsics(K, s), scale_points(j2, s)
    boxes = scale_points(boxes.reshape(-1, 2, 2), s).reshape(-1, 4)
    if rng is not None and rng.random() < 0.5:  # zoom out: shrink the real part, place it anywhere
        h, w = round(H * s), round(W * s)
        z = rng.uniform(0.5, 1.0)
        nh, nw = max(1, round(h * z)), max(1, round(w * z))
        small = np.asarray(Image.fromarray(canvas[:h, :w]).resize((nw, nh), Image.Resampling.BILINEAR))
        canvas = np.zeros_like(canvas)
        canvas[:h, :w] = small.reshape(-1, 3).mean(0).astype(np.uint8)
        y0, x0 = int(rng.integers(0, h - nh + 1)), int(rng.integers(0, w - nw + 1))
        canvas[y0: y0 + nh, x0: x0 + nw] = small
        zx, zy = nw / w, nh / h
        K = scale_intrinsics(K, zx, zy)
        K[0, 2] += x0
        K[1, 2] += y0
        j2 = scale_points(j2, zx, zy) + (x0, y0)
        boxes = (scale_points(boxes.reshape(-1, 2, 2), zx, zy) + (x0, y0)).reshape(-1, 4)
    valid = np.array([h.keypoints_valid for h in hands], bool).reshape(-1, 21)
    f32 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    return {"pixel_values": torch.from_numpy(normalize_images(canvas)), "K": f32(K),
            "hands": {"boxes": f32(boxes), "joints_2d": f32(j2), "valid": torch.as_tensor(valid),
                      "joints_3d": f32(j3), "vertices": f32(verts), "has_3d": torch.as_tensor(has_3d), "sides": sides}}
