"""handrecon against MediaPipe Hands on the same folder: 224x224 hand crops (the crop path), or
with `--scenes` 640x480 whole images with 0-4 hands (the full-image path, HandOS).

    .venv/bin/python benchmarks/bench_mediapipe.py [--num 300] [--rounds 3] [--threads N] [--float32] [--bf16]
    .venv/bin/python benchmarks/bench_mediapipe.py --scenes [--model MODEL] --num 100

1. Builds, once, a separate virtual environment `.cache/bench-mediapipe/` with `mediapipe==0.10.21`
   (the last release that still ships its hand models inside the wheel; it needs `numpy<2`, so it
   cannot share handrecon's environment) from the package registry.
2. Renders `--num` held-out crops with handrecon's synthetic engine (seed 1000, never used for
   training) into a folder.
3. Times, alternately (A B A B ...), two whole processes over the same folder:
   A = `handrecon reconstruct FOLDER --crop --formats "" --no-overlay` (the shipped crop model as
   served by default: its int8 export on onnxruntime, made once into the cache; 2D + 3D keypoints,
   vertices, camera translation, one JSON per image), as a user runs it: a batch per core, one
   network thread each (`--threads N` instead runs one batch at a time on N threads), reading each
   hand's side from the crop and its mirror (two encoder views; MediaPipe reports handedness too)
   and looking again, turned +-45 degrees, at the hands whose heatmaps are not sharp (the default
   second look), then the same with one look (`--one-look`) and with the side given (`--side
   right`: no mirror view), and
   B = MediaPipe Hands (`static_image_mode=True`, one hand, model complexity 1: palm detector +
   landmark model) over every image, 21 2D/3D landmarks each. With `--float32` also A' = A with
   `--float32` (the float32 export, served by default until 2026-12-06).
   With `--bf16` also A'' = `reconstruct --bf16` (the shipped checkpoint on torch under bf16
   autocast, channels-last; CPUs with AVX512-BF16 or AMX), with and without `--one-look`.
   Prints each round's wall seconds, images/s and the ratio of throughputs from the same round.
   Each round also runs both on a folder holding only the first image: that whole process is the
   start-up (imports, model loading, one image), and (N - 1) / (t_N - t_1) is the steady-state
   throughput of a long folder, without it. Both ratios are printed: the whole-process one
   depends on N (start-up weighs more on small folders), the steady one does not.
   With `--scenes`: held-out scenes (`--preset scene`, 480x640, 0-4 hands, seed 1000), A =
   `handrecon reconstruct FOLDER --model MODEL --formats "" --no-overlay` (the full-image default:
   the hand detector, then the crop model, both on onnxruntime from their cached exports when the
   extra "onnx" is installed, the crop model's int8 export; or a full-image model), B = MediaPipe
   Hands with `max_num_hands=4`; with the default model also A' = A with `--thorough` (the crop
   model reads the detector's weaker candidates too and scores every hand's presence), and with
   `--float32` A with `--float32` (the crop model's float32 export behind the detector).

Timings on a shared machine drift from run to run: compare the ratio, not absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = ROOT / ".cache" / "bench-mediapipe"
MEDIAPIPE_SCRIPT = """
import sys, time
from pathlib import Path
import numpy as np
from PIL import Image
import mediapipe as mp
files = sorted(Path(sys.argv[1]).glob("*.png"))
found = 0
with mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=int(sys.argv[2]), model_complexity=1) as hands:
    for f in files:
        out = hands.process(np.asarray(Image.open(f).convert("RGB")))
        found += out.multi_hand_landmarks is not None
print(f"mediapipe: {found} of {len(files)} hands found")
"""


def mediapipe_python() -> Path:
    """The benchmark environment's python, built on first use."""
    python = ENV / "bin" / "python"
    if not (ENV / ".ready").is_file():
        print(f"building {ENV} (mediapipe==0.10.21, numpy<2) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(ENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "mediapipe==0.10.21", "numpy<2", "pillow"], check=True)
        (ENV / ".ready").write_text("mediapipe==0.10.21\n")
    return python


def render_crops(folder: Path, num: int, scenes: bool = False) -> None:
    from PIL import Image

    from handrecon.data.synth import SynthEngine, preset

    engine = SynthEngine(preset("scene", image_size=(480, 640), num_hands=(0, 4)) if scenes else preset("crop"))
    for i in range(num):
        Image.fromarray(engine.sample(i, 1000).image).save(folder / f"{i:05d}.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None,
                    help="handrecon's --threads (one batch at a time on N threads); default: its own (a batch per core)")
    ap.add_argument("--bf16", action="store_true",
                    help="also time `reconstruct --bf16` (the checkpoint on torch under bf16 autocast; refused on a "
                         "CPU without native bf16), and for crops with --one-look")
    ap.add_argument("--float32", action="store_true",
                    help="also time `reconstruct --float32` (the crop model's float32 export instead of its int8 one)")
    ap.add_argument("--scenes", action="store_true", help="640x480 whole images with 0-4 hands (HandOS) instead of crops")
    ap.add_argument("--model", default="m3dhmr-openhand",
                    help="with --scenes: a crop model (run after the hand detector) or a full-image model")
    args = ap.parse_args()
    mp_python = mediapipe_python()
    handrecon_cli = Path(sys.executable).parent / "handrecon"
    if args.num < 2:
        ap.error("--num must be at least 2 (one image alone is the start-up run)")
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "crops").mkdir()
        (d / "one").mkdir()
        render_crops(d / "crops", args.num, args.scenes)
        first = sorted((d / "crops").glob("*.png"))[0]
        shutil.copy(first, d / "one" / first.name)
        (d / "mp.py").write_text(MEDIAPIPE_SCRIPT)
        env = dict(os.environ)
        threads = [] if args.threads is None else ["--threads", str(args.threads)]
        model = args.model if args.scenes else "m3dhmr-openhand"
        ours = [str(handrecon_cli), "reconstruct", str(d / "crops"), *([] if args.scenes else ["--crop"]),
                "--model", model, "--formats", "", "--no-overlay", "--out", str(d / "out"), *threads]
        commands = {"handrecon": ours}
        if not args.scenes:  # the side read from the crop and its mirror (the default) costs a second encoder view
            commands["handrecon --one-look"] = [*ours, "--one-look"]
            commands["handrecon --side right"] = [*ours, "--side", "right"]
        elif args.model == "m3dhmr-openhand":  # the crop model also scoring hand presence (more hands found)
            commands["handrecon --thorough"] = [*ours, "--thorough"]
        if args.float32:  # the crop model's float32 export (the default until 2026-12-06)
            commands["handrecon --float32"] = [*ours, "--float32"]
        if args.bf16:  # the checkpoint on torch under bf16 autocast (CPUs with native bf16 only)
            bf16 = [*ours, "--bf16"]
            commands["handrecon --bf16"] = bf16
            if not args.scenes:
                commands["handrecon --bf16 --one-look"] = [*bf16, "--one-look"]
        commands["mediapipe hands"] = [str(mp_python), str(d / "mp.py"), str(d / "crops"), "4" if args.scenes else "1"]
        ours_names = [n for n in commands if n.startswith("handrecon")]
        for cmd in commands.values():  # warm-up: file caches, model files
            subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ratios: dict[str, list[float]] = {n: [] for n in ours_names}
        steady_ratios: dict[str, list[float]] = {n: [] for n in ours_names}
        what = "640x480 scenes with 0-4 hands" if args.scenes else "crops of 224x224"
        mode = "a batch per core" if args.threads is None else f"--threads {args.threads}"
        print(f"{args.num} {what}, handrecon with {mode}; wall seconds of the whole process")
        for r in range(args.rounds):
            seconds, startup = {}, {}
            for name, cmd in commands.items():
                t0 = time.perf_counter()
                subprocess.run([str(d / "one") if str(d / "crops") == a else a for a in cmd], check=True, env=env,
                               capture_output=True, text=True)
                startup[name] = time.perf_counter() - t0
                t0 = time.perf_counter()
                out = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
                seconds[name] = time.perf_counter() - t0
                if r == 0:
                    print("  " + (out.stdout.strip().splitlines() or [""])[-1])
            steady = {n: (args.num - 1) / max(seconds[n] - startup[n], 1e-9) for n in seconds}
            for n in ours_names:
                ratios[n].append(seconds["mediapipe hands"] / seconds[n])
                steady_ratios[n].append(steady[n] / steady["mediapipe hands"])
            print(f"round {r + 1}: " + ", ".join(f"{n} {s:.2f} s ({args.num / s:.0f} img/s; start-up {startup[n]:.2f} s, "
                                                 f"then {steady[n]:.0f} img/s)" for n, s in seconds.items())
                  + "; " + ", ".join(f"{n} / mediapipe: whole process {ratios[n][-1]:.2f}x, steady "
                                     f"{steady_ratios[n][-1]:.2f}x" for n in ours_names))
        target = "" if args.scenes else " (target >= 2x)"
        for n in ours_names:
            print(f"median over {args.rounds} rounds, {n} throughput / mediapipe: whole process of {args.num} images "
                  f"{statistics.median(ratios[n]):.2f}x, steady state {statistics.median(steady_ratios[n]):.2f}x{target}")


if __name__ == "__main__":
    main()
