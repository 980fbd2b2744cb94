"""Keypoint losses (batched, vectorised): OKS (HandOS eq. 9 and 11).

OKS = Σ_k v_k exp(-d_k² / (2 · area · (2σ_k)²)) / (Σ_k v_k + ε), with keypoints and the box area
in the same units (HandOS normalises both by the image size); the loss is 1 - OKS.
"""

from __future__ import annotations

import torch

from handrecon.hand.keypoints import COCO_WHOLEBODY_HAND_SIGMAS


def oks(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor, area: torch.Tensor,
        sigmas: tuple[float, ...] = COCO_WHOLEBODY_HAND_SIGMAS, eps: float = 1e-6) -> torch.Tensor:
    """(N,) object keypoint similarity of pred vs gt (N, K, 2) over valid (N, K) keypoints;
    area (N,) the ground-truth box area in the keypoints' units squared. 0 where none is valid."""
    if pred.shape != gt.shape or pred.shape[-1] != 2 or valid.shape != pred.shape[:-1]:
        raise ValueError(f"oks: pred {tuple(pred.shape)}, gt {tuple(gt.shape)} must be (N, K, 2) and valid "
                         f"{tuple(valid.shape)} (N, K)")
    s = pred.new_tensor(sigmas)
    if len(s) != pred.shape[1]:
        raise ValueError(f"oks: {len(s)} sigmas for {pred.shape[1]} keypoints")
    d2 = ((pred - gt) ** 2).sum(-1)
    e = torch.exp(-d2 / (2 * area.clamp(min=eps)[:, None] * (2 * s) ** 2))
    v = valid.to(pred.dtype)
    return (v * e).sum(1) / (v.sum(1) + eps)


def oks_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor, area: torch.Tensor,
             sigmas: tuple[float, ...] = COCO_WHOLEBODY_HAND_SIGMAS) -> torch.Tensor:
    """(N,) 1 - `oks`: 0 for a perfect prediction, towards 1 as keypoints drift by several σ."""
    return 1.0 - oks(pred, gt, valid, area, sigmas)


def focal_heatmap_loss(logits: torch.Tensor, target: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (Zhou et al. 2019) of keypoint heatmaps.

    logits: (B, J, h, w) per-cell logits; target: (B, J, h, w) Gaussians of peak 1 around each
    keypoint (negatives near a keypoint are penalised less); positive: (B, J, h, w) bool, the cell
    holding each keypoint. Summed over cells, divided by the number of positives (at least 1)."""
    logits, target = logits.float(), target.float()
    p = logits.sigmoid()
    pos = positive.to(logits.dtype)
    pos_term = -((1 - p) ** 2) * torch.nn.functional.logsigmoid(logits) * pos
    neg_term = -((1 - target) ** 4) * p ** 2 * torch.nn.functional.logsigmoid(-logits) * (1 - pos)
    return (pos_term.sum() + neg_term.sum()) / pos.sum().clamp(min=1.0)
