"""How well a crop model's `heatmap_peak` (the per-hand keypoint sharpness every result carries,
`HandResult.heatmap_peak`, ``"heatmap_peak"`` in the JSON) tells a good reconstruction from a bad
one, on synthetic-format sets with exact ground truth.

    .venv/bin/python benchmarks/bench_reliability.py --root .cache/foreign [--root ...] [--whole-image]
        [--model m3dhmr-openhand] [--limit N] [--json OUT]

Every ground-truth hand is reconstructed from its ground-truth box and side (`--whole-image`: the
image is the crop, as `handrecon evaluate --whole-image` does; the sets' images must hold one hand
each), and scored by PA-MPJPE (the Procrustes-aligned mean joint error, mm; the same per-hand
numbers `handrecon evaluate` averages). Prints per set: the mean and median error, Spearman's rank
correlation of peak and error, the peak's quartile bounds with each quartile's mean error and
share of hands over 20 mm, and the mean error kept and dropped when the lowest 10 % / 25 % of peaks
are set aside (beside the same share dropped by the error itself, the best any cue could do);
then where the error's tail lies: the worst tenth's share of the total error, and how often open
hands (`OPEN_REACH`) and edge-on palms (`EDGE_ON_COS`) occur in that tenth against all hands.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

import handrecon
from handrecon.data.loaders import build_dataset
from handrecon.eval.metrics import keypoint_errors
from handrecon.geometry.procrustes import procrustes_align
from handrecon.hand.keypoints import OP21_TIPS
from handrecon.utils.io import atomic_write_json

FAILURE_MM = 20.0  # a hand this far off (PA-MPJPE) counts as failed in the quartile table
DROPPED = (0.10, 0.25)
OPEN_REACH = 1.4  # open hand: fingertips on average this many wrist-to-middle-knuckle lengths from the wrist
EDGE_ON_COS = 0.3  # edge-on palm: |cos| of the palm normal and the line of sight below this (over 72.5 degrees)


def hand_errors(model, root: str, whole_image: bool, limit: int | None, batch: int = 32
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(errors (N,) PA-MPJPE mm, peaks (N,), ground-truth camera-space joints (N, 21, 3) m) of every
    ground-truth hand of the set at `root`."""
    samples = build_dataset("synthetic", root, "all")
    n = len(samples) if limit is None else min(limit, len(samples))
    predicted, peaks, joints = [], [], []
    for start in range(0, n, batch):
        chunk = [samples[i] for i in range(start, min(start + batch, n))]
        if whole_image and any(len(s.hands) != 1 for s in chunk):
            raise SystemExit(f"{root}: --whole-image needs one hand per image (a crop set); use ground-truth boxes")
        boxes = None if whole_image else [[h.box for h in s.hands] for s in chunk]
        results = model.predict_batch([s.image for s in chunk], [s.K for s in chunk], boxes=boxes,
                                      sides=[[h.side for h in s.hands] for s in chunk])
        for sample, result in zip(chunk, results):
            for found, truth in zip(result.hands, sample.hands):
                predicted.append(found.keypoints_3d)
                peaks.append(np.nan if found.heatmap_peak is None else found.heatmap_peak)
                joints.append(truth.keypoints_3d)
    P, G = (np.asarray(x, np.float64).reshape(-1, 21, 3) for x in (predicted, joints))
    return 1000.0 * keypoint_errors(procrustes_align(P, G), G).mean(1), np.array(peaks), G


def hand_kinds(joints: np.ndarray) -> dict[str, np.ndarray]:
    """(N, 21, 3) camera-space OP21 joints → {"open": (N,) bool, "edge-on": (N,) bool} (constants above)."""
    reach = np.linalg.norm(joints[:, OP21_TIPS] - joints[:, :1], axis=-1).mean(1)
    knuckle = np.linalg.norm(joints[:, 9] - joints[:, 0], axis=-1)
    normal = np.cross(joints[:, 5] - joints[:, 0], joints[:, 17] - joints[:, 0])
    cos = np.abs((normal * joints[:, 0]).sum(1)) / (np.linalg.norm(normal, axis=1) * np.linalg.norm(joints[:, 0], axis=1))
    return {"open": reach > OPEN_REACH * knuckle, "edge-on": cos < EDGE_ON_COS}


def error_tail(errors: np.ndarray, joints: np.ndarray) -> dict:
    """The worst tenth's share of the summed error and the share of each hand kind in it and in all."""
    worst = np.argsort(errors)[::-1][: max(1, len(errors) // 10)]
    kinds = hand_kinds(joints)
    kinds["open and edge-on"] = kinds["open"] & kinds["edge-on"]
    return {"worst_tenth_error_share": float(errors[worst].sum() / errors.sum()),
            "kinds": {k: {"worst_tenth": float(m[worst].mean()), "all": float(m.mean()),
                          "mean_mm": float(errors[m].mean()) if m.any() else None,
                          "others_mean_mm": float(errors[~m].mean()) if (~m).any() else None}
                      for k, m in kinds.items()}}


def reliability(errors: np.ndarray, peaks: np.ndarray) -> dict:
    """The summary the module docstring lists, as plain numbers."""
    if np.isnan(peaks).any():
        raise SystemExit("the model gives no heatmap_peak (a graph exported before it, or no heatmaps)")
    bounds = np.quantile(peaks, [0.25, 0.5, 0.75])
    quartile = np.digitize(peaks, bounds)
    out = {"hands": len(errors), "mean_mm": float(errors.mean()), "median_mm": float(np.median(errors)),
           "spearman": float(spearmanr(peaks, errors)[0]), "quartile_bounds": bounds.tolist(),
           "quartile_mean_mm": [float(errors[quartile == q].mean()) for q in range(4)],
           "quartile_failed": [float(np.mean(errors[quartile == q] > FAILURE_MM)) for q in range(4)]}
    for share in DROPPED:
        kept = peaks >= np.quantile(peaks, share)
        best = np.sort(errors)[: int(round(len(errors) * (1 - share)))]
        out[f"drop_{share:.2f}"] = {"kept_mm": float(errors[kept].mean()), "dropped_mm": float(errors[~kept].mean()),
                                    "kept_by_error_mm": float(best.mean())}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", action="append", required=True, help="a synthetic-format set (repeatable)")
    ap.add_argument("--model", default="m3dhmr-openhand", help="a crop model (name, checkpoint or .onnx)")
    ap.add_argument("--whole-image", action="store_true", help="the image is the crop (one hand per image)")
    ap.add_argument("--limit", type=int, default=None, help="the first N images of each set")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args()
    model = handrecon.load(args.model, threads=args.threads)
    if model.detects_hands:
        sys.exit(f"{args.model} finds hands itself; give a crop model (e.g. m3dhmr-openhand)")
    report = {}
    for root in args.root:
        errors, peaks, joints = hand_errors(model, root, args.whole_image, args.limit)
        r = report[root] = {**reliability(errors, peaks), "tail": error_tail(errors, joints)}
        print(f"{root} ({'whole image' if args.whole_image else 'ground-truth boxes'}, {r['hands']} hands): "
              f"PA-MPJPE mean {r['mean_mm']:.2f} mm, median {r['median_mm']:.2f} mm; "
              f"Spearman(peak, error) {r['spearman']:+.3f}")
        print(f"  heatmap_peak quartiles (bounds {', '.join(f'{b:.4f}' for b in r['quartile_bounds'])}), lowest first: "
              f"mean {' / '.join(f'{m:.2f}' for m in r['quartile_mean_mm'])} mm, over {FAILURE_MM:g} mm "
              f"{' / '.join(f'{100 * f:.1f}' for f in r['quartile_failed'])} %")
        for share in DROPPED:
            d = r[f"drop_{share:.2f}"]
            print(f"  set aside the lowest {share:.0%} of peaks: kept {d['kept_mm']:.2f} mm, set aside "
                  f"{d['dropped_mm']:.2f} mm (by the error itself: kept {d['kept_by_error_mm']:.2f} mm)")
        t = r["tail"]
        print(f"  the worst tenth carry {100 * t['worst_tenth_error_share']:.0f} % of the error; "
              + "; ".join(f"{k}: {100 * v['worst_tenth']:.0f} % of them, {100 * v['all']:.0f} % of all, mean "
                          f"{v['mean_mm']:.2f} mm (others {v['others_mean_mm']:.2f})" for k, v in t["kinds"].items()
                          if v["mean_mm"] is not None and v["others_mean_mm"] is not None))
    if args.json is not None:
        atomic_write_json(args.json, {"model": args.model, "whole_image": args.whole_image, "sets": report})


if __name__ == "__main__":
    main()
