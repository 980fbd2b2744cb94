"""Evaluation metrics with the official benchmark scripts' semantics (see REFERENCE.md §1).

float64 throughout; 3D inputs in metres unless a function says otherwise. Batched over samples:
3D point sets are (B, K, 3), 2D keypoints (B, K, 2).

- FreiHAND `EvalUtil`: per-keypoint Euclidean errors; mean = mean over keypoints of per-keypoint
  means; PCK(t) = mean(d <= t) over thresholds linspace(0, 0.05, 100) m; per-keypoint
  AUC = trapezoid(pck)/trapezoid(ones); AUC = mean over keypoints.
- PA-MPJPE / PA-MPVPE: each set aligned with its own official (reflection-allowing) Procrustes fit.
- F-score: nearest neighbours both ways (KD-tree), strict `<`, F = 2PR/(P+R) (0 if both 0).
- HO3D scale-translation alignment, DexYCB absolute / root-relative / Procrustes, HInt 2D PCK.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Literal, NamedTuple, Sequence

import numpy as np
from scipy.spatial import cKDTree

from handrecon.geometry.procrustes import procrustes_align

FREIHAND_PCK_MAX_M = 0.05
PCK_STEPS = 100
F_SCORE_THRESHOLDS_M = (0.005, 0.015)
HINT_THRESHOLDS = (0.05, 0.1, 0.15)


class ErrorSummary(NamedTuple):
    """What the official `EvalUtil.get_measures` returns (same units as the errors)."""

    mean: float  # mean over keypoints of per-keypoint mean errors
    median: float  # mean over keypoints of per-keypoint median errors
    auc: float  # mean over keypoints of normalised area under the PCK curve
    pck: np.ndarray  # (T,) PCK curve, mean over keypoints
    thresholds: np.ndarray  # (T,)


def keypoint_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean distance per point. pred, gt: (..., K, D) -> (..., K)."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} does not match ground truth shape {gt.shape}")
    diff = gt - pred
    return np.sqrt(np.einsum("...i,...i->...", diff, diff))


def summarize_errors(
    errors: np.ndarray,
    valid: np.ndarray | None = None,
    max_threshold: float = FREIHAND_PCK_MAX_M,
    steps: int = PCK_STEPS,
) -> ErrorSummary:
    """Official `EvalUtil` measures of per-keypoint errors (B, K); `valid` (B, K) masks entries out.

    Keypoints with no valid entry are skipped, as the official code does. Thresholds are
    linspace(0, max_threshold, steps) in the errors' unit.
    """
    errors = np.asarray(errors, np.float64)
    if errors.ndim != 2:
        raise ValueError(f"errors must be (samples, keypoints), got shape {errors.shape}")
    valid = np.ones(errors.shape, bool) if valid is None else np.asarray(valid, bool)
    thresholds = np.linspace(0.0, max_threshold, steps)
    counts = valid.sum(0)
    kept = counts > 0
    if not kept.any():
        raise ValueError("no valid keypoint to evaluate")
    errors, valid, counts = errors[:, kept], valid[:, kept], counts[kept]
    masked = np.where(valid, errors, np.nan)
    mean = (np.nansum(masked, 0) / counts).mean()
    median = np.nanmedian(masked, 0).mean() if not valid.all() else np.median(errors, 0).mean()
    pck = pck_curves(errors, thresholds, valid)
    auc = np.trapezoid(pck, thresholds, axis=-1) / np.trapezoid(np.ones_like(thresholds), thresholds)
    return ErrorSummary(float(mean), float(median), float(auc.mean()), pck.mean(0), thresholds)


def pck_curves(errors: np.ndarray, thresholds: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Per-keypoint PCK curves (K, T): fraction of valid errors (B, K) with d <= t (inclusive).

    Exact: each error is binned by the first threshold it does not exceed, then counts are summed.
    """
    B, K = errors.shape
    valid = np.ones((B, K), bool) if valid is None else valid
    T = len(thresholds)
    first = np.searchsorted(thresholds, errors, side="left")  # d <= t_j  <=>  j >= first
    bins = first + (T + 1) * np.arange(K)[None, :]
    hist = np.bincount(bins[valid], minlength=K * (T + 1)).reshape(K, T + 1)[:, :T]
    return np.cumsum(hist, -1) / np.maximum(valid.sum(0), 1)[:, None]


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean per-joint position error (B, K, 3), same unit as the input: mean of per-keypoint means."""
    return float(keypoint_errors(pred, gt).mean(0).mean())


def pa_mpjpe(pred_joints: np.ndarray, gt_joints: np.ndarray, allow_reflection: bool = True) -> float:
    """MPJPE after aligning each sample's joints with a Procrustes fit on the joints."""
    return mpjpe(procrustes_align(pred_joints, gt_joints, allow_reflection), gt_joints)


def pa_mpvpe(pred_verts: np.ndarray, gt_verts: np.ndarray, allow_reflection: bool = True) -> float:
    """Mean per-vertex error after aligning each sample's vertices with a fit on the vertices."""
    return mpjpe(procrustes_align(pred_verts, gt_verts, allow_reflection), gt_verts)


def f_scores(
    pred_verts: np.ndarray,
    gt_verts: np.ndarray,
    thresholds: Sequence[float] = F_SCORE_THRESHOLDS_M,
    workers: int = -1,
) -> np.ndarray:
    """Per-sample F-scores (B, len(thresholds)) between point sets (B, M, 3) and (B, N, 3).

    precision = mean(d_pred->gt < t), recall = mean(d_gt->pred < t) (strict), F = 2PR/(P+R), 0 if
    both are 0. The official value is the mean over samples of the vertex-aligned mesh's F.
    """
    return f_scores_sets([pred_verts], gt_verts, thresholds, workers)[0]


def f_scores_sets(
    pred_sets: Sequence[np.ndarray],
    gt_verts: np.ndarray,
    thresholds: Sequence[float] = F_SCORE_THRESHOLDS_M,
    workers: int = -1,
) -> np.ndarray:
    """`f_scores` of several predictions (each (B, M, 3)) against one GT (B, N, 3): (S, B, T).

    Samples are split over `workers` threads (-1: all available cores); cKDTree queries release
    the GIL.
    """
    gt_verts = np.asarray(gt_verts, np.float64)
    pred_sets = [np.asarray(p, np.float64) for p in pred_sets]
    for p in pred_sets:
        if p.ndim != 3 or gt_verts.ndim != 3 or len(p) != len(gt_verts) or p.shape[-1] != 3 or gt_verts.shape[-1] != 3:
            raise ValueError(f"F-score needs (B, M, 3) and (B, N, 3) point sets, got {p.shape} and {gt_verts.shape}")
    th = np.asarray(thresholds, np.float64)
    out = np.empty((len(pred_sets), len(gt_verts), len(th)))
    n_threads = max(1, min(len(os.sched_getaffinity(0)) if workers == -1 else workers, len(gt_verts)))
    chunks = np.array_split(np.arange(len(gt_verts)), n_threads)
    run = partial(_f_scores_chunk, pred_sets, gt_verts, th, out)
    if n_threads == 1:
        run(chunks[0])
    else:
        with ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(run, chunks))
    return out


def _f_scores_chunk(pred_sets, gt_verts, th, out, samples) -> None:
    # With one topology, ||p_i - g_i|| bounds both nearest-neighbour distances of vertex i: each
    # threshold above it is met without a search, and the search for the others can stop at the
    # largest threshold left open (an exact shortcut).
    corr = [keypoint_errors(p[samples], gt_verts[samples]) if p.shape == gt_verts.shape else None for p in pred_sets]
    ths = np.sort(th)
    for j, i in enumerate(samples):
        gt_tree = _LazyTree(gt_verts[i])
        for s, pred in enumerate(pred_sets):
            upper = None if corr[s] is None else corr[s][j]
            d_pg = _nn_below(pred[i], gt_tree, upper, ths)
            d_gp = _nn_below(gt_verts[i], _LazyTree(pred[i]), upper, ths)
            precision = (d_pg[:, None] < th).mean(0)
            recall = (d_gp[:, None] < th).mean(0)
            total = precision + recall
            out[s, i] = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)


class _LazyTree:
    """A KD-tree over `points`, built on first use (many samples need no search at all)."""

    def __init__(self, points: np.ndarray):
        self.points, self.tree = points, None

    def query(self, src: np.ndarray, bound: float) -> np.ndarray:
        if self.tree is None:
            self.tree = cKDTree(self.points, leafsize=32, balanced_tree=False, compact_nodes=False)
        return self.tree.query(src, distance_upper_bound=bound)[0]


def _nn_below(src: np.ndarray, dst_tree: _LazyTree, upper: np.ndarray | None, ths: np.ndarray) -> np.ndarray:
    """Per src point a value d with (d < t) == (nearest-neighbour distance < t) for every t in the
    sorted thresholds `ths`.

    `upper` (optional) holds known upper bounds of the distances: thresholds above a bound are
    decided by it; the others need a search bounded by the largest of them.
    """
    if upper is None:
        return dst_tree.query(src, ths[-1] * (1 + 1e-6))  # inf where nothing is that close
    d = upper.copy()
    open_count = np.searchsorted(ths, upper, side="right")  # thresholds <= bound: still undecided
    for k in np.unique(open_count[open_count > 0]):
        sel = open_count == k
        d[sel] = np.minimum(dst_tree.query(src[sel], ths[k - 1] * (1 + 1e-6)), upper[sel])
    return d


# HO3D: the wrist and the middle-finger MCP, whose distance sets the scale.
_SCALE_JOINTS = {"ho3d": (0, 4), "op21": (0, 9)}


def scale_translation_align(
    pred: np.ndarray, gt: np.ndarray, order: Literal["ho3d", "op21"], points: np.ndarray | None = None
) -> np.ndarray:
    """HO3D's scale-translation alignment of predicted joints (..., 21, 3) onto GT joints.

    Scale by ||gt[mcp]-gt[wrist]|| / ||pred[mcp]-pred[wrist]|| (no rescale when the predicted length
    is 0), then move the predicted wrist onto the GT wrist. `order` names the joint order of both
    arrays: "ho3d" (MANO21: wrist 0, middle MCP 4, as the official script indexes) or "op21"
    (wrist 0, middle MCP 9). `points` (..., M, 3), e.g. vertices, are moved by the same transform;
    by default the joints themselves are returned aligned.
    """
    wrist, mcp = _SCALE_JOINTS[order]
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    pred_len = np.linalg.norm(pred[..., mcp, :] - pred[..., wrist, :], axis=-1)
    gt_len = np.linalg.norm(gt[..., mcp, :] - gt[..., wrist, :], axis=-1)
    factor = np.where(pred_len > 0, gt_len / np.where(pred_len > 0, pred_len, 1), gt_len)[..., None, None]
    target = pred if points is None else np.asarray(points, np.float64)
    return (target - pred[..., wrist : wrist + 1, :]) * factor + gt[..., wrist : wrist + 1, :]


def dexycb_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, dict[str, float]]:
    """DexYCB hand-pose metrics for OP21 joints (B, 21, 3) in metres.

    Computed in millimetres as the official toolkit does: MPJPE (mm) and AUC over 0-50 mm (100
    steps) for "absolute", "root-relative" (joint 0 subtracted from both) and "procrustes".
    """
    pred_mm, gt_mm = np.asarray(pred, np.float64) * 1000.0, np.asarray(gt, np.float64) * 1000.0
    variants = {
        "absolute": (pred_mm, gt_mm),
        "root-relative": (pred_mm - pred_mm[:, :1], gt_mm - gt_mm[:, :1]),
        "procrustes": (procrustes_align(pred_mm, gt_mm), gt_mm),
    }
    out = {}
    for name, (p, g) in variants.items():
        s = summarize_errors(keypoint_errors(p, g), max_threshold=50.0)
        out[name] = {"mpjpe": s.mean, "auc": s.auc}
    return out


def box_long_side(boxes: np.ndarray) -> np.ndarray:
    """Longer side of x1,y1,x2,y2 boxes (..., 4) in pixels."""
    boxes = np.asarray(boxes, np.float64)
    return np.maximum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1])


def _correct_2d(pred: np.ndarray, gt: np.ndarray, boxes: np.ndarray, threshold: float) -> np.ndarray:
    """(B, K) bool: ||pred - gt|| <= threshold * box long side (inclusive)."""
    return keypoint_errors(pred, gt) <= threshold * box_long_side(boxes)[:, None]


def hint_pck(
    pred: np.ndarray,
    gt: np.ndarray,
    conf: np.ndarray,
    boxes: np.ndarray,
    occluded: np.ndarray,
    thresholds: Sequence[float] = HINT_THRESHOLDS,
) -> dict[str, dict[float, float]]:
    """HInt 2D PCK. pred, gt: (B, 21, 2) px; conf, occluded: (B, 21); boxes: (B, 4) annotated xyxy.

    valid = conf > 0.5; per joint PCK = correct / valid over the whole set; reported = mean over
    joints (joints with no valid entry in a split are left out; NaN if none has one). Splits:
    "all", "visible" (occluded flag 0), "occluded" (flag 1). Returns {split: {threshold: pck}}.
    """
    valid = np.asarray(conf, np.float64) > 0.5
    occ = np.asarray(occluded).astype(bool)
    splits = {"all": valid, "visible": valid & ~occ, "occluded": valid & occ}
    out: dict[str, dict[float, float]] = {name: {} for name in splits}
    for t in thresholds:
        correct = _correct_2d(pred, gt, boxes, t)
        for name, mask in splits.items():
            n = mask.sum(0)
            per_joint = (correct & mask).sum(0)[n > 0] / n[n > 0]
            out[name][t] = float(per_joint.mean()) if per_joint.size else float("nan")
    return out


def pck_2d_hits(
    pred: np.ndarray, gt: np.ndarray, boxes: np.ndarray, threshold: float, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, (B,) valid 2D keypoints (B, K, 2) within `threshold` x box long side, and (B,) valid
    keypoints: `pck_2d` is their sums' ratio."""
    correct = _correct_2d(pred, gt, boxes, threshold)
    valid = np.ones(correct.shape, bool) if valid is None else np.asarray(valid, bool)
    return (correct & valid).sum(-1), valid.sum(-1)


def pck_2d(
    pred: np.ndarray, gt: np.ndarray, boxes: np.ndarray, threshold: float, valid: np.ndarray | None = None
) -> float:
    """Fraction of valid 2D keypoints (B, K, 2) within `threshold` x box long side (pooled over all)."""
    hits, count = pck_2d_hits(pred, gt, boxes, threshold, valid)
    if not count.sum():
        raise ValueError("pck_2d: no valid keypoint")
    return float(hits.sum() / count.sum())
