"""Mesh export: OBJ, PLY and GLB, written atomically.

Vertices come in handrecon's OpenCV camera frame (metres, x right, y down, z forward). OBJ and PLY
keep those coordinates as they are. glTF mandates a y-up, camera-looking-down-minus-z frame, so GLB
files are rotated 180 degrees about x (y and z negated, a proper rotation, so winding is kept) and
open upright in any glTF viewer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from handrecon.utils.io import atomic_write_bytes

MESH_FORMATS = ("obj", "ply", "glb")
OPENCV_TO_GLTF = np.diag([1.0, -1.0, -1.0])


def to_trimesh(vertices: np.ndarray, faces: np.ndarray, vertex_colors: np.ndarray | None = None) -> "trimesh.Trimesh":
    """Build a trimesh.Trimesh without any processing (vertex order is kept). vertices (V,3) m, faces (F,3)."""
    import trimesh  # deferred: 0.36 s of start-up that a run writing no mesh (--formats "") need not pay

    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must be (V,3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or (faces.size and (faces.min() < 0 or faces.max() >= len(vertices))):
        raise ValueError(f"faces must be (F,3) indices into {len(vertices)} vertices, got {faces.shape}")
    if not np.isfinite(vertices).all():
        raise ValueError("vertices contain NaN or inf")
    return trimesh.Trimesh(vertices, faces, vertex_colors=vertex_colors, process=False, validate=False)


def save_mesh(
    path: str | Path,
    vertices: np.ndarray,
    faces: np.ndarray,
    vertex_colors: np.ndarray | None = None,
) -> Path:
    """Write a mesh to `path`; the format follows the suffix (.obj, .ply, .glb). Returns the path."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in MESH_FORMATS:
        raise ValueError(f"{path}: unsupported mesh format {fmt!r}; use one of {', '.join(MESH_FORMATS)}")
    vertices = np.asarray(vertices, dtype=np.float64)
    if fmt == "glb":
        vertices = vertices @ OPENCV_TO_GLTF.T
    import trimesh  # deferred, see to_trimesh

    mesh = to_trimesh(vertices, faces, vertex_colors)
    if fmt == "obj":
        data = trimesh.exchange.obj.export_obj(mesh, include_normals=True, include_texture=False).encode()
    elif fmt == "ply":
        data = trimesh.exchange.ply.export_ply(mesh, encoding="binary")
    else:
        data = trimesh.exchange.gltf.export_glb(mesh)
    atomic_write_bytes(path, data)
    return path


def save_scene_glb(path: str | Path, meshes: list[tuple[np.ndarray, np.ndarray, tuple[int, int, int]]]) -> Path:
    """Several meshes in one GLB (e.g. every hand of an image, in their camera-space places):
    meshes = [(vertices (V, 3) m, OpenCV camera frame; faces (F, 3); RGB colour 0-255)]."""
    import trimesh  # deferred, see to_trimesh

    scene = trimesh.Scene()
    for i, (vertices, faces, color) in enumerate(meshes):
        colors = np.tile(np.array([*color, 255], np.uint8), (len(vertices), 1))
        scene.add_geometry(to_trimesh(np.asarray(vertices, np.float64) @ OPENCV_TO_GLTF.T, faces, colors),
                           geom_name=f"hand{i}")
    atomic_write_bytes(path, trimesh.exchange.gltf.export_glb(scene))
    return Path(path)
