"""SpiralNet++ spiral sequences (optionally dilated, optionally restricted to a vertex region).

The spiral of v is v, then ring 1, ring 2, ... of v. Every ring is listed counter-clockwise seen
from outside (faces are CCW, so this is the same rotational sense for every vertex):
- ring 1 starts at v's lowest-index neighbour (interior vertex) or, for a boundary vertex, at the
  neighbour where v's fan begins, and follows the fan;
- each vertex u of ring k (in ring order) appends its not-yet-listed neighbours CCW around u,
  starting right after the block of already-listed neighbours that holds u's innermost neighbour
  (the earliest in the spiral), i.e. next to the previous ring.
The sequence is cut to `length * dilation` entries and every `dilation`-th is kept. If the rings
run out first, the nearest vertices by Euclidean distance not yet listed fill the rest (SpiralNet++
instead replaces the whole spiral by the k nearest vertices); if even those run out (a region
smaller than the spiral), the listed entries repeat cyclically.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from handrecon.mesh.cache import cached_arrays, hash_inputs
from handrecon.mesh.ops import check_mesh

SPIRAL_VERSION = 1  # bump when the ordering rules change: old cache files then count as stale


def ccw_neighbours(faces: np.ndarray, num_vertices: int) -> list[list[int]]:
    """Neighbours of every vertex in CCW order around it (seen from outside).

    Each face (v, a, b) says b follows a around v. An interior vertex's fan is a cycle, started at
    its lowest-index neighbour; a boundary fan is a path from its free end; several fans
    (non-manifold vertex) are concatenated by their first index.
    """
    succ: list[dict[int, int]] = [dict() for _ in range(num_vertices)]
    for a, b, c in np.asarray(faces).tolist():
        succ[a][b] = c
        succ[b][c] = a
        succ[c][a] = b
    out = []
    for s in succ:
        order: list[int] = []
        remaining = dict(s)
        while remaining:
            preds = set(remaining.values())
            starts = [x for x in remaining if x not in preds]  # path fans start where nothing leads in
            cur = min(starts) if starts else min(remaining)
            while cur in remaining and cur not in order:
                order.append(cur)
                cur = remaining.pop(cur)
            if cur not in order and cur not in remaining:
                order.append(cur)  # the free end of a path fan
        out.append(order)
    return out


def _next_ring(ring: list[int], listed: dict[int, int], nbrs: list[list[int]]) -> list[int]:
    """Append (to `listed`) and return the next ring, each vertex's new neighbours CCW."""
    res: list[int] = []
    for u in ring:
        cyc = nbrs[u]
        if not cyc:
            continue
        known = [x in listed for x in cyc]
        if all(known):
            continue
        first = 0
        if any(known):
            inner = min((listed[x], i) for i, x in enumerate(cyc) if known[i])[1]
            first = inner + 1  # walk to the end of the listed block holding the innermost neighbour
            while known[first % len(cyc)] and first % len(cyc) != inner:
                first += 1
        for j in range(len(cyc)):
            x = cyc[(first + j) % len(cyc)]
            if x not in listed:
                listed[x] = len(listed)
                res.append(x)
    return res


def spiral_indices(vertices: np.ndarray, faces: np.ndarray, length: int = 9, dilation: int = 1,
                   regions: np.ndarray | None = None) -> np.ndarray:
    """(V, length) int64 spiral of every vertex (column 0 is the vertex itself).

    regions: optional (V,) labels; if given, a spiral only walks over, and fills with, vertices of
    its centre's region (ROI layer); edges between regions are not crossed.
    """
    v, f = check_mesh(vertices, faces)
    if length < 1 or dilation < 1:
        raise ValueError(f"spiral_indices: length and dilation must be >= 1, got {length}, {dilation}")
    n = len(v)
    if regions is not None:
        regions = np.asarray(regions).reshape(-1)
        if regions.shape != (n,):
            raise ValueError(f"spiral_indices: regions must have one label per vertex ({n}), got {regions.shape}")
        f = f[(regions[f[:, 0]] == regions[f[:, 1]]) & (regions[f[:, 1]] == regions[f[:, 2]])]
    nbrs = ccw_neighbours(f, n)
    want = length * dilation
    out = np.empty((n, length), dtype=np.int64)
    for c in range(n):
        listed = {c: 0}
        ring = [c]
        while len(listed) < want and ring:
            ring = _next_ring(ring, listed, nbrs)
        seq = sorted(listed, key=listed.get)[:want]
        if len(seq) < want:
            cand = np.arange(n) if regions is None else np.flatnonzero(regions == regions[c])
            cand = cand[np.argsort(np.linalg.norm(v[cand] - v[c], axis=1), kind="stable")]
            seen = set(seq)
            seq += [int(x) for x in cand if x not in seen][: want - len(seq)]
            seq = [seq[i % len(seq)] for i in range(want)]
        out[c] = seq[::dilation]
    return out


def get_spirals(vertices: np.ndarray, faces: np.ndarray, length: int = 9, dilation: int = 1,
                regions: np.ndarray | None = None, use_cache: bool = True) -> np.ndarray:
    """`spiral_indices`, cached on disk by a hash of all its inputs."""
    v, f = check_mesh(vertices, faces)
    r = None if regions is None else np.asarray(regions).astype(np.int64).reshape(-1)
    key = hash_inputs("spiral", SPIRAL_VERSION, f, v.astype(np.float32), length, dilation,
                      r if r is not None else "all")

    def check(a: dict[str, np.ndarray]) -> None:
        s = a["spirals"]
        if s.shape != (len(v), length) or s.min(initial=0) < 0 or s.max(initial=0) >= len(v):
            raise ValueError(f"spirals must be ({len(v)},{length}) indices < {len(v)}, got {s.shape}")

    return cached_arrays("spiral", key, lambda: {"spirals": spiral_indices(v, f, length, dilation, r)},
                         check=check, use_cache=use_cache)["spirals"]


def hierarchy_spirals(h: Any, length: int = 9, dilation: int = 1, use_cache: bool = True) -> list:
    """(V_k, length) spiral indices for every level of a `mesh.hierarchy.MeshHierarchy`, finest first."""
    return [get_spirals(v, f, length, dilation, use_cache=use_cache) for v, f in zip(h.vertices, h.faces)]
