"""M3DHMR behind `handrecon.load`: its inference adapter (see `handrecon.models.adapter`).

M3DHMR is a crop model: one network view per hand, in four stages:

1. `preprocess`: per hand, the training pipeline's deterministic crop (`geometry.crop.crop_view`:
   the box's longest side × the spec's crop scale, resized to S × S, left hands mirrored: the
   network only ever sees right hands). Without boxes the whole image is one crop (scale 1).
2. `network` (`model.M3DHMRNetwork`, also the ONNX graph): normalised (B, 3, S, S) → ``uv_px`` (B, 21, 2)
   view pixels, ``verts`` (B, V, 3) and ``joints`` (B, 21, 3) root-relative metres, view frame.
3. root recovery (`geometry.root`): t with project(joints + t, K') ≈ uv, in the view frame.
4. back to the image camera: X = Rᵀ (X' + t) and uv = affine⁻¹(uv'), which undoes the crop
   rotation and the mirror, so a left hand's vertices are its true camera-space positions.

Test-time rotations (`set_test_time_rotations`, off by default): each hand is cropped once per
angle (the content turned in-plane, as training's rotation augmentation does); the root-relative
outputs and landmarks of every view are carried into the first view's frame (X ↦ R₀ Rᵥᵀ X,
uv ↦ affine₀(affineᵥ⁻¹(uv))), averaged, and go through steps 3-4 once.

Frames and units follow DESIGN.md: OpenCV camera, metres, pixels with centres at integers.
This module is numpy only: a model exported to ONNX is served without importing torch.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from handrecon.geometry.crop import CropView, crop_view, invert_affine, transform_points
from handrecon.geometry.root import solve_root_translation
from handrecon.models.adapter import Hands, InferenceAdapter, Prepared
from handrecon.registry import register_adapter
from handrecon.utils.image import normalize_images


@register_adapter("m3dhmr")
class M3DHMRAdapter(InferenceAdapter):
    """Crops → M3DHMR → camera space (module docstring). Spec: `M3DHMR.inference_spec`."""

    detects_hands = False
    output_names = ("uv_px", "verts", "joints")

    def __init__(self, spec: dict) -> None:
        super().__init__(spec)
        crop = spec["crop"]
        if not isinstance(crop, dict) or crop.get("rule") != "box":
            raise ValueError(f"an M3DHMR inference spec has crop rule 'box', got {crop!r}")
        scale = crop.get("scale")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0.5 <= scale <= 4.0:
            raise ValueError(f"inference spec: crop scale (crop side / box side) must be in 0.5-4, got {scale!r}")
        self.crop_scale = float(scale)

    def set_test_time_rotations(self, rotations_deg: Sequence[float]) -> None:
        """Views per hand, as in-plane rotations in degrees; the first is the frame the average is
        taken in. (0,) (the default) is the plain crop."""
        angles = tuple(float(a) for a in rotations_deg)
        if not angles or not all(np.isfinite(angles)) or len(set(angles)) != len(angles):
            raise ValueError(f"test-time rotations must be distinct finite angles in degrees, got {list(rotations_deg)!r}")
        self.test_time_rotations = angles

    def network(self, model: Any) -> Any:
        return model.inference_network()

    def preprocess(self, images: Sequence[np.ndarray], Ks: Sequence[np.ndarray],
                   boxes: Sequence[np.ndarray | None], sides: Sequence[list[str] | None]) -> Prepared:
        views: list[list[tuple[CropView, np.ndarray, str]]] = []
        for image, K, image_boxes, image_sides in zip(images, Ks, boxes, sides):
            H, W = image.shape[:2]
            if image_boxes is None:  # the image is the crop: its pixel extent, no expansion
                image_boxes, scale = np.array([[-0.5, -0.5, W - 0.5, H - 0.5]]), 1.0
            else:
                scale = self.crop_scale
            image_sides = image_sides or ["right"] * len(image_boxes)  # no side classifier: right
            views.append([(crop_view(image, K, box, self.input_size, scale, mirror=side == "left", rotation_deg=angle),
                           box, side)
                          for box, side in zip(image_boxes, image_sides) for angle in self.test_time_rotations])
        crops = [v.image for image_views in views for v, _, _ in image_views]
        size = self.input_size
        inputs = normalize_images(np.stack(crops), self.mean, self.std) if crops else \
            np.zeros((0, 3, size, size), np.float32)
        return Prepared(inputs, views, list(Ks), [im.shape[:2] for im in images])

    def postprocess(self, prepared: Prepared, outputs: dict[str, np.ndarray], refine_root: bool = True) -> list[Hands]:
        V = len(self.test_time_rotations)
        flat = [item for image_views in prepared.views for item in image_views][::V]  # never empty: see Predictor
        K_view = np.stack([v.K for v, _, _ in flat])
        R = np.stack([v.R for v, _, _ in flat])
        affine = np.stack([v.affine for v, _, _ in flat])
        joints_view, verts_view, uv_view = (np.asarray(outputs[k], np.float64) for k in ("joints", "verts", "uv_px"))
        if V > 1:
            joints_view, verts_view, uv_view = self._average_views(prepared, joints_view, verts_view, uv_view)
        t = solve_root_translation(joints_view, uv_view, K_view, refine_root)
        # X_view = R @ X  =>  X = R^T @ X_view, i.e. rows X_view @ R
        joints = np.einsum("bni,bij->bnj", joints_view + t[:, None], R)
        verts = np.einsum("bni,bij->bnj", verts_view + t[:, None], R)
        uv = transform_points(uv_view, invert_affine(affine))
        results, start = [], 0
        for image_views in prepared.views:
            hand_views = image_views[::V]
            s = slice(start, start + len(hand_views))
            start += len(hand_views)
            results.append(Hands(  # scores NaN: M3DHMR has no hand-presence output
                boxes=np.array([box for _, box, _ in hand_views], np.float64).reshape(-1, 4),
                scores=np.full(len(hand_views), np.nan), sides=[side for _, _, side in hand_views],
                keypoints_2d=uv[s], keypoints_3d=joints[s], vertices=verts[s], cam_t=joints[s, 0],
            ))
        return results

    def _average_views(self, prepared: Prepared, joints: np.ndarray, verts: np.ndarray,
                       uv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B·V, ...) view-frame outputs of V rotated views per hand → (B, ...) averaged in each
        hand's first view: X ↦ R₀ Rᵥᵀ X (rows: X Rᵥ R₀ᵀ), uv ↦ affine₀(affineᵥ⁻¹(uv))."""
        V = len(self.test_time_rotations)
        flat = [v for image_views in prepared.views for v, _, _ in image_views]
        R = np.stack([v.R for v in flat]).reshape(-1, V, 3, 3)
        affine = np.stack([v.affine for v in flat]).reshape(-1, V, 2, 3)
        to_first = np.einsum("bvij,bkj->bvik", R, R[:, 0])  # Rᵥ R₀ᵀ: rows X_first = X_v @ Rᵥ R₀ᵀ

        def average_3d(x: np.ndarray) -> np.ndarray:
            return np.einsum("bvni,bvij->bnj", x.reshape(len(R), V, *x.shape[1:]), to_first) / V

        uv_image = transform_points(uv.reshape(len(R), V, -1, 2), invert_affine(affine))
        uv_first = transform_points(uv_image, np.broadcast_to(affine[:, :1], affine.shape)).mean(1)
        return average_3d(joints), average_3d(verts), uv_first
