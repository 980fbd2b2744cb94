"""Synthetic data throughput: images written to disk per second by `handrecon synth`.

Measures, in one run:
  1. one process (in-process, torch limited to 1 thread): wall and CPU time per image;
  2. `generate(..., workers=W)` end to end (worker start-up included) and in steady state
     (images after the first shard of each worker);
and prints the ratio of (2) to (1) and to the target of 100 crop images/s with 2 workers on 2
cores. The CPU time per image (of (1), and summed over the workers of (2)) gives what W workers
reach on W idle cores (W / cpu_per_image), which matters on a shared machine where wall time is
inflated by other load (the load average is printed).

Usage: .venv/bin/python benchmarks/bench_synth.py [--preset crop] [--num 600] [--workers 2] [--shard-size 50]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

TARGET = 100.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="crop")
    ap.add_argument("--num", type=int, default=600)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shard-size", type=int, default=50)
    ap.add_argument("--single", type=int, default=150, help="images for the single-process measurement")
    args = ap.parse_args()

    import torch

    from handrecon.data.synth import preset
    from handrecon.data.synth.writer import generate, write_shard
    from handrecon.render import resolve_backend

    cfg = preset(args.preset)
    print(f"preset {cfg.name} {cfg.image_size[1]}x{cfg.image_size[0]} {cfg.image_format}, renderer {resolve_backend()}, "
          f"{os.cpu_count()} cpus, load average before {os.getloadavg()[0]:.1f}")
    tmp = tempfile.mkdtemp(prefix="bench_synth_")
    try:
        torch.set_num_threads(1)
        write_shard(os.path.join(tmp, "warm"), cfg, 0, 5, 5, 0)  # build the engine and GL context
        c0, t0 = time.process_time(), time.perf_counter()
        write_shard(os.path.join(tmp, "single"), cfg, 1, args.single, args.single, 0)
        cpu = (time.process_time() - c0) / args.single
        wall = (time.perf_counter() - t0) / args.single
        print(f"1 process : {1 / wall:7.1f} img/s wall ({wall * 1e3:.1f} ms/img), CPU {cpu * 1e3:.1f} ms/img "
              f"-> {args.workers / cpu:.0f} img/s projected for {args.workers} workers on {args.workers} idle cores")

        out = os.path.join(tmp, "multi")
        t0 = time.perf_counter()
        summary = generate(out, cfg, args.num, seed=2, shard_size=args.shard_size, workers=args.workers, progress=False)
        total = time.perf_counter() - t0
        shard_times = sorted(os.path.getmtime(os.path.join(out, d)) for d in os.listdir(out) if d.startswith("shard_"))
        marks = shard_times[args.workers - 1:]  # steady state: from the first shard of the last worker to finish one
        steady = (len(marks) - 1) * args.shard_size / (marks[-1] - marks[0]) if len(marks) > 1 and marks[-1] > marks[0] else float("nan")
        rate = summary.images_written / total
        cpu_multi = summary.cpu_seconds / summary.images_written
        print(f"{args.workers} workers: {rate:7.1f} img/s end to end ({summary.images_written} images, {total:.1f} s, start-up included), "
              f"{steady:.1f} img/s steady state; worker CPU {cpu_multi * 1e3:.1f} ms/img -> {args.workers / cpu_multi:.0f} img/s "
              f"on {args.workers} idle cores")
        print(f"ratio {args.workers} workers / 1 process (wall): {rate * wall:.2f}; end to end / target {TARGET:.0f}: "
              f"{rate / TARGET:.2f}; steady / target: {steady / TARGET:.2f}; load average after {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
