"""Mine a detector's candidates on scene folders, the training data of its box verifier
(`handrecon.models.handos.box_verifier`, dataset ``hand_box_candidates``).

    python tools/mine_candidates.py --root .cache/detector/train --out .cache/detector/train/candidates.npz

For every image of a folder in handrecon's synthetic format: the detector's queries scoring
>= 0.01 after NMS at IoU 0.5 (what `evaluate-detector` ranks), boxes in image px, without the
verifier and side head; and the image's hands (boxes, detectable). Written atomically as one .npz:
``boxes`` (C, 4), ``scores`` (C,), ``image`` (C,) index, ``gt`` (G, 4), ``gt_image`` (G,),
``gt_detectable`` (G,), ``n`` images, ``root``. About 40 images/s on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from handrecon.data.loaders import build_dataset
from handrecon.infer.detect import build_detector
from handrecon.models.handos.detections import DetectorError
from handrecon.utils.io import atomic_write_arrays

CANDIDATE_THRESHOLD, CANDIDATE_NMS_IOU = 0.01, 0.5


def mine(detector: object, scenes: object, root: str, log_every: int = 1000) -> dict[str, np.ndarray]:
    """The candidates file's arrays (module doc) of `detector` on `scenes` (the dataset of `root`)."""
    boxes, scores, image, gt, gt_image, gt_detectable = [], [], [], [], [], []
    start = time.time()
    for i in range(len(scenes)):
        sample = scenes[i]
        found = detector.detect([sample.image], score_threshold=CANDIDATE_THRESHOLD, nms_iou=CANDIDATE_NMS_IOU)[0]
        boxes.append(np.asarray(found.boxes, np.float32).reshape(-1, 4))
        scores.append(np.asarray(found.scores, np.float32))
        image.append(np.full(len(found.scores), i, np.int64))
        gt.append(np.array([h.box for h in sample.hands], np.float64).reshape(-1, 4))
        gt_image.append(np.full(len(sample.hands), i, np.int64))
        gt_detectable.append(np.array([h.detectable for h in sample.hands], bool))
        if log_every and (i + 1) % log_every == 0:
            print(f"{root}: {i + 1}/{len(scenes)} images, {time.time() - start:.0f} s", flush=True)
    cat = np.concatenate
    return {"boxes": cat(boxes), "scores": cat(scores), "image": cat(image), "gt": cat(gt), "gt_image": cat(gt_image),
            "gt_detectable": cat(gt_detectable), "n": np.int64(len(scenes)), "root": np.str_(root)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="a scene folder (handrecon synth --preset scene)")
    ap.add_argument("--out", required=True, type=Path, help="the candidates .npz to write")
    ap.add_argument("--detector", default="handrecon-hand-detector", help="NAME or KIND:DIR, as handrecon detect")
    args = ap.parse_args()
    try:
        detector = build_detector(args.detector)
        scenes = build_dataset("synthetic", args.root, "all")
    except (DetectorError, ValueError, OSError) as e:
        sys.exit(f"error: {e}")
    detector.side_head = detector.verifier = None  # the detector's own candidates, as the verifier will see them
    arrays = mine(detector, scenes, args.root)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_arrays(args.out, arrays)
    print(f"{args.out}: {len(arrays['scores'])} candidates on {len(scenes)} images")


if __name__ == "__main__":
    main()
