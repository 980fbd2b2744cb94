"""Frames per second of the two renderers on a hand-sized mesh (~1.5k faces).

    .venv/bin/python benchmarks/bench_render.py [--sizes 224 256 512] [--rounds 40]

Renders a posed OpenHand hand (1538 faces; an icosphere of 1280 faces if the asset is missing)
filling about 60% of the image width, with the gl (moderngl on EGL, llvmpipe) and soft (numpy)
backends. Each timed call builds the Mesh (vertex normals) and reads back rgb, depth, instance
and normals, as the synthetic engine does. Backends and sizes are timed round-robin so that load
from other processes falls on all alike; prints median and best wall ms, CPU ms of this process
per frame (less sensitive to a shared machine; all threads counted), frames/s from the median,
and each time as a ratio to the gl baseline measured in the same run. LP_NUM_THREADS is 0
(single-threaded llvmpipe, handrecon's default) unless set in the environment.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from handrecon.render import Mesh, gl_available, render


def hand_mesh() -> tuple[np.ndarray, np.ndarray, str]:
    """Vertices centred at the origin (V, 3), faces (F, 3) and a description."""
    try:
        import torch

        from handrecon.hand.model import HandModel
        from handrecon.hand.pose import sample_poses

        model = HandModel.openhand("right")
        with torch.no_grad():
            v = model(sample_poses(model, 1, kind="open", seed=0, global_orient="random")).vertices[0].numpy()
        return v - v.mean(0), model.faces.numpy(), "OpenHand"
    except (ImportError, FileNotFoundError):
        import trimesh

        s = trimesh.creation.icosphere(subdivisions=3, radius=0.08)
        return np.asarray(s.vertices), np.asarray(s.faces), "icosphere"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 256, 512])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()

    verts, faces, name = hand_mesh()
    extent = np.ptp(verts[:, :2], axis=0).max()
    backends = ["gl", "soft"] if gl_available() else ["soft"]
    if backends == ["soft"]:
        print("gl: no EGL context could be made on this machine; timing soft only")
    cams = {}
    for size in args.sizes:
        z = 0.5
        f = 0.6 * size * z / extent  # the hand spans ~60% of the image
        cams[size] = np.array([[f, 0, (size - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1]])
    placed = verts + np.array([0.0, 0.0, 0.5])

    def frame(backend: str, size: int):
        return render(Mesh(placed, faces), cams[size], (size, size), backend=backend)

    times = {(b, s): [] for b in backends for s in args.sizes}
    cpu = {key: 0.0 for key in times}
    for key in times:  # warm-up (context creation, shader compilation)
        frame(*key)
    for _ in range(args.rounds):
        for key in times:
            c, t = time.process_time(), time.perf_counter()
            frame(*key)
            times[key].append(time.perf_counter() - t)
            cpu[key] += time.process_time() - c

    coverage = {s: frame(backends[0], s).mask.mean() for s in args.sizes}
    print(f"mesh: {name}, {len(verts)} vertices, {len(faces)} faces; {args.rounds} rounds")
    print(f"{'backend':8} {'size':>9} {'covered':>8} {'median ms':>10} {'best ms':>8} {'cpu ms':>7} {'frames/s':>9} {'x gl time':>10}")
    for (b, s), ts in times.items():
        med = statistics.median(ts) * 1e3
        base = statistics.median(times[("gl", s)]) * 1e3 if "gl" in backends else med
        cpu_ms = cpu[(b, s)] / args.rounds * 1e3
        print(f"{b:8} {s:>4}x{s:<4} {coverage[s]:>8.1%} {med:>10.2f} {min(ts) * 1e3:>8.2f} {cpu_ms:>7.2f} {1e3 / med:>9.1f} {med / base:>10.2f}")


if __name__ == "__main__":
    main()
