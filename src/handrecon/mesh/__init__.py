"""handrecon.mesh: topology-agnostic mesh machinery (numpy/scipy; torch in `ops_torch`).

- `ops`: normals, edges, face adjacency, boundaries, signed volume / orientation (numpy);
  `ops_torch`: the batched, differentiable torch versions.
- `hierarchy`: COMA-style quadric edge-collapse hierarchy (coarse ⊂ fine) and up-sampling rows.
- `spiral`: SpiralNet++ spiral sequences (dilated, region-restricted).
- `subdivision`: Loop subdivision as a sparse matrix.
- `cache`: checksummed on-disk cache (`$HANDRECON_CACHE`, default ~/.cache/handrecon).

The names below are imported on first use: the renderer needs `ops` without scipy.sparse.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    **dict.fromkeys(["DEFAULT_FACTORS", "MeshHierarchy", "build_hierarchy", "decimate", "get_hierarchy", "upsampling"],
                    "hierarchy"),
    **dict.fromkeys(["boundary_edges", "boundary_loops", "close_boundaries", "face_adjacency", "face_normals",
                     "faces_point_outward", "signed_volume", "unique_edges", "vertex_normals"], "ops"),
    **dict.fromkeys(["ccw_neighbours", "get_spirals", "hierarchy_spirals", "spiral_indices"], "spiral"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"handrecon.mesh.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'handrecon.mesh' has no attribute {name!r}")
