"""Triangle-mesh primitives for any topology: normals, edges, face adjacency, boundaries, volume
(Loop subdivision: `mesh.subdivision`).

numpy only: `vertices` (V,3) float and `faces` (F,3) int; the batched, differentiable torch
versions are in `mesh.ops_torch`. Faces are counter-clockwise seen from outside, so normals from
the right-hand rule point outwards.
"""

from __future__ import annotations

import numpy as np


def check_mesh(vertices: np.ndarray, faces: np.ndarray, name: str = "mesh") -> tuple[np.ndarray, np.ndarray]:
    """Return (vertices float64 (V,3), faces int64 (F,3)); raise ValueError saying what is wrong."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"{name}: vertices must be (V,3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"{name}: faces must be an integer (F,3) array, got {f.dtype} {f.shape}")
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"{name}: face indices must lie in [0, {len(v)}), got [{f.min()}, {f.max()}]")
    if not np.isfinite(v).all():
        raise ValueError(f"{name}: vertices contain NaN or inf")
    return v, f.astype(np.int64)


def face_normals(vertices: np.ndarray, faces: np.ndarray, normalize: bool = True) -> np.ndarray:
    """(F,3) face normals (unit, or area-weighted ×2 if not `normalize`); zero for degenerate faces."""
    v = np.asarray(vertices, dtype=np.float64)
    tri = v[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    if normalize:
        norm = np.linalg.norm(n, axis=1, keepdims=True)
        n = np.divide(n, norm, out=np.zeros_like(n), where=norm > 0)
    return n


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V,3) unit vertex normals: area-weighted mean of the incident face normals (zero if isolated)."""
    fn = np.repeat(face_normals(vertices, faces, normalize=False), 3, axis=0)  # one row per face corner
    idx = np.asarray(faces).reshape(-1)
    vn = np.stack([np.bincount(idx, weights=fn[:, c], minlength=len(vertices)) for c in range(3)], axis=1)
    norm = np.linalg.norm(vn, axis=1, keepdims=True)
    return np.divide(vn, norm, out=np.zeros_like(vn), where=norm > 0)


def face_edges(faces: np.ndarray) -> np.ndarray:
    """(F,3,2) the directed edges (0,1), (1,2), (2,0) of every face."""
    faces = np.asarray(faces)
    return np.stack([faces, np.roll(faces, -1, axis=1)], axis=2)


def unique_edges(faces: np.ndarray) -> np.ndarray:
    """(E,2) undirected edges, each once as (low, high), sorted lexicographically."""
    e = np.sort(face_edges(faces).reshape(-1, 2), axis=1)
    return np.unique(e, axis=0)


def _edge_face_table(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted undirected face edges: (edge keys (3F,2), owning face (3F,), edge id per entry (3F,))."""
    e = np.sort(face_edges(faces).reshape(-1, 2), axis=1)
    face_id = np.repeat(np.arange(len(faces)), 3)
    order = np.lexsort((e[:, 1], e[:, 0]))
    e, face_id = e[order], face_id[order]
    new = np.ones(len(e), dtype=bool)
    new[1:] = np.any(e[1:] != e[:-1], axis=1)
    return e, face_id, np.cumsum(new) - 1


def face_adjacency(faces: np.ndarray) -> np.ndarray:
    """(P,2) pairs of faces that share an edge (i < j); a non-manifold edge yields all its pairs."""
    _, face_id, edge_id = _edge_face_table(faces)
    counts = np.bincount(edge_id)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pairs = []
    for a in range(int(counts.max(initial=0))):
        for b in range(a + 1, int(counts.max(initial=0))):
            ok = counts > b
            pairs.append(np.stack([face_id[starts[ok] + a], face_id[starts[ok] + b]], axis=1))
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64)
    return np.sort(np.concatenate(pairs), axis=1)


def boundary_edges(faces: np.ndarray) -> np.ndarray:
    """(B,2) directed edges that belong to exactly one face, in that face's orientation."""
    d = face_edges(faces).reshape(-1, 2)
    _, inverse, counts = np.unique(np.sort(d, axis=1), axis=0, return_inverse=True, return_counts=True)
    return d[counts[inverse.reshape(-1)] == 1]


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """Boundary loops as vertex-index arrays following the boundary edges' direction.

    A vertex where several boundary loops touch is split greedily; every boundary edge is used once.
    """
    be = boundary_edges(faces)
    nxt: dict[int, list[int]] = {}
    for a, b in be.tolist():
        nxt.setdefault(a, []).append(b)
    loops = []
    while nxt:
        start = min(nxt)
        loop, cur = [start], start
        while True:
            succ = nxt[cur].pop()
            if not nxt[cur]:
                del nxt[cur]
            if succ == start or succ not in nxt:
                break
            loop.append(succ)
            cur = succ
        loops.append(np.asarray(loop, dtype=np.int64))
    return loops


def cap_faces(loops: list[np.ndarray], first_new: int) -> np.ndarray:
    """(sum len,3) fan faces closing each loop around a new vertex `first_new + i`, oriented like
    the mesh (they run against the loop's direction)."""
    if not loops:
        return np.zeros((0, 3), dtype=np.int64)
    return np.concatenate([np.stack([np.roll(lp, -1), lp, np.full(len(lp), first_new + i)], axis=1)
                           for i, lp in enumerate(loops)])


def close_boundaries(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cap every boundary loop with a fan around its centroid (one new vertex per loop).

    The cap faces run against the loop's direction, so they are oriented like the rest of the mesh.
    """
    v, f = check_mesh(vertices, faces)
    loops = boundary_loops(f)
    centres = np.array([v[lp].mean(0) for lp in loops]).reshape(-1, 3)
    return np.concatenate([v, centres]), np.concatenate([f, cap_faces(loops, len(v))])


def signed_volume(vertices: np.ndarray, faces: np.ndarray, close: bool = True) -> float:
    """Signed enclosed volume (units³) by the divergence theorem; > 0 when faces point outwards.

    With `close=True` open boundaries (a hand's wrist) are first capped by `close_boundaries`, so
    the result does not depend on where the origin is.
    """
    v, f = check_mesh(vertices, faces)
    if close:
        v, f = close_boundaries(v, f)
    tri = v[f]
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


def faces_point_outward(vertices: np.ndarray, faces: np.ndarray) -> bool:
    """True if the faces are oriented outwards (signed volume of the capped mesh is positive).

    Used to tell a left from a right hand: right-hand faces on left-hand vertices point inwards.
    """
    return signed_volume(vertices, faces, close=True) > 0
