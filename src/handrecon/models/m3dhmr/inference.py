"""M3DHMR behind `handrecon.load`: its inference adapter (see `handrecon.models.adapter`).

M3DHMR is a crop model: one network view per hand, in four stages:

1. `preprocess`: per hand, the training pipeline's deterministic crop (`geometry.crop.crop_view`:
   the box's longest side × the spec's crop scale, resized to S × S, left hands mirrored: the
   network only ever sees right hands). Without boxes the whole image is one crop (scale 1).
2. `network` (`model.M3DHMRNetwork`, also the ONNX graph): normalised (B, 3, S, S) → ``uv_px`` (B, 21, 2)
   view pixels (the landmarks the decoder samples at and the second framing is drawn around),
   ``keypoints_px`` (B, 21, 2) (the same heatmaps decoded near their peaks, `KEYPOINT_WINDOW`: the
   2D keypoints reported and fitted by root recovery), ``verts`` (B, V, 3) and ``joints`` (B, 21, 3)
   root-relative metres, view frame. It runs in two stages: the encoder on every crop, the mesh
   decoder (about half the network's time) only on the crops the hand's result is taken from
   (`rows_to_finish`: the winning reading's).
3. root recovery (`geometry.root`): t with project(joints + t, K') ≈ keypoints, in the view frame.
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

The second look (`set_second_look`; `handrecon.load` turns it on for crop models, ``--one-look``
off), in two rounds after the first look (each hand's side stays the first look's):
1. a hand given as the whole image (no box) is cropped once more, as its winning reading, around its
   first-look landmarks (their box × `RECROP_EXPANSION`, at the crop scale a box gets): a second
   framing (the model trained on crops framed around a box, tighter than most whole images);
2. each framing whose plain view's heatmap peak is below `SECOND_LOOK_PEAK` is cropped again at
   `SECOND_LOOK_ROTATIONS`.
A hand's views are then averaged as test-time rotations are, within a framing ∝ peak^sharpness and
the framings against each other ∝ their plain views' peak^sharpness: the extra crops go to the
network for whole-image hands and unsure hands only. The hand's reported heatmap_peak and side stay
the first look's.

Frames and units follow DESIGN.md: OpenCV camera, metres, pixels with centres at integers.
This module is numpy only: a model exported to ONNX is served without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from handrecon.geometry.boxes import clip_to_image
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
SIDE_EVIDENCE_SCALE = 2.560
SIDE_EVIDENCE_SCALE_ALONE = 3.526
# Test-time rotations average a hand's views with weights ∝ heatmap_peak ** this. Chosen on dev
# draws only (foreign crops seed 52, our own crops seed 1001; three views 0, ±45°): 5 / 10 / 20 / 40
# gave 11.47 / 11.42 / 11.44 / 11.49 mm and 10.97 / 10.95 / 10.96 / 11.01 mm, against 12.00 / 11.09
# for the plain average and 11.62 / 11.18 for the sharpest view alone (PA-MPJPE).
TEST_TIME_SHARPNESS = 10.0
# The second look (`set_second_look`; on as `handrecon.load` serves crop models): a hand whose
# first-look heatmap peak is below SECOND_LOOK_PEAK is seen again turned by SECOND_LOOK_ROTATIONS and
# its views averaged as above.
# heatmap_peak ranks a hand's error (docs/inference.md, "How far to trust a hand"); the threshold
# was chosen on dev draws only (foreign crops seed 52, our own crops seed 1001, stage-16 model):
# 0.05 / 0.06 / 0.07 looked again at 12.5 / 19.3 / 27.8 % of the foreign hands for 11.75 / 11.65 /
# 11.58 mm PA-MPJPE (one view 12.06, every hand three views 11.26).
SECOND_LOOK_PEAK = 0.06
SECOND_LOOK_ROTATIONS = (-45.0, 45.0)
# The second look's re-crop of a hand given as the whole image: a second framing around its first-look
# landmarks, their box scaled by RECROP_EXPANSION (the crop then takes a box's crop scale). Chosen on
# dev draws only (foreign crops seeds 52 and 64, whole, the re-crop replacing the first look): 1.1 /
# 1.15 / 1.2 / 1.25 / 1.3 gave 11.40 / 11.21 / 11.11 / 11.19 / 11.29 mm PA-MPJPE on average (none:
# 11.34); both framings averaged at 1.2: 10.82 (docs/model_card_m3dhmr_openhand.md, "A second framing").
RECROP_EXPANSION = 1.2
RECROP_MIN_PX = 8.0
# With the second look, a hand's views are averaged with weights known from the first stage's
# heatmap peaks before the mesh decoder runs: a view whose normalised weight is below
# MIN_VIEW_WEIGHT is dropped (the rest renormalised), so the decoder does not run on views that
# would barely count (test-time rotations keep every view). Chosen on dev draws only (foreign crops
# seed 52 whole, our own crops seed 1001, int8 export): 0 / 0.02 / 0.05 / 0.1 gave 10.570 / 10.570 /
# 10.578 / 10.591 and 10.900 / 10.900 / 10.897 / 10.898 mm PA-MPJPE; then on a fresh draw (seed 75,
# 600, whole) 10.931 -> 10.937 mm, and 300 crops through `reconstruct --crop` in 0.90x the wall time
# (2.71 -> 2.05 decoded views a crop; docs/inference.md, "Where the crop path's time goes").
MIN_VIEW_WEIGHT = 0.05
# The 2D keypoints a hand reports (and root recovery fits) are its last-stack heatmaps' soft-argmax
# within ±KEYPOINT_WINDOW cells (of 32 at a 128 px input) of each map's peak (the network's
# ``keypoints_px``, `heads.local_soft_argmax_2d`). Where a map is spread or has two modes the plain
# soft-argmax lands between them: predicted hands came out ~4.5 % smaller about their centre than
# the ground truth (median; foreign crops seed 52). The plain soft-argmax (``uv_px``), which training
# supervised, still places what the 3D depends on: the decoder's features (sampled at the windowed
# keypoints instead: 11.61 -> 11.89 mm on the foreign dev draw) and the second framing (drawn around
# the windowed keypoints it cost 0.10 mm on a fresh draw). Chosen on dev draws only
# (docs/model_card_m3dhmr_openhand.md, "Keypoints from the heatmap's peak").
KEYPOINT_WINDOW = 4


@dataclass
class HandViews:
    """One hand's crops. `readings`: the sides tried ("right" only, "left" only, or both when the side
    is read); `views[i]` is reading `reading_of[i]` (an index into `readings`) at network row
    `rows[i]`, cropped with framing `framing_of[i]` (an index into `framings`: (box, crop scale)
    pairs; the first is the given box, or the whole image at scale 1). The first look is
    reading-major × test-time rotations (its first `first_look` views); the second look appends
    views of the winning reading: a re-crop (a second framing, around the landmarks of a hand given
    as the whole image: `whole`), then turned views. `prior`: the log-odds of "left" another reader
    gave (None: none); `given`: the caller gave the side. `image`, `K`: what further views are
    cropped from. `recropped`, `looked_again`: the rounds of `M3DHMRAdapter.second_look` done."""

    box: np.ndarray
    readings: list[str]
    views: list[CropView]
    reading_of: list[int]
    rows: list[int]
    image: np.ndarray
    K: np.ndarray
    scale: float
    prior: float | None = None
    given: bool = True
    whole: bool = False

    def __post_init__(self) -> None:
        self.first_look = len(self.views)
        self.framings = [(self.box, self.scale)]
        self.framing_of = [0] * len(self.views)
        self.recropped = self.looked_again = False

    def add_view(self, view: CropView, reading: int, framing: int, row: int) -> None:
        self.views.append(view)
        self.reading_of.append(reading)
        self.framing_of.append(framing)
        self.rows.append(row)


@register_adapter("m3dhmr")
class M3DHMRAdapter(InferenceAdapter):
    """Crops → M3DHMR → camera space (module docstring). Spec: `M3DHMR.inference_spec`."""

    detects_hands = False
    output_names = ("uv_px", "verts", "joints", "heatmap_peak", "landmark_features", "keypoints_px")
    optional_outputs = ("heatmap_peak", "landmark_features", "keypoints_px")
    stage_link = ("landmark_features",)
    second_stage_outputs = ("verts", "joints")
    # The landmark heads' heatmap logits feed the soft-argmax, the side reading and the second look:
    # in float32 they cost nothing measurable (7.79 vs 7.76 ms a crop) and on the dev draws (foreign
    # seed 52, own seed 1001) int8 with them quantised too gave 11.386 / 10.943 mm, with them float
    # 11.323 / 10.940 (float32 export 11.386 / 10.933; docs/model_card_m3dhmr_openhand.md, "int8").
    int8_float_nodes = ("/encoder/head1/", "/encoder/head2/")

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
        self.second_look_on = False  # `set_second_look`

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

    def set_second_look(self, on: bool) -> None:
        """Look again at the hands the first look is unsure of (`second_look`); no effect with
        test-time rotations, which already see every hand at several angles."""
        self.second_look_on = bool(on)

    @property
    def looks_twice(self) -> bool:
        return self.second_look_on and len(self.test_time_rotations) == 1

    def network(self, model: Any) -> Any:
        return model.inference_network()

    def preprocess(self, images: Sequence[np.ndarray], Ks: Sequence[np.ndarray],
                   boxes: Sequence[np.ndarray | None], sides: Sequence[list[str | None] | None],
                   side_priors: Sequence[np.ndarray | None] | None = None) -> Prepared:
        views: list[list[HandViews]] = []
        row = 0
        priors = side_priors if side_priors is not None else [None] * len(images)
        for image, K, image_boxes, image_sides, image_priors in zip(images, Ks, boxes, sides, priors):
            H, W = image.shape[:2]
            whole = image_boxes is None
            if whole:  # the image is the crop: its pixel extent, no expansion
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
                pairs = [(k, angle) for k in range(len(readings)) for angle in self.test_time_rotations]
                hands.append(HandViews(
                    box, readings, [self._crop(image, K, box, scale, readings[k], angle) for k, angle in pairs],
                    [k for k, _ in pairs], list(range(row, row + len(pairs))), image, K, scale, prior,
                    side is not None, whole))
                row += len(pairs)
            views.append(hands)
        crops = [v.image for image_hands in views for hand in image_hands for v in hand.views]
        return Prepared(self._inputs(crops), views, list(Ks), [im.shape[:2] for im in images])

    def _crop(self, image: np.ndarray, K: np.ndarray, box: np.ndarray, scale: float, side: str,
              angle: float) -> CropView:
        return crop_view(image, K, box, self.input_size, scale, mirror=side == "left", rotation_deg=angle)

    def _inputs(self, crops: list[np.ndarray]) -> np.ndarray:
        """(N, 3, S, S) float32 network inputs of N crops (uint8 (S, S, 3))."""
        size = self.input_size
        return normalize_images(np.stack(crops), self.mean, self.std) if crops else \
            np.zeros((0, 3, size, size), np.float32)

    def second_look(self, prepared: Prepared, first: dict[str, np.ndarray]) -> Prepared | None:
        """When `looks_twice`, in two rounds, each a call (each hand's side stays the first look's):

        1. re-crop: a hand given as the whole image is cropped once more, as its winning reading,
           around its first-look landmarks (their box × `RECROP_EXPANSION`, at the crop scale a box
           gets: a second framing, `_landmark_box`);
        2. turned views: for each framing of a hand, if its plain view's heatmap peak is below
           `SECOND_LOOK_PEAK`, that framing is cropped again at `SECOND_LOOK_ROTATIONS`.

        Every view of the winning reading is then averaged as test-time rotations are. The hands'
        views are extended in place; the returned batch is `prepared` with the round's crops
        appended (None: no round left with a crop to add)."""
        peak = first.get("heatmap_peak")
        if not self.looks_twice or peak is None:
            return None
        hands = [hand for image_hands in prepared.views for hand in image_hands]
        chosen, _, _ = self.read_sides(hands, peak)
        added: list[tuple[HandViews, int, int, CropView]] = []  # hand, reading, framing, view
        if any(hand.whole and not hand.recropped for hand in hands):
            for hand, k in zip(hands, chosen):
                if hand.whole and not hand.recropped:
                    hand.recropped = True
                    box = self._landmark_box(hand, k, first["uv_px"])
                    if box is not None:
                        hand.framings.append((box, self.crop_scale))
                        view = self._crop(hand.image, hand.K, box, self.crop_scale, hand.readings[k], 0.0)
                        added.append((hand, k, len(hand.framings) - 1, view))
        else:
            for hand, k in zip(hands, chosen):
                if hand.looked_again:
                    continue
                hand.looked_again = True
                for f, (box, scale) in enumerate(hand.framings):
                    plain = next(i for i, (r, g) in enumerate(zip(hand.reading_of, hand.framing_of)) if r == k and g == f)
                    if peak[hand.rows[plain]] < SECOND_LOOK_PEAK:
                        added += [(hand, k, f, self._crop(hand.image, hand.K, box, scale, hand.readings[k], angle))
                                  for angle in SECOND_LOOK_ROTATIONS]
        if not added:
            return None if all(hand.looked_again for hand in hands) else self.second_look(prepared, first)
        row = len(prepared.inputs)
        for i, (hand, k, f, view) in enumerate(added):
            hand.add_view(view, k, f, row + i)
        return Prepared(np.concatenate([prepared.inputs, self._inputs([view.image for *_, view in added])]),
                        prepared.views, prepared.Ks, prepared.image_sizes)

    def _landmark_box(self, hand: HandViews, k: int, uv_px: np.ndarray) -> np.ndarray | None:
        """A re-crop's box: reading k's first-look landmarks in the image (averaged over its views),
        their box scaled by `RECROP_EXPANSION` about its centre, clipped to the image; None where
        that is under `RECROP_MIN_PX` on a side."""
        idx = [i for i in range(hand.first_look) if hand.reading_of[i] == k]
        uv = np.mean([transform_points(np.asarray(uv_px[hand.rows[i]], np.float64), invert_affine(hand.views[i].affine))
                      for i in idx], axis=0)
        centre, half = (uv.min(0) + uv.max(0)) / 2, RECROP_EXPANSION * (uv.max(0) - uv.min(0)) / 2
        H, W = hand.image.shape[:2]
        box = clip_to_image(np.r_[centre - half, centre + half], W, H)
        return box if (box[2:] - box[:2]).min() >= RECROP_MIN_PX else None

    def read_sides(self, hands: list[HandViews], peak: np.ndarray | None
                   ) -> tuple[list[int], np.ndarray, np.ndarray]:
        """Which reading of each hand wins (its index in ``hand.readings``), the probability of that
        side (NaN for a side the caller gave) and the hand's heatmap peak (its readings' best, each
        the geometric mean over test-time rotations; NaN without one), all from the first look.
        `peak`: the batch's ``heatmap_peak`` (None: the graph has none)."""
        V = len(self.test_time_rotations)
        chosen, p_side, best = [], np.full(len(hands), np.nan), np.full(len(hands), np.nan)
        for i, hand in enumerate(hands):
            k = 0
            n = len(hand.readings)
            hand_log_peaks = None if peak is None else \
                log_peak(peak[hand.rows[:hand.first_look]]).reshape(n, V).mean(1)
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
        return chosen, p_side, best

    def kept_views(self, prepared: Prepared, peak: np.ndarray | None
                   ) -> tuple[list[HandViews], list[int], np.ndarray, np.ndarray, list[list[int]], np.ndarray | None]:
        """Every hand of the batch, `read_sides`' (chosen, p_side, peaks), per hand the indices (into
        ``hand.views``) of the chosen reading's views its outputs are taken from (with the second
        look, those whose averaging weight is at least `MIN_VIEW_WEIGHT`), and their log-weights
        (`_view_log_weights`, hand-major; None without peaks, or where every hand has one view)."""
        hands = [hand for image_hands in prepared.views for hand in image_hands]  # never empty: see Predictor
        chosen, p_side, peaks = self.read_sides(hands, peak)
        kept = [[i for i, r in enumerate(hand.reading_of) if r == k] for hand, k in zip(hands, chosen)]
        if peak is None or all(len(idx) == 1 for idx in kept):  # nothing to average (one look): no weights
            return hands, chosen, p_side, peaks, kept, None
        log_weights = self._view_log_weights(hands, kept, peak)
        if MIN_VIEW_WEIGHT > 0 and self.looks_twice:
            kept, log_weights = _drop_light_views(kept, log_weights)
        return hands, chosen, p_side, peaks, kept, log_weights

    def rows_to_finish(self, prepared: Prepared, first: dict[str, np.ndarray]) -> np.ndarray:
        """The mesh decoder runs on the chosen readings' views only: with the side read, half the crops."""
        hands, _, _, _, kept, _ = self.kept_views(prepared, first.get("heatmap_peak"))
        return _rows_of(hands, kept)

    def postprocess(self, prepared: Prepared, outputs: dict[str, np.ndarray], refine_root: bool = True) -> list[Hands]:
        peak = outputs.get("heatmap_peak")
        hands, chosen, p_side, peaks, kept, log_weights = self.kept_views(prepared, peak)
        sides = [hand.readings[k] for hand, k in zip(hands, chosen)]
        views = [hand.views[i] for hand, idx in zip(hands, kept) for i in idx]
        take = _rows_of(hands, kept)
        keypoints = "keypoints_px" if "keypoints_px" in outputs else "uv_px"  # a graph exported before it: uv_px
        joints_view, verts_view, uv_view = (np.asarray(outputs[k], np.float64)[take] for k in ("joints", "verts", keypoints))
        counts = np.array([len(idx) for idx in kept])
        starts = np.cumsum(counts) - counts
        if counts.max() > 1:
            joints_view, verts_view, uv_view = self._average_views(views, counts, log_weights, joints_view, verts_view,
                                                                   uv_view)
        first = [views[i] for i in starts]
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

    @staticmethod
    def _view_log_weights(hands: list[HandViews], kept: list[list[int]], peak: np.ndarray) -> np.ndarray:
        """(N,) log-weights of the kept views (hand-major, as `kept`): within each framing of a hand
        ∝ peak^`TEST_TIME_SHARPNESS` (as test-time rotations), and the framings (`HandViews.framings`)
        weighted against each other ∝ their plain views' peak^`TEST_TIME_SHARPNESS`, so that a
        framing counts as a whole, however many views it has."""
        out = []
        for hand, idx in zip(hands, kept):
            sharp = TEST_TIME_SHARPNESS * log_peak(peak[[hand.rows[i] for i in idx]])
            framing = np.array([hand.framing_of[i] for i in idx])
            for f in np.unique(framing):
                inside = framing == f
                sharp[inside] += sharp[inside][0] - np.logaddexp.reduce(sharp[inside])  # its plain view first
            out.append(sharp)
        return np.concatenate(out)

    def _average_views(self, views: list[CropView], counts: np.ndarray, log_weights: np.ndarray | None,
                       joints: np.ndarray, verts: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N, ...) view-frame outputs of the kept views (`views`, hand-major, `counts` (B,) per
        hand) → (B, ...) averages in each hand's first view, weighted ∝ exp(`log_weights`) ((N,);
        None: equal weights): X ↦ R₀ Rᵥᵀ X (rows: X Rᵥ R₀ᵀ), uv ↦ affine₀(affineᵥ⁻¹(uv)).
        Hands with fewer views are padded with weight 0."""
        starts = np.cumsum(counts) - counts
        slot = np.arange(counts.max())
        valid = slot < counts[:, None]  # (B, M)
        index = np.where(valid, starts[:, None] + slot, starts[:, None])
        sharpness = np.zeros(len(views)) if log_weights is None else log_weights
        sharpness = np.where(valid, sharpness[index], -np.inf)
        weights = np.exp(sharpness - sharpness.max(1, keepdims=True))
        weights /= weights.sum(1, keepdims=True)
        R = np.stack([v.R for v in views])[index]  # (B, M, 3, 3)
        affine = np.stack([v.affine for v in views])[index]  # (B, M, 2, 3)
        to_first = np.einsum("bvij,bkj->bvik", R, R[:, 0])  # Rᵥ R₀ᵀ: rows X_first = X_v @ Rᵥ R₀ᵀ

        def average_3d(x: np.ndarray) -> np.ndarray:
            return np.einsum("bv,bvni,bvij->bnj", weights, x[index], to_first)

        uv_image = transform_points(uv[index], invert_affine(affine))
        uv_first = np.einsum("bv,bvni->bni", weights,
                             transform_points(uv_image, np.broadcast_to(affine[:, :1], affine.shape)))
        return average_3d(joints), average_3d(verts), uv_first


def _drop_light_views(kept: list[list[int]], log_weights: np.ndarray) -> tuple[list[list[int]], np.ndarray]:
    """Per hand, the kept views whose normalised weight exp(log_weights) is at least `MIN_VIEW_WEIGHT`
    (the heaviest always), and their log-weights (hand-major, as given)."""
    counts = np.array([len(idx) for idx in kept])
    parts = np.split(log_weights, np.cumsum(counts)[:-1])
    new_kept, new_weights = [], []
    for idx, lw in zip(kept, parts):
        keep = np.exp(lw - np.logaddexp.reduce(lw)) >= MIN_VIEW_WEIGHT
        keep[np.argmax(lw)] = True
        new_kept.append([i for i, k in zip(idx, keep) if k])
        new_weights.append(lw[keep])
    return new_kept, np.concatenate(new_weights)


def _rows_of(hands: list[HandViews], kept: list[list[int]]) -> np.ndarray:
    """The network rows of each hand's kept views (`M3DHMRAdapter.kept_views`), hand-major."""
    return np.array([hand.rows[i] for hand, idx in zip(hands, kept) for i in idx], np.int64)
