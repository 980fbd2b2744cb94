"""Hands kept over video frames by the two-stage pipeline, with and without track continuation.

    .venv/bin/python benchmarks/bench_video_tracking.py [--clips 8] [--frames 40] [--seed 100]
        [--backgrounds .cache/photos/foreign_pool] [--thresholds off,0.3,0.25,0.2]

Renders `--clips` clips with handrecon's synthetic engine (the scene preset at 288×384, 1–2 hands at
15–45 % of the short side, each turning about its wrist and drifting; one background photograph and
one light per clip, 30 frames/s, H.264), runs `reconstruct_video` with the shipped detector + crop
model for each track threshold (`off`: every hand needs the served score, as before 2026-12-04) and
prints per frame: the hands found (IoU ≥ 0.5 with the hand's projected vertex box), the false hands,
the track ids per hand over a clip (1 is ideal: a hand that is lost and found again gets a new id
after `max_age` frames), and frames/s. Background photographs from a folder never used for
training (`tools/fetch_photos.py --out .cache/photos/foreign_pool`'s skimage set by default) make
the detector's scores low and unsteady, the case continuation is for.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from handrecon.data.synth.config import preset
from handrecon.data.synth.engine import SynthEngine
from handrecon.data.synth.scene import sample_scene
from handrecon.eval.scoring import match_hands
from handrecon.geometry.camera import project
from handrecon.geometry.rotations import axis_angle_to_matrix
from handrecon.infer.load import load
from handrecon.infer.tracking import OneEuroConfig
from handrecon.infer.video import reconstruct_video

FPS = 30


def render_clip(engine: SynthEngine, path: Path, frames: int, seed: int) -> tuple[list[np.ndarray], float]:
    """A clip of the hands of one scene moving (each turning about its wrist, drifting); the GT boxes
    (M, 4) per frame and the focal length in px."""
    rng = np.random.default_rng(seed)
    cfg = engine.cfg
    scene = sample_scene(engine.models, cfg, rng)
    H, W = cfg.image_size
    motion = [(rng.uniform(0.3, 0.8), rng.uniform(0.2, 0.6), rng.normal(size=3) * [0.03, 0.02, 0.02], rng.uniform(0, 6))
              for _ in scene.hands]
    container = av.open(str(path), mode="w")
    stream = container.add_stream("libx264", rate=Fraction(FPS))
    stream.width, stream.height, stream.pix_fmt, stream.options = W, H, "yuv420p", {"crf": "18"}
    boxes = []
    import torch

    for i in range(frames):
        s, hands, frame_boxes = i / FPS, [], []
        for hand, (amp, freq, drift, phase) in zip(scene.hands, motion):
            angle = amp * np.sin(2 * np.pi * freq * s + phase)
            R = axis_angle_to_matrix(torch.tensor([[0.3 * angle, 0.5 * angle, angle]], dtype=torch.float32))[0].numpy()
            wrist = hand.joints[0]
            offset = drift * np.sin(2 * np.pi * 0.25 * s + phase)
            move = lambda p: (p - wrist) @ R.T + wrist + offset  # noqa: E731
            moved = dataclasses.replace(hand, vertices=move(hand.vertices), joints=move(hand.joints))
            hands.append(moved)
            uv = project(moved.vertices, scene.K)
            box = np.clip([*uv.min(0), *uv.max(0)], 0, [W, H, W, H])
            frame_boxes.append(box)
        image = engine.render_scene(dataclasses.replace(scene, hands=hands), np.random.default_rng(seed))[0]
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
        boxes.append(np.array(frame_boxes).reshape(-1, 4))
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return boxes, float(scene.K[0, 0])


def score_run(jsonl: Path, gt: list[np.ndarray]) -> dict[str, float]:
    """found / false hands per frame and ids per hand of one clip's output."""
    found = false = hands = 0
    ids: dict[int, set[int]] = {}
    for line, boxes in zip(jsonl.read_text().splitlines(), gt):
        out = json.loads(line)["hands"]
        pred = np.array([h["box"] for h in out], np.float64).reshape(-1, 4)
        scores = np.array([h["score"] for h in out], np.float64)
        match = match_hands(pred, scores, boxes)
        hands += len(boxes)
        found += int((match >= 0).sum())
        false += len(out) - int((match >= 0).sum())
        for g, p in enumerate(match):
            if p >= 0:
                ids.setdefault(g, set()).add(out[p]["track_id"])
    return {"found": found, "false": false, "hands": hands, "ids": sum(len(v) for v in ids.values()),
            "tracked_hands": len(ids)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--backgrounds", default=".cache/photos/foreign_pool")
    ap.add_argument("--thresholds", default="off,0.3,0.25,0.2")
    ap.add_argument("--model", default="handrecon-hand-detector+m3dhmr-openhand")
    ap.add_argument("--top-k", type=int, default=None, help="cap the box verifier's candidates per image")
    ap.add_argument("--keep", type=Path, default=None, help="keep the clips, their GT boxes and the outputs here")
    args = ap.parse_args()
    cfg = preset("scene", image_size=(288, 384), num_hands=(1, 2), hand_size=(0.15, 0.45), p_motion_blur=0.0)
    engine = SynthEngine(cfg, backgrounds=args.backgrounds)
    predictor = load(args.model)
    if args.top_k is not None:
        verifier = predictor.detector.verifier
        verifier.settings = dataclasses.replace(verifier.settings, top_k=args.top_k)
    settings = [None if t == "off" else float(t) for t in args.thresholds.split(",")]
    totals = {t: {"found": 0, "false": 0, "hands": 0, "ids": 0, "tracked_hands": 0, "seconds": 0.0} for t in settings}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = args.keep or tmp
        Path(tmp).mkdir(parents=True, exist_ok=True)
        for c in range(args.clips):
            clip = Path(tmp) / f"clip{c}.mp4"
            gt, focal = render_clip(engine, clip, args.frames, args.seed + c)
            if args.keep:
                np.savez(Path(tmp) / f"clip{c}_gt.npz", *gt)
            for t in settings:
                out = Path(tmp) / f"out{c}_{t}"
                t0 = time.perf_counter()
                reconstruct_video(predictor, clip, out, OneEuroConfig(), focal=focal, overlay=False, track_threshold=t)
                totals[t]["seconds"] += time.perf_counter() - t0
                for k, v in score_run(out / f"clip{c}.jsonl", gt).items():
                    totals[t][k] += v
    frames = args.clips * args.frames
    print(f"{args.clips} clips x {args.frames} frames, backgrounds {args.backgrounds}, seed {args.seed}, {args.model}")
    print("| track threshold | hands found per frame | false hands per frame | track ids per hand | frames/s |")
    print("|---|---|---|---|---|")
    for t, r in totals.items():
        print(f"| {'off' if t is None else t} | {r['found'] / r['hands']:.3f} ({r['found']} of {r['hands']}) | "
              f"{r['false'] / frames:.3f} | {r['ids'] / max(r['tracked_hands'], 1):.2f} | {frames / r['seconds']:.1f} |")


if __name__ == "__main__":
    main()
