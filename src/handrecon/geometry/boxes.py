"""Axis-aligned boxes: format conversion, IoU, non-maximum suppression, box-regression deltas and the
check of a user's hand box against its image (numpy).

Boxes are (N, 4) arrays, x1, y1, x2, y2 in pixels unless a function says otherwise; cxcywh is
centre x, centre y, width, height (a DETR's normalised output format).
"""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_BOX_PX = 4.0  # a hand box's longest side, at least (pixels)
MAX_LOG_SCALE = 4.0  # `apply_box_deltas` clips log size ratios to +- this (e^4 = 55x)


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(..., 4) centre x, centre y, width, height -> x1, y1, x2, y2."""
    b = np.asarray(boxes, np.float64)
    half = b[..., 2:] / 2
    return np.concatenate([b[..., :2] - half, b[..., :2] + half], -1)


def clip_to_image(box: np.ndarray, width: int, height: int) -> np.ndarray:
    """(4,) x1, y1, x2, y2 px clipped to the image's extent in the pixel-centre convention of
    `geometry.camera` (an image of width W spans [-0.5, W - 0.5]); a box beyond the far edges
    collapses to zero size at its own corner (x2 >= x1, y2 >= y1 kept, never inside out). float64."""
    b = np.asarray(box, np.float64)
    lo = np.maximum(b[:2], -0.5)
    hi = np.minimum(b[2:], (width - 0.5, height - 0.5))
    return np.r_[lo, np.maximum(hi, lo)]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) × (M, 4) boxes x1, y1, x2, y2 → (N, M) intersection over union (0 for empty boxes)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(hi - lo, 0.0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0.0, None).prod(-1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the kept boxes, highest score first.

    A box is dropped when its IoU with a kept, higher-scoring box exceeds `iou_threshold`
    (iou_threshold >= 1 keeps every box). boxes (N, 4) x1, y1, x2, y2; scores (N,).
    """
    scores = np.asarray(scores, np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    if iou_threshold >= 1.0 or len(order) < 2:
        return order
    iou = box_iou(boxes, boxes)[np.ix_(order, order)]
    suppressed = np.zeros(len(order), bool)
    for i in range(len(order)):  # over candidates (a few hundred at most), not pixels
        if not suppressed[i]:
            suppressed[i + 1:] |= iou[i, i + 1:] > iou_threshold
    return order[~suppressed]


def box_targets(boxes_xyxy: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """(N, 4) boxes in network-input px -> (N, 4) float32 cxcywh normalised to the input (H, W)
    (DETR training targets)."""
    H, W = input_size
    b = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)
    cxcy = (b[:, :2] + b[:, 2:]) / 2
    wh = np.maximum(b[:, 2:] - b[:, :2], 0)
    return np.concatenate([cxcy, wh], 1) / np.array([W, H, W, H], np.float32)


def box_deltas(boxes: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(N, 4) Fast R-CNN deltas (dx, dy, dw, dh) that move boxes (N, 4) onto targets (N, 4): centre
    shifts in box widths/heights, log size ratios. Inverse of `apply_box_deltas`; sides at least 1 px."""
    b, t = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(targets, np.float64).reshape(-1, 4)
    bw, bh = np.maximum(b[:, 2] - b[:, 0], 1.0), np.maximum(b[:, 3] - b[:, 1], 1.0)
    tw, th = np.maximum(t[:, 2] - t[:, 0], 1.0), np.maximum(t[:, 3] - t[:, 1], 1.0)
    return np.stack([((t[:, 0] + t[:, 2]) - (b[:, 0] + b[:, 2])) / (2 * bw),
                     ((t[:, 1] + t[:, 3]) - (b[:, 1] + b[:, 3])) / (2 * bh),
                     np.log(tw / bw), np.log(th / bh)], 1)


def apply_box_deltas(boxes: np.ndarray, deltas: np.ndarray, max_log_scale: float = MAX_LOG_SCALE) -> np.ndarray:
    """Boxes (N, 4) moved by Fast R-CNN deltas (N, 4) (`box_deltas`); log size ratios clipped to
    +-`max_log_scale` so that a wild delta cannot overflow."""
    b, d = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(deltas, np.float64).reshape(-1, 4)
    bw, bh = np.maximum(b[:, 2] - b[:, 0], 1.0), np.maximum(b[:, 3] - b[:, 1], 1.0)
    cx, cy = (b[:, 0] + b[:, 2]) / 2 + d[:, 0] * bw, (b[:, 1] + b[:, 3]) / 2 + d[:, 1] * bh
    w = bw * np.exp(np.clip(d[:, 2], -max_log_scale, max_log_scale))
    h = bh * np.exp(np.clip(d[:, 3], -max_log_scale, max_log_scale))
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)


def check_box(box: Any, width: int, height: int) -> np.ndarray:
    """(4,) float64 x1, y1, x2, y2 px: finite, overlapping the image, its longest side at least
    `MIN_BOX_PX` and at most 3 × the image's longer side (a hand partly outside the photo is fine;
    a box far larger than the photo is a mistake, not a hand)."""
    b = np.asarray(box, np.float64)
    if b.shape != (4,) or not np.isfinite(b).all():
        raise ValueError(f"box must be 4 finite numbers x1, y1, x2, y2 in pixels, got {box!r}")
    if b[2] <= b[0] or b[3] <= b[1]:
        raise ValueError(f"box must have x2 > x1 and y2 > y1, got {b.tolist()}")
    if b[2] <= -0.5 or b[3] <= -0.5 or b[0] >= width - 0.5 or b[1] >= height - 0.5:
        raise ValueError(f"box {b.tolist()} lies outside the image ({width} x {height} pixels)")
    side = max(b[2] - b[0], b[3] - b[1])
    if side < MIN_BOX_PX:
        raise ValueError(f"box {b.tolist()} is {side:.3g} px; a hand box must be at least {MIN_BOX_PX:g} px")
    if side > 3 * max(width, height):
        raise ValueError(f"box {b.tolist()} is {side:.3g} px, over 3 x the image ({width} x {height} pixels); "
                         "give the hand's box in this image's pixels")
    return b
