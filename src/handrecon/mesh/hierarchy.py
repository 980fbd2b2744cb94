"""COMA-style mesh hierarchy: quadric-error edge collapse keeping survivors in place, plus up-sampling.

Level 0 is the input mesh; level k+1 keeps `ceil(V_k / factors[k])` of level k's vertices at their
original positions (coarse ⊂ fine), so down-sampling is a selection `down[k]` (indices into
level k). Up-sampling from level k+1 to level k gives every fine vertex 3 coarse vertices and 3
coefficients: the barycentric coordinates of its closest point on the coarse surface (face
interior, edge or vertex), as COMA's least-squares solve for that point gives.
See docs/mesh.md for the collapse rules.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from handrecon.mesh.cache import cached_arrays, hash_inputs
from handrecon.mesh.ops import check_mesh, face_normals, unique_edges

DEFAULT_FACTORS = (2, 2, 2, 2)
HIERARCHY_VERSION = 2  # bump when the algorithm changes: old cache files then count as stale


@dataclass
class MeshHierarchy:
    """Levels of a mesh, finest first.

    vertices[k]: (V_k,3) float32 positions; faces[k]: (F_k,3) int64 into level k.
    down[k]: (V_{k+1},) int64 indices into level k (the selection D_k).
    up_index[k], up_weight[k]: (V_k,3) int64 into level k+1 and (V_k,3) float32; the fine vertex i
        is sum_j up_weight[k][i,j] * coarse[up_index[k][i,j]].
    """

    vertices: list[np.ndarray]
    faces: list[np.ndarray]
    down: list[np.ndarray]
    up_index: list[np.ndarray]
    up_weight: list[np.ndarray]

    @property
    def num_levels(self) -> int:
        return len(self.vertices)

    @property
    def sizes(self) -> list[int]:
        return [len(v) for v in self.vertices]

    def level_subset(self, k: int) -> np.ndarray:
        """(V_k,) indices of level k's vertices in level 0."""
        idx = np.arange(len(self.vertices[0]))
        for d in self.down[:k]:
            idx = idx[d]
        return idx

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {"num_levels": np.array(self.num_levels)}
        for k in range(self.num_levels):
            out[f"vertices_{k}"], out[f"faces_{k}"] = self.vertices[k], self.faces[k]
        for k in range(self.num_levels - 1):
            out[f"down_{k}"], out[f"up_index_{k}"], out[f"up_weight_{k}"] = self.down[k], self.up_index[k], self.up_weight[k]
        return out

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> "MeshHierarchy":
        """Inverse of `to_arrays`; validates (ValueError/KeyError on inconsistent input)."""
        n = int(a["num_levels"])
        return cls([a[f"vertices_{k}"] for k in range(n)], [a[f"faces_{k}"] for k in range(n)],
                   [a[f"down_{k}"] for k in range(n - 1)], [a[f"up_index_{k}"] for k in range(n - 1)],
                   [a[f"up_weight_{k}"] for k in range(n - 1)]).validate()

    def validate(self) -> "MeshHierarchy":
        """Check shapes and index ranges; raise ValueError naming the first inconsistency."""
        n = len(self.vertices)
        if not (len(self.faces) == n and len(self.down) == len(self.up_index) == len(self.up_weight) == n - 1):
            raise ValueError("mesh hierarchy: inconsistent number of levels")
        for k in range(n):
            check_mesh(self.vertices[k], self.faces[k], f"hierarchy level {k}")
        for k in range(n - 1):
            vf, vc = len(self.vertices[k]), len(self.vertices[k + 1])
            d, ui, uw = self.down[k], self.up_index[k], self.up_weight[k]
            if d.shape != (vc,) or d.min(initial=0) < 0 or d.max(initial=0) >= vf or len(np.unique(d)) != vc:
                raise ValueError(f"mesh hierarchy: down[{k}] must be {vc} distinct indices < {vf}")
            if not np.array_equal(self.vertices[k][d], self.vertices[k + 1]):
                raise ValueError(f"mesh hierarchy: level {k + 1} vertices are not a subset of level {k}")
            if ui.shape != (vf, 3) or uw.shape != (vf, 3) or ui.min(initial=0) < 0 or ui.max(initial=0) >= vc:
                raise ValueError(f"mesh hierarchy: up[{k}] must be ({vf},3) indices < {vc} and weights")
            if not np.isfinite(uw).all():
                raise ValueError(f"mesh hierarchy: up_weight[{k}] is not finite")
        return self


def vertex_quadrics(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V,4,4) sum over each vertex's faces of p pᵀ, p = (n, -n·x0) the face's unit plane."""
    n = face_normals(vertices, faces)
    d = -np.einsum("ij,ij->i", n, vertices[faces[:, 0]])
    p = np.concatenate([n, d[:, None]], axis=1)
    kp = p[:, :, None] * p[:, None, :]
    q = np.zeros((len(vertices), 4, 4))
    for k in range(3):
        np.add.at(q, faces[:, k], kp)
    return q


class _Collapser:
    """Mutable mesh state for the greedy collapse (adjacency sets; faces marked dead in place)."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray):
        self.v = vertices
        self.vh = np.concatenate([vertices, np.ones((len(vertices), 1))], axis=1)
        self.q = vertex_quadrics(vertices, faces)
        self.faces = faces.copy()
        self.face_alive = np.ones(len(faces), dtype=bool)
        self.alive = np.zeros(len(vertices), dtype=bool)
        self.alive[np.unique(faces)] = True
        self.vfaces: list[set[int]] = [set() for _ in range(len(vertices))]
        self.nbrs: list[set[int]] = [set() for _ in range(len(vertices))]
        for fi, (a, b, c) in enumerate(faces.tolist()):
            for x, y, z in ((a, b, c), (b, c, a), (c, a, b)):
                self.vfaces[x].add(fi)
                self.nbrs[x].update((y, z))
        self.version = np.zeros(len(vertices), dtype=np.int64)

    def cost(self, a: int, b: int) -> tuple[float, int, int]:
        """(min cost, survivor, removed) for collapsing edge (a,b) keeping the cheaper endpoint."""
        qs = self.q[a] + self.q[b]
        ca = float(self.vh[a] @ qs @ self.vh[a])
        cb = float(self.vh[b] @ qs @ self.vh[b])
        return (ca, a, b) if ca <= cb else (cb, b, a)

    def edge_faces(self, a: int, b: int) -> set[int]:
        return self.vfaces[a] & self.vfaces[b]

    def _link_edges(self, a: int, skip: set[int]) -> set[tuple[int, int]]:
        """Edges opposite `a` in its faces, except the faces in `skip`."""
        out = set()
        for fi in self.vfaces[a] - skip:
            x, y = (c for c in self.faces[fi].tolist() if c != a)
            out.add((min(x, y), max(x, y)))
        return out

    def is_boundary_vertex(self, a: int) -> bool:
        return any(len(self.edge_faces(a, b)) == 1 for b in self.nbrs[a])

    def admissible(self, a: int, b: int) -> bool:
        """Collapse keeps the mesh manifold and removes exactly one vertex.

        Link condition: the common neighbours of a and b are exactly the opposite vertices of the
        faces on edge ab, and the links of a and b share no edge; an interior edge joining two boundary vertices would pinch the surface;
        no opposite vertex may be left without faces.
        """
        ef = self.edge_faces(a, b)
        if not ef or len(ef) > 2:
            return False
        opposite = {c for fi in ef for c in self.faces[fi].tolist() if c != a and c != b}
        if self.nbrs[a] & self.nbrs[b] != opposite:
            return False
        if self._link_edges(a, ef) & self._link_edges(b, ef):  # e.g. a tetrahedron would fold flat
            return False
        if len(ef) == 2 and self.is_boundary_vertex(a) and self.is_boundary_vertex(b):
            return False
        return all(self.vfaces[c] - ef for c in opposite)

    def collapse(self, keep: int, gone: int) -> None:
        """Merge `gone` into `keep` (which stays where it is); drop faces that degenerate."""
        for fi in self.vfaces[gone]:
            f = self.faces[fi]
            f[f == gone] = keep
            if len(set(f.tolist())) < 3:
                self.face_alive[fi] = False
                for x in f.tolist():
                    self.vfaces[x].discard(fi)
            else:
                self.vfaces[keep].add(fi)
        self.vfaces[gone] = set()
        for c in self.nbrs[gone]:
            self.nbrs[c].discard(gone)
            if c != keep:
                self.nbrs[c].add(keep)
                self.nbrs[keep].add(c)
        self.nbrs[keep].discard(keep)
        self.nbrs[keep].discard(gone)
        self.nbrs[gone] = set()
        self.alive[gone] = False
        self.q[keep] = self.q[keep] + self.q[gone]
        self.version[keep] += 1


def decimate(vertices: np.ndarray, faces: np.ndarray, n_target: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadric-error edge collapse down to `n_target` vertices, survivors staying in place.

    Returns (keep (n,) sorted int64 indices into `vertices`, faces (F',3) int64 into the kept set).
    Edges are collapsed cheapest first (cost min(pᵀQp) over the endpoints with Q the sum of both
    quadrics; the cheaper endpoint survives and takes the summed quadric). Only admissible
    collapses are taken (see `_Collapser.admissible`); if none is left before `n_target` a
    ValueError says so.
    """
    v, f = check_mesh(vertices, faces)
    st = _Collapser(v, f)
    n_alive = int(st.alive.sum())
    if n_target >= n_alive:
        keep = np.flatnonzero(st.alive)
    else:
        heap = []
        for a, b in unique_edges(f).tolist():
            cost, _, _ = st.cost(a, b)
            heap.append((cost, a, b, 0, 0))
        heapq.heapify(heap)
        deferred: list[tuple[int, int]] = []
        retried_at = -1
        while n_alive > n_target:
            if not heap and deferred and retried_at != n_alive:
                retried_at = n_alive
                heap = [(st.cost(x, y)[0], x, y, int(st.version[x]), int(st.version[y])) for x, y in deferred]
                heapq.heapify(heap)
                deferred = []
            if not heap:
                raise ValueError(f"decimate: no admissible edge collapse left at {n_alive} vertices "
                                 f"(target {n_target}); use a smaller factor for this mesh")
            cost, a, b, va, vb = heapq.heappop(heap)
            if not (st.alive[a] and st.alive[b]) or b not in st.nbrs[a] or va != st.version[a] or vb != st.version[b]:
                continue
            if not st.admissible(a, b):
                deferred.append((a, b))
                continue
            _, keep_v, gone = st.cost(a, b)
            st.collapse(keep_v, gone)
            n_alive -= 1
            touched = {keep_v} | st.nbrs[keep_v]
            for c in st.nbrs[keep_v]:
                cst, _, _ = st.cost(keep_v, c)
                x, y = min(keep_v, c), max(keep_v, c)
                heapq.heappush(heap, (cst, x, y, int(st.version[x]), int(st.version[y])))
            # edges skipped as inadmissible may have become admissible around the changed region
            retry = [(x, y) for x, y in deferred if x in touched or y in touched]
            deferred = [(x, y) for x, y in deferred if not (x in touched or y in touched)]
            for x, y in retry:
                if st.alive[x] and st.alive[y] and y in st.nbrs[x]:
                    cst, _, _ = st.cost(x, y)
                    heapq.heappush(heap, (cst, x, y, int(st.version[x]), int(st.version[y])))
        keep = np.flatnonzero(st.alive)
    remap = -np.ones(len(v), dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    new_faces = remap[st.faces[st.face_alive]]
    return keep.astype(np.int64), new_faces


def _closest_points(points: np.ndarray, cv: np.ndarray, cf: np.ndarray, chunk: int = 512):
    """For each point the closest feature of the coarse mesh (cv, cf).

    Returns (kind (P,) 0 vertex / 1 edge / 2 face interior, ids (P,3) coarse vertex ids with the
    unused slots repeating the first id). Ties prefer vertices, then edges, then faces.
    """
    edges = unique_edges(cf)
    kinds, ids = [], []
    for s in range(0, len(points), chunk):
        p = points[s:s + chunk]
        d_v = np.linalg.norm(p[:, None] - cv[None], axis=-1)  # (P,Vc)
        a, b = cv[edges[:, 0]], cv[edges[:, 1]]
        ab = b - a
        t = np.einsum("pek,ek->pe", p[:, None] - a[None], ab) / np.maximum((ab * ab).sum(-1), 1e-30)
        d_e = np.linalg.norm(p[:, None] - (a[None] + t[..., None] * ab[None]), axis=-1)
        d_e[(t <= 0) | (t >= 1)] = np.inf
        t0, t1, t2 = cv[cf[:, 0]], cv[cf[:, 1]], cv[cf[:, 2]]
        n = np.cross(t1 - t0, t2 - t0)
        nn = (n * n).sum(-1)
        w = p[:, None] - t0[None]  # barycentrics of the plane projection (Heidrich's formula)
        g = np.einsum("pfk,fk->pf", np.cross(t1 - t0, w), n) / np.maximum(nn, 1e-30)
        be = np.einsum("pfk,fk->pf", np.cross(w, t2 - t0), n) / np.maximum(nn, 1e-30)
        inside = (g > 0) & (be > 0) & (g + be < 1) & (nn > 0)
        d_f = np.where(inside, np.abs(np.einsum("pfk,fk->pf", w, n)) / np.sqrt(np.maximum(nn, 1e-30)), np.inf)
        best = np.stack([d_v.min(1), d_e.min(1, initial=np.inf), d_f.min(1, initial=np.inf)], 1)
        kind = np.argmin(best, 1)  # argmin takes the first minimum: vertex < edge < face
        vid = d_v.argmin(1)
        out = np.stack([vid, vid, vid], 1)
        if len(edges):
            e = edges[d_e.argmin(1)]
            out = np.where((kind == 1)[:, None], np.stack([e[:, 0], e[:, 1], e[:, 0]], 1), out)
        if len(cf):
            out = np.where((kind == 2)[:, None], cf[d_f.argmin(1)], out)
        kinds.append(kind)
        ids.append(out)
    return np.concatenate(kinds), np.concatenate(ids)


def upsampling(fine: np.ndarray, coarse: np.ndarray, coarse_faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Up-sampling rows for every fine vertex: ((V_f,3) coarse indices, (V_f,3) coefficients).

    The closest point of the coarse surface (face interior, edge or vertex) gives the coarse
    vertices, and the coefficients are that point's barycentric coordinates on its feature (3 for a
    face, 2 for an edge, 1 for a vertex): what COMA's least-squares solve for the closest point
    gives, computed in closed form so that it stays well conditioned when a face's plane passes
    near the origin. Rows sum to 1 and lie in [0, 1].
    """
    fine = np.asarray(fine, dtype=np.float64)
    coarse = np.asarray(coarse, dtype=np.float64)
    kind, idx = _closest_points(fine, coarse, coarse_faces)
    w = np.zeros((len(fine), 3))
    w[kind == 0, 0] = 1.0
    sel = np.flatnonzero(kind == 1)
    if len(sel):
        a, b = coarse[idx[sel, 0]], coarse[idx[sel, 1]]
        t = np.clip(((fine[sel] - a) * (b - a)).sum(-1) / np.maximum(((b - a) ** 2).sum(-1), 1e-30), 0.0, 1.0)
        w[sel, 0], w[sel, 1] = 1.0 - t, t
    sel = np.flatnonzero(kind == 2)
    if len(sel):
        w[sel] = _barycentric(fine[sel], *(coarse[idx[sel, j]] for j in range(3)))
    return idx.astype(np.int64), w.astype(np.float32)


def _barycentric(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(N,3) barycentric coordinates of the projections of points p (N,3) onto triangles (a, b, c)."""
    e0, e1, e2 = b - a, c - a, p - a
    d00, d01, d11 = (e0 * e0).sum(-1), (e0 * e1).sum(-1), (e1 * e1).sum(-1)
    d20, d21 = (e2 * e0).sum(-1), (e2 * e1).sum(-1)
    den = np.maximum(d00 * d11 - d01 * d01, 1e-30)
    wb = (d11 * d20 - d01 * d21) / den
    wc = (d00 * d21 - d01 * d20) / den
    return np.stack([1.0 - wb - wc, wb, wc], -1)


def build_hierarchy(vertices: np.ndarray, faces: np.ndarray, factors=DEFAULT_FACTORS) -> MeshHierarchy:
    """Decimate by each factor in turn (level k+1 has ceil(V_k / factors[k]) vertices) and build
    the up-sampling rows between consecutive levels. Vertices used by no face are dropped at the
    first level."""
    v, f = check_mesh(vertices, faces)
    if any(int(x) < 1 for x in factors):
        raise ValueError(f"build_hierarchy: factors must be integers >= 1, got {list(factors)}")
    verts, fcs, down, up_i, up_w = [v], [f], [], [], []
    for factor in factors:
        keep, nf = decimate(verts[-1], fcs[-1], math.ceil(len(verts[-1]) / int(factor)))
        cv = verts[-1][keep]
        ui, uw = upsampling(verts[-1], cv, nf)
        verts.append(cv)
        fcs.append(nf)
        down.append(keep)
        up_i.append(ui)
        up_w.append(uw)
    return MeshHierarchy([x.astype(np.float32) for x in verts], fcs, down, up_i, up_w)


def get_hierarchy(vertices: np.ndarray, faces: np.ndarray, factors=DEFAULT_FACTORS,
                  use_cache: bool = True) -> MeshHierarchy:
    """`build_hierarchy`, cached on disk by a hash of (faces, vertices, factors, algorithm version)."""
    v, f = check_mesh(vertices, faces)
    factors = [int(x) for x in factors]
    key = hash_inputs("hierarchy", HIERARCHY_VERSION, f, v.astype(np.float32), factors)
    arrays = cached_arrays("hierarchy", key, lambda: build_hierarchy(v, f, factors).to_arrays(),
                           check=MeshHierarchy.from_arrays, use_cache=use_cache)
    return MeshHierarchy.from_arrays(arrays)
