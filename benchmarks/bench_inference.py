"""End-to-end inference speed of `handrecon.load(...).predict` at batch 1, torch and onnxruntime.

What is timed (median seconds over `--repeats` runs after `--warmup` runs, `--threads` CPU
threads for torch and for onnxruntime's intra-op pool), one 640×480 photo with a hand box:

| stage        | what                                                                   |
|--------------|------------------------------------------------------------------------|
| preprocess   | input checks + the family's pre-processing: crop, resize, mirror, normalisation |
| encoder      | the network's first stage: the stacked landmark encoder                |
| decoder      | its second stage: the mesh decoder (lifting, spiral layers, head, ROI), which reading a side runs on the winning crop only |
| network      | the whole network (torch module or onnxruntime session)                |
| postprocess  | root recovery (closed form + robust refinement), back to the image camera, typed results |
| post (closed)| the same with the closed-form root alone (`refine_root=False`)         |
| predict      | the whole `predict()` call; images/s = 1 / this                        |

Then the throughput of `predict_batch` over 16 224×224 crops (images/s), torch and onnxruntime.
On a CPU with native bf16 (AVX512-BF16 or AMX) every row also for "torch bf16", the checkpoint as
`reconstruct --bf16` serves it (bf16 autocast, channels-last).

Model: `--model` (a shipped name, checkpoint/run directory); when it is not available M3DHMR
with random weights is used (the default config, or `--random-kwargs`; the cost does not depend
on the weights), and the run says so. Timings on a shared machine vary with its load; compare rows within one run.

Usage: .venv/bin/python benchmarks/bench_inference.py [--model m3dhmr-openhand] [--threads 2]
           [--repeats 50] [--warmup 5] [--side right] [--random-kwargs JSON]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from bench_m3dhmr import timed  # median seconds of fn() after warm-up runs

import handrecon
from handrecon.utils.cpu_features import cpu_bf16_is_emulated


def random_checkpoint(path: Path, kwargs: dict) -> Path:
    """An M3DHMR checkpoint with random weights, its card carrying the model's inference spec."""
    from handrecon.checkpoint import save_checkpoint
    from handrecon.registry import MODELS

    model = MODELS.build("m3dhmr", **kwargs)
    card = {"architecture": "m3dhmr", "kwargs": kwargs, "inference": model.inference_spec(), "note": "random weights"}
    return save_checkpoint(path, model, {}, card)


def open_model(name: str, tmp: Path, threads: int, random_kwargs: dict):
    """(torch Predictor, description, what to load it from): the requested model, else random weights."""
    from handrecon.infer.registry import ModelNotFoundError

    try:
        return handrecon.load(name, threads=threads), f"{name} (trained weights)", name
    except ModelNotFoundError as e:
        print(f"note: {e}\n      -> benchmarking M3DHMR with random weights instead")
        path = random_checkpoint(tmp / "random", random_kwargs)
        return (handrecon.load(path, threads=threads), f"M3DHMR kwargs {random_kwargs or '(defaults)'}, random weights",
                path)


def stage_times(rec, image, box, side, args) -> dict[str, float]:
    prompt = ([image], [None], [[box]], [[side]])
    prepared = rec.prepare(*prompt)
    x = prepared.inputs
    raw = rec.network(x)
    r, w = args.repeats, args.warmup
    out = {
        "preprocess": timed(lambda: rec.prepare(*prompt), r, w),
        "network": timed(lambda: rec.network(x), r, w),
        "postprocess": timed(lambda: rec.results(prepared, rec.adapter.postprocess(prepared, raw, rec.refine_root)), r, w),
        "post (closed)": timed(lambda: rec.results(prepared, rec.adapter.postprocess(prepared, raw, False)), r, w),
        "predict": timed(lambda: rec.predict(image, boxes=[box], sides=[side]), r, w),
    }
    if getattr(rec.network, "staged", False):  # the network's two stages, each on its real input
        first = rec.network.first_stage(x)
        link = {name: first[name] for name in rec.adapter.stage_link}
        out["encoder"] = timed(lambda: rec.network.first_stage(x), r, w)
        out["decoder"] = timed(lambda: rec.network.second_stage(link), r, w)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="m3dhmr-openhand")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--side", default="right", choices=["left", "right"])
    ap.add_argument("--random-kwargs", type=json.loads, default={},
                    help='M3DHMR kwargs (JSON) for the random-weights fallback, e.g. \'{"backbone_kwargs": {"width": 32}}\'')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    box = (250.0, 150.0, 410.0, 330.0)

    with tempfile.TemporaryDirectory() as d:
        rec, what, source = open_model(args.model, Path(d), args.threads, args.random_kwargs)
        model = rec.model
        n_params = sum(p.numel() for p in model.parameters())
        size = rec.spec["input_size"]
        print(f"model: {what}; {n_params / 1e6:.2f} M parameters, input {size}x{size}")
        print(f"threads: {args.threads}; batch 1; median of {args.repeats} runs after {args.warmup} warm-up; "
              f"photo 640x480, box {box}, side {args.side}")
        model.eval()
        results = {"torch": stage_times(rec, image, box, args.side, args)}
        batch16 = {"torch": batch_throughput(rec, args)}
        if cpu_bf16_is_emulated():
            print("torch bf16: skipped (this CPU has no native bf16 arithmetic: AVX512-BF16 or AMX)")
        else:  # `reconstruct --bf16`: the same checkpoint under bf16 autocast, channels-last
            bf16 = handrecon.load(source, threads=args.threads, bf16=True)
            results["torch bf16"] = stage_times(bf16, image, box, args.side, args)
            batch16["torch bf16"] = batch_throughput(bf16, args)
        try:
            from handrecon.infer.torch_backend import export_onnx

            path = export_onnx(rec, Path(d) / "model.onnx")
            ort = handrecon.load(path, threads=args.threads)  # as served: with the torch columns' second look
            results["onnxruntime"] = stage_times(ort, image, box, args.side, args)
            batch16["onnxruntime"] = batch_throughput(ort, args)
        except ImportError as e:
            print(f"onnxruntime/onnx not installed ({e}): skipped")

    rows = ("preprocess", "encoder", "decoder", "network", "postprocess", "post (closed)", "predict")
    print_table(results, rows)
    print(f"{'batch 16 img/s':14s}" + "".join(f"{batch16[n]:14.1f}" for n in batch16)
          + "   (predict_batch over 16 224x224 crops, whole image as the crop)")


def batch_throughput(rec, args, n: int = 16) -> float:
    """Images/s of predict_batch over n 224x224 crops (whole image as the crop), one call."""
    rng = np.random.default_rng(1)
    crops = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(n)]
    return n / timed(lambda: rec.predict_batch(crops, batch_size=n), max(3, args.repeats // 5), 1)


def print_table(results: dict, rows: tuple) -> None:
    names = list(results)
    print(f"\n{'stage (ms)':14s}" + "".join(f"{n:>14s}" for n in names))
    for row in rows:
        cells = [f"{results[n][row] * 1e3:14.2f}" if row in results[n] else f"{'-':>14s}" for n in names]
        print(f"{row:14s}" + "".join(cells))
    print(f"{'images/s':14s}" + "".join(f"{1 / results[n]['predict']:14.1f}" for n in names))
    if {"torch", "onnxruntime"} <= set(names):
        print(f"\nonnxruntime / torch throughput: {results['torch']['predict'] / results['onnxruntime']['predict']:.2f}x; "
              f"target >= 30 images/s with torch")


if __name__ == "__main__":
    main()
