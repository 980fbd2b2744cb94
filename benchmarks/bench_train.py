"""M3DHMR training throughput on the CPU: the data pipeline under shuffled access, and train steps.

1. `data`: `M3DHMRCrops` items/s in random order (the training access pattern) in this process:
   JPEG decode, augmented 128 px crop, left-hand mirror, tensors. A regression here once made
   training 3x slower (the synthetic reader re-read a whole shard per sample; docs/data_format.md).
2. `step`: the training engine's step (`Trainer.train_step`: forward, loss, backward, grad clip,
   Adam) of the CPU recipe `configs/m3dhmr_cpu.yaml` as written (model, loss weights, one
   DataLoader worker), at batch 32 on real crops; steps/s and images/s.
3. `--levers`: the same step under each sample-efficiency lever of issue 12, timed in one run as a
   ratio to the plain fp32 step: bf16 autocast (`train.amp=bf16`), channels-last weights and
   images (`train.channels_last=true`), both together, and a 96 px input instead of 128;
   `--compile` adds `torch.compile`, alone and under bf16 autocast (torch 2.13 on an AMD EPYC with
   AVX-512 BF16, 2026-12-07, one thread: compiled in about 3 minutes, 0.98x the fp32 step; on the torch
   of 2026-12-01 it had not finished compiling after 16 minutes).

Without --root it renders a small synthetic folder (4 shards of 64 crops) into a temp dir first.

Usage: .venv/bin/python benchmarks/bench_train.py [--threads 2] [--steps 12] [--root DIR]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _timing import run_times

CPU_RECIPE = Path(__file__).resolve().parents[1] / "configs" / "m3dhmr_cpu.yaml"


def bench_data(root: Path, n: int) -> float:
    from handrecon.models.m3dhmr.data import M3DHMRCrops

    ds = M3DHMRCrops(root, split="train", input_size=128, two_views=False)
    order = np.random.default_rng(0).permutation(len(ds))[:n]
    start = time.perf_counter()
    for i in order:
        ds[int(i)]
    return n / (time.perf_counter() - start)


def bench_steps(root: Path, steps: int, batch: int, overrides: tuple[str, ...] = (), lever: str = "") -> list[float]:
    """Seconds per `Trainer.train_step` of the CPU recipe, batches from the recipe's own loader.

    overrides: extra config overrides; lever: "compile" wraps the model in `torch.compile`."""
    from handrecon.train import load_config
    from handrecon.train.distributed import end_group, init_distributed
    from handrecon.train.engine import Trainer

    cfg = load_config(CPU_RECIPE, [f"data.train.kwargs.root={root}", "data.val=null", f"data.batch_size={batch}",
                                    *overrides])
    trainer = Trainer(cfg, init_distributed("cpu"))
    trainer.model.train()
    if lever == "compile":
        trainer.ddp = torch.compile(trainer.ddp)

    def epochs():  # the recipe's loader, epoch after epoch (a small --root holds few batches)
        for epoch in itertools.count():
            yield from trainer._loader(epoch, start_batch=0)

    batches = epochs()
    try:
        return run_times(lambda: trainer.train_step(next(batches)), steps, warmup=2)
    finally:
        end_group()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--items", type=int, default=192, help="items timed in the data section")
    p.add_argument("--root", type=Path, help="a `handrecon synth --preset crop` folder (default: render one)")
    p.add_argument("--levers", action="store_true", help="also time bf16, channels_last, both, and a 96 px input")
    p.add_argument("--compile", action="store_true", help="with --levers: also torch.compile (slow to compile)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root
        if root is None:
            from handrecon.data.synth import preset
            from handrecon.data.synth.writer import generate

            root = Path(tmp) / "synth"
            generate(root, preset("crop"), num=256, seed=0, shard_size=64, progress=False)
        items = bench_data(root, args.items)
        times = bench_steps(root, args.steps, args.batch)
        levers = {}
        if args.levers:
            for name, overrides, lever in (("bf16 autocast", ("train.amp=bf16",), ""),
                                           ("channels_last", ("train.channels_last=true",), ""),
                                           ("bf16 + channels_last", ("train.amp=bf16", "train.channels_last=true"), ""),
                                           ("input 96 px", ("data.train.kwargs.input_size=96", "model.kwargs.input_size=96"), ""),
                                           ("torch.compile", (), "compile"),
                                           ("bf16 + torch.compile", ("train.amp=bf16",), "compile")):
                if lever == "compile" and not args.compile:
                    continue
                start = time.perf_counter()
                try:
                    levers[name] = (bench_steps(root, args.steps, args.batch, overrides, lever), time.perf_counter() - start)
                except Exception as e:  # a lever that does not run on this machine is reported, not fatal
                    levers[name] = (f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}", 0.0)
    step_s = statistics.median(times)
    print(f"threads: {args.threads}; data: {root if args.root else 'rendered 256 crops (4 shards)'}")
    print(f"data pipeline, shuffled: {items:.0f} items/s ({1000 / items:.1f} ms per item, 1 process)")
    print(f"train step, batch {args.batch}: median {step_s * 1000:.0f} ms over {args.steps} "
          f"-> {1 / step_s:.2f} steps/s, {args.batch / step_s:.1f} images/s")
    for name, (result, wall) in levers.items():
        if isinstance(result, str):
            print(f"  lever {name}: {result}")
            continue
        lever_s = statistics.median(result)
        print(f"  lever {name}: median {lever_s * 1000:.0f} ms per step = {step_s / lever_s:.2f}x the fp32 step "
              f"(whole measurement incl. set-up {wall:.0f} s)")


if __name__ == "__main__":
    main()
