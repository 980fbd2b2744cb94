"""Inverse kinematics speed and accuracy (`handrecon.fit`), batched, on 2 cores.

    .venv/bin/python benchmarks/bench_fit.py [--batch 64] [--threads 2]

Round trip: random poses (all kinds, uniform global rotations) and shapes of OpenHand → mesh →
fit → mesh; prints ms per hand (median of 3 runs) and the mean / max vertex error, for vertex
targets (the default path) and for keypoint targets. Target of issue 15: ≤ 20 ms per hand, ≤ 2 mm.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from _timing import run_times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from handrecon.hand.fit import fit_hands
    from handrecon.hand.model import HandModel
    from handrecon.hand.pose import sample_poses, sample_shapes

    model, B = HandModel.openhand(), args.batch
    pose = sample_poses(model, B, kind="mixed", seed=1, global_orient="random")
    shape = sample_shapes(model, B, seed=2)
    transl = torch.randn(B, 3, generator=torch.Generator().manual_seed(3)) * 0.05 + torch.tensor([0.0, 0.0, 0.5])
    with torch.no_grad():
        out = model(pose, shape, transl)
    print(f"OpenHand, batch {B}, {args.threads} threads")
    for what, kw in (("vertices", dict(vertices=out.vertices)), ("keypoints", dict(keypoints=out.joints))):
        t = statistics.median(run_times(lambda: fit_hands(model, **kw), 3, 1))
        fit = fit_hands(model, **kw)
        err = (fit.vertices - out.vertices).norm(dim=-1).mean(1) * 1000
        print(f"  from {what:<9}: {t / B * 1000:6.1f} ms per hand, vertex error mean {err.mean():.2f} mm, "
              f"max {err.max():.2f} mm")


if __name__ == "__main__":
    main()
