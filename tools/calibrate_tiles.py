"""Calibrate a packaged detector's operating point for tiled reading (`detect --tiles`).

    python tools/calibrate_tiles.py --detector src/handrecon/assets/models/handrecon-hand-detector \
        --root .cache/detector/foreign_wide_dev80 --root .cache/detector/wide_dev7200 \
        --hand-free-root .cache/detector/wide_handfree_dev3201 [--tiles 3]

Read with tiles, an image gives the box verifier more candidates, and so more chances of a false
hand, than read whole: the threshold calibrated for whole images (`tools/calibrate_box_verifier.py`)
serves tiled reading with less precision. This finds, on development scene sets read with
``--tiles`` (wide shots: `benchmarks/foreign_testset.py --scenes --wide`, `handrecon synth
--image-size 768x1024 --set 'hand_size=[0.05, 0.15]'`), the lowest T >= 0.5 in steps of 0.01 at which
the served scores (at the whole-image exponent e) reach ``--precision`` (0.92, as the whole-image
calibration) on every ``--root``, still finding hands there, and give at most ``--hand-free-rate``
(0.04) of the ``--hand-free-root`` images a hand; then a tiled exponent e * ln 0.5 / ln T maps T to
the served threshold 0.5 (`VerifierSettings.tiled_exponent`), written into
``box_verifier/serving.json`` with what it was measured from. The ranking, and with it AP, does not
change. Prints what it measured.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from handrecon.eval.detection import detected_scenes, scene_targets, threshold_metrics
from handrecon.models.handos.detections import VERIFIER_DIR, VERIFIER_SETTINGS
from handrecon.models.handos.onnx_detector import hand_detector_for_boxes
from handrecon.utils.io import atomic_write_json

THRESHOLDS = np.round(np.arange(0.50, 0.9001, 0.01), 2)


def served_candidates(detector, root: str) -> tuple[list, list, list, list]:
    """Ground-truth boxes, ignore flags, and every served box and score (>= 0.01) of the images of `root`."""
    gts, ignores, boxes, scores = [], [], [], []
    for sample, found in detected_scenes(detector, root):
        gt, ignore = scene_targets(sample)
        gts.append(gt)
        ignores.append(ignore)
        boxes.append(found.boxes)
        scores.append(found.scores)
    return gts, ignores, boxes, scores


def calibrate(detector, roots: list[str], hand_free_root: str, precision: float, hand_free_rate: float) -> dict:
    """The lowest T of `THRESHOLDS` meeting both targets (module doc) and what was measured there."""
    sets = {root: served_candidates(detector, root) for root in roots}
    free = served_candidates(detector, hand_free_root)
    if any(len(g) for g in free[0]):
        raise ValueError(f"{hand_free_root}: holds images with hands; render it with --set 'num_hands=[0, 0]'")
    for T in THRESHOLDS:
        at = {root: threshold_metrics(s[0], s[2], s[3], float(T), s[1]) for root, s in sets.items()}
        rate = threshold_metrics(free[0], free[2], free[3], float(T), free[1])["no_hand_fp_rate"]
        if all(m["precision_at_threshold"] >= precision and m["recall50_at_threshold"] > 0 for m in at.values()) \
                and rate <= hand_free_rate:  # a threshold that keeps nothing is not precise: it finds no hand
            return {"threshold": float(T), "target_precision": precision, "target_no_hand_fp_rate": hand_free_rate,
                    "no_hand_fp_rate": rate, "hand_free_root": hand_free_root, "hand_free_images": len(free[0]),
                    "sets": {root: {"precision": m["precision_at_threshold"], "recall50": m["recall50_at_threshold"],
                                    "images": m["images"], "hands": m["hands"]} for root, m in at.items()}}
    raise ValueError(f"no threshold up to {THRESHOLDS[-1]} reaches precision {precision} on every set with at most "
                     f"{hand_free_rate} of the hand-free images given a hand")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", required=True, help="packaged detector folder (its box_verifier/ is calibrated)")
    ap.add_argument("--root", action="append", required=True, help="development scene set read with tiles (repeatable)")
    ap.add_argument("--hand-free-root", required=True, help="development scenes without a hand, framed like --root")
    ap.add_argument("--tiles", type=int, default=3, help="the grid read (N x N tiles) while calibrating")
    ap.add_argument("--precision", type=float, default=0.92)
    ap.add_argument("--hand-free-rate", type=float, default=0.04)
    args = ap.parse_args()
    if args.tiles < 2:
        ap.error(f"--tiles must be >= 2 (1 reads the whole image, calibrated by calibrate_box_verifier.py), got {args.tiles}")
    settings_path = Path(args.detector) / VERIFIER_DIR / VERIFIER_SETTINGS
    try:
        raw = json.loads(settings_path.read_text())
        detector = hand_detector_for_boxes(args.detector, threads=2)
        if detector.verifier is None:
            raise ValueError(f"{args.detector}: no box verifier to calibrate (package one with tools/train_box_verifier.sh)")
        settings = detector.verifier.settings
        # scored at the whole-image exponent, not a tiled one served before
        detector.verifier.settings = replace(settings, tiled_exponent=None)
        detector.tiles = args.tiles
        found = calibrate(detector, args.root, args.hand_free_root, args.precision, args.hand_free_rate)
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    tiled = settings.exponent * math.log(0.5) / math.log(found["threshold"])
    atomic_write_json(settings_path, {**{k: v for k, v in raw.items() if k not in ("tiled_exponent", "tiled_calibration")},
                                      "tiled_exponent": tiled,
                                      "tiled_calibration": {**found, "tiles": args.tiles, "exponent": settings.exponent}})
    print(f"tiles {args.tiles}: threshold {found['threshold']:.2f} on the whole-image scores -> tiled_exponent "
          f"{tiled:.4f} (whole image: {settings.exponent:.4f}); hand-free {found['no_hand_fp_rate']:.3f}")
    for root, m in found["sets"].items():
        print(f"  {root}: precision {m['precision']:.3f}, recall at IoU 0.5 {m['recall50']:.3f} ({m['hands']} hands)")


if __name__ == "__main__":
    main()
