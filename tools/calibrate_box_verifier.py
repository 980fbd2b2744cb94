"""Fix a packaged box verifier's served exponent and write its ``serving.json``.

    python tools/calibrate_box_verifier.py --detector src/handrecon/assets/models/handrecon-hand-detector \
        --root .cache/detector/train --candidates .cache/detector/candidates/train.npz \
        [--hand-free-root .cache/detector/calib_handfree --hand-free-candidates .cache/detector/candidates/calib_handfree.npz]

The verifier (``DETECTOR/box_verifier/``, packaged by ``tools/package_model.py``) serves
(s_det ** w * p_hand) ** exponent (`detections.verified_scores`; w: ``--detector-weight``, 1 by
default; below 1 the verifier's p_hand counts for more, and candidates with lower detector scores
can reach the threshold, so it reads more crops per image). On the last ``--val-images`` images of
``--root`` (the detector's validation shard: neither the detector nor the verifier trained on it),
with the candidates mined there (`tools/mine_candidates.py`): the detector's own precision at the
served threshold 0.5 (IoU 0.5, hidden hands ignored) and its rate of hand-free images given a
detection are the targets (the rate on ``--hand-free-root`` when given: a set of hand-free scenes
rendered like the held-out ones, since a 500-image shard holds only about 100 hand-free images and
their rate moves by a point per image); T is the lowest threshold in steps of 0.01 at which sqrt(s_det * p_hand)
(with the weight: sqrt(s_det ** w * p_hand))
reaches that precision without raising that rate (``--precision`` and ``--hand-free-rate`` set other
targets: an operating point of the user's); the exponent maps T to 0.5
(exponent = ln 0.5 / ln T^2), so the served threshold keeps both there. The candidates are served
as `detect` serves them (`detections.verified_candidates`: moved by a refining verifier's deltas,
NMS at the served IoU); the ranking, and with it AP, does not depend on the exponent. Prints what it
measured.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from handrecon.checkpoint import CheckpointError
from handrecon.data.loaders import build_dataset
from handrecon.eval.detection import threshold_metrics
from handrecon.eval.operating_point import DEFAULT_NMS_IOU, DEFAULT_SCORE_THRESHOLD
from handrecon.models.handos.box_verifier import BoxVerifierHead, load_verifier_network, read_candidates
from handrecon.models.handos.detections import (
    VERIFIER_DIR, VERIFIER_SETTINGS, Detections, VerifierSettings, verified_candidates,
)
from handrecon.utils.io import atomic_write_json


def _scored(head: BoxVerifierHead, root: str, candidates: str, last: int | None = None,
            hand_free: bool = False) -> tuple[list, ...]:
    """Ground truth, the mined top-k candidates with their detector scores, and the verifier's
    served boxes with scores sqrt(s_det ** w * p_hand) (`detections.verified_candidates`, exponent 0.5)
    for the last ``last`` images of ``root`` (all when None); ``hand_free``: refuse a folder with
    hands first."""
    scenes = build_dataset("synthetic", root, "all")
    mined = read_candidates(candidates)
    if int(mined["n"]) != len(scenes):
        raise ValueError(f"{candidates}: mined from {int(mined['n'])} images, {root} holds {len(scenes)}; mine it again")
    if hand_free and len(mined["gt"]):
        raise ValueError(f"{root}: holds images with hands; render it with --set 'num_hands=[0, 0]'")
    top_k = head.settings.top_k
    if head.settings.exponent != 0.5:
        raise ValueError(f"calibration scores sqrt(s_det ** w * p_hand); the head serves exponent {head.settings.exponent}")
    gts, ignores, boxes, plain, served_boxes, served = [], [], [], [], [], []
    for i in range(0 if last is None else max(0, len(scenes) - last), len(scenes)):
        k = np.flatnonzero(mined["image"] == i)[:top_k]  # mined highest score first
        g = mined["gt_image"] == i
        gts.append(mined["gt"][g])
        ignores.append(~mined["gt_detectable"][g])
        boxes.append(mined["boxes"][k].astype(np.float64))
        plain.append(mined["scores"][k].astype(np.float64))
        found = verified_candidates(head, scenes[i].image, Detections(boxes[-1], plain[-1], k), DEFAULT_NMS_IOU)
        served_boxes.append(found.boxes.astype(np.float64))
        served.append(found.scores.astype(np.float64))
    return gts, ignores, boxes, plain, served_boxes, served


def calibrate(head: BoxVerifierHead, root: str, candidates: str, val_images: int,
              hand_free: tuple[str, str] | None = None, precision: float | None = None,
              hand_free_rate: float | None = None) -> dict:
    """The exponent and what it was measured from (module doc). ``hand_free``: (root, candidates)
    of a set of hand-free scenes on which the hand-free rate is held instead of the val shard's.
    precision, hand_free_rate: targets to reach instead of the detector's own."""
    gts, ignores, boxes, plain, s_boxes, served = _scored(head, root, candidates, val_images)
    detector = threshold_metrics(gts, boxes, plain, DEFAULT_SCORE_THRESHOLD, ignores)
    target = detector["precision_at_threshold"] if precision is None else precision
    f_gts, f_ignores, f_boxes, f_plain, f_s_boxes, f_served = (
        _scored(head, *hand_free, hand_free=True) if hand_free else (gts, ignores, boxes, plain, s_boxes, served))
    target_fp = (threshold_metrics(f_gts, f_boxes, f_plain, DEFAULT_SCORE_THRESHOLD, f_ignores)["no_hand_fp_rate"]
                 if hand_free_rate is None else hand_free_rate)
    for t in np.round(np.arange(0.01, 1.0, 0.01), 2):
        m = threshold_metrics(gts, s_boxes, served, float(t), ignores)
        fp = (threshold_metrics(f_gts, f_s_boxes, f_served, float(t), f_ignores) if hand_free else m)["no_hand_fp_rate"]
        if m["precision_at_threshold"] >= target and fp <= target_fp:
            break
    else:
        raise ValueError(f"no threshold reaches the detector's precision {target:.3f} on {root}'s last {val_images} images "
                         f"and hand-free rate {target_fp:.3f} on {hand_free[0] if hand_free else 'them'}")
    return {"exponent": math.log(0.5) / math.log(t * t), "threshold_on_sqrt": float(t),
            "detector_weight": head.settings.detector_weight, "target_precision": target,
            "precision": m["precision_at_threshold"], "recall50": m["recall50_at_threshold"],
            "plain_recall50": detector["recall50_at_threshold"], "target_no_hand_fp_rate": target_fp,
            "no_hand_fp_rate": fp, "images": val_images, "root": root,
            "hand_free_root": hand_free[0] if hand_free else root}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detector", required=True, type=Path, help="the detector folder holding box_verifier/")
    ap.add_argument("--root", required=True, help="the scene folder whose last --val-images images calibrate")
    ap.add_argument("--candidates", required=True, help="the detector's candidates mined on --root")
    ap.add_argument("--val-images", type=int, default=500)
    ap.add_argument("--top-k", type=int, default=VerifierSettings.top_k)
    ap.add_argument("--passes", type=int, default=VerifierSettings.passes,
                    help="how many times the verifier reads (and moves) each candidate (a cascade from 2)")
    ap.add_argument("--detector-weight", type=float, default=VerifierSettings.detector_weight,
                    help="w in (0, 1]: the served score is (s_det ** w * p_hand) ** exponent")
    ap.add_argument("--hand-free-root", help="hand-free scenes (num_hands=[0, 0]) to hold the hand-free rate on "
                    "instead of the validation shard's few")
    ap.add_argument("--hand-free-candidates", help="the detector's candidates mined on --hand-free-root")
    ap.add_argument("--precision", type=float, help="the precision to reach at 0.5 instead of the detector's own")
    ap.add_argument("--hand-free-rate", type=float,
                    help="the rate of hand-free images with a detection to stay under instead of the detector's own")
    args = ap.parse_args()
    if (args.hand_free_root is None) != (args.hand_free_candidates is None):
        sys.exit("error: --hand-free-root and --hand-free-candidates go together")
    try:
        settings = VerifierSettings(top_k=args.top_k, passes=args.passes, detector_weight=args.detector_weight)
    except ValueError as e:
        sys.exit(f"error: --top-k / --passes / --detector-weight: {e}")
    for name, value in (("--precision", args.precision), ("--hand-free-rate", args.hand_free_rate)):
        if value is not None and not 0.0 <= value <= 1.0:
            sys.exit(f"error: {name} is a fraction in [0, 1], got {value}")
    hand_free = (args.hand_free_root, args.hand_free_candidates) if args.hand_free_root else None
    folder = args.detector / VERIFIER_DIR
    try:
        found = calibrate(BoxVerifierHead(load_verifier_network(folder), settings, str(folder)), args.root, args.candidates, args.val_images,
                          hand_free, args.precision, args.hand_free_rate)
    except (CheckpointError, ValueError, OSError, KeyError) as e:
        sys.exit(f"error: {e}")
    settings = replace(settings, exponent=found["exponent"])
    atomic_write_json(folder / VERIFIER_SETTINGS, {**asdict(settings), "calibration": found})
    print(f"{folder / VERIFIER_SETTINGS}: exponent {found['exponent']:.4f} (T = {found['threshold_on_sqrt']:.2f}, "
          f"detector weight {settings.detector_weight:g}); on "
          f"{args.val_images} images of {args.root}: precision {found['precision']:.3f} (target {found['target_precision']:.3f}), "
          f"recall {found['recall50']:.3f} (detector {found['plain_recall50']:.3f}), hand-free images with a detection "
          f"(on {found['hand_free_root']}) {found['no_hand_fp_rate']:.3f} (target {found['target_no_hand_fp_rate']:.3f})")


if __name__ == "__main__":
    main()
