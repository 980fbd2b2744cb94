"""Typed inference results: what every predictor returns for one image."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from handrecon.geometry.camera import project
from handrecon.hand.keypoints import OP21_NAMES


@dataclass
class HandResult:
    """One reconstructed hand, all in the image's camera (OpenCV frame, metres, pixels).

    box: (4,) x1, y1, x2, y2 px. side: "left" | "right". score: the model's confidence in [0, 1]
    that this is a hand, or None for a model without one (a crop model such as M3DHMR reconstructs
    the hand in the box it is given and has no hand-presence output; behind a detector, the
    pipeline's hand score, `infer.pipeline`). side_score: the probability of `side` as read (the
    crop model's two views, with a detector's side head as prior; >= 0.5 as read, below on a video
    frame whose side its track's majority overrode), or None where the side was given or guessed.
    heatmap_peak: the crop model's keypoint sharpness on this hand (`models.heads.heatmap_peak`,
    the better of its readings): what the two-stage pipeline scores hand presence with, and a
    reliability cue (low peaks go with large errors: `benchmarks/bench_reliability.py`); None
    where the model has none.
    keypoints_2d: (21, 2) px, OP21. keypoints_3d: (21, 3) m, camera frame (root-relative + cam_t).
    vertices: (V, 3) m, camera frame, the hand model's right-hand topology (see `faces`).
    cam_t: (3,) m, camera-space position of the root (wrist) joint.
    fit: the hand model's parameters fitted to the vertices (`infer.fitting.attach_fits`):
    ``pose`` (J, 3) axis-angle per joint (the model's input, root first), ``shape`` (S,),
    ``transl`` (3,) m, ``error_mm`` (the fitted mesh's mean distance to `vertices`), ``joint_names``;
    None unless asked for.
    """

    box: np.ndarray
    side: str
    keypoints_2d: np.ndarray
    keypoints_3d: np.ndarray
    vertices: np.ndarray
    cam_t: np.ndarray
    score: float | None = None
    fit: dict | None = None
    side_score: float | None = None
    heatmap_peak: float | None = None

    def to_json(self) -> dict:
        return {
            "box": _round(self.box, 2),
            "side": self.side,
            "side_score": None if self.side_score is None else round(float(self.side_score), 4),
            "score": None if self.score is None else round(float(self.score), 4),
            "heatmap_peak": None if self.heatmap_peak is None else round(float(self.heatmap_peak), 4),
            "keypoint_names": list(OP21_NAMES),
            "keypoints_2d": _round(self.keypoints_2d, 2),
            "keypoints_3d": _round(self.keypoints_3d, 5),
            "cam_t": _round(self.cam_t, 5),
            "vertices": _round(self.vertices, 5),
            **({"fit": self.fit} if self.fit is not None else {}),
        }


@dataclass
class ImageResult:
    """All hands found in one image. K: (3, 3) intrinsics used; image_size: (H, W)."""

    K: np.ndarray
    image_size: tuple[int, int]
    hands: list[HandResult] = field(default_factory=list)
    faces_right: np.ndarray | None = None
    faces_left: np.ndarray | None = None

    def projected_keypoints(self) -> list[np.ndarray]:
        """Each hand's 3D keypoints projected through K: (21, 2) px per hand (HandOS's J^proj; it
        shows how well a hand's 3D agrees with its 2D keypoints)."""
        return [project(np.asarray(h.keypoints_3d, np.float64), np.asarray(self.K, np.float64)) for h in self.hands]

    def faces_for(self, side: str) -> np.ndarray:
        """(F, 3) faces with outward winding for the given side."""
        faces = self.faces_left if side == "left" else self.faces_right
        if faces is None:
            raise ValueError(f"no faces stored for side {side!r}")
        return faces

    def to_json(self) -> dict:
        return {
            "image_size": list(self.image_size),
            "K": _round(self.K, 4),
            "frame": "OpenCV camera frame: x right, y down, z forward; metres and pixels",
            "hands": [h.to_json() for h in self.hands],
        }


def _round(a: np.ndarray, nd: int) -> list:
    return np.round(np.asarray(a, dtype=np.float64), nd).tolist()
