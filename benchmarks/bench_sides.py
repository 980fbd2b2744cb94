"""Left or right: handrecon's detector side head against MediaPipe Hands' handedness, on the same
scenes with exact ground truth (held-out synthetic scenes, the foreign scene set).

    .venv/bin/python benchmarks/bench_sides.py --root .cache/detector/heldout [--root .cache/detector/foreign]
        [--detector handrecon-hand-detector[:DIR]] [--limit N]

For every target hand (`HandAnnotation.detectable`, side known):
- handrecon: the detector's side head on the hand's ground-truth box (the side alone, apart from
  detection), and the side of the detection matched to it at the default threshold (0.5, IoU 0.5);
- MediaPipe Hands (`mediapipe==0.10.21` in its own environment, built on first use by
  `bench_mediapipe.mediapipe_python`; `static_image_mode=True`, 4 hands, model complexity 1): its
  handedness for the hand it finds there (its 21 landmarks' box matched to the box of the ground
  truth's 2D keypoints at IoU >= 0.5). MediaPipe assumes mirrored (selfie) input and documents
  that the label must be swapped otherwise; these images are not mirrored, so its label is swapped
  (the unswapped accuracy is printed as well).
Prints each accuracy with its hand count, the side head's on its more confident half (by
|p_left - 0.5|) and on the hands MediaPipe found.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mediapipe import mediapipe_python  # noqa: E402

from handrecon.data.loaders import build_dataset  # noqa: E402
from handrecon.eval.scoring import match_hands  # noqa: E402
from handrecon.infer.detect import build_detector  # noqa: E402

MEDIAPIPE_HANDEDNESS = """
import json, sys
from pathlib import Path
import numpy as np
from PIL import Image
import mediapipe as mp
out = {}
with mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=4, model_complexity=1) as hands:
    for f in sorted(Path(sys.argv[1]).glob("*.png")):
        image = np.asarray(Image.open(f).convert("RGB"))
        h, w = image.shape[:2]
        res = hands.process(image)
        found = []
        for lm, hd in zip(res.multi_hand_landmarks or [], res.multi_handedness or []):
            xy = np.array([[p.x * w, p.y * h] for p in lm.landmark])
            found.append({"box": [*xy.min(0).tolist(), *xy.max(0).tolist()], "label": hd.classification[0].label.lower(),
                          "score": hd.classification[0].score})
        out[f.stem] = found
Path(sys.argv[2]).write_text(json.dumps(out))
"""


def keypoint_box(hand) -> np.ndarray:
    uv = hand.keypoints_2d[hand.keypoints_valid]
    return np.r_[uv.min(0), uv.max(0)]


def run(root: Path, detector_name: str, limit: int | None, mp_python: Path) -> dict[str, tuple[float, int]]:
    samples = build_dataset("synthetic", root, "all")
    n = len(samples) if limit is None else min(limit, len(samples))
    detector = build_detector(detector_name)
    if detector.side_head is None:
        raise SystemExit(f"{detector_name}: this detector has no side head (tools/train_side_head.sh adds one)")
    with tempfile.TemporaryDirectory() as d:
        for i in range(n):
            Image.fromarray(samples[i].image).save(Path(d) / f"{i:05d}.png")
        subprocess.run([str(mp_python), "-c", MEDIAPIPE_HANDEDNESS, d, str(Path(d) / "mp.json")], check=True,
                       capture_output=True)
        mediapipe = json.loads((Path(d) / "mp.json").read_text())
    ours_gt, ours_det, mp_swapped, ours_on_mp, confidence = [], [], [], [], []
    for i in range(n):
        s = samples[i]
        hands = [h for h in s.hands if h.detectable and h.side is not None]
        if not hands:
            continue
        truth = np.array([h.side for h in hands])
        sides, p_left = detector.side_head.sides(s.image, np.array([h.box for h in hands]))
        right_here = np.array(sides) == truth
        ours_gt += list(right_here)
        confidence += list(np.abs(p_left - 0.5))
        found = detector.detect([s.image], score_threshold=0.5, nms_iou=0.5)[0]
        m = match_hands(found.boxes, found.scores, np.array([h.box for h in hands]))
        ours_det += [found.sides[j] == t for j, t in zip(m, truth) if j >= 0]
        theirs = mediapipe[f"{i:05d}"]
        if theirs:
            boxes = np.array([t["box"] for t in theirs])
            m = match_hands(boxes, np.array([t["score"] for t in theirs]), np.array([keypoint_box(h) for h in hands]))
            for g, j in enumerate(m):
                if j >= 0:
                    swapped = {"left": "right", "right": "left"}[theirs[j]["label"]]
                    mp_swapped.append(swapped == truth[g])
                    ours_on_mp.append(right_here[g])
    mean = lambda x: (float(np.mean(x)) if x else float("nan"), len(x))  # noqa: E731
    sure = np.array(confidence) >= np.median(confidence) if confidence else np.zeros(0, bool)
    return {"handrecon side head, ground-truth boxes": mean(ours_gt),
            "  the more confident half (|p_left - 0.5| >= its median)": mean(list(np.array(ours_gt)[sure])),
            "handrecon detector + side head, detected hands": mean(ours_det),
            "MediaPipe handedness (swapped: unmirrored input), hands it finds": mean(mp_swapped),
            "MediaPipe handedness as it reports it": mean([not x for x in mp_swapped]),
            "handrecon side head on the hands MediaPipe finds": mean(ours_on_mp)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, action="append", required=True, help="a scene folder (repeatable)")
    ap.add_argument("--detector", default="handrecon-hand-detector")
    ap.add_argument("--limit", type=int)
    args = ap.parse_args()
    mp_python = mediapipe_python()
    for root in args.root:
        print(f"{root}:")
        for name, (acc, count) in run(root, args.detector, args.limit, mp_python).items():
            print(f"  {name:62s} {acc:.3f}  ({count} hands)")


if __name__ == "__main__":
    main()
