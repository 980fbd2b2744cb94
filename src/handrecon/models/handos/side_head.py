"""Left or right for a detected hand: the detector's side head (model ``hand_side``).

handrecon's hand detector finds hands of both sides with one class (as HandOS's prompt "hand."
does), and its final query features carry no side (a logistic probe on them scored 49 % on
held-out scenes). A crop model such as M3DHMR needs the side before it runs (it sees left hands
mirrored). So the two-stage pipeline asks this network: the square crop around each detected box
(side = `box_scale` x the box's long side, `input_size` px), ImageNet-normalised, in; the logit
that the hand is a left hand out. HandOS itself never uses it: its side comes from the mesh
normals (§3.5).

**The side is a parity of two cues.** A left hand's image is a right hand's mirrored, so the side
is fixed by two things the image shows: the *chirality* of the hand in the image (going wrist ->
little-finger base -> index-finger base, a turn one way or the other: `chirality`, from 2D
keypoints) and whether the *palm faces the camera* (`palm_facing`, 3D). For the right hand the
palm lies on the side of n = (little base - wrist) x (index base - wrist) (`hand.pose`); the image
turn has the sign of n . wrist (a triple product), so

    left  <=>  palm_facing == chirality          (exact, with facing measured from the wrist;
                                                  pinned by tests/test_side_head.py)

Each cue alone is uncorrelated with the side under mirror augmentation (a mirror flips the
chirality and the side, not the facing), so a classifier trained on the side label alone gets no
signal until it has found both — a parity problem; the first side head (a CNN trained on the side
label for 600 steps) stayed at chance, and so did the same network started from the crop model's
encoder. This one learns the cues: a ResNet with a top-down decoder and landmark head (the layout,
names and initial weights of M3DHMR's first stack, `train.init_from`) regresses the 21 keypoints
(L1, as M3DHMR), and a logistic head on its deepest pooled features predicts the facing (BCE). The
side logit is the facing logit with its sign set by the chirality of the predicted keypoints.

Training data (``hand_side_crops``): every detectable hand of synthetic scene folders (the
detector's training scenes), its box jittered in scale and position as a detector's boxes are,
mirrored with probability 1/2 (keypoints mirrored, side swapped, facing kept), small colour
jitter; augmentation from ``sample_rng(seed, epoch, index)`` (exact resume).
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
from handrecon.data.schema import HandAnnotation
from handrecon.data.stream import build_datasets, sample_rng
from handrecon.data.transforms import appearance_shift
from handrecon.geometry.crop import transform_points
from handrecon.hand.keypoints import OP21_NAMES
from handrecon.models.backbones.resnet import RESNET_LAYERS, ResNet
from handrecon.models.backbones.stacked import TopDownDecoder
from handrecon.models.handos.detections import SIDE_HEAD_DIR, box_crop_affines, read_box_crops, warp_crops
from handrecon.models.heads import LandmarkHead, pixels_to_normalized
from handrecon.utils.image import normalize_images

WRIST, INDEX_BASE, LITTLE_BASE = (OP21_NAMES.index(n) for n in ("wrist", "index_mcp", "little_mcp"))


def chirality(uv):
    """(..., 21, 2) image keypoints (numpy or torch, x right, y down) -> (...,) bool: the turn
    wrist -> little-finger base -> index-finger base is clockwise on screen (cross product > 0)."""
    a, b = uv[..., LITTLE_BASE, :] - uv[..., WRIST, :], uv[..., INDEX_BASE, :] - uv[..., WRIST, :]
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0] > 0


def palm_facing(joints: np.ndarray, side: str) -> bool:
    """(21, 3) camera-frame joints (m, OP21) of a `side` hand -> whether its palm faces the camera,
    seen from the wrist (the palm side of n = (little base - wrist) x (index base - wrist) for a
    right hand, of -n for a left one)."""
    j = np.asarray(joints, np.float64)
    n = np.cross(j[LITTLE_BASE] - j[WRIST], j[INDEX_BASE] - j[WRIST])
    return bool((n @ -j[WRIST]) * (1.0 if side == "right" else -1.0) > 0)


def side_of(facing, chiral):
    """The side the two cues give (bool or bool arrays): True = left (module doc)."""
    return facing == chiral


class _FirstStack(nn.Module):
    """M3DHMR's first stack (`backbones.stacked.StackedResNet`: trunk1, decoder1, head1), same names."""

    def __init__(self, width: int, decoder_width: int) -> None:
        super().__init__()
        self.trunk1 = ResNet(RESNET_LAYERS["resnet18"], num_classes=0, width=width)
        self.decoder1 = TopDownDecoder(self.trunk1.stage_channels, decoder_width)
        self.head1 = LandmarkHead(decoder_width)


class SideClassifier(nn.Module):
    """Keypoints and palm facing of a hand crop, and the side they give (module doc).

    Input (B, 3, S, S) ImageNet-normalised crops. `keypoints_and_facing` -> uv (B, 21, 2) in the
    crop's normalised coordinates ((px + 0.5) / S), facing logits (B,); `logits` -> (B,) logits of
    "left hand". width: the ResNet-18's first-stage channels (32: M3DHMR's, so its first stack
    initialises this one); input_size: S px; box_scale: crop side over the box's long side;
    keypoint_weight: of the L1 keypoint loss against the facing BCE."""

    def __init__(self, width: int = 32, input_size: int = 128, box_scale: float = 1.325, decoder_width: int = 64,
                 keypoint_weight: float = 10.0) -> None:
        super().__init__()
        self.encoder = _FirstStack(width, decoder_width)
        self.facing = nn.Linear(self.encoder.trunk1.stage_channels[-1], 1)
        self.input_size, self.box_scale, self.keypoint_weight = int(input_size), float(box_scale), float(keypoint_weight)

    def keypoints_and_facing(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, S, S) crops -> uv (B, 21, 2) crop-normalised keypoints, facing logits (B,)."""
        enc = self.encoder
        feats = enc.trunk1.forward_stages(enc.trunk1.forward_stem(pixels))
        _, uv = enc.head1(enc.decoder1(feats))
        return uv, self.facing(feats[-1].mean((2, 3)))[:, 0]

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        uv, facing = self.keypoints_and_facing(pixels)
        return torch.where(chirality(uv), facing, -facing)  # left <=> facing == chirality (`side_of`)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        uv, facing = self.keypoints_and_facing(batch["pixel_values"])
        return {"uv": uv, "facing": facing}

    def loss(self, out: dict[str, torch.Tensor], batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        valid = batch["keypoints_valid"].float()
        l1 = ((out["uv"].float() - batch["uv"]).abs().sum(-1) * valid).sum() / valid.sum().clamp(min=1)
        bce = F.binary_cross_entropy_with_logits(out["facing"].float(), batch["facing"].float())
        return self.keypoint_weight * l1 + bce, {"uv_l1": l1.detach(), "facing_bce": bce.detach()}

    @torch.no_grad()
    def validate(self, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        """Side, facing and chirality accuracy, and the mean keypoint error (crop px) of valid keypoints."""
        right = np.zeros(3)
        err = total = valid_n = 0.0
        for batch in batches:
            uv, facing = self.keypoints_and_facing(batch["pixel_values"])
            f, c = (facing > 0).numpy(), chirality(uv).numpy()
            right += [(side_of(f, c) == batch["left"].bool().numpy()).sum(), (f == batch["facing"].bool().numpy()).sum(),
                      (c == chirality(batch["uv"]).numpy()).sum()]
            valid = batch["keypoints_valid"].float()
            err += float(((uv - batch["uv"]).norm(dim=-1) * valid).sum()) * self.input_size
            valid_n += float(valid.sum())
            total += len(f)
        acc = right / max(total, 1)
        return {"side_accuracy": acc[0], "facing_accuracy": acc[1], "chirality_accuracy": acc[2],
                "keypoint_error_px": err / max(valid_n, 1), "hands": total}

    def inference_spec(self) -> dict[str, Any]:
        return {"kind": "side_head", "input_size": self.input_size, "box_scale": self.box_scale,
                "normalization": "imagenet"}


class SideHead:
    """A trained `SideClassifier` at inference: ``sides(image, boxes)`` -> (["left" | "right"], p_left (N,))."""

    def __init__(self, model: SideClassifier, source: str = "") -> None:
        self.model, self.source = model.eval(), source

    def sides(self, image: np.ndarray, boxes: np.ndarray) -> tuple[list[str], np.ndarray]:
        """(["left" | "right"], p_left (N,)) of boxes (N, 4) px (`detections.read_box_crops`)."""
        return read_box_crops(self._logits, image, boxes, self.model.input_size, self.model.box_scale)

    @torch.no_grad()
    def _logits(self, crops: np.ndarray) -> np.ndarray:
        return self.model.logits(torch.from_numpy(crops)).numpy()


def load_side_head(folder: str | Path) -> SideHead | None:
    """The side head saved in ``folder/side_head`` (a checkpoint directory), or None if there is none."""
    path = Path(folder) / SIDE_HEAD_DIR
    if not (path / "card.json").is_file():
        return None
    model, _ = load_model(path)
    if not isinstance(model, SideClassifier):
        raise ValueError(f"{path}: holds a {type(model).__name__}, not a side classifier")
    return SideHead(model, str(path))


def _usable(hand: HandAnnotation) -> bool:
    return hand.side is not None and hand.keypoints_3d is not None and hand.detectable


class HandSideCrops(Dataset):
    """Every detectable hand with a side and 3D joints in scene folders, as side-head crops (module
    doc). One item = one image's hands: ``pixel_values`` (N, 3, S, S), ``uv`` (N, 21, 2) crop-
    normalised keypoints, ``keypoints_valid`` (N, 21), ``facing`` and ``left`` (N,) 0/1; `collate`
    concatenates images. root: one folder or a list (concatenated); split, val_shards, limit, seed:
    as `SceneDataset`; augment: box jitter, mirror, colour; appearance: the share of augmented
    crops whose colours are taken away and which are blurred (`data.transforms.appearance_shift`),
    so that the side is read from shape rather than the renderer's skin texture."""

    def __init__(self, root: str | os.PathLike | list[str | os.PathLike], split: str = "all", val_shards: int = 1,
                 input_size: int = 128, box_scale: float = 1.325, augment: bool = True, limit: int | None = None,
                 seed: int = 0, appearance: float = 0.0) -> None:
        self.samples, roots = build_datasets("synthetic", root, split, val_shards=val_shards)
        self.length = len(self.samples) if limit is None else min(int(limit), len(self.samples))
        if self.length == 0:
            raise ValueError(f"{', '.join(roots)}: no finished shards in split {split!r}; render scenes "
                             "with `handrecon synth --preset scene`")
        self.input_size, self.box_scale, self.augment, self.seed, self.epoch = int(input_size), box_scale, augment, seed, 0
        self.appearance = float(appearance)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.samples[index]
        hands = [h for h in sample.hands if _usable(h)]
        n, S = len(hands), self.input_size
        rng = sample_rng(self.seed, self.epoch, index) if self.augment else None
        scales, shifts = np.full(n, self.box_scale), np.zeros((n, 2))
        for i in range(n if rng is not None else 0):  # per hand: its scale, then its shift
            scales[i], shifts[i] = self.box_scale * rng.uniform(0.85, 1.25), rng.uniform(-0.08, 0.08, 2)
        affines = box_crop_affines(np.array([h.box for h in hands]), S, scales, shifts)
        crops = warp_crops(sample.image, affines, S)
        uv_px = transform_points(np.array([h.keypoints_2d for h in hands], np.float64).reshape(n, 21, 2), affines)
        valid = np.array([h.keypoints_valid for h in hands], bool).reshape(n, 21)
        facing = np.array([palm_facing(h.keypoints_3d, h.side) for h in hands], np.float32)
        left = np.array([h.side == "left" for h in hands], np.float32)
        if rng is not None and n:
            mirror = rng.random(n) < 0.5
            crops[mirror] = crops[mirror, :, ::-1]
            uv_px[mirror, :, 0] = S - 1 - uv_px[mirror, :, 0]
            left = np.where(mirror, 1.0 - left, left).astype(np.float32)
            gain = rng.uniform(0.8, 1.2, (n, 1, 1, 3))
            crops = np.clip(crops * gain + rng.uniform(-20, 20, (n, 1, 1, 1)), 0, 255).astype(np.uint8)
            if self.appearance > 0:  # drawn only when asked: earlier configs keep their exact stream
                for i in np.flatnonzero(rng.random(n) < self.appearance):
                    crops[i] = appearance_shift(crops[i], rng)
        uv = pixels_to_normalized(torch.from_numpy(uv_px), S, S).float()
        return {"pixel_values": torch.from_numpy(normalize_images(crops)), "uv": uv,
                "keypoints_valid": torch.from_numpy(valid), "facing": torch.from_numpy(facing),
                "left": torch.from_numpy(left)}

    @staticmethod
    def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {k: torch.cat([i[k] for i in items]) for k in ("pixel_values", "uv", "keypoints_valid", "facing", "left")}
