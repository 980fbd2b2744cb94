"""Benchmark: OpenHand LBS forward and forward+backward at batch 64 on the CPU (median of repeats).

    .venv/bin/python benchmarks/bench_lbs.py [--batch 64] [--repeats 30] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from handrecon.hand.model import HandModel
from handrecon.hand.pose import sample_poses, sample_shapes

from _timing import run_times


def median_ms(fn, repeats: int) -> float:
    return statistics.median(run_times(fn, repeats, warmup=3)) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = HandModel.openhand()
    pose = sample_poses(model, args.batch, "mixed", seed=0, global_orient="random")
    shape = sample_shapes(model, args.batch, seed=0)
    transl = torch.zeros(args.batch, 3)

    def forward():
        with torch.no_grad():
            model(pose, shape, transl)

    def forward_backward():
        p, s = pose.clone().requires_grad_(), shape.clone().requires_grad_()
        out = model(p, s, transl)
        (out.vertices.square().sum() + out.joints.square().sum()).backward()

    fwd, fb = median_ms(forward, args.repeats), median_ms(forward_backward, args.repeats)
    print(f"OpenHand LBS, {model.num_vertices} vertices, {model.num_joints} joints, batch {args.batch}, "
          f"{torch.get_num_threads()} threads: forward {fwd:.2f} ms, forward+backward {fb:.2f} ms "
          f"(median of {args.repeats})")


if __name__ == "__main__":
    main()
