"""M3DHMR behind `handrecon.load`: its inference adapter (see `handrecon.models.adapter`).

M3DHMR is a crop model: one network view per hand, in four stages:

1. `preprocess`: per hand, the training pipeline's deterministic crop (`geometry.crop.crop_view`:
   the box's longest side × the spec's crop scale, resized to S × S, left hands mirrored: the
   network only ever sees right hands). Without boxes the whole image is one crop (scale 1).
2. `network` (`model.M3DHMRNetwork`, also the ONNX graph): normalised (B, 3, S, S) → ``uv_px`` (B, 21, 2)
   view pixels, ``verts`` (B, V, 3) and ``joints`` (B, 21, 3) root-relative metres, view frame. It
   runs in two stages: the encoder on every crop, the mesh decoder (about half the network's time)
   only on the crops the hand's result is taken from (`rows_to_finish`: the winning reading's).
3. root recovery (`geometry.root`): t with project(joints + t, K') ≈ uv, in the view frame.
4. back to the image camera: X = Rᵀ (X' + t) and uv = affine⁻¹(uv'), which undoes the crop
   rotation and the mirror, so a left hand's vertices are its true camera-space positions.

Side (left or right) when none is given: the network only ever saw right hands, and a left hand's
mirror image is a right hand, so the crop is read twice — plain (as a right hand) and mirrored (as
a left hand) — and the reading whose keypoint heatmaps are sharper (`heatmap_peak`) wins:
log-odds of "left" = `SIDE_EVIDENCE_SCALE` · (log peak_mirrored − log peak_plain), plus a prior
another reader gives (`side_priors`: the two-stage pipeline passes the detector's side head). The
winning reading's outputs are the hand's: one extra encoder pass per hand, no extra model. A
graph exported before `heatmap_peak` existed cannot read sides: a missing side is then "right" (or
the prior's). Measured on ground-truth boxes (docs/inference.md, "Left or right"): held-out
scenes 0.756 (side head) → 0.760 (this reading) / 0.798 (both), foreign scenes 0.663 → 0.783 / 0.754.

Test-time rotations (`set_test_time_rotations`, off by default): each hand is cropped once per
angle (the content turned in-plane, as training's rotation augmentation does); the root-relative
outputs and landmarks of every view are carried into the first view's frame (X ↦ R₀ Rᵥᵀ X,
uv ↦ affine₀(affineᵥ⁻¹(uv))), averaged with weights ∝ heatmap_peak^`TEST_TIME_SHARPNESS` (the
sharper a view's heatmaps, the more it counts; equal weights from a graph without peaks), and go
through steps 3-4 once.

Frames and units follow DESIGN.md: OpenCV camera, metres, pixels with centres at integers.
This module is numpy only: a model exported to ONNX is served without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from handrecon.geometry.crop import CropView, crop_view, invert_affine, transform_points
from handrecon.geometry.root import solve_root_translation
from handrecon.models.adapter import Hands, InferenceAdapter, Prepared
from handrecon.registry import register_adapter
from handrecon.utils.image import normalize_images
from handrecon.utils.logistic import log_peak, sigmoid


# The side reading's scale: log-odds of "left" per unit of log peak ratio, fitted with the weight of
# the detector's side head (`infer.pipeline.SIDE_HEAD_PRIOR_WEIGHT`, the docs' "Left or right"), and
# alone (no prior given): the same dev sets, the same fit without the side head. Only side_score
# depends on which: the side is the sign either way.
SIDE_EVIDENCE_SCALE = 2.183
SIDE_EVIDENCE_SCALE_ALONE = 3.152
# Test-time rotations average a hand's views with weights ∝ heatmap_peak ** this. Chosen on dev
# draws only (foreign crops seed 52, our own crops seed 1001; three views 0, ±45°): 5 / 10 / 20 / 40
# gave 11.47 / 11.42 / 11.44 / 11.49 mm and 10.97 / 10.95 / 10.96 / 11.01 mm, against 12.00 / 11.09
# for the plain average and 11.62 / 11.18 for the sharpest view alone (PA-MPJPE).
TEST_TIME_SHARPNESS = 10.0


@dataclass
class HandViews:
    """One hand's crops: `views` are its readings × test-time rotations (reading-major); `readings`
    the sides tried ("right" only, "left" only, or both when the side is read); `prior` the log-odds
    of "left" another reader gave (None: none); `given`: the caller gave the side."""

    box: np.ndarray
    readings: list[str]
    views: list[CropView]
    prior: float | None = None
    given: bool = True


@register_adapter("m3dhmr")
class M3DHMRAdapter(InferenceAdapter):
    """Crops → M3DHMR → camera space (module docstring). Spec: `M3DHMR.inference_spec`."""

    detects_hands = False
    output_names = ("uv_px", "verts", "joints", "heatmap_peak", "landmark_features")
    optional_outputs = ("heatmap_peak", "landmark_features")
    stage_link = ("landmark_features",)
    second_stage_outputs = ("verts", "joints")

    def __init__(self, spec: dict) -> None:
        super().__init__(spec)
        crop = spec["crop"]
        if not isinstance(crop, dict) or crop.get("rule") != "box":
            raise ValueError(f"an M3DHMR inference spec has crop rule 'box', got {crop!r}")
        scale = crop.get("scale")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0.5 <= scale <= 4.0:
            raise ValueError(f"inference spec: crop scale (crop side / box side) must be in 0.5-4, got {scale!r}")
        self.crop_scale = float(scale)
        self.reads_sides = True  # `use_outputs`

    def use_outputs(self, names: Sequence[str]) -> None:
        """Without ``heatmap_peak`` (a graph exported before the side reading) a side not given is
        the prior's, else "right"."""
        self.reads_sides = "heatmap_peak" in names

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
                   boxes: Sequence[np.ndarray | None], sides: Sequence[list[str | None] | None],
                   side_priors: Sequence[np.ndarray | None] | None = None) -> Prepared:
        views: list[list[HandViews]] = []
        priors = side_priors if side_priors is not None else [None] * len(images)
        for image, K, image_boxes, image_sides, image_priors in zip(images, Ks, boxes, sides, priors):
            H, W = image.shape[:2]
            if image_boxes is None:  # the image is the crop: its pixel extent, no expansion
                image_boxes, scale = np.array([[-0.5, -0.5, W - 0.5, H - 0.5]]), 1.0
            else:
                scale = self.crop_scale
            image_sides = image_sides or [None] * len(image_boxes)
            image_priors = [None] * len(image_boxes) if image_priors is None else \
                [float(p) for p in np.asarray(image_priors, np.float64)]
            hands = []
            for box, side, prior in zip(image_boxes, image_sides, image_priors):
                if side is not None:
                    readings = [side]
                elif self.reads_sides:
                    readings = ["right", "left"]
                else:  # no side reading: the prior's side, else right (the network's own)
                    readings = ["left" if prior is not None and prior > 0 else "right"]
                hands.append(HandViews(box, readings, [
                    crop_view(image, K, box, self.input_size, scale, mirror=r == "left", rotation_deg=angle)
                    for r in readings for angle in self.test_time_rotations], prior, side is not None))
            views.append(hands)
        crops = [v.image for image_hands in views for hand in image_hands for v in hand.views]
        size = self.input_size
        inputs = normalize_images(np.stack(crops), self.mean, self.std) if crops else \
            np.zeros((0, 3, size, size), np.float32)
        return Prepared(inputs, views, list(Ks), [im.shape[:2] for im in images])

    def read_sides(self, hands: list[HandViews], peak: np.ndarray | None
                   ) -> tuple[list[int], np.ndarray, np.ndarray]:
        """Which reading of each hand wins (its index in ``hand.readings``), the probability of that
        side (NaN for a side the caller gave) and the hand's heatmap peak (its readings' best, each
        the geometric mean over test-time rotations; NaN without one). `peak`: the batch's
        ``heatmap_peak`` (None: the graph has none)."""
        V = len(self.test_time_rotations)
        chosen, p_side, best, start = [], np.full(len(hands), np.nan), np.full(len(hands), np.nan), 0
        for i, hand in enumerate(hands):
            k = 0
            n = len(hand.views) // V
            hand_log_peaks = None if peak is None else \
                log_peak(peak[start: start + n * V]).reshape(n, V).mean(1)
            read = n == 2 and hand_log_peaks is not None
            if not hand.given and (read or hand.prior is not None):  # else a guess ("right"): no score
                logit = hand.prior or 0.0
                if read:
                    scale = SIDE_EVIDENCE_SCALE_ALONE if hand.prior is None else SIDE_EVIDENCE_SCALE
                    logit += scale * (hand_log_peaks[1] - hand_log_peaks[0])  # readings: right, left
                    k = int(logit > 0)
                p_left = float(sigmoid(logit))
                p_side[i] = p_left if hand.readings[k] == "left" else 1.0 - p_left
            if hand_log_peaks is not None:
                best[i] = float(np.exp(hand_log_peaks.max()))
            chosen.append(k)
            start += len(hand.views)
        return chosen, p_side, best

    def kept_views(self, prepared: Prepared, peak: np.ndarray | None
                   ) -> tuple[list[HandViews], list[int], np.ndarray, np.ndarray, np.ndarray]:
        """Every hand of the batch, `read_sides`' (chosen, p_side, peaks), and the network rows of
        the chosen readings' views (hand-major): the rows the outputs are taken from."""
        V = len(self.test_time_rotations)
        hands = [hand for image_hands in prepared.views for hand in image_hands]  # never empty: see Predictor
        chosen, p_side, peaks = self.read_sides(hands, peak)
        starts = np.cumsum([0] + [len(hand.views) for hand in hands[:-1]])
        take = np.concatenate([np.arange(s + k * V, s + (k + 1) * V) for s, k in zip(starts, chosen)])
        return hands, chosen, p_side, peaks, take

    def rows_to_finish(self, prepared: Prepared, first: dict[str, np.ndarray]) -> np.ndarray:
        """The mesh decoder runs on the chosen readings' views only: with the side read, half the crops."""
        return self.kept_views(prepared, first.get("heatmap_peak"))[-1]

    def postprocess(self, prepared: Prepared, outputs: dict[str, np.ndarray], refine_root: bool = True) -> list[Hands]:
        V = len(self.test_time_rotations)
        hands, chosen, p_side, peaks, take = self.kept_views(prepared, outputs.get("heatmap_peak"))
        views = [v for hand, k in zip(hands, chosen) for v in hand.views[k * V: (k + 1) * V]]
        sides = [hand.readings[k] for hand, k in zip(hands, chosen)]
        joints_view, verts_view, uv_view = (np.asarray(outputs[k], np.float64)[take] for k in ("joints", "verts", "uv_px"))
        if V > 1:
            peak = outputs.get("heatmap_peak")
            sharpness = np.zeros((len(hands), V)) if peak is None else \
                TEST_TIME_SHARPNESS * log_peak(peak[take]).reshape(-1, V)
            weights = np.exp(sharpness - sharpness.max(1, keepdims=True))  # ∝ peak^TEST_TIME_SHARPNESS
            joints_view, verts_view, uv_view = self._average_views(views, weights / weights.sum(1, keepdims=True),
                                                                   joints_view, verts_view, uv_view)
        first = views[::V]
        K_view = np.stack([v.K for v in first])
        R = np.stack([v.R for v in first])
        affine = np.stack([v.affine for v in first])
        t = solve_root_translation(joints_view, uv_view, K_view, refine_root)
        # X_view = R @ X  =>  X = R^T @ X_view, i.e. rows X_view @ R
        joints = np.einsum("bni,bij->bnj", joints_view + t[:, None], R)
        verts = np.einsum("bni,bij->bnj", verts_view + t[:, None], R)
        uv = transform_points(uv_view, invert_affine(affine))
        results, start = [], 0
        for image_hands in prepared.views:
            s = slice(start, start + len(image_hands))
            start += len(image_hands)
            results.append(Hands(  # scores NaN: M3DHMR has no hand-presence output
                boxes=np.array([hand.box for hand in image_hands], np.float64).reshape(-1, 4),
                scores=np.full(len(image_hands), np.nan), sides=sides[s], keypoints_2d=uv[s],
                keypoints_3d=joints[s], vertices=verts[s], cam_t=joints[s, 0], side_scores=p_side[s],
                heatmap_peaks=peaks[s],
            ))
        return results

    def _average_views(self, views: list[CropView], weights: np.ndarray, joints: np.ndarray, verts: np.ndarray,
                       uv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B·V, ...) view-frame outputs of V rotated views per hand (`views`, hand-major) → (B, ...)
        weighted averages in each hand's first view: X ↦ R₀ Rᵥᵀ X (rows: X Rᵥ R₀ᵀ),
        uv ↦ affine₀(affineᵥ⁻¹(uv)). weights: (B, V), each row summing to 1."""
        V = len(self.test_time_rotations)
        R = np.stack([v.R for v in views]).reshape(-1, V, 3, 3)
        affine = np.stack([v.affine for v in views]).reshape(-1, V, 2, 3)
        to_first = np.einsum("bvij,bkj->bvik", R, R[:, 0])  # Rᵥ R₀ᵀ: rows X_first = X_v @ Rᵥ R₀ᵀ

        def average_3d(x: np.ndarray) -> np.ndarray:
            return np.einsum("bv,bvni,bvij->bnj", weights, x.reshape(len(R), V, *x.shape[1:]), to_first)

        uv_image = transform_points(uv.reshape(len(R), V, -1, 2), invert_affine(affine))
        uv_first = np.einsum("bv,bvni->bni", weights,
                             transform_points(uv_image, np.broadcast_to(affine[:, :1], affine.shape)))
        return average_3d(joints), average_3d(verts), uv_first
