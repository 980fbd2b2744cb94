"""Mesh machinery timings: hierarchy build (cold) and cache load, spirals, and a 4-level spiral
decoder's forward+backward at batch 32, against a baseline decoder that up-samples with
torch.sparse matrices (as COMA/MobRecon do), measured in the same run.

Usage: .venv/bin/python benchmarks/bench_mesh.py [--threads 2] [--batch 32] [--repeats 10]
Runs on OpenHand when its asset exists, else on a ~780-vertex open tube of hand size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

import numpy as np
import torch
from torch import nn

from _timing import run_times


def _mesh():
    try:
        from handrecon.hand.openhand import load_openhand

        d = load_openhand()
        return "OpenHand", d.v_template, d.faces
    except (ImportError, FileNotFoundError):
        from handrecon.mesh.primitives import open_tube

        v, f = open_tube(rings=41, sections=19, length=0.18, radius=0.03)
        return "open tube (OpenHand asset not found)", v, f


def _fmt(ts: list[float], unit: float = 1e3, name: str = "ms") -> str:
    return f"median {statistics.median(ts) * unit:.2f} {name} (min {min(ts) * unit:.2f}, n={len(ts)})"


class SparseUp(nn.Module):
    """Baseline: COMA/MobRecon-style Pool with a torch.sparse (V_fine × V_coarse) matrix."""

    def __init__(self, index, weight, n_coarse):
        super().__init__()
        rows = np.repeat(np.arange(len(index)), index.shape[1])
        i = torch.as_tensor(np.stack([rows, index.reshape(-1)]))
        u = torch.sparse_coo_tensor(i, torch.as_tensor(weight.reshape(-1)), (len(index), n_coarse),
                                    check_invariants=True)
        self.register_buffer("U", u.coalesce())

    def forward(self, x):
        b, v, c = x.shape
        y = torch.sparse.mm(self.U, x.transpose(0, 1).reshape(v, b * c))
        return y.reshape(-1, b, c).transpose(0, 1)


class Decoder(nn.Module):
    """MobRecon-shaped decoder: coarsest level (256 ch) -> 4 × (up-sample, conv, ReLU) -> conv to xyz."""

    def __init__(self, h, spirals, channels=(32, 64, 128, 256), conv="spiral", sparse_baseline=False):
        super().__init__()
        from handrecon.models.spiral import DepthSeparableSpiralConv, SpiralConv, up_pool

        Conv = SpiralConv if conv == "spiral" else DepthSeparableSpiralConv
        layers = []
        c_in = channels[-1]
        for k in reversed(range(len(channels))):  # level k+1 -> level k
            up = SparseUp(h.up_index[k], h.up_weight[k], h.sizes[k + 1]) if sparse_baseline else up_pool(h, k)
            layers += [up, Conv(c_in, channels[k], spirals[k]), nn.ReLU()]
            c_in = channels[k]
        layers.append(SpiralConv(c_in, 3, spirals[0]))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["HANDRECON_CACHE"] = tempfile.mkdtemp(prefix="handrecon-bench-")

    from handrecon.mesh import build_hierarchy, get_hierarchy, get_spirals, spiral_indices

    name, v, f = _mesh()
    print(f"mesh: {name}, {len(v)} vertices, {len(f)} faces; torch threads {args.threads}")
    build = run_times(lambda: build_hierarchy(v, f), 3)
    h = build_hierarchy(v, f)
    print(f"hierarchy sizes {h.sizes}")
    for k in range(h.num_levels - 1):
        rec = np.einsum("vj,vjk->vk", h.up_weight[k], h.vertices[k + 1][h.up_index[k]])
        err = np.linalg.norm(rec - h.vertices[k], axis=1)
        print(f"  up-sampling {h.sizes[k + 1]}->{h.sizes[k]}: |U·coarse - fine| mean {err.mean():.2e}, "
              f"max {err.max():.2e} (mesh units), max |coefficient| {np.abs(h.up_weight[k]).max():.2f}")
    print(f"hierarchy build, cold (no cache):        {_fmt(build, 1, 's')}")
    write = run_times(lambda: get_hierarchy(v, f), 1)
    load = run_times(lambda: get_hierarchy(v, f), 20)
    print(f"hierarchy first get (build + write):     {_fmt(write, 1, 's')}")
    print(f"hierarchy cache load:                    {_fmt(load)}")
    sp_cold = run_times(lambda: [spiral_indices(vk, fk, 9) for vk, fk in zip(h.vertices, h.faces)], 3)
    print(f"spirals, all levels (length 9), cold:    {_fmt(sp_cold)}")
    spirals = [get_spirals(vk, fk, 9) for vk, fk in zip(h.vertices, h.faces)]
    sp_load = run_times(lambda: [get_spirals(vk, fk, 9) for vk, fk in zip(h.vertices, h.faces)], 20)
    print(f"spirals, all levels, cache load:         {_fmt(sp_load)}")

    x = torch.randn(args.batch, h.sizes[-1], 256)
    results = {}
    for label, kw in [("SpiralConv, gather pooling", {}), ("DSConv, gather pooling", {"conv": "dsconv"}),
                      ("SpiralConv, torch.sparse pooling (baseline)", {"sparse_baseline": True})]:
        torch.manual_seed(0)
        dec = Decoder(h, spirals, **kw)

        def step():
            dec.zero_grad(set_to_none=True)
            dec(x).square().mean().backward()

        step()
        ts = run_times(step, args.repeats)
        results[label] = statistics.median(ts)
        n_par = sum(p.numel() for p in dec.parameters())
        print(f"decoder fwd+bwd, batch {args.batch} [{label}, {n_par} params]: {_fmt(ts)}")
    base = results["SpiralConv, torch.sparse pooling (baseline)"]
    print(f"ratio gather/sparse pooling (SpiralConv decoder): {results['SpiralConv, gather pooling'] / base:.2f}")


if __name__ == "__main__":
    main()
