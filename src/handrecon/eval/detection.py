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
`evaluate_detector` measures at the served operating point (`eval.operating_point`) by default,
and can keep every image's detections (`save_detections`, numpy without pickle) so that two detectors
evaluated on the same images are compared by the paired bootstrap (`compare_detector_evaluations`).
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from handrecon.data.loaders import build_dataset
from handrecon.eval.bootstrap import (DEFAULT_LEVEL, bootstrap_intervals, check_resamples, paired_intervals,
                                      percentile_interval)
from handrecon.eval.operating_point import DEFAULT_NMS_IOU, DEFAULT_SCORE_THRESHOLD
from handrecon.eval.scoring import match_hands
from handrecon.utils.io import atomic_write_arrays, read_arrays

# `recall_by_height`'s bins: a hand's box height over the image height (the scene sets frame hands at
# 12-45 % of it, the wide shots at 5-15 %, close-ups up to 90 %)
HEIGHT_EDGES = (0.0, 0.1, 0.2, 0.3, 0.45, float("inf"))


def _coco_eval(gt_boxes: list[np.ndarray], pred_boxes: list[np.ndarray], pred_scores: list[np.ndarray],
               gt_ignore: list[np.ndarray], ap50_only: bool = False, accumulate: bool = True):
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
        if not accumulate:  # the per-image matches alone (`_ap50_matches`), kept for `_accumulated_ap50`
            ev.all_images = list(ev.evalImgs)
            return ev
        ev.accumulate()
        if not ap50_only:
            ev.summarize()
    return ev


def coco_ap50(gt_boxes: list[np.ndarray], pred_boxes: list[np.ndarray], pred_scores: list[np.ndarray],
              gt_ignore: list[np.ndarray] | None = None) -> float:
    """COCO's AP at IoU 0.5 alone (all areas, 100 detections an image; the arguments as
    `detection_metrics`'): its ``ap50``, from pycocotools' precision table, in about a tenth of the time."""
    gt_boxes, gt_ignore = _prepared(gt_boxes, pred_boxes, pred_scores, gt_ignore)
    matches = _ap50_matches(gt_boxes, pred_boxes, pred_scores, gt_ignore)
    return _accumulated_ap50(matches, np.arange(len(gt_boxes)))


def _ap50_matches(gt_boxes: list[np.ndarray], pred_boxes: list[np.ndarray], pred_scores: list[np.ndarray],
                  gt_ignore: list[np.ndarray]) -> Any:
    """pycocotools' per-image matching at IoU 0.5 (`COCOeval.evaluate` with `coco_ap50`'s parameters:
    ``evalImgs`` holds one entry per image, in order), or None where the images hold no target hand or no
    detection (AP50 0 on every resample)."""
    if not sum(int((~ig).sum()) for ig in gt_ignore):
        return None
    return _coco_eval(gt_boxes, pred_boxes, pred_scores, gt_ignore, ap50_only=True, accumulate=False)


def _accumulated_ap50(matches: Any, images: np.ndarray) -> float:
    """`coco_ap50` of the images `images` (indices, repeats allowed: a bootstrap resample) from their
    matching (`_ap50_matches`) by pycocotools' own `COCOeval.accumulate`: the matching of an image does
    not depend on the others, so this is `coco_ap50` of those images to the last digit, without matching
    them again."""
    if matches is None:
        return 0.0
    ids = list(range(len(images)))
    matches.evalImgs = [matches.all_images[i] for i in images]
    matches.params.imgIds = matches._paramsEval.imgIds = ids
    with contextlib.redirect_stdout(io.StringIO()):
        matches.accumulate()
    precision = matches.eval["precision"][0, :, 0, 0, 0]
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


def _ratio_terms(gt_boxes: list[np.ndarray], gt_ignore: list[np.ndarray], pred_boxes: list[np.ndarray],
                 pred_scores: list[np.ndarray], threshold: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The operating-point metrics as per-image (numerator, denominator) counts (`_image_counts`), the
    form `eval.bootstrap` resamples: recall and precision at the threshold, the hand-free rate."""
    c, _ = _image_counts(gt_boxes, gt_ignore, pred_boxes, pred_scores, threshold)
    return {"recall50_at_threshold": (c["found_kept"], c["targets"]), "precision_at_threshold": (c["found_kept"], c["kept"]),
            "no_hand_fp_rate": (c["empty_with_detection"], c["empty"])}


def _resampled_ap50(gt_boxes: list[np.ndarray], gt_ignore: list[np.ndarray],
                    predictions: list[tuple[list[np.ndarray], list[np.ndarray]]], resamples: int, seed: int
                    ) -> np.ndarray:
    """(R, K) `coco_ap50` of K detectors' (boxes, scores) on R resamples of the images, every detector
    on the same resamples (so that differences are paired). Each detector's images are matched once by
    pycocotools and each resample accumulated from those matches (`_accumulated_ap50`)."""
    rng = np.random.default_rng(seed)
    n = len(gt_boxes)
    matches = [_ap50_matches(gt_boxes, boxes, scores, gt_ignore) for boxes, scores in predictions]
    aps = np.empty((resamples, len(predictions)))
    for r in range(resamples):
        idx = rng.integers(0, n, n)
        aps[r] = [_accumulated_ap50(m, idx) for m in matches]
    return aps


def detection_intervals(gt_boxes: list[np.ndarray], pred_boxes: list[np.ndarray], pred_scores: list[np.ndarray],
                        threshold: float, gt_ignore: list[np.ndarray] | None, resamples: int, seed: int = 0
                        ) -> dict[str, dict[str, float]]:
    """95 % percentile bootstrap intervals (the images resampled; `eval.bootstrap`) of ``ap50``
    (`coco_ap50` on each resample) and, at `threshold`, ``recall50_at_threshold``,
    ``precision_at_threshold`` and ``no_hand_fp_rate`` (ratios of per-image counts): {metric: {"value",
    "low", "high"}}, each ``value`` the metric of `detection_metrics` on the images as given."""
    check_resamples(resamples)
    gt_boxes, gt_ignore = _prepared(gt_boxes, pred_boxes, pred_scores, gt_ignore)
    terms = _ratio_terms(gt_boxes, gt_ignore, pred_boxes, pred_scores, threshold)
    out = bootstrap_intervals({k: v for k, v in terms.items() if v[1].sum() > 0}, np.arange(len(gt_boxes)), resamples,
                              seed=seed)
    low, high = percentile_interval(_resampled_ap50(gt_boxes, gt_ignore, [(pred_boxes, pred_scores)], resamples, seed)[:, 0])
    ap50 = {"value": coco_ap50(gt_boxes, pred_boxes, pred_scores, gt_ignore), "low": low, "high": high}
    return {"ap50": ap50, **out}


def paired_detection_intervals(gt_boxes: list[np.ndarray], gt_ignore: list[np.ndarray] | None,
                               a: tuple[list[np.ndarray], list[np.ndarray], float],
                               b: tuple[list[np.ndarray], list[np.ndarray], float], resamples: int, seed: int = 0
                               ) -> dict[str, dict[str, float]]:
    """The paired bootstrap of two detectors on the same images: `a` and `b` are each (boxes, scores,
    threshold) per image as `detection_metrics`' arguments. Each resample of the images scores both, so
    what the images share (small hands, busy photographs) cancels. Per metric of `detection_intervals`
    (the ratios where both have a denominator): {"a", "b", "difference" (B − A), "low", "high"}, the
    95 % interval of B − A."""
    check_resamples(resamples)
    gt_boxes, gt_ignore = _prepared(gt_boxes, a[0], a[1], gt_ignore)
    _prepared(gt_boxes, b[0], b[1], gt_ignore)
    terms_a, terms_b = (_ratio_terms(gt_boxes, gt_ignore, *p) for p in (a, b))
    both = [k for k in terms_a if terms_a[k][1].sum() > 0 and terms_b[k][1].sum() > 0]
    out = paired_intervals({k: terms_a[k] for k in both}, {k: terms_b[k] for k in both}, np.arange(len(gt_boxes)),
                           resamples, DEFAULT_LEVEL, seed)
    aps = _resampled_ap50(gt_boxes, gt_ignore, [a[:2], b[:2]], resamples, seed)
    ap_a, ap_b = (coco_ap50(gt_boxes, *p[:2], gt_ignore) for p in (a, b))
    low, high = percentile_interval(aps[:, 1] - aps[:, 0])
    return {"ap50": {"a": ap_a, "b": ap_b, "difference": ap_b - ap_a, "low": low, "high": high}, **out}


def detections_file(metrics_json: str | os.PathLike) -> Path:
    """Where `evaluate-detector --out M.json` keeps every image's detections: ``M.detections.npz``."""
    path = Path(metrics_json)
    return path.with_name((path.stem if path.suffix == ".json" else path.name) + ".detections.npz")


def save_detections(path: str | os.PathLike, gt_boxes: list[np.ndarray], gt_ignore: list[np.ndarray],
                    pred_boxes: list[np.ndarray], pred_scores: list[np.ndarray], threshold: float) -> None:
    """Write a set of images' ground truth and detections (the arguments of `detection_metrics`) as one
    .npz of flat arrays (numpy without pickle; atomically): ``gt_image``, ``gt_box``, ``gt_ignore``,
    ``det_image``, ``det_box``, ``det_score``, ``num_images``, ``threshold``."""
    gt_boxes, gt_ignore = _prepared(gt_boxes, pred_boxes, pred_scores, gt_ignore)
    boxes = [np.asarray(b, np.float64).reshape(-1, 4) for b in pred_boxes]
    scores = [np.asarray(s, np.float64).reshape(-1) for s in pred_scores]
    if any(len(b) != len(s) for b, s in zip(boxes, scores)):
        raise ValueError("every image needs one score per detected box")
    arrays = {"gt_image": np.repeat(np.arange(len(gt_boxes)), [len(g) for g in gt_boxes]),
              "gt_box": np.concatenate([np.zeros((0, 4)), *gt_boxes]),
              "gt_ignore": np.concatenate([np.zeros(0, bool), *gt_ignore]),
              "det_image": np.repeat(np.arange(len(boxes)), [len(b) for b in boxes]),
              "det_box": np.concatenate([np.zeros((0, 4)), *boxes]), "det_score": np.concatenate([np.zeros(0), *scores]),
              "num_images": np.array(len(gt_boxes)), "threshold": np.array(float(threshold))}
    atomic_write_arrays(path, arrays)


def load_detections(path: str | os.PathLike) -> dict[str, Any]:
    """A `save_detections` file back: {"gt_boxes", "gt_ignore", "pred_boxes", "pred_scores"} (per image)
    and "threshold". ValueError naming the file where it is missing, unreadable or not such a file."""
    path = Path(path)
    what = "a detections file of `handrecon evaluate-detector --out`"
    arrays = read_arrays(path, what, f"run `handrecon evaluate-detector ... --out "
                                     f"{path.name.replace('.detections.npz', '.json')}` first, which writes it",
                         ("gt_image", "gt_box", "gt_ignore", "det_image", "det_box", "det_score", "num_images", "threshold"))
    try:
        n = int(arrays["num_images"])
        split = {}
        for part in ("gt", "det"):
            image = arrays[f"{part}_image"].astype(np.int64)
            if image.ndim != 1 or (len(image) and (image.min() < 0 or image.max() >= n or np.any(np.diff(image) < 0))):
                raise ValueError(f"{part}_image is not a sorted list of image indices below {n}")
            split[part] = np.cumsum(np.bincount(image, minlength=n))[:-1]
        out = {"gt_boxes": np.split(arrays["gt_box"].reshape(-1, 4), split["gt"]),
               "gt_ignore": np.split(arrays["gt_ignore"].astype(bool).reshape(-1), split["gt"]),
               "pred_boxes": np.split(arrays["det_box"].reshape(-1, 4), split["det"]),
               "pred_scores": np.split(arrays["det_score"].reshape(-1), split["det"]),
               "threshold": float(arrays["threshold"])}
        if n == 0 or any(len(out[k]) != n for k in ("gt_boxes", "gt_ignore", "pred_boxes", "pred_scores")):
            raise ValueError(f"holds {n} images but not one entry per image in each array")
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: not {what} ({e})") from None
    return out


def compare_detector_evaluations(a: str | os.PathLike, b: str | os.PathLike, resamples: int = 1000, seed: int = 0
                                 ) -> dict[str, dict[str, float]]:
    """Paired bootstrap of two `evaluate-detector --out` runs on the same images (`a`, `b`: their metrics
    JSON files or the ``.detections.npz`` beside them; each at its own threshold): as
    `paired_detection_intervals`. ValueError naming the file that is missing or unreadable, or where
    the two did not read the same images (the same ground-truth boxes in the same order)."""
    sets = [load_detections(p if str(p).endswith(".npz") else detections_file(p)) for p in (a, b)]
    first, second = sets
    if len(first["gt_boxes"]) != len(second["gt_boxes"]) or not all(
            np.array_equal(x, y) for part in ("gt_boxes", "gt_ignore") for x, y in zip(first[part], second[part])):
        raise ValueError(f"{a} and {b} did not read the same images ({len(first['gt_boxes'])} and "
                         f"{len(second['gt_boxes'])} images, or other ground-truth boxes): evaluate both detectors "
                         "on the same --root, --split and --limit")
    return paired_detection_intervals(first["gt_boxes"], first["gt_ignore"],
                                      *((s["pred_boxes"], s["pred_scores"], s["threshold"]) for s in sets),
                                      resamples=resamples, seed=seed)


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
                      nms_iou: float = DEFAULT_NMS_IOU, bootstrap: int = 0,
                      detections_path: str | os.PathLike | None = None) -> dict[str, float]:
    """`detection_metrics` of `detector` (anything with ``detect(images, score_threshold, nms_iou)``)
    on a dataset in handrecon's synthetic format (`handrecon synth`, the foreign scene set): every
    query scoring > 0.01 enters AP, after NMS at `nms_iou` (the served default); `threshold` sets
    the operating point; hands that are not `detectable` are ignored (module doc), plus
    ``ap50_all_hands``, ``recall_by_height`` and the ``nms_iou`` used; with `bootstrap` resamples
    (>= 100) ``intervals`` (`detection_intervals`); with `detections_path` every image's ground truth and
    detections written there (`save_detections`) for `compare_detector_evaluations`."""
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
    if detections_path is not None:
        save_detections(detections_path, gts, ignores, boxes, scores, threshold)
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
