"""COCO-style box metrics of a hand detector, by pycocotools (the official COCO evaluator).

    metrics = detection_metrics(gt_boxes, pred_boxes, pred_scores)
    metrics["ap50"], metrics["ap"], metrics["recall"], metrics["no_hand_fp_rate"]

gt_boxes: per image an (N, 4) array of x1, y1, x2, y2 pixels (N may be 0: an image without a
hand); pred_boxes / pred_scores: per image (M, 4) and (M,); gt_ignore: per image (N,) bool, hands
that are no detection target (`HandAnnotation.detectable`: hidden, outside the image), COCO
"crowd" regions: a detection on one is neither right nor wrong, missing one costs nothing. AP is
COCO's (101-point interpolated precision, IoU 0.50:0.95), AP50 / AP75 at one IoU, recall is
COCO's AR@100 (IoU 0.50:0.95) and recall50 the fraction of hands matched at IoU 0.5. At a score
threshold (`threshold`) the greedy one-to-one matching of `eval.scoring.match_hands` gives
precision and recall50 there, and `no_hand_fp_rate` is the fraction of images without a hand to
find that get any detection (other than on an ignored hand). `evaluate_detector` also reports
``ap50_all_hands``: AP50 with every hand a target, ``recall_by_height``: the target hands found at
IoU 0.5 (at any score and at the threshold) by their height in the image (`recall_by_height`), and
for a detector with a side head
(`models/handos/side_head.py`) `side_metrics`: the side accuracy of the hands detected at the
threshold (matched at IoU 0.5) and of the side head on the ground-truth boxes of every target hand.
`evaluate_detector` measures at the served operating point (`eval.operating_point`) by default.
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any, Callable, Iterator

import numpy as np

from handrecon.data.loaders import build_dataset
from handrecon.eval.bootstrap import DEFAULT_LEVEL, bootstrap_intervals, check_resamples
from handrecon.eval.operating_point import DEFAULT_NMS_IOU, DEFAULT_SCORE_THRESHOLD
from handrecon.eval.scoring import match_hands

# `recall_by_height`'s bins: a hand's box height over the image height (the scene sets frame hands at
# 12-45 % of it, the wide shots at 5-15 %, close-ups up to 90 %)
HEIGHT_EDGES = (0.0, 0.1, 0.2, 0.3, 0.45, float("inf"))


def _coco_eval(gt_boxes: list[np.ndarray], pred_boxes: list[np.ndarray], pred_scores: list[np.ndarray],
               gt_ignore: list[np.ndarray], ap50_only: bool = False):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    for i, (gt, boxes, scores, ignore) in enumerate(zip(gt_boxes, pred_boxes, pred_scores, gt_ignore)):
        images.append({"id": i, "width": 1, "height": 1})
        for b, crowd in zip(np.asarray(gt, np.float64).reshape(-1, 4), ignore):
            w, h = b[2] - b[0], b[3] - b[1]
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": 1, "iscrowd": int(crowd),
                                "bbox": [b[0], b[1], w, h], "area": w * h})
        for b, s in zip(np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64).reshape(-1)):
            results.append({"image_id": i, "category_id": 1, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                            "score": float(s)})
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco = COCO()
        coco.dataset = {"info": {}, "images": images, "annotations": annotations,  # "info": loadRes reads it (2.0.10)
                        "categories": [{"id": 1, "name": "hand"}]}
        coco.createIndex()
        dets = coco.loadRes(results) if results else None
        if dets is None:
            return None
        ev = COCOeval(coco, dets, "bbox")
        if ap50_only:  # one IoU, one area range, one detection budget: AP50 alone, in a tenth of the time
            ev.params.iouThrs, ev.params.maxDets = np.array([0.5]), [100]
            ev.params.areaRng, ev.params.areaRngLbl = [[0.0, 1e10]], ["all"]
        else:
            ev.params.maxDets = [1, 10, 100]
        ev.evaluate()
        ev.accumulate()
        if not ap50_only:
            ev.summarize()
    return ev


def coco_ap50(gt_boxes: list[np.ndarray], pred_boxes: list[np.ndarray], pred_scores: list[np.ndarray],
              gt_ignore: list[np.ndarray] | None = None) -> float:
    """COCO's AP at IoU 0.5 alone (all areas, 100 detections an image; the arguments as
    `detection_metrics`'): its ``ap50``, from pycocotools' precision table, in about a tenth of the time."""
    gt_boxes, gt_ignore = _prepared(gt_boxes, pred_boxes, pred_scores, gt_ignore)
    if not sum(int((~ig).sum()) for ig in gt_ignore):
        return 0.0
    ev = _coco_eval(gt_boxes, pred_boxes, pred_scores, gt_ignore, ap50_only=True)
    precision = ev.eval["precision"][0, :, 0, 0, 0] if ev is not None else np.zeros(0)
    return float(precision[precision > -1].mean()) if (precision > -1).any() else 0.0


def _prepared(gt_boxes, pred_boxes, pred_scores, gt_ignore):
    """The arguments of `detection_metrics`, checked, as float64 arrays and bool ignore flags."""
    if not (len(gt_boxes) == len(pred_boxes) == len(pred_scores)):
        raise ValueError("gt_boxes, pred_boxes and pred_scores must have one entry per image")
    gt_boxes = [np.asarray(g, np.float64).reshape(-1, 4) for g in gt_boxes]
    if gt_ignore is None:
        gt_ignore = [np.zeros(len(g), bool) for g in gt_boxes]
    gt_ignore = [np.asarray(ig, bool).reshape(-1) for ig in gt_ignore]
    if len(gt_ignore) != len(gt_boxes) or any(len(ig) != len(g) for ig, g in zip(gt_ignore, gt_boxes)):
        raise ValueError("gt_ignore must hold one flag per ground-truth box")
    return gt_boxes, gt_ignore


def matched_targets(gt: np.ndarray, ignore: np.ndarray, boxes: Any, scores: Any, threshold: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image: for each target hand (``gt[~ignore]``, (T,) bool each) whether a detection matches it
    at IoU 0.5 at any score and among those kept at `threshold` (`match_hands`, one-to-one), and (M,)
    bool the detections kept that count (at the threshold, not on a hand that is no target)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    sel = scores >= threshold
    if ignore.any():  # detections on hands that are no target leave the count
        on_ignored = match_hands(boxes[sel], scores[sel], gt[ignore])
        sel[np.flatnonzero(sel)[on_ignored[on_ignored >= 0]]] = False
    targets = gt[~ignore]
    if not len(targets):
        return np.zeros(0, bool), np.zeros(0, bool), sel
    return match_hands(boxes, scores, targets) >= 0, match_hands(boxes[sel], scores[sel], targets) >= 0, sel


def recall_by_height(heights: np.ndarray, found_any: np.ndarray, found_kept: np.ndarray,
                     edges: tuple[float, ...] = HEIGHT_EDGES) -> dict[str, dict[str, float]]:
    """Target hands grouped by their box height as a fraction of the image height (bins between
    `edges`): per bin with hands, {"hands", "recall50" (matched at any score), "recall50_at_threshold"}."""
    out = {}
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (heights >= lo) & (heights < hi)
        if inside.any():
            label = f"{100 * lo:g}-{100 * hi:g}%" if np.isfinite(hi) else f">={100 * lo:g}%"
            out[label] = {"hands": int(inside.sum()), "recall50": float(found_any[inside].mean()),
                          "recall50_at_threshold": float(found_kept[inside].mean())}
    return out


def threshold_metrics(gt_boxes: list[np.ndarray], pred_boxes: list[np.ndarray], pred_scores: list[np.ndarray],
                      threshold: float = 0.5, gt_ignore: list[np.ndarray] | None = None,
                      image_heights: list[float] | None = None) -> dict[str, Any]:
    """The operating-point part of `detection_metrics`, without COCO's AP: ``recall50``,
    ``precision_at_threshold``, ``recall50_at_threshold``, ``no_hand_fp_rate`` and the counts
    (cheap enough to sweep thresholds with); with `image_heights` (px, one per image) also
    ``recall_by_height`` (`recall_by_height`)."""
    gt_boxes, gt_ignore = _prepared(gt_boxes, pred_boxes, pred_scores, gt_ignore)
    counts, per_hand = _image_counts(gt_boxes, gt_ignore, pred_boxes, pred_scores, threshold, image_heights)
    num_gt, matched50, matched_kept, kept, empty, fp_empty = (int(counts[k].sum()) for k in (
        "targets", "found_any", "found_kept", "kept", "empty", "empty_with_detection"))
    return {
        "recall50": matched50 / num_gt if num_gt else 0.0,
        "precision_at_threshold": matched_kept / kept if kept else 1.0,
        "recall50_at_threshold": matched_kept / num_gt if num_gt else 0.0,
        "no_hand_fp_rate": fp_empty / empty if empty else 0.0,
        "images": len(gt_boxes), "hands": num_gt, "hands_ignored": sum(int(ig.sum()) for ig in gt_ignore),
        "images_without_hands": empty, "threshold": threshold,
        **({"recall_by_height": recall_by_height(*(np.concatenate(parts) for parts in zip(*per_hand)))}
           if per_hand else {}),
    }


def _image_counts(gt_boxes: list[np.ndarray], gt_ignore: list[np.ndarray], pred_boxes: list[np.ndarray],
                  pred_scores: list[np.ndarray], threshold: float, image_heights: list[float] | None = None
                  ) -> tuple[dict[str, np.ndarray], list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Per image (I,): target hands, those matched at IoU 0.5 at any score (``found_any``) and at the
    threshold (``found_kept``), detections kept that count (``kept``), whether it has no target
    (``empty``) and then a detection (``empty_with_detection``) (`matched_targets`); with
    `image_heights` per image (height fractions, found any, found kept) of its target hands."""
    rows, per_hand = [], []
    for i, (gt, ignore, boxes, scores) in enumerate(zip(gt_boxes, gt_ignore, pred_boxes, pred_scores)):
        found_any, found_kept, sel = matched_targets(gt, ignore, boxes, scores, threshold)
        rows.append((len(found_any), found_any.sum(), found_kept.sum(), sel.sum(), not len(found_any),
                     not len(found_any) and sel.any()))
        if image_heights is not None:
            targets = gt[~ignore]
            per_hand.append(((targets[:, 3] - targets[:, 1]) / image_heights[i], found_any, found_kept))
    table = np.array(rows, np.float64).reshape(-1, 6)
    names = ("targets", "found_any", "found_kept", "kept", "empty", "empty_with_detection")
    return {name: table[:, j] for j, name in enumerate(names)}, per_hand


def detection_intervals(gt_boxes: list[np.ndarray], pred_boxes: list[np.ndarray], pred_scores: list[np.ndarray],
                        threshold: float, gt_ignore: list[np.ndarray] | None, resamples: int, seed: int = 0
                        ) -> dict[str, dict[str, float]]:
    """95 % percentile bootstrap intervals (the images resampled; `eval.bootstrap`) of ``ap50``
    (`coco_ap50` on each resample) and, at `threshold`, ``recall50_at_threshold``,
    ``precision_at_threshold`` and ``no_hand_fp_rate`` (ratios of per-image counts): {metric: {"value",
    "low", "high"}}, each ``value`` the metric of `detection_metrics` on the images as given."""
    check_resamples(resamples)
    gt_boxes, gt_ignore = _prepared(gt_boxes, pred_boxes, pred_scores, gt_ignore)
    c, _ = _image_counts(gt_boxes, gt_ignore, pred_boxes, pred_scores, threshold)
    terms = {"recall50_at_threshold": (c["found_kept"], c["targets"]), "precision_at_threshold": (c["found_kept"], c["kept"]),
             "no_hand_fp_rate": (c["empty_with_detection"], c["empty"])}
    n = len(gt_boxes)
    out = bootstrap_intervals({k: v for k, v in terms.items() if v[1].sum() > 0}, np.arange(n), resamples, seed=seed)
    rng = np.random.default_rng(seed)
    aps = []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        aps.append(coco_ap50(*([x[i] for i in idx] for x in (gt_boxes, pred_boxes, pred_scores, gt_ignore))))
    low, high = np.quantile(aps, [(1.0 - DEFAULT_LEVEL) / 2, (1.0 + DEFAULT_LEVEL) / 2])
    ap50 = {"value": coco_ap50(gt_boxes, pred_boxes, pred_scores, gt_ignore), "low": float(low), "high": float(high)}
    return {"ap50": ap50, **out}


def detection_metrics(gt_boxes: list[np.ndarray], pred_boxes: list[np.ndarray], pred_scores: list[np.ndarray],
                      threshold: float = 0.5, gt_ignore: list[np.ndarray] | None = None,
                      image_heights: list[float] | None = None) -> dict[str, Any]:
    """The metrics of the module doc over a set of images (see there for the arguments;
    `image_heights`: `threshold_metrics`')."""
    gt_boxes, gt_ignore = _prepared(gt_boxes, pred_boxes, pred_scores, gt_ignore)
    at_threshold = threshold_metrics(gt_boxes, pred_boxes, pred_scores, threshold, gt_ignore, image_heights)
    ev = _coco_eval(gt_boxes, pred_boxes, pred_scores, gt_ignore) if at_threshold["hands"] else None
    stats = ev.stats if ev is not None else np.zeros(12)
    return {
        "ap": float(max(stats[0], 0.0)), "ap50": float(max(stats[1], 0.0)), "ap75": float(max(stats[2], 0.0)),
        "recall": float(max(stats[8], 0.0)), **at_threshold,
    }


def detected_scenes(detector: Any, root: str | os.PathLike, split: str = "all", limit: int | None = None,
                    nms_iou: float = DEFAULT_NMS_IOU) -> Iterator[tuple[Any, Any]]:
    """Each scene of a dataset in handrecon's synthetic format (the first `limit`) with what
    `detector` finds in it for AP: every query scoring > 0.01, after NMS at `nms_iou`."""
    samples = build_dataset("synthetic", root, split)
    for i in range(len(samples) if limit is None else min(limit, len(samples))):
        s = samples[i]
        yield s, detector.detect([s.image], score_threshold=0.01, nms_iou=nms_iou)[0]


def scene_targets(sample: Any) -> tuple[np.ndarray, np.ndarray]:
    """A scene's ground-truth boxes (N, 4) x1, y1, x2, y2 and their ignore flags (N,): the hands
    that are no detection target (`HandAnnotation.detectable`)."""
    return (np.array([h.box for h in sample.hands], np.float64).reshape(-1, 4),
            np.array([not h.detectable for h in sample.hands], bool))


def evaluate_detector(detector: Any, root: str | os.PathLike, split: str = "all",
                      threshold: float = DEFAULT_SCORE_THRESHOLD, limit: int | None = None,
                      on_progress: Callable[[int], None] | None = None,
                      nms_iou: float = DEFAULT_NMS_IOU, bootstrap: int = 0) -> dict[str, float]:
    """`detection_metrics` of `detector` (anything with ``detect(images, score_threshold, nms_iou)``)
    on a dataset in handrecon's synthetic format (`handrecon synth`, the foreign scene set): every
    query scoring > 0.01 enters AP, after NMS at `nms_iou` (the served default); `threshold` sets
    the operating point; hands that are not `detectable` are ignored (module doc), plus
    ``ap50_all_hands``, ``recall_by_height`` and the ``nms_iou`` used; with `bootstrap` resamples
    (>= 100) ``intervals`` (`detection_intervals`)."""
    if bootstrap:
        check_resamples(bootstrap)  # before any image is read
    side_head = getattr(detector, "side_head", None)
    gts, ignores, boxes, scores, sides, heights = [], [], [], [], [], []
    for s, found in detected_scenes(detector, root, split, limit, nms_iou):
        gt, ignore = scene_targets(s)
        gts.append(gt)
        ignores.append(ignore)
        boxes.append(found.boxes)
        scores.append(found.scores)
        heights.append(s.image.shape[0])
        if side_head is not None:
            sides.append(_side_hits(side_head, s, found, threshold))
        if on_progress:
            on_progress(1)
    metrics = detection_metrics(gts, boxes, scores, threshold, ignores, heights)
    metrics["ap50_all_hands"] = coco_ap50(gts, boxes, scores)
    if bootstrap:
        metrics["intervals"] = detection_intervals(gts, boxes, scores, threshold, ignores, bootstrap)
    metrics["nms_iou"] = float(nms_iou)
    if side_head is not None:
        metrics.update(side_metrics(sides))
    return metrics


def _side_hits(side_head: Any, sample: Any, found: Any, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """For the target hands with a side in one image: whether the side of the detection matched
    to each (at `threshold`, IoU 0.5) and the side head's reading of its ground-truth box are
    right: two (M,) int arrays, 1 right, 0 wrong, -1 not detected."""
    hands = [h for h in sample.hands if h.detectable and h.side is not None]
    if not hands:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    gt = np.array([h.box for h in hands], np.float64)
    truth = np.array([h.side for h in hands])
    sel = np.flatnonzero(np.asarray(found.scores) >= threshold)
    match = match_hands(np.asarray(found.boxes)[sel], np.asarray(found.scores)[sel], gt)
    detected = np.full(len(hands), -1, np.int64)
    hit = match >= 0
    if found.sides is not None and hit.any():
        detected[hit] = np.array(found.sides)[sel[match[hit]]] == truth[hit]
    on_gt_boxes = (np.array(side_head.sides(sample.image, gt)[0]) == truth).astype(np.int64)
    return detected, on_gt_boxes


def side_metrics(hits: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """``side_accuracy`` of the detected hands and ``side_accuracy_gt_boxes``, with their hand
    counts, from `_side_hits` of every image."""
    detected = np.concatenate([d for d, _ in hits]) if hits else np.zeros(0, np.int64)
    on_gt = np.concatenate([g for _, g in hits]) if hits else np.zeros(0, np.int64)
    read = detected[detected >= 0]
    return {"side_accuracy": float(read.mean()) if len(read) else 0.0, "side_hands_detected": len(read),
            "side_accuracy_gt_boxes": float(on_gt.mean()) if len(on_gt) else 0.0, "side_hands": len(on_gt)}
