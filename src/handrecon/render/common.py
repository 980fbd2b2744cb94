"""What both rasterizers share: the mesh and lighting inputs, the result, the camera and the shading.

Conventions (DESIGN.md): vertices are in the OpenCV camera frame (metres, x right, y down,
z forward); a vertex projects to ``u = fx·x/z + s·y/z + cx``, ``v = fy·y/z + cy``; pixel
(row r, col c) has its centre at (c, r) and is covered by a triangle when its centre is.
Rendering is two-sided: a triangle seen from its back is drawn with its normal flipped towards
the camera, so face winding never matters (mirrored left hands render like right hands).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from handrecon.mesh.ops import check_mesh, vertex_normals

MAX_LIGHTS = 4
DEFAULT_COLOR = (0.85, 0.65, 0.55)


def _to_numpy(x, dtype) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


@dataclass
class Mesh:
    """A triangle mesh to draw.

    vertices: (V, 3) camera-frame positions in metres. faces: (F, 3) vertex indices.
    color: albedo in [0, 1], one (3,) colour or per-vertex (V, 3); uint8 values are divided by 255.
    normals: optional (V, 3) per-vertex normals; computed from the faces (area weighted) if None.
    """

    vertices: np.ndarray
    faces: np.ndarray
    color: np.ndarray | Sequence[float] = DEFAULT_COLOR
    normals: np.ndarray | None = None

    def __post_init__(self) -> None:
        v, f = check_mesh(_to_numpy(self.vertices, np.float64), _to_numpy(self.faces, None), "render.Mesh")
        self.vertices, self.faces = v.astype(np.float32), f
        color = _to_numpy(self.color, None)
        color = color.astype(np.float32) / 255.0 if color.dtype == np.uint8 else color.astype(np.float32)
        if color.shape == (3,):
            color = np.broadcast_to(color, v.shape)
        if color.shape != v.shape:
            raise ValueError(f"Mesh color must be (3,) or (V, 3) = {v.shape}, got {color.shape}")
        self.color = np.ascontiguousarray(color, dtype=np.float32)
        if self.normals is None:
            self.normals = vertex_normals(v, f).astype(np.float32)
        else:
            self.normals = _to_numpy(self.normals, np.float32)
            if self.normals.shape != v.shape:
                raise ValueError(f"Mesh normals must have shape {v.shape}, got {self.normals.shape}")


@dataclass
class Lights:
    """Ambient + directional (Lambert) + specular (Blinn-Phong) lighting, in the camera frame.

    ambient: (3,) RGB intensity. directions: (L, 3), the direction each light travels (from the
    light into the scene), e.g. (0, 0, 1) shines from the camera forward; L <= MAX_LIGHTS.
    colors: (L, 3) RGB intensities. specular: strength of the highlights (white, not tinted by
    the albedo). shininess: Blinn-Phong exponent.
    A pixel's colour is ``albedo·(ambient + Σ colors·max(n·l, 0)) + specular·Σ colors·max(n·h, 0)^shininess``,
    clipped to [0, 1].
    """

    ambient: Sequence[float] = (0.35, 0.35, 0.35)
    directions: np.ndarray | Sequence[Sequence[float]] = ((0.3, 0.5, 1.0),)
    colors: np.ndarray | Sequence[Sequence[float]] = ((0.75, 0.75, 0.75),)
    specular: float = 0.15
    shininess: float = 24.0

    def __post_init__(self) -> None:
        self.ambient = np.asarray(self.ambient, np.float32).reshape(3)
        d = np.asarray(self.directions, np.float32).reshape(-1, 3)
        c = np.asarray(self.colors, np.float32).reshape(-1, 3)
        if len(d) != len(c):
            raise ValueError(f"Lights: {len(d)} directions but {len(c)} colors")
        if len(d) > MAX_LIGHTS:
            raise ValueError(f"Lights: at most {MAX_LIGHTS} directional lights, got {len(d)}")
        norm = np.linalg.norm(d, axis=1, keepdims=True)
        if (norm < 1e-9).any():
            raise ValueError("Lights: a light direction is the zero vector")
        self.directions, self.colors = d / norm, c


@dataclass
class RenderResult:
    """rgb: (H, W, 3) uint8, background where nothing is drawn.
    depth: (H, W) float32 camera z in metres (the OpenCV z of the surface, not the ray length);
    ``inf`` where nothing is drawn. instance: (H, W) int32, 0 for background and i + 1 where mesh
    i is the nearest surface. normals: (H, W, 3) float32 unit normals in the camera frame, turned
    towards the camera; 0 where nothing is drawn; None when not asked for (``render(normals=False)``).
    """

    rgb: np.ndarray
    depth: np.ndarray
    instance: np.ndarray
    normals: np.ndarray | None = field(repr=False)

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool, True where any mesh is drawn."""
        return self.instance > 0


def check_camera(K, image_size, near: float, far: float) -> tuple[np.ndarray, int, int]:
    """Validate K (3, 3) and image_size (H, W); return K as float64 and H, W."""
    K = _to_numpy(K, np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K must be a 3x3 intrinsics matrix, got shape {K.shape}")
    if K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], (0, 0, 1)) or K[1, 0] != 0:
        raise ValueError(f"K must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0, got {K.tolist()}")
    if len(image_size) != 2:
        raise ValueError(f"image_size must be (H, W), got {image_size}")
    H, W = int(image_size[0]), int(image_size[1])
    if H <= 0 or W <= 0:
        raise ValueError(f"image_size must be positive, got {(H, W)}")
    if not 0 < near < far:
        raise ValueError(f"need 0 < near < far, got near={near}, far={far}")
    return K, H, W


def as_mesh_list(meshes) -> list[Mesh]:
    """Accept one Mesh or a sequence of them."""
    if isinstance(meshes, Mesh):
        return [meshes]
    meshes = list(meshes)
    for i, m in enumerate(meshes):
        if not isinstance(m, Mesh):
            raise TypeError(f"meshes[{i}] is {type(m).__name__}; wrap arrays as handrecon.render.Mesh(vertices, faces, color)")
    return meshes


def shade(albedo: np.ndarray, normal: np.ndarray, position: np.ndarray, lights: Lights) -> np.ndarray:
    """Blinn-Phong colour (N, 3) in [0, 1] from albedo, unit normal facing the camera and camera-frame position, all (N, 3)."""
    view = -position / np.maximum(np.linalg.norm(position, axis=1, keepdims=True), 1e-12)
    to_light = -lights.directions  # (L, 3)
    diffuse = np.clip(normal @ to_light.T, 0.0, None) @ lights.colors  # (N, 3)
    half = to_light[None] + view[:, None]  # (N, L, 3)
    half /= np.maximum(np.linalg.norm(half, axis=2, keepdims=True), 1e-12)
    n_dot_h = np.clip(np.einsum("nc,nlc->nl", normal, half), 0.0, None)
    spec = (n_dot_h**lights.shininess) @ lights.colors
    return np.clip(albedo * (lights.ambient + diffuse) + lights.specular * spec, 0.0, 1.0)


def composite(rgb: np.ndarray, instance: np.ndarray, background) -> np.ndarray:
    """(H, W, 3) uint8: `rgb` (H, W, 3) uint8 where instance > 0, the background elsewhere.

    background: None (black: `rgb` itself, which must be 0 where instance == 0), an RGB colour
    (3,) in [0, 1] or uint8, or an (H, W, 3) uint8 image.
    """
    H, W = instance.shape
    if background is None:
        return rgb
    bg = np.asarray(background)
    if bg.shape == (3,):
        bg = bg if bg.dtype == np.uint8 else np.rint(np.clip(bg, 0, 1) * 255).astype(np.uint8)
        bg = np.broadcast_to(bg, (H, W, 3))
    elif bg.shape != (H, W, 3) or bg.dtype != np.uint8:
        raise ValueError(f"background must be an RGB colour or a uint8 image of shape {(H, W, 3)}, got {bg.dtype} {bg.shape}")
    return np.where((instance > 0)[..., None], rgb, bg)
