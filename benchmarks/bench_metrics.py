"""Time the full FreiHAND metric set at evaluation-set size: 3960 samples x (21 joints + 778 vertices).

Synthetic hand-shaped data: a skeleton with vertices on capsules around its bones, posed in the
camera at ~0.6 m; predictions are the GT under a random similarity (~8 deg, +-5 %, ~15 mm) plus
4 mm noise, so unaligned errors are ~2 cm and aligned ones a few mm, as for real methods.
Prints the median of 3 end-to-end runs of `evaluate_freihand` (target <= 10 s on 2 cores; wall and
process CPU time, since the machine may be shared), its ratio to a per-sample official-style loop
measured in the same run, a per-stage breakdown and, apart from the target, the time to write and
load a pred.json of that size.

    .venv/bin/python benchmarks/bench_metrics.py [--samples 3960] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
from scipy.linalg import orthogonal_procrustes
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from handrecon.eval.metrics import f_scores_sets, keypoint_errors, summarize_errors
from handrecon.eval.submission import FreihandSet, evaluate_freihand, load_freihand_submission, write_freihand_submission
from handrecon.geometry.procrustes import apply_trafo, procrustes_trafo
from handrecon.hand.keypoints import OP21_PARENTS

TARGET_S = 10.0


def hand_skeleton() -> np.ndarray:
    """21 OP21 joints (m) of a relaxed right hand, wrist at the origin, fingers along +y."""
    joints = [np.zeros(3)]
    starts = [(-0.03, 0.02, 0.01), (-0.02, 0.09, 0), (0.0, 0.095, 0), (0.02, 0.09, 0), (0.037, 0.08, 0)]
    for f, start in enumerate(starts):
        direction = np.array([-0.6, 0.8, 0.0]) if f == 0 else np.array([0.05 * (f - 2.5), 1.0, 0.0])
        p = np.array(start, float)
        for k in range(4):
            joints.append(p.copy())
            curl = 0.3 * (k + 1)
            p = p + 0.025 * (direction / np.linalg.norm(direction) * np.cos(curl) + [0, 0, np.sin(curl)])
    return np.array(joints)


def synthesize(n: int, seed: int = 0) -> tuple[FreihandSet, FreihandSet]:
    rng = np.random.default_rng(seed)
    joints = hand_skeleton()
    bones = [(p, c) for c, p in enumerate(OP21_PARENTS) if p >= 0]
    pick = rng.integers(0, len(bones), 778)
    a, b = joints[[bones[i][0] for i in pick]], joints[[bones[i][1] for i in pick]]
    axis = (b - a) / np.linalg.norm(b - a, axis=1, keepdims=True)
    u = np.cross(axis, [0.3, 0.2, 0.93])
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    w = np.cross(axis, u)
    ang = rng.uniform(0, 2 * np.pi, (778, 1))
    verts = a + rng.random((778, 1)) * (b - a) + 0.009 * (np.cos(ang) * u + np.sin(ang) * w)
    template = np.concatenate([joints, verts])  # (799, 3)

    R = Rotation.random(n, random_state=seed).as_matrix()
    gt = rng.normal(1.0, 0.06, (n, 1, 1)) * template @ np.swapaxes(R, 1, 2)
    gt += rng.normal(0, 0.05, (n, 1, 3)) + [0.0, 0.0, 0.6]
    dR = Rotation.from_rotvec(rng.normal(0, np.deg2rad(8), (n, 3))).as_matrix()
    centre = gt.mean(1, keepdims=True)
    pred = rng.normal(1.0, 0.05, (n, 1, 1)) * (gt - centre) @ np.swapaxes(dR, 1, 2) + centre
    pred += rng.normal(0, 0.015, (n, 1, 3)) + rng.normal(0, 0.004, pred.shape)
    return FreihandSet(pred[:, :21], pred[:, 21:]), FreihandSet(gt[:, :21], gt[:, 21:])


def per_sample_baseline(pred: FreihandSet, gt: FreihandSet) -> None:
    """The official script's way: one sample at a time, scipy Procrustes, plain KD-tree F-scores."""

    def align(g, p):
        g0, p0 = g - g.mean(0), p - p.mean(0)
        gn, pn = np.linalg.norm(g0) + 1e-8, np.linalg.norm(p0) + 1e-8
        R, s = orthogonal_procrustes(g0 / gn, p0 / pn)
        return (p0 / pn) @ R.T * s * gn + g.mean(0)

    def fscore(g, p, t):
        precision = np.mean(cKDTree(g).query(p)[0] < t)
        recall = np.mean(cKDTree(p).query(g)[0] < t)
        return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0

    for xyz, verts, xyz_p, verts_p in zip(gt.xyz, gt.verts, pred.xyz, pred.verts):
        np.linalg.norm(align(xyz, xyz_p) - xyz, axis=1)
        verts_al = align(verts, verts_p)
        np.linalg.norm(verts_al - verts, axis=1)
        [fscore(verts, v, t) for v in (verts_p, verts_al) for t in (0.005, 0.015)]


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=3960)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    pred, gt = synthesize(args.samples)
    cores = len(os.sched_getaffinity(0))
    print(f"FreiHAND metric set: {args.samples} samples x (21 joints + 778 vertices), {cores} cores, "
          f"load average {os.getloadavg()[0]:.1f}")

    runs = [timed(lambda: evaluate_freihand(pred, gt)) for _ in range(args.repeats)]
    scores = runs[0][0]
    wall = statistics.median(r[1] for r in runs)
    cpu = statistics.median(r[2] for r in runs)
    print(f"end-to-end evaluate_freihand: median {wall:.2f} s wall ({cpu:.2f} s CPU) over {args.repeats} runs "
          f"[{', '.join(f'{r[1]:.2f}' for r in runs)}]; target <= {TARGET_S:.0f} s: "
          f"{'MET' if wall <= TARGET_S else 'MISSED'} (ratio {wall / TARGET_S:.2f})")
    n_base = min(300, args.samples)
    _, base_wall, base_cpu = timed(lambda: per_sample_baseline(
        FreihandSet(pred.xyz[:n_base], pred.verts[:n_base]), FreihandSet(gt.xyz[:n_base], gt.verts[:n_base])))
    scale = args.samples / n_base
    print(f"baseline, per-sample official-style loop ({n_base} samples, scaled x{scale:.1f}): "
          f"{base_wall * scale:.2f} s wall ({base_cpu * scale:.2f} s CPU); speed-up "
          f"{base_wall * scale / wall:.2f}x wall, {base_cpu * scale / cpu:.2f}x CPU")
    print("scores: " + ", ".join(f"{k}={v:.4g}" for k, v in scores.items()))

    trafo, *t_xfit = timed(lambda: procrustes_trafo(pred.xyz, gt.xyz))
    xyz_al = apply_trafo(pred.xyz, trafo)
    _, *t_xsum = timed(lambda: [summarize_errors(keypoint_errors(p, gt.xyz)) for p in (pred.xyz, xyz_al)])
    verts_al, *t_vfit = timed(lambda: apply_trafo(pred.verts, procrustes_trafo(pred.verts, gt.verts)))
    _, *t_vsum = timed(lambda: [summarize_errors(keypoint_errors(p, gt.verts)) for p in (pred.verts, verts_al)])
    _, *t_f = timed(lambda: f_scores_sets([pred.verts, verts_al], gt.verts))
    _, *t_f1 = timed(lambda: f_scores_sets([pred.verts, verts_al], gt.verts, workers=1))
    print("stages (one run):                        wall s   CPU s")
    for name, (w, c) in [("joint Procrustes fit (batched SVD)", t_xfit), ("joint errors + PCK/AUC x2", t_xsum),
                         ("vertex Procrustes fit + apply", t_vfit), ("vertex errors + PCK/AUC x2", t_vsum),
                         (f"F@5/F@15 raw + aligned, {cores} threads", t_f), ("F@5/F@15 raw + aligned, 1 thread", t_f1)]:
        print(f"  {name:<40s} {w:6.3f}  {c:6.3f}")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "pred.json")
        _, t_write, _ = timed(lambda: write_freihand_submission(path, pred.xyz, pred.verts))
        _, t_load, _ = timed(lambda: load_freihand_submission(path, expected_count=args.samples))
        size = os.path.getsize(path) / 2**20
    print(f"I/O, not in the target: write pred.json {t_write:.2f} s, load + validate {t_load:.2f} s ({size:.0f} MiB)")


if __name__ == "__main__":
    main()
