"""Is this box a hand? The detector's box verifier (model ``hand_box_verifier``, data
``hand_box_candidates``): a second stage that re-scores the detector's candidates, as R-CNN's
second stage re-scores proposals.

The detector's network finds most hands at *some* score (89 % of the held-out and 60 % of the
foreign scene hands at IoU 0.5) but ranks many of them below fragments, loose boxes and background,
worst on small hands in the foreign scenes, while on crops where one hand fills the frame it does
well. So each of an image's `top_k` best candidates (after NMS) is cut out RoI-style
(`detections.roi_crops`: the box stretched to a square crop with `context` x its size around it,
so a box's edges sit at the same place in every crop and a fragment shows the hand running on past
them) and this network gives p_hand; the served score is ``(s_det * p_hand) ** exponent``
(`detections.verified_scores`), with the exponent fixed after training so that the served threshold
0.5 keeps the detector's precision and hand-free rate on its validation images
(`tools/calibrate_box_verifier.py`). A detector folder with ``box_verifier/`` uses it in `detect`
(torch and onnxruntime); the shipped detector has one (its model card, "A second stage").

With ``refine=True`` it is also R-CNN's box regressor: from the same crop it predicts Fast R-CNN
deltas (`geometry.boxes.box_deltas`) that move the candidate onto the hand it lies on, so that a
loose box next to a hand, or one of two boxes on it, becomes the hand's box and the second NMS
(`detections.verified_candidates`, on the moved boxes) removes the duplicate.

Network: the side head's ResNet-18 trunk (`side_head._FirstStack.trunk1`, the same names, so
``train.init_from`` the shipped side head copies it), global average pooling, one logit (and four
deltas with ``refine``).

Training data (``hand_box_candidates``): the detector's own candidates on its training scenes,
mined once with ``tools/mine_candidates.py`` (queries scoring >= 0.01 after NMS at 0.5, with the
scenes' boxes). The target of a candidate is its IoU with the best-overlapping detectable hand on a
ramp (`candidate_targets`: 0 up to IoU 0.35, 0.5 at 0.5, 1 from 0.65; boxes on hidden hands left
out), so that loose boxes next to a hand, which a first version trained on hard 0/1 labels rated
above the hand's own box on the foreign crops, learn to score lower than tight ones. Each draw picks
a scene folder uniformly, a found hand (IoU >= 0.5) or not with probability 1/2 (a folder of
hand-free scenes: never a hand), a found hand uniformly and any other candidate with probability
proportional to sqrt(s_det) (the hard ones more often); BCE against the target, plus with
``refine`` a smooth-L1 loss on the deltas (scaled by `DELTA_STD`, as Faster R-CNN's) of candidates
whose best detectable IoU is at least `REFINE_IOU` (`candidate_box_targets`); mirrored with
probability 1/2 and colour-jittered (augmentation from ``sample_rng(seed, epoch, index)``: exact
resume). The verifier is tied to the detector whose candidates it learnt: a retrained detector
needs it mined and trained again (`tools/train_box_verifier.sh`).

Several verifiers trained on the same candidates serve as one (`BoxVerifierEnsemble`, model
``hand_box_verifier_ensemble``: the mean p_hand and the mean moved box, one exported graph;
``tools/package_model.py A B --int8`` packages one). The shipped verifier is two: one from the side
head's trunk, one from the crop model's.
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
from handrecon.geometry.boxes import MAX_LOG_SCALE, apply_box_deltas, box_deltas, box_iou
from handrecon.models.backbones.resnet import RESNET_LAYERS, ResNet
from handrecon.models.handos.detections import (
    VERIFIER_DIR, VerifierSettings, read_roi_crops, read_verifier_settings, roi_crops,
)
from handrecon.utils.image import normalize_images
from handrecon.utils.io import read_arrays

FOUND_IOU, TARGET_RAMP = 0.5, (0.35, 0.65)
REFINE_IOU = 0.3  # candidates at least this close to a detectable hand learn to move onto it
DELTA_STD = (0.1, 0.1, 0.2, 0.2)  # the deltas' scale in the loss (Faster R-CNN's)


class _Trunk(nn.Module):
    """The side head's trunk (`side_head._FirstStack.trunk1`), same names."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.trunk1 = ResNet(RESNET_LAYERS["resnet18"], num_classes=0, width=width)


class BoxVerifier(nn.Module):
    """p_hand of RoI crops of candidate boxes, and with ``refine`` the deltas onto the hand (module doc).

    Input (B, 3, S, S) ImageNet-normalised RoI crops; `outputs` -> (B,) logits of "this box is a
    hand" and (B, 4) Fast R-CNN deltas (None without ``refine``). width: the ResNet-18's
    first-stage channels (32: the side head's); input_size: S px; context: the crop's extent over the
    box's, per axis; refine: predict deltas; box_weight: of the deltas' smooth-L1 loss against the BCE."""

    def __init__(self, width: int = 32, input_size: int = 128, context: float = 1.5, refine: bool = False,
                 box_weight: float = 1.0) -> None:
        super().__init__()
        self.encoder = _Trunk(width)
        channels = self.encoder.trunk1.stage_channels[-1]
        self.hand = nn.Linear(channels, 1)
        self.box = nn.Linear(channels, 4) if refine else None
        self.register_buffer("delta_std", torch.tensor(DELTA_STD), persistent=False)
        self.input_size, self.context = int(input_size), float(context)
        self.refine, self.box_weight = bool(refine), float(box_weight)

    def outputs(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, 3, S, S) crops -> logits (B,), deltas (B, 4) in `geometry.boxes.box_deltas` units or None."""
        trunk = self.encoder.trunk1
        pooled = trunk.forward_stages(trunk.forward_stem(pixels))[-1].mean((2, 3))
        deltas = self.box(pooled) * self.delta_std if self.box is not None else None
        return self.hand(pooled)[:, 0], deltas

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        logits, deltas = self.outputs(batch["pixel_values"])
        return {"logits": logits} if deltas is None else {"logits": logits, "deltas": deltas}

    def loss(self, out: dict[str, torch.Tensor], batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        bce = F.binary_cross_entropy_with_logits(out["logits"].float(), batch["hand"].float())
        if "deltas" not in out:
            return bce, {"bce": bce.detach()}
        box = self._box_loss(out["deltas"].float(), batch["deltas"].float(), batch["deltas_valid"].float())
        return bce + self.box_weight * box, {"bce": bce.detach(), "box_l1": box.detach()}

    def _box_loss(self, deltas: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        l1 = F.smooth_l1_loss(deltas / self.delta_std, target / self.delta_std, reduction="none", beta=1 / 9).sum(-1)
        return (l1 * valid).sum() / valid.sum().clamp(min=1)

    @torch.no_grad()
    def validate(self, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        """Accuracy (p > 0.5 against target >= 0.5, i.e. IoU >= 0.5) and the mean BCE over balanced
        draws; with ``refine`` the mean IoU with their hand of the candidates that have a delta
        target, before and after moving them."""
        right = total = 0
        bce = 0.0
        before, after = [], []
        for batch in batches:
            logits, deltas = self.outputs(batch["pixel_values"])
            logits, y = logits.float(), batch["hand"].float()
            right += int(((logits > 0) == (y >= 0.5)).sum())
            bce += float(F.binary_cross_entropy_with_logits(logits, y, reduction="sum"))
            total += len(y)
            if deltas is not None:
                valid = batch["deltas_valid"].bool().numpy()
                unit = np.tile([-0.5, -0.5, 0.5, 0.5], (int(valid.sum()), 1))  # IoU is invariant to the box's scale
                hand = apply_box_deltas(unit, batch["deltas"].numpy()[valid])
                before.append(np.diag(box_iou(unit, hand)))
                after.append(np.diag(box_iou(apply_box_deltas(unit, deltas.float().numpy()[valid]), hand)))
        metrics = {"accuracy": right / max(total, 1), "bce": bce / max(total, 1), "candidates": total}
        if before:
            metrics.update(iou_before=float(np.concatenate(before).mean()), iou_after=float(np.concatenate(after).mean()))
        return metrics

    def inference_spec(self) -> dict[str, Any]:
        return {"kind": "box_verifier", "input_size": self.input_size, "context": self.context, "refine": self.refine,
                "normalization": "imagenet"}


class BoxVerifierEnsemble(nn.Module):
    """Box verifiers read together, as one verifier (`BoxVerifier.outputs`): each member reads the
    same crops; p_hand is the mean of the members' and the moved box the mean of their moved boxes.
    Averaging boxes is exact in delta units: dx, dy average, and each log size ratio (clipped as
    `geometry.boxes.apply_box_deltas` clips it) becomes log mean exp. members: the members'
    `BoxVerifier` kwargs (`input_size`, `context` and `refine` shared)."""

    def __init__(self, members: list[dict[str, Any]]) -> None:
        super().__init__()
        if not isinstance(members, list) or len(members) < 2 or not all(isinstance(m, dict) for m in members):
            raise ValueError(f"members must be a list of two or more BoxVerifier kwargs; got {members!r}")
        self.members = nn.ModuleList(BoxVerifier(**kwargs) for kwargs in members)
        first = self.members[0]
        shared = {(m.input_size, m.context, m.refine) for m in self.members}
        if len(shared) > 1:
            raise ValueError(f"ensemble members must share input_size, context and refine; got {sorted(shared)}")
        self.input_size, self.context, self.refine = first.input_size, first.context, first.refine

    def outputs(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, 3, S, S) crops -> logits (B,) of the members' mean p_hand and deltas (B, 4) of their
        mean moved box (None without ``refine``)."""
        logits, deltas = zip(*(member.outputs(pixels) for member in self.members))
        stacked, log_n = torch.stack(logits), float(np.log(len(logits)))
        mean_logit = torch.logsumexp(F.logsigmoid(stacked), 0) - torch.logsumexp(F.logsigmoid(-stacked), 0)
        if not self.refine:
            return mean_logit, None
        d = torch.stack(deltas)
        sizes = torch.logsumexp(d[..., 2:].clamp(-MAX_LOG_SCALE, MAX_LOG_SCALE), 0) - log_n
        return mean_logit, torch.cat([d[..., :2].mean(0), sizes], -1)

    forward = BoxVerifier.forward  # a batch's crops through `outputs`, as a single verifier's

    def inference_spec(self) -> dict[str, Any]:
        return {**self.members[0].inference_spec(), "members": len(self.members)}


class BoxVerifierHead:
    """A trained `BoxVerifier` at inference with its serving settings (`detections.VerifierSettings`):
    ``verify(image, boxes)`` -> p_hand (N,) and the boxes (N, 4) moved by its deltas (unchanged
    without ``refine``)."""

    def __init__(self, model: BoxVerifier | BoxVerifierEnsemble, settings: VerifierSettings, source: str = "") -> None:
        self.model, self.settings, self.source = model.eval(), settings, source

    def verify(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """p_hand (N,) and the moved boxes (N, 4) of boxes (N, 4) px (`detections.read_roi_crops`)."""
        return read_roi_crops(self._outputs, image, boxes, self.model.input_size, self.model.context)

    @torch.no_grad()
    def _outputs(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        logits, deltas = self.model.outputs(torch.from_numpy(crops))
        return logits.numpy(), None if deltas is None else deltas.numpy()


def load_box_verifier(folder: str | Path) -> BoxVerifierHead | None:
    """The box verifier (`load_verifier_network`) saved in ``folder/box_verifier`` (a checkpoint
    directory with serving.json), or None if there is none."""
    path = Path(folder) / VERIFIER_DIR
    if not (path / "card.json").is_file():
        return None
    return BoxVerifierHead(load_verifier_network(path), read_verifier_settings(path), str(path))


def load_verifier_network(path: str | Path) -> BoxVerifier | BoxVerifierEnsemble:
    """The box-verifier network (a `BoxVerifier` or a `BoxVerifierEnsemble`) of the checkpoint at
    `path`; ValueError if it holds another model, CheckpointError if it cannot be read."""
    model, _ = load_model(path)
    if not isinstance(model, (BoxVerifier, BoxVerifierEnsemble)):
        raise ValueError(f"{path}: holds a {type(model).__name__}, not a box verifier")
    return model


def candidate_targets(boxes: np.ndarray, gt: np.ndarray, detectable: np.ndarray) -> np.ndarray:
    """(N,) training targets of one image's candidate boxes (N, 4) against its hands gt (G, 4) with
    their `detectable` flags (G,): the IoU with the best-overlapping detectable hand on a ramp,
    0 at IoU <= 0.35, 0.5 at 0.5 (where a box starts to count as found), 1 at >= 0.65, so that a
    loose box near a hand scores below a tight one; NaN (left out) for a box on a hidden hand."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    gt = np.asarray(gt, np.float64).reshape(-1, 4)
    if not len(gt):
        return np.zeros(len(boxes))
    iou = box_iou(boxes, gt)
    best_detectable = np.where(np.asarray(detectable, bool)[None], iou, 0.0).max(1)
    lo, hi = TARGET_RAMP
    target = np.clip((best_detectable - lo) / (hi - lo), 0.0, 1.0)
    target[(iou.max(1) >= FOUND_IOU) & (best_detectable < FOUND_IOU)] = np.nan
    return target


def candidate_box_targets(boxes: np.ndarray, gt: np.ndarray, detectable: np.ndarray) -> np.ndarray:
    """(N, 4) delta targets (`geometry.boxes.box_deltas`) of one image's candidate boxes (N, 4)
    onto the detectable hand of gt (G, 4) each overlaps most, for those whose IoU with it is at least
    `REFINE_IOU`; NaN rows for the rest."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    targets = np.full((len(boxes), 4), np.nan)
    gt = np.asarray(gt, np.float64).reshape(-1, 4)
    if not len(gt) or not len(boxes):
        return targets
    iou = np.where(np.asarray(detectable, bool)[None], box_iou(boxes, gt), 0.0)
    best = iou.argmax(1)
    near = iou[np.arange(len(boxes)), best] >= REFINE_IOU
    targets[near] = box_deltas(boxes[near], gt[best[near]])
    return targets


CANDIDATE_ARRAYS = ("boxes", "scores", "image", "gt", "gt_image", "gt_detectable", "n")


def read_candidates(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The candidates `tools/mine_candidates.py` wrote ({name: array} of `CANDIDATE_ARRAYS`), read without
    pickle; ValueError naming the file where it is missing, damaged or lacks an array."""
    arrays = read_arrays(path, "a candidates file of tools/mine_candidates.py", "mine it with tools/mine_candidates.py",
                         CANDIDATE_ARRAYS)
    return {k: arrays[k] for k in CANDIDATE_ARRAYS}


class _Folder:
    """One scene folder and its mined candidates, split by image: the last `val_images` are validation."""

    def __init__(self, root: str, candidates: str, split: str, val_images: int) -> None:
        self.scenes = build_dataset("synthetic", root, "all")
        mined = read_candidates(candidates)
        if int(mined["n"]) != len(self.scenes):
            raise ValueError(f"{candidates}: mined from {int(mined['n'])} images, {root} holds {len(self.scenes)}; "
                             "mine it again with tools/mine_candidates.py")
        if np.any(np.diff(mined["image"]) < 0) or np.any(np.diff(mined["gt_image"]) < 0):
            raise ValueError(f"{candidates}: candidates are not in image order; mine it again with tools/mine_candidates.py")
        target = np.full(len(mined["scores"]), np.nan)
        deltas = np.full((len(target), 4), np.nan)
        images = np.arange(int(mined["n"]) + 1)
        cand_at, gt_at = np.searchsorted(mined["image"], images), np.searchsorted(mined["gt_image"], images)
        for i in np.flatnonzero(np.diff(cand_at)):  # images with candidates: slices, not scans
            k, g = slice(cand_at[i], cand_at[i + 1]), slice(gt_at[i], gt_at[i + 1])
            target[k] = candidate_targets(mined["boxes"][k], mined["gt"][g], mined["gt_detectable"][g])
            deltas[k] = candidate_box_targets(mined["boxes"][k], mined["gt"][g], mined["gt_detectable"][g])
        cut = len(self.scenes) - int(val_images)
        in_split = (mined["image"] >= cut) if split == "val" else (mined["image"] < cut)
        self.boxes, self.image, self.target, self.deltas = mined["boxes"].astype(np.float64), mined["image"], target, deltas
        self.hands = np.flatnonzero(in_split & (target >= 0.5))
        self.others = np.flatnonzero(in_split & (target < 0.5))
        weight = np.sqrt(mined["scores"][self.others].astype(np.float64))
        self.other_p = weight / weight.sum() if len(self.others) else weight
        if not len(self.others):  # a folder without hands (hand-free scenes) gives non-hands only
            raise ValueError(f"{candidates}: no non-hand candidates in split {split!r}; mine more scenes")


class HandBoxCandidates(Dataset):
    """Balanced hand / non-hand draws of detector candidates as RoI crops (module doc). One item:
    ``pixel_values`` (3, S, S), ``hand`` () the target in [0, 1] (`candidate_targets`), ``deltas``
    (4,) onto its hand and ``deltas_valid`` () 0/1 (`candidate_box_targets`; zeros when 0). root /
    candidates: scene folders and their mined candidate files (`tools/mine_candidates.py`), one
    each; split: "train" or "val" (the last `val_images` images of each folder); num: draws per
    epoch; augment: mirror and colour."""

    def __init__(self, root: str | os.PathLike | list[str | os.PathLike],
                 candidates: str | os.PathLike | list[str | os.PathLike], split: str = "train", val_images: int = 500,
                 num: int = 16000, input_size: int = 128, context: float = 1.5, augment: bool = True, seed: int = 0) -> None:
        roots = [os.fspath(r) for r in (root if isinstance(root, (list, tuple)) else [root])]
        files = [os.fspath(c) for c in (candidates if isinstance(candidates, (list, tuple)) else [candidates])]
        if len(roots) != len(files) or not roots:
            raise ValueError(f"hand_box_candidates: give one candidates file per scene folder ({len(roots)} folders, "
                             f"{len(files)} candidate files)")
        if split not in ("train", "val"):
            raise ValueError(f"hand_box_candidates: split must be 'train' or 'val', not {split!r}")
        self.folders = [_Folder(r, c, split, val_images) for r, c in zip(roots, files)]
        if not any(len(f.hands) for f in self.folders):
            raise ValueError(f"hand_box_candidates: no hand candidates in split {split!r} of {roots}; mine scenes with hands")
        self.num, self.input_size, self.context = int(num), int(input_size), float(context)
        self.augment, self.seed, self.epoch = augment, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = sample_rng(self.seed, self.epoch if self.augment else 0, index)
        folder = self.folders[rng.integers(len(self.folders))]
        hand = bool(rng.random() < 0.5) and len(folder.hands) > 0
        j = rng.choice(folder.hands) if hand else rng.choice(folder.others, p=folder.other_p)
        image = folder.scenes[int(folder.image[j])].image
        crop = roi_crops(image, folder.boxes[j:j + 1], self.input_size, self.context)[0]
        deltas = folder.deltas[j].copy()
        valid = bool(np.isfinite(deltas).all())
        if self.augment:
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
                deltas[0] = -deltas[0]  # mirrored about the box's centre: the hand's shift flips
            crop = np.clip(crop * rng.uniform(0.8, 1.2, (1, 1, 3)) + rng.uniform(-20, 20), 0, 255).astype(np.uint8)
        return {"pixel_values": torch.from_numpy(normalize_images(crop[None])[0]),
                "hand": torch.tensor(float(folder.target[j])),
                "deltas": torch.from_numpy(np.where(valid, deltas, 0.0).astype(np.float32)),
                "deltas_valid": torch.tensor(float(valid))}
