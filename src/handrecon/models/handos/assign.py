"""Instance query filtering (HandOS §3.3): SimOTA while training, score threshold + NMS at inference.

SimOTA (YOLOX; REFERENCE.md §5) with the paper's cost (eq. 5): for prediction i and ground-truth
hand j, C_ij = BCE(S_i, 1) - log IoU(B_i, B*_j), plus a large penalty when the predicted box's
centre lies outside the ground-truth box (the geometry prior). Each hand takes its k cheapest
predictions with the dynamic k = max(1, ⌊Σ top-10 IoUs⌋) (capped at `max_k`); a prediction
claimed by several hands stays with the cheapest.
"""

from __future__ import annotations

import numpy as np
import torch

from handrecon.geometry.boxes import box_iou

OUTSIDE_PENALTY = 1e5


def simota_assign(scores: torch.Tensor, boxes_xyxy: torch.Tensor, gt_xyxy: torch.Tensor, max_k: int | None = None,
                  candidates: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """scores (Q,) in (0, 1), boxes (Q, 4) and gt (M, 4) x1, y1, x2, y2 (any common unit) ->
    (query index (P,), ground-truth index (P,)) of the positive predictions, by query index."""
    Q, M = len(scores), len(gt_xyxy)
    if M == 0 or Q == 0:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty
    b = boxes_xyxy.detach().double().cpu().numpy()
    g = gt_xyxy.detach().double().cpu().numpy()
    iou = box_iou(b, g)  # (Q, M)
    s = scores.detach().double().cpu().numpy().clip(1e-6, 1 - 1e-6)
    centre = (b[:, :2] + b[:, 2:]) / 2
    inside = ((centre[:, None] >= g[None, :, :2]) & (centre[:, None] <= g[None, :, 2:])).all(-1)
    cost = -np.log(s)[:, None] - np.log(iou + 1e-8) + OUTSIDE_PENALTY * ~inside
    top = -np.sort(-iou, axis=0)[: min(candidates, Q)]
    k = np.maximum(1, top.sum(0).astype(np.int64))
    if max_k is not None:
        k = np.minimum(k, max_k)
    claim = np.zeros((Q, M), bool)
    for j in range(M):  # over hands in the image (a handful)
        claim[np.argsort(cost[:, j], kind="stable")[: k[j]], j] = True
    multi = claim.sum(1) > 1
    if multi.any():
        best = np.argmin(np.where(claim, cost, np.inf), 1)
        claim[multi] = False
        claim[np.flatnonzero(multi), best[multi]] = True
    q, j = np.nonzero(claim)
    return torch.as_tensor(q, dtype=torch.long), torch.as_tensor(j, dtype=torch.long)

__all__ = ["simota_assign"]
