"""handrecon.mesh: topology-agnostic mesh machinery (numpy/scipy; torch in `ops_torch`).

- `ops`: normals, edges, face adjacency, boundaries, signed volume / orientation (numpy);
  `ops_torch`: the batched, differentiable torch versions.
- `hierarchy`: COMA-style quadric edge-collapse hierarchy (coarse ⊂ fine) and up-sampling rows.
- `spiral`: SpiralNet++ spiral sequences (dilated, region-restricted).
- `cache`: checksummed on-disk cache (`$HANDRECON_CACHE`, default ~/.cache/handrecon).
"""

from handrecon.mesh.hierarchy import DEFAULT_FACTORS, MeshHierarchy, build_hierarchy, decimate, get_hierarchy, upsampling
from handrecon.mesh.ops import (
    boundary_edges,
    boundary_loops,
    close_boundaries,
    face_adjacency,
    face_normals,
    faces_point_outward,
    signed_volume,
    unique_edges,
    vertex_normals,
)
from handrecon.mesh.spiral import ccw_neighbours, get_spirals, spiral_indices

__all__ = [
    "DEFAULT_FACTORS", "MeshHierarchy", "build_hierarchy", "decimate", "get_hierarchy", "upsampling",
    "boundary_edges", "boundary_loops", "close_boundaries", "face_adjacency", "face_normals",
    "faces_point_outward", "signed_volume", "unique_edges", "vertex_normals", "ccw_neighbours", "get_spirals", "spiral_indices",
    "hierarchy_spirals",
]


def hierarchy_spirals(h: MeshHierarchy, length: int = 9, dilation: int = 1, use_cache: bool = True) -> list:
    """(V_k, length) spiral indices for every level of `h`, finest first."""
    return [get_spirals(v, f, length, dilation, use_cache=use_cache) for v, f in zip(h.vertices, h.faces)]
