"""Keypoint orders and the mappings between them. The only place these orders live.

OP21 (OpenPose / FreiHAND / COCO-WholeBody hand / HInt / DexYCB / MediaPipe) is the order used
everywhere inside handrecon:
0 wrist; 1-4 thumb (CMC, MCP, IP, tip); 5-8 index (MCP, PIP, DIP, tip); 9-12 middle;
13-16 ring; 17-20 little.
"""

from __future__ import annotations

import numpy as np

OP21_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "little_mcp", "little_pip", "little_dip", "little_tip",
)
NUM_KEYPOINTS = 21

FINGERS: tuple[str, ...] = ("thumb", "index", "middle", "ring", "little")

# Parent of each OP21 keypoint along the skeleton (-1 for the wrist).
OP21_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)

# Skeleton edges (parent, child) for drawing, in OP21 indices.
OP21_EDGES: tuple[tuple[int, int], ...] = tuple((p, c) for c, p in enumerate(OP21_PARENTS) if p >= 0)

# Finger of each keypoint: 0 wrist/palm, 1 thumb, 2 index, 3 middle, 4 ring, 5 little
# (the same labels as the per-vertex hand regions).
OP21_FINGER: tuple[int, ...] = (0,) + tuple(f for f in range(1, 6) for _ in range(4))

# OP21 indices of the five fingertips (thumb, index, middle, ring, little).
OP21_TIPS: tuple[int, ...] = (4, 8, 12, 16, 20)

# MANO21 / HO3D order: MANO's 16 native joints (0 wrist, 1-3 index, 4-6 middle, 7-9 little,
# 10-12 ring, 13-15 thumb) followed by the tips thumb, index, middle, ring, little (16-20).
MANO21_TO_OP21: tuple[int, ...] = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)
OP21_TO_MANO21: tuple[int, ...] = (0, 5, 6, 7, 9, 10, 11, 17, 18, 19, 13, 14, 15, 1, 2, 3, 4, 8, 12, 16, 20)

# COCO-WholeBody 133-keypoint layout: the hand blocks are already in OP21 order.
COCO_WHOLEBODY_LEFT_HAND = slice(91, 112)
COCO_WHOLEBODY_RIGHT_HAND = slice(112, 133)

# COCO-WholeBody's OKS sigmas of the 21 hand keypoints, OP21 order (the OKS of HandOS eq. 9, 11).
COCO_WHOLEBODY_HAND_SIGMAS: tuple[float, ...] = (
    0.029, 0.022, 0.035, 0.037, 0.047, 0.026, 0.025, 0.024, 0.035, 0.018, 0.024,
    0.022, 0.026, 0.017, 0.021, 0.021, 0.032, 0.020, 0.019, 0.022, 0.031,
)


def mano21_to_op21(x: np.ndarray) -> np.ndarray:
    """Reorder (..., 21, C) keypoints from MANO21/HO3D order to OP21."""
    return _reorder(x, MANO21_TO_OP21)


def op21_to_mano21(x: np.ndarray) -> np.ndarray:
    """Reorder (..., 21, C) keypoints from OP21 order to MANO21/HO3D."""
    return _reorder(x, OP21_TO_MANO21)


def coco_wholebody_hands(keypoints: np.ndarray) -> dict[str, np.ndarray]:
    """Split (..., 133, C) COCO-WholeBody keypoints into {'left': (...,21,C), 'right': (...,21,C)} in OP21."""
    if keypoints.shape[-2] != 133:
        raise ValueError(f"COCO-WholeBody keypoints need 133 points, got shape {keypoints.shape}")
    return {
        "left": keypoints[..., COCO_WHOLEBODY_LEFT_HAND, :],
        "right": keypoints[..., COCO_WHOLEBODY_RIGHT_HAND, :],
    }


def _reorder(x, order):
    if x.shape[-2] != 21:
        raise ValueError(f"expected 21 keypoints on axis -2, got shape {tuple(x.shape)}")
    return x[..., list(order), :]
