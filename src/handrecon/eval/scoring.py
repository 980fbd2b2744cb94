"""Matching predicted hands to ground truth, and the one scoring function.

`handrecon evaluate` (`eval.runner`) and every family's ``validate`` score with `score_hands`, so a
number means the same wherever it is printed:

- 3D (official FreiHAND semantics, `eval.submission.evaluate_freihand`): PA-MPJPE and PA-MPVPE
  (mm, each set aligned by its own Procrustes fit, reflections allowed), F@5 / F@15 of the aligned
  mesh, AUC of the aligned-joint PCK over 0-50 mm, MPJPE in camera space (mm, no alignment), and
  the camera-space root (wrist) error and its depth part over the found hands.
- 2D: PCK@`PCK_2D_THRESHOLD` of the ground-truth box's long side, over valid keypoints.
- A ground-truth hand no prediction matched (HandOS, §4): its vertices and joints are zero in the
  3D errors (V = 0) and it scores 0 in PCK and AUC.
- Detection: recall (found / ground-truth hands), precision (matched / predicted hands) and side
  accuracy (matched hands whose side is right).

Matching (`match_hands`): predictions in descending score order each take the unmatched
ground-truth hand of highest box IoU, if that IoU is at least `MATCH_IOU`; one-to-one.
Vertex metrics need the prediction and the ground truth on one topology: when the vertex counts
differ, or the hand models are known and differ, they are left out (None) with a note.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handrecon.eval.metrics import keypoint_errors, pck_2d, pck_2d_hits, summarize_errors
from handrecon.eval.submission import FreihandSet, evaluate_freihand
from handrecon.geometry.boxes import box_iou
from handrecon.geometry.procrustes import procrustes_align

MATCH_IOU = 0.5
PCK_2D_THRESHOLD = 0.1  # fraction of the ground-truth box's long side
PCK_2D_THRESHOLDS = (0.05, 0.1, 0.15)  # HandOS's HInt table (suppl. §VII)
METRIC_NAMES = ("pa_mpjpe_mm", "pa_mpvpe_mm", "f@5", "f@15", "auc", "mpjpe_mm", "pck2d@0.1",
                "root_error_mm", "root_depth_error_mm", "recall", "precision", "side_accuracy")


def match_hands(pred_boxes: np.ndarray, pred_scores: np.ndarray, gt_boxes: np.ndarray,
                iou_threshold: float = MATCH_IOU) -> np.ndarray:
    """(M,) index of the prediction matched to each ground-truth hand, -1 where none (see module doc)."""
    iou = box_iou(gt_boxes, pred_boxes)  # (M, N)
    match = np.full(len(iou), -1, np.int64)
    for p in np.argsort(-np.asarray(pred_scores, np.float64), kind="stable"):
        if not len(iou):
            break
        candidates = np.where(match < 0, iou[:, p], -1.0)
        g = int(np.argmax(candidates))
        if candidates[g] >= iou_threshold:
            match[g] = p
    return match


@dataclass
class HandSet:
    """N hands stacked. keypoints_2d (N, 21, 2) px; keypoints_3d (N, 21, 3) m, camera frame;
    vertices (N, V, 3) m or None; boxes (N, 4) px; sides N of "left" | "right"; valid (N, 21)
    2D keypoints to score (ground truth only; None: all)."""

    keypoints_2d: np.ndarray
    keypoints_3d: np.ndarray | None
    vertices: np.ndarray | None
    boxes: np.ndarray
    sides: list[str]
    valid: np.ndarray | None = None


def score_hands(pred: HandSet, gt: HandSet, found: np.ndarray, num_predictions: int | None = None,
                pred_hand_model: str | None = None, gt_hand_model: str | None = None,
                ) -> tuple[dict[str, float | None], dict[str, float | None] | None, list[str]]:
    """(metrics, official FreiHAND scores, notes) of `pred` against `gt`, hand i against hand i.

    found (N,) bool: hand i was predicted (where False, `pred`'s row i is ignored and the missed-hand
    convention applies). num_predictions: hands the model output in all (precision; None: the
    found ones, i.e. precision 1). Metric names: `METRIC_NAMES`.
    """
    found = np.asarray(found, bool)
    n = len(found)
    if n == 0:
        raise ValueError("score_hands: no ground-truth hand to score")
    notes: list[str] = []
    metrics: dict[str, float | None] = dict.fromkeys(METRIC_NAMES)
    matched = int(found.sum())
    metrics["recall"] = matched / n
    metrics["precision"] = matched / num_predictions if num_predictions else (1.0 if matched else None)
    if matched:
        metrics["side_accuracy"] = float(np.mean([p == g for p, g, f in zip(pred.sides, gt.sides, found) if f]))
    if matched < n:
        notes.append(f"{n - matched} of {n} ground-truth hands were not found: they score zero vertices in the "
                     "3D errors and 0 in PCK and AUC")
    uv = np.where(found[:, None, None], np.asarray(pred.keypoints_2d, np.float64), np.inf)
    metrics["pck2d@0.1"] = pck_2d(uv, gt.keypoints_2d, gt.boxes, PCK_2D_THRESHOLD, gt.valid)
    if gt.keypoints_3d is None:
        notes.append("no 3D ground truth: 3D metrics not computed")
        return metrics, None, notes

    xyz_gt = np.asarray(gt.keypoints_3d, np.float64)
    xyz = np.where(found[:, None, None], np.asarray(pred.keypoints_3d, np.float64), 0.0)
    verts_pred = None if pred.vertices is None else np.asarray(pred.vertices, np.float64)
    if _same_topology(pred, gt, pred_hand_model, gt_hand_model):
        verts = np.where(found[:, None, None], verts_pred, 0.0)
        official = evaluate_freihand(FreihandSet(xyz, verts), FreihandSet(xyz_gt, np.asarray(gt.vertices, np.float64)))
    else:  # joints stand in for both vertex sets; their vertex and F-scores are dropped below
        official = evaluate_freihand(FreihandSet(xyz, xyz), FreihandSet(xyz_gt, xyz_gt))
        for key in official:
            if key.startswith(("mesh_", "f_")):
                official[key] = None
        if gt.vertices is not None and verts_pred is not None:
            notes.append(f"the model's mesh ({pred_hand_model or 'unknown hand model'}, {verts_pred.shape[1]} "
                         f"vertices) and the ground truth's ({gt_hand_model or 'unknown hand model'}, "
                         f"{np.shape(gt.vertices)[1]} vertices) are different topologies: vertex metrics "
                         "(PA-MPVPE, F-scores) are not comparable and are left out; joint metrics only")
        else:
            notes.append("no vertices to compare: vertex metrics (PA-MPVPE, F-scores) left out")
    auc = official["xyz_al_auc3d"]
    if matched < n:  # a missed hand scores 0 in the AUC, not the AUC of its zero joints
        errors = keypoint_errors(procrustes_align(xyz, xyz_gt), xyz_gt)
        auc = summarize_errors(np.where(found[:, None], errors, np.inf)).auc
    metrics.update({
        "pa_mpjpe_mm": official["xyz_al_mean3d"], "pa_mpvpe_mm": official["mesh_al_mean3d"],
        "f@5": official["f_al_score_5"], "f@15": official["f_al_score_15"], "auc": auc,
        "mpjpe_mm": official["xyz_mean3d"],
    })
    if matched:
        root = xyz[found, 0] - xyz_gt[found, 0]
        metrics["root_error_mm"] = 1000.0 * float(np.linalg.norm(root, axis=-1).mean())
        metrics["root_depth_error_mm"] = 1000.0 * float(np.abs(root[:, 2]).mean())
    return metrics, official, notes


def _same_topology(pred: HandSet, gt: HandSet, pred_hand_model: str | None, gt_hand_model: str | None) -> bool:
    """Whether the vertex metrics compare like with like: both sets have vertices of one shape and the
    hand models, where known, agree (module doc)."""
    same_model = pred_hand_model is None or gt_hand_model is None or pred_hand_model == gt_hand_model
    return (gt.vertices is not None and pred.vertices is not None and same_model
            and np.shape(pred.vertices) == np.shape(gt.vertices))


def per_hand_terms(pred: HandSet, gt: HandSet, found: np.ndarray, pred_hand_model: str | None = None,
                   gt_hand_model: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per hand, the numerator and denominator ((N,) each) whose sums' ratio over any set of hands is
    `score_hands`' number of the same name, with the same missed-hand convention: PCK@`PCK_2D_THRESHOLD`
    (hits over valid keypoints); with 3D ground truth MPJPE and PA-MPJPE (mm, each hand's joint errors
    over its joints, unaligned / the official alignment); where the topologies match PA-MPVPE. What
    `eval.bootstrap.bootstrap_intervals` resamples."""
    found = np.asarray(found, bool)
    uv = np.where(found[:, None, None], np.asarray(pred.keypoints_2d, np.float64), np.inf)
    terms = {"pck2d@0.1": pck_2d_hits(uv, gt.keypoints_2d, gt.boxes, PCK_2D_THRESHOLD, gt.valid)}
    if gt.keypoints_3d is None:
        return terms

    def mm_per_point(p: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        errors = keypoint_errors(p, g)
        return 1000.0 * errors.sum(-1), np.full(len(errors), float(errors.shape[-1]))

    xyz_gt = np.asarray(gt.keypoints_3d, np.float64)
    xyz = np.where(found[:, None, None], np.asarray(pred.keypoints_3d, np.float64), 0.0)
    terms["mpjpe_mm"] = mm_per_point(xyz, xyz_gt)
    terms["pa_mpjpe_mm"] = mm_per_point(procrustes_align(xyz, xyz_gt), xyz_gt)
    if _same_topology(pred, gt, pred_hand_model, gt_hand_model):
        verts_gt = np.asarray(gt.vertices, np.float64)
        verts = np.where(found[:, None, None], np.asarray(pred.vertices, np.float64), 0.0)
        terms["pa_mpvpe_mm"] = mm_per_point(procrustes_align(verts, verts_gt), verts_gt)
    return terms


def full_image_scores(pred: HandSet, gt: HandSet, found: np.ndarray, Ks: np.ndarray,
                      visible: np.ndarray | None = None) -> dict[str, float | None]:
    """What the HandOS protocol adds for a model that finds its own hands (one row per ground-truth
    hand; Ks (N, 3, 3) each hand's intrinsics): 2D PCK at `PCK_2D_THRESHOLDS` of the predicted 2D
    keypoints (``pck2d@t``, HandOS-2D) and of the 3D keypoints projected through K
    (``pck2d_proj@t``, HandOS-proj), a missed hand scoring 0; and PA-MPJPE / PA-MPVPE over the
    matched hands only (``*_matched_mm``), the reconstruction error apart from detection. With
    `visible` (N, 21) occlusion labels that mark some keypoints occluded and some visible, also
    PCK@0.1 over each group (``pck2d@0.1_visible`` / ``_occluded`` and the ``proj`` ones)."""
    found = np.asarray(found, bool)
    out: dict[str, float | None] = {}
    projected = None
    if pred.keypoints_3d is not None:
        q = np.einsum("nij,nkj->nki", np.asarray(Ks, np.float64), np.asarray(pred.keypoints_3d, np.float64))
        projected = q[..., :2] / np.maximum(q[..., 2:], 1e-9)  # a point behind the camera lands far off
    for t in PCK_2D_THRESHOLDS:
        uv = np.where(found[:, None, None], np.asarray(pred.keypoints_2d, np.float64), np.inf)
        out[f"pck2d@{t:g}"] = pck_2d(uv, gt.keypoints_2d, gt.boxes, t, gt.valid)
        if projected is not None:
            uvp = np.where(found[:, None, None], projected, np.inf)
            out[f"pck2d_proj@{t:g}"] = pck_2d(uvp, gt.keypoints_2d, gt.boxes, t, gt.valid)
    valid = np.ones(np.shape(gt.keypoints_2d)[:2], bool) if gt.valid is None else np.asarray(gt.valid, bool)
    if visible is not None and (valid & visible).any() and (valid & ~visible).any():
        for name, group in (("visible", valid & visible), ("occluded", valid & ~visible)):
            uv = np.where(found[:, None, None], np.asarray(pred.keypoints_2d, np.float64), np.inf)
            out[f"pck2d@0.1_{name}"] = pck_2d(uv, gt.keypoints_2d, gt.boxes, 0.1, group)
            if projected is not None:
                uvp = np.where(found[:, None, None], projected, np.inf)
                out[f"pck2d_proj@0.1_{name}"] = pck_2d(uvp, gt.keypoints_2d, gt.boxes, 0.1, group)
    out["pa_mpjpe_matched_mm"] = out["pa_mpvpe_matched_mm"] = None
    if found.any() and pred.keypoints_3d is not None and gt.keypoints_3d is not None:
        xyz, xyz_gt = np.asarray(pred.keypoints_3d, np.float64)[found], np.asarray(gt.keypoints_3d, np.float64)[found]
        same = pred.vertices is not None and gt.vertices is not None and np.shape(pred.vertices) == np.shape(gt.vertices)
        v, v_gt = (np.asarray(pred.vertices, np.float64)[found], np.asarray(gt.vertices, np.float64)[found]) if same \
            else (xyz, xyz_gt)
        official = evaluate_freihand(FreihandSet(xyz, v), FreihandSet(xyz_gt, v_gt))
        out["pa_mpjpe_matched_mm"] = official["xyz_al_mean3d"]
        out["pa_mpvpe_matched_mm"] = official["mesh_al_mean3d"] if same else None
    return out
