"""CPU latency, parameters and FLOPs of the image encoders at the M3DHMR crop size (128×128).

    .venv/bin/python benchmarks/bench_backbones.py [--threads 2] [--size 128] [--batches 1 32] [--onnx]

Prints, per encoder: parameters, fp32 weight size, GFLOPs per image (torch's FlopCounterMode:
2 × multiply-accumulates of convolutions and matmuls), median and best forward latency in eval /
inference mode (optionally also through onnxruntime), images/s, and the batch-1 throughput as a
ratio of the ResNet-18 trunk measured in the same run (the baseline) and of the 30 img/s budget of
the whole shipped model. Throughputs use the best time: on a machine shared with other jobs it is
the least disturbed estimate (medians are printed too). On a machine shared with other jobs, run
with OMP_WAIT_POLICY=PASSIVE: torch's OpenMP threads otherwise spin at barriers and a 2-thread
forward pass slows down several-fold whenever another process takes a core.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
import warnings
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from handrecon.models.backbones import build_backbone

CONFIGS = [
    ("resnet18", {}),
    ("resnet34", {}),
    ("stacked_resnet18", {}),
    ("stacked_resnet18", {"width": 32}),
    ("stacked_resnet34", {}),
    ("hourglass2", {}),
    ("hourglass2", {"channels": 128}),
]
BUDGET_IMG_S = 30.0


def run(model: torch.nn.Module, x: torch.Tensor):
    return model.forward_features(x) if hasattr(model, "forward_features") else model(x)


def gflops_per_image(model: torch.nn.Module, size: int) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        run(model, torch.randn(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def onnx_runner(model: torch.nn.Module, size: int, threads: int, workdir: str) -> Callable:
    """Export `model` (TorchScript exporter, opset 17, dynamic batch) and return an onnxruntime call."""
    import onnxruntime as ort

    class Wrapped(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            out = run(self.m, x)
            return tuple(out) if isinstance(out, list) else (out["uv"], out["latent"])

    path = os.path.join(workdir, f"{id(model)}.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Wrapped(model), (torch.randn(1, 3, size, size),), path, dynamo=False,
                          opset_version=17, input_names=["image"], dynamic_axes={"image": {0: "batch"}})
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads must not spin
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return lambda x: sess.run(None, {"image": x.numpy()})


def latencies_ms(runners: list[Callable], batch: int, size: int, rounds: int) -> list[list[float]]:
    """Wall times (ms) of `rounds` forward passes per runner, after warm-up.

    Runners are timed round-robin, one pass each per round, so that load from other processes on
    a shared machine falls on all of them alike and the ratios between them stay meaningful.
    """
    x = torch.randn(batch, 3, size, size)
    times: list[list[float]] = [[] for _ in runners]
    with torch.inference_mode():
        for fn in runners:
            for _ in range(2):
                fn(x)
        for _ in range(rounds):
            for fn, ts in zip(runners, times):
                t = time.perf_counter()
                fn(x)
                ts.append((time.perf_counter() - t) * 1e3)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--rounds", type=int, default=30, help="timed passes per model at batch 1 (¼ at larger batches)")
    ap.add_argument("--onnx", action="store_true", help="also time each encoder exported to onnxruntime")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    rows, runners = [], []
    with tempfile.TemporaryDirectory() as workdir:
        for name, kw in CONFIGS:
            model = build_backbone(name, **kw).eval()
            params = sum(p.numel() for p in model.parameters())
            label = name + "".join(f"[{k}={v}]" for k, v in kw.items())
            info = dict(params_m=params / 1e6, weights_mb=params * 4 / 2**20, gflops=gflops_per_image(model, args.size))
            rows.append(dict(encoder=label, runtime="torch", **info))
            runners.append(functools.partial(run, model))
            if args.onnx:
                rows.append(dict(encoder=label, runtime="onnxruntime", **info))
                runners.append(onnx_runner(model, args.size, args.threads, workdir))
        for b in args.batches:
            rounds = args.rounds if b == 1 else max(3, args.rounds // 4)
            for runtime in ("torch", "onnxruntime"):  # two thread pools interleaved slow each other
                group = [i for i, r in enumerate(rows) if r["runtime"] == runtime]
                times = latencies_ms([runners[i] for i in group], b, args.size, rounds)
                for i, ts in zip(group, times):
                    rows[i].update({f"b{b}_ms": statistics.median(ts), f"b{b}_best_ms": min(ts),
                                    f"b{b}_img_s": 1e3 * b / min(ts)})
            print(f"measured batch {b}", flush=True)

    b0 = args.batches[0]
    base = rows[0][f"b{b0}_img_s"]
    print(f"\n{args.size}×{args.size}, {args.threads} threads, torch {torch.__version__}; latency = median "
          f"(best) ms per forward pass; img/s and ratios from the best time, at batch {b0}")
    head = f"{'encoder':28s} {'runtime':11s} {'params':>8s} {'MB fp32':>8s} {'GFLOPs':>7s}"
    for b in args.batches:
        head += f" {'b' + str(b) + ' ms':>17s} {'img/s':>7s}"
    print(head + f" {'vs resnet18':>11s} {'vs 30/s':>8s}")
    for r in rows:
        line = f"{r['encoder']:28s} {r['runtime']:11s} {r['params_m']:7.2f}M {r['weights_mb']:8.1f} {r['gflops']:7.2f}"
        for b in args.batches:
            line += f" {r[f'b{b}_ms']:8.1f} ({r[f'b{b}_best_ms']:6.1f}) {r[f'b{b}_img_s']:7.1f}"
        print(line + f" {r[f'b{b0}_img_s'] / base:11.2f} {r[f'b{b0}_img_s'] / BUDGET_IMG_S:8.2f}")
    if args.json:
        from handrecon.utils.io import atomic_write_json

        atomic_write_json(args.json, dict(size=args.size, threads=args.threads, rows=rows))


if __name__ == "__main__":
    main()
