"""Left or right for a detected hand: the detector's side head (model ``hand_side``).

handrecon's hand detector finds hands of both sides with one class (as HandOS's prompt "hand."
does), and its final query features carry no side (a logistic probe on them scored 49 % on
held-out scenes). A crop model such as M3DHMR needs the side before it runs (it sees left hands
mirrored). So the two-stage pipeline asks this small CNN: the square crop around each detected box
(side = `box_scale` x the box's long side, `input_size` px), ImageNet-normalised, in; the
probability that the hand is a left hand out. HandOS itself never uses it: its side comes from
the mesh normals (§3.5).

Training data (``hand_side_crops``): every hand of a synthetic scene folder (the detector's
training scenes), its box jittered in scale and position as a detector's boxes are, mirrored with
probability 1/2 with the label swapped (a mirrored left hand is a right hand, exactly), small
colour jitter; augmentation from ``sample_rng(seed, epoch, index)`` (exact resume).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from handrecon.checkpoint import load_model
from handrecon.data.loaders import build_dataset
from handrecon.data.stream import sample_rng
from handrecon.models.handos.detections import SIDE_HEAD_DIR, box_crops
from handrecon.utils.image import normalize_images

class SideClassifier(nn.Module):
    """A small CNN: (B, 3, S, S) normalised crops -> (B,) logits of "left hand".

    Four stride-2 stages of two 3x3 conv-BN-ReLU each (widths w, 2w, 4w, 8w), global average
    pooling, one linear layer. input_size: S px; box_scale: crop side over the box's long side."""

    def __init__(self, width: int = 24, input_size: int = 96, box_scale: float = 1.25) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c in (width, 2 * width, 4 * width, 8 * width):
            layers += [nn.Conv2d(c_in, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, 1)
        self.input_size, self.box_scale = int(input_size), float(box_scale)

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(pixels).mean((2, 3)))[:, 0]

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.logits(batch["pixel_values"])

    def loss(self, logits: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss = F.binary_cross_entropy_with_logits(logits.float(), batch["left"].float())
        return loss, {"bce": loss.detach()}

    @torch.no_grad()
    def validate(self, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        right = total = 0
        for batch in batches:
            right += int(((self.logits(batch["pixel_values"]) > 0) == batch["left"].bool()).sum())
            total += len(batch["left"])
        return {"side_accuracy": right / max(total, 1), "hands": float(total)}

    def inference_spec(self) -> dict[str, Any]:
        return {"kind": "side_head", "input_size": self.input_size, "box_scale": self.box_scale,
                "normalization": "imagenet"}


class SideHead:
    """A trained `SideClassifier` at inference: ``sides(image, boxes)`` -> (["left" | "right"], p_left (N,))."""

    def __init__(self, model: SideClassifier, source: str = "") -> None:
        self.model, self.source = model.eval(), source

    @torch.no_grad()
    def sides(self, image: np.ndarray, boxes: np.ndarray) -> tuple[list[str], np.ndarray]:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if not len(boxes):
            return [], np.zeros(0)
        crops = box_crops(image, boxes, self.model.input_size, self.model.box_scale)
        p_left = torch.sigmoid(self.model.logits(torch.from_numpy(normalize_images(crops)))).numpy().astype(np.float64)
        return ["left" if p > 0.5 else "right" for p in p_left], p_left


def load_side_head(folder: str | Path) -> SideHead | None:
    """The side head saved in ``folder/side_head`` (a checkpoint directory), or None if there is none."""
    path = Path(folder) / SIDE_HEAD_DIR
    if not (path / "card.json").is_file():
        return None
    model, _ = load_model(path)
    if not isinstance(model, SideClassifier):
        raise ValueError(f"{path}: holds a {type(model).__name__}, not a side classifier")
    return SideHead(model, str(path))


class HandSideCrops(Dataset):
    """Every hand of a scene folder as a side-classifier crop (module doc). One item = one image's
    hands: ``pixel_values`` (N, 3, S, S), ``left`` (N,) 0/1; `collate` concatenates images.
    root, split, val_shards, limit, seed: as `SceneDataset`; augment: jitter, mirror, colour."""

    def __init__(self, root: str | os.PathLike, split: str = "all", val_shards: int = 1, input_size: int = 96,
                 box_scale: float = 1.25, augment: bool = True, limit: int | None = None, seed: int = 0) -> None:
        self.samples = build_dataset("synthetic", root, split, val_shards=val_shards)
        self.length = len(self.samples) if limit is None else min(int(limit), len(self.samples))
        if self.length == 0:
            raise ValueError(f"{root}: no finished shards in split {split!r}; render scenes with "
                             "`handrecon synth --preset scene`")
        self.input_size, self.box_scale, self.augment, self.seed, self.epoch = int(input_size), box_scale, augment, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.samples[index]
        hands = [h for h in sample.hands if h.side is not None]
        boxes = np.array([h.box for h in hands], np.float64).reshape(-1, 4)
        left = np.array([h.side == "left" for h in hands], np.float32)
        n, scale, shifts = len(boxes), self.box_scale, None
        if self.augment and n:
            rng = sample_rng(self.seed, self.epoch, index)
            scale = self.box_scale * rng.uniform(0.85, 1.25, n)
            shifts = rng.uniform(-0.08, 0.08, (n, 2))
        crops = box_crops(sample.image, boxes, self.input_size, scale, shifts)
        if self.augment and n:
            mirror = rng.random(n) < 0.5
            crops[mirror] = crops[mirror, :, ::-1]
            left = np.where(mirror, 1.0 - left, left).astype(np.float32)
            gain = rng.uniform(0.8, 1.2, (n, 1, 1, 3))
            crops = np.clip(crops * gain + rng.uniform(-20, 20, (n, 1, 1, 1)), 0, 255).astype(np.uint8)
        return {"pixel_values": torch.from_numpy(normalize_images(crops)), "left": torch.from_numpy(left)}

    @staticmethod
    def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {k: torch.cat([i[k] for i in items]) for k in ("pixel_values", "left")}
