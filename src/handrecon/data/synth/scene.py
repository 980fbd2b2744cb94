"""Scene sampling: camera intrinsics, posed and shaped hands placed in the camera frame, occluders.

A hand is posed by `HandModel` with a random global orientation (the root rotation is in the
camera frame) and translated so that its vertex box centre projects to a chosen pixel with a
chosen projected size; `HandModel(pose, shape, transl)` reproduces its vertices exactly.
Hands whose bounding spheres would intersect are pushed back along their viewing ray, so hands
overlap in the image (mutual occlusion) without interpenetrating.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from handrecon.data.synth.appearance import random_occluder
from handrecon.data.synth.config import SynthConfig
from handrecon.geometry.camera import intrinsics
from handrecon.hand.pose import sample_poses


@dataclass
class PlacedHand:
    """One posed hand in the camera frame. pose (J, 3) is the model's input pose (without
    pose_mean), shape (S,), transl (3,), vertices (V, 3), joints (21, 3) OP21, metres."""

    side: str
    kind: str
    pose: np.ndarray
    shape: np.ndarray
    transl: np.ndarray
    vertices: np.ndarray
    joints: np.ndarray

    @property
    def sphere(self) -> tuple[np.ndarray, float]:
        c = (self.vertices.min(0) + self.vertices.max(0)) / 2
        return c, float(np.linalg.norm(self.vertices - c, axis=1).max())


@dataclass
class Scene:
    """K (3, 3); image_size (H, W); hands; occluders as (vertices, faces, albedo) tuples."""

    K: np.ndarray
    image_size: tuple[int, int]
    hands: list[PlacedHand]
    occluders: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)


def sample_camera(cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """(3, 3) intrinsics: focal from cfg.focal (px) or cfg.fov_deg, principal point jittered."""
    H, W = cfg.image_size
    if cfg.focal is not None:
        f = rng.uniform(*cfg.focal)
    else:
        f = max(H, W) / 2 / np.tan(np.radians(rng.uniform(*cfg.fov_deg)) / 2)
    cx = (W - 1) / 2 + rng.uniform(-1, 1) * cfg.principal_jitter * W
    cy = (H - 1) / 2 + rng.uniform(-1, 1) * cfg.principal_jitter * H
    return intrinsics(f, f, cx, cy)


def pose_hand(model, kind: str, rng: np.random.Generator, shape_scale: float, orientation: str = "uniform",
              p_natural: float = 0.6) -> tuple[np.ndarray, ...]:
    """Pose `model` (one side) with a `kind` pose, a global orientation drawn as `orientation` says
    (see `SynthConfig`) and a random shape.

    Returns pose (J, 3), shape (S,), vertices (V, 3) and OP21 joints (21, 3) at transl = 0 (float64).
    """
    g = torch.Generator().manual_seed(int(rng.integers(2**62)))
    global_orient = {"uniform": "random", "natural": "natural", "mixed": "mixed"}[orientation]
    pose = sample_poses(model, 1, kind=kind, generator=g, global_orient=global_orient, p_natural=p_natural)
    shape = torch.as_tensor(rng.standard_normal((1, model.num_shape)) * shape_scale, dtype=torch.float32)
    with torch.no_grad():
        out = model(pose, shape)
    return (pose[0].numpy(), shape[0].numpy(), out.vertices[0].double().numpy(), out.joints[0].double().numpy())


def place_hand(models: dict, cfg: SynthConfig, rng: np.random.Generator, K: np.ndarray,
               centre_px: np.ndarray, size_px: float) -> PlacedHand:
    """A random hand whose vertex box centre projects to `centre_px` (2,) with projected extent ~`size_px`."""
    side = "left" if rng.random() < cfg.p_left else "right"
    kind = cfg.pose_kinds[int(rng.integers(len(cfg.pose_kinds)))]
    pose, shape, verts, joints = pose_hand(models[side], kind, rng, cfg.shape_scale, cfg.orientation, cfg.p_natural)
    c = (verts.min(0) + verts.max(0)) / 2
    extent = max(np.ptp(verts[:, 0]), np.ptp(verts[:, 1]))
    z = K[0, 0] * extent / size_px + (verts[:, 2].max() - c[2]) * 0.5  # extent measured at the box centre
    target = z * np.linalg.solve(K, np.r_[centre_px, 1.0])
    t = target - c
    return PlacedHand(side, kind, pose, shape, t.astype(np.float32), verts + t, joints + t)


def push_back(hand: PlacedHand, others: list[PlacedHand], margin: float = 0.005) -> PlacedHand:
    """Move `hand` away from the camera along the ray through its centre until its bounding
    sphere clears those of `others` (by `margin` metres)."""
    c, r = hand.sphere
    spheres = [o.sphere for o in others]
    s = 1.0
    for _ in range(200):
        if all(np.linalg.norm(c * s - oc) >= r + orad + margin for oc, orad in spheres):
            break
        s *= 1.03
    shift = c * (s - 1)
    return PlacedHand(hand.side, hand.kind, hand.pose, hand.shape, (hand.transl + shift).astype(np.float32),
                      hand.vertices + shift, hand.joints + shift)


def sample_scene(models: dict, cfg: SynthConfig, rng: np.random.Generator) -> Scene:
    """Draw a camera, the hands and the occluders of one image (models: {"right": HandModel, "left": HandModel})."""
    H, W = cfg.image_size
    K = sample_camera(cfg, rng)
    n = int(rng.integers(cfg.num_hands[0], cfg.num_hands[1] + 1)) + int(rng.random() < cfg.p_extra_hand)
    short = min(H, W)
    hands: list[PlacedHand] = []
    for i in range(n):
        size = rng.uniform(*cfg.hand_size) * short
        if i == 0 and cfg.centred:
            centre = np.array([(W - 1) / 2, (H - 1) / 2]) + rng.uniform(-1, 1, 2) * cfg.centre_jitter * short
            if rng.random() < cfg.p_truncated:  # cut by the image border
                a = rng.uniform(0, 2 * np.pi)
                centre = centre + rng.uniform(0.2, 0.4) * short * np.array([np.cos(a), np.sin(a)])
        elif hands and rng.random() < cfg.p_overlap:
            prev = hands[int(rng.integers(len(hands)))]
            uv = prev.vertices @ K.T
            prev_centre = (uv[:, :2] / uv[:, 2:]).mean(0)
            centre = prev_centre + rng.normal(0, 0.35, 2) * size
        else:
            centre = rng.uniform(0.08, 0.92, 2) * (W - 1, H - 1)
        hand = place_hand(models, cfg, rng, K, centre, size)
        hands.append(push_back(hand, hands) if hands else hand)
    occluders = []
    if rng.random() < cfg.p_occluder:
        for _ in range(int(rng.integers(cfg.occluders[0], cfg.occluders[1] + 1))):
            if hands:
                occ = _occluder_for(hands[int(rng.integers(len(hands)))], rng)
            else:  # no hand in the image: an object anywhere in view
                z = rng.uniform(0.3, 1.5)
                centre = z * np.linalg.solve(K, np.r_[rng.uniform(0, W), rng.uniform(0, H), 1.0])
                occ = random_occluder(rng, centre, rng.uniform(0.2, 0.6) * z * short / K[0, 0])
            if occ is not None:
                occluders.append(occ)
    return Scene(K, (H, W), hands, occluders)


def _occluder_for(hand: PlacedHand, rng: np.random.Generator):
    """An object on the ray to a random keypoint of `hand`, in front of it (or, 1 in 4, behind it)."""
    j = hand.joints[int(rng.integers(21))]
    z_near, z_far = hand.vertices[:, 2].min(), hand.vertices[:, 2].max()
    extent = np.ptp(hand.vertices, axis=0).max()
    size = rng.uniform(0.25, 0.6) * extent
    half = 0.5 * 1.4 * np.sqrt(3) * size  # largest half-diagonal of a primitive scaled by <= 1.4
    if rng.random() < 0.25:
        z = z_far + half + rng.uniform(0.01, 0.1)
    else:
        z = min(z_near * rng.uniform(0.6, 0.9), z_near - half - 0.01)
        if z - half < 0.05:
            return None
    return random_occluder(rng, j / j[2] * z, size)
