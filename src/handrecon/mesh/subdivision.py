"""Loop subdivision of a triangle mesh as a sparse matrix (the synthetic engine's smooth render
mesh)."""

from __future__ import annotations

import numpy as np
from scipy import sparse


def loop_subdivision(faces: np.ndarray, num_vertices: int) -> tuple[sparse.csr_matrix, np.ndarray]:
    """One step of Loop subdivision as a linear operator.

    Returns S, a (V + E, V) sparse matrix, and the (4F, 3) faces of the finer mesh: any
    per-vertex quantity x (V, C) (positions, colours) becomes S @ x on it. The first V rows
    move the old vertices (β-weighted neighbours, Loop's β), the next E are the edge points
    (3/8, 3/8, 1/8, 1/8), in `unique_edges` order. Boundaries follow the boundary rules (edge
    midpoints; 3/4, 1/8, 1/8), so an open mesh keeps its outline. Orientation is preserved.
    """
    f = np.asarray(faces, np.int64)
    V = int(num_vertices)
    opposite_edges = np.stack([f[:, [1, 2]], f[:, [2, 0]], f[:, [0, 1]]], 1).reshape(-1, 2)  # edge k faces corner k
    edges, edge_of, counts = np.unique(np.sort(opposite_edges, 1), axis=0, return_inverse=True, return_counts=True)
    edge_of = edge_of.reshape(-1)
    E = len(edges)
    on_boundary = counts == 1
    inner_entry = ~on_boundary[edge_of]
    rows = [np.repeat(V + np.arange(E), 2), V + edge_of[inner_entry]]
    cols = [edges.ravel(), f.ravel()[inner_entry]]
    vals = [np.repeat(np.where(on_boundary, 0.5, 3 / 8), 2), np.full(inner_entry.sum(), 1 / 8)]
    degree = np.bincount(edges.ravel(), minlength=V)
    n = np.maximum(degree, 1)
    beta = (5 / 8 - (3 / 8 + np.cos(2 * np.pi / n) / 4) ** 2) / n
    boundary_vertex = np.zeros(V, bool)
    boundary_vertex[edges[on_boundary].ravel()] = True
    inner = edges[~on_boundary]
    inner = inner[~boundary_vertex[inner[:, 0]] | ~boundary_vertex[inner[:, 1]]]
    for a, b in ((0, 1), (1, 0)):  # interior vertices: β per neighbour
        keep = ~boundary_vertex[inner[:, a]]
        rows.append(inner[keep, a]), cols.append(inner[keep, b]), vals.append(beta[inner[keep, a]])
    bnd = edges[on_boundary]
    for a, b in ((0, 1), (1, 0)):  # boundary vertices: 1/8 per boundary neighbour
        rows.append(bnd[:, a]), cols.append(bnd[:, b]), vals.append(np.full(len(bnd), 1 / 8))
    rows.append(np.arange(V)), cols.append(np.arange(V))
    vals.append(np.where(boundary_vertex, 3 / 4, 1 - degree * beta))
    S = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(V + E, V))
    e = V + edge_of.reshape(-1, 3)  # edge points opposite corners 0, 1, 2
    fine = np.concatenate([np.stack([f[:, 0], e[:, 2], e[:, 1]], 1), np.stack([f[:, 1], e[:, 0], e[:, 2]], 1),
                           np.stack([f[:, 2], e[:, 1], e[:, 0]], 1), np.stack([e[:, 2], e[:, 0], e[:, 1]], 1)])
    return S, fine
