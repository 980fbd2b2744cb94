"""Overlays for looking at data and results: 2D skeletons, meshes blended over images, side views, grids.

All images are RGB uint8 (H, W, 3); inputs are never modified, a new image is returned.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from handrecon.hand.keypoints import NUM_KEYPOINTS, OP21_EDGES, OP21_FINGER
from handrecon.render import Lights, Mesh, render
from handrecon.utils.image import check_image

# RGB per finger label (0 wrist/palm, 1 thumb, 2 index, 3 middle, 4 ring, 5 little)
FINGER_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 255, 255), (255, 70, 70), (255, 200, 0), (70, 220, 70), (0, 170, 255), (200, 90, 255),
)
# Albedo per mesh, cycled: hand 0, 1, ... of an image
MESH_COLORS: tuple[tuple[float, float, float], ...] = (
    (0.55, 0.72, 0.95), (0.95, 0.65, 0.45), (0.6, 0.9, 0.6), (0.9, 0.6, 0.85),
)
# Per side, for telling hands apart in multi-hand overlays: box/label RGB and mesh albedo
SIDE_COLORS: dict[str, tuple[int, int, int]] = {"left": (255, 140, 0), "right": (30, 144, 255)}
SIDE_MESH_COLORS: dict[str, tuple[float, float, float]] = {"left": (0.95, 0.65, 0.45), "right": (0.55, 0.72, 0.95)}
_SUPERSAMPLE = 4


def draw_skeleton(
    image: np.ndarray,
    keypoints_2d: np.ndarray,
    visibility: np.ndarray | None = None,
    colors: Sequence[int] | Sequence[Sequence[int]] | None = None,
    thickness: float | None = None,
    radius: float | None = None,
) -> np.ndarray:
    """Draw an OP21 hand skeleton over `image`.

    keypoints_2d: (21, 2) pixel coordinates (u, v); non-finite points are skipped.
    visibility: optional (21,) bool/float; invisible joints (<= 0.5) are drawn as rings and
    their bones half transparent. colors: one RGB for everything, or 6 RGBs by finger label
    (default FINGER_COLORS). thickness, radius: line width and joint radius in pixels (default
    scaled to the image size). Lines are antialiased by drawing the region at 4x and reducing.
    """
    image = check_image(np.asarray(image))
    kp = np.asarray(keypoints_2d, np.float64)
    if kp.shape != (NUM_KEYPOINTS, 2):
        raise ValueError(f"keypoints_2d must have shape (21, 2) in OP21 order, got {kp.shape}")
    vis = np.ones(NUM_KEYPOINTS, bool) if visibility is None else np.asarray(visibility, np.float64).reshape(-1) > 0.5
    if vis.shape != (NUM_KEYPOINTS,):
        raise ValueError(f"visibility must have 21 entries, got {np.asarray(visibility).shape}")
    palette = np.asarray(FINGER_COLORS if colors is None else colors, np.int64).reshape(-1, 3)
    if len(palette) not in (1, 6):
        raise ValueError(f"colors must be one RGB or 6 RGBs (one per finger label), got {len(palette)}")
    palette = np.broadcast_to(palette, (6, 3))
    H, W = image.shape[:2]
    thickness = thickness if thickness is not None else max(1.5, min(H, W) / 120)
    radius = radius if radius is not None else 1.6 * thickness
    finite = np.isfinite(kp).all(1)
    if not finite.any():
        return image.copy()

    # draw only the region around the keypoints, at _SUPERSAMPLE times the resolution
    margin = radius + thickness + 2
    x0, y0 = np.floor(np.maximum(kp[finite].min(0) - margin, 0)).astype(int)
    x1, y1 = np.ceil(np.minimum(kp[finite].max(0) + margin, (W - 1, H - 1))).astype(int)
    if x1 < x0 or y1 < y0:  # all keypoints outside the image
        return image.copy()
    s = _SUPERSAMPLE
    layer = Image.new("RGBA", ((x1 - x0 + 1) * s, (y1 - y0 + 1) * s), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    pts = (kp - (x0, y0) + 0.5) * s - 0.5  # pixel centres at integer coordinates at both scales
    for p, c in OP21_EDGES:
        if finite[p] and finite[c]:
            alpha = 255 if vis[p] and vis[c] else 120
            draw.line([tuple(pts[p]), tuple(pts[c])], fill=(*palette[OP21_FINGER[c]], alpha), width=round(thickness * s))
    r = radius * s
    for j in np.nonzero(finite)[0]:
        box = [pts[j, 0] - r, pts[j, 1] - r, pts[j, 0] + r, pts[j, 1] + r]
        rgb = tuple(int(x) for x in palette[OP21_FINGER[j]])
        if vis[j]:
            draw.ellipse(box, fill=(*rgb, 255), outline=(40, 40, 40, 255), width=max(1, s // 3))
        else:
            draw.ellipse(box, outline=(*rgb, 255), width=max(1, round(thickness * s * 0.6)))
    layer = layer.resize((x1 - x0 + 1, y1 - y0 + 1), Image.Resampling.BOX)
    out = Image.fromarray(image)
    region = out.crop((x0, y0, x1 + 1, y1 + 1)).convert("RGBA")
    out.paste(Image.alpha_composite(region, layer).convert("RGB"), (x0, y0))
    return np.asarray(out)


def label_boxes(image: np.ndarray, boxes: np.ndarray, labels: Sequence[str],
                colors: Sequence[Sequence[int]]) -> np.ndarray:
    """Draw boxes (N, 4) x1, y1, x2, y2 px with a text label on a filled tab above each (the
    hand's number, side and score in multi-hand overlays)."""
    image = check_image(np.asarray(image))
    out = Image.fromarray(image)
    draw = ImageDraw.Draw(out)
    width = max(1, round(min(image.shape[:2]) / 300))
    for box, label, color in zip(np.asarray(boxes, np.float64).reshape(-1, 4), labels, colors):
        if not np.isfinite(box).all():
            continue
        x1, y1, x2, y2 = box.tolist()
        rgb = tuple(int(c) for c in color)
        draw.rectangle([x1, y1, x2, y2], outline=rgb, width=width)
        l, t, r, b = draw.textbbox((0, 0), label)
        ty = y1 - (b - t) - 4 if y1 - (b - t) - 4 >= 0 else y1
        draw.rectangle([x1, ty, x1 + (r - l) + 4, ty + (b - t) + 4], fill=rgb)
        draw.text((x1 + 2 - l, ty + 2 - t), label, fill=(0, 0, 0))
    return np.asarray(out)


def _meshes(vertices, faces, color) -> list[Mesh]:
    """One Mesh per hand from vertices (V,3), (N,V,3) or a list of (V,3), sharing `faces`."""
    if getattr(vertices, "ndim", None) == 2:
        vertices = [vertices]
    vertices = list(vertices)
    if color is None:
        colors = [MESH_COLORS[i % len(MESH_COLORS)] for i in range(len(vertices))]
    else:
        c = np.asarray(color, np.float32)
        colors = [c] * len(vertices) if c.ndim == 1 else list(c)
        if len(colors) != len(vertices):
            raise ValueError(f"got {len(colors)} colours for {len(vertices)} meshes")
    return [Mesh(v, faces, col) for v, col in zip(vertices, colors)]


def overlay_mesh(
    image: np.ndarray,
    vertices,
    faces: np.ndarray,
    K: np.ndarray,
    alpha: float = 0.6,
    color=None,
    lights: Lights | None = None,
    backend: str | None = None,
) -> np.ndarray:
    """Blend the mesh(es) seen by camera K over `image`.

    vertices: (V, 3), (N, V, 3) or a list of (V, 3), camera frame in metres; faces (F, 3)
    shared. color: one albedo (3,) in [0, 1] or one per mesh (default MESH_COLORS). alpha:
    opacity of the mesh where it covers the image.
    """
    image = check_image(np.asarray(image))
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    out = render(_meshes(vertices, faces, color), K, image.shape[:2], lights=lights, backend=backend)
    blend = np.rint((1 - alpha) * image + alpha * out.rgb).astype(np.uint8)
    return np.where(out.mask[..., None], blend, image)


def side_view(
    vertices,
    faces: np.ndarray,
    size: int | tuple[int, int] = 256,
    angle_deg: float = 90.0,
    color=None,
    background: Sequence[int] = (255, 255, 255),
    lights: Lights | None = None,
    backend: str | None = None,
) -> np.ndarray:
    """Render the mesh(es) from a camera rotated by `angle_deg` about the vertical (y) axis through their centre.

    vertices / faces / color as in overlay_mesh. With the default +90° the new camera looks from
    the right of the original one (the original camera would appear at the left), so the depth
    placement of the hands along the original z runs left to right. The virtual camera keeps
    the original viewing distance (at least 2.5 mesh radii) and its focal length frames all
    meshes. size: an int (square) or (H, W). Returns an (H, W, 3) uint8 image.
    """
    meshes = _meshes(vertices, faces, color)
    H, W = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    pts = np.concatenate([m.vertices for m in meshes]).astype(np.float64)
    centre = (pts.min(0) + pts.max(0)) / 2
    radius = max(np.linalg.norm(pts - centre, axis=1).max(), 1e-6)
    a = np.deg2rad(angle_deg)
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    shift = np.array([0.0, 0.0, max(np.linalg.norm(centre), 2.5 * radius)])
    for m in meshes:
        m.vertices = ((m.vertices - centre) @ R.T + shift).astype(np.float32)
        m.normals = (m.normals @ R.T).astype(np.float32)
    pts = (pts - centre) @ R.T + shift
    tan = np.abs(pts[:, :2] / pts[:, 2:]).max(0)
    f = 0.45 * min(W / max(tan[0], 1e-9), H / max(tan[1], 1e-9))
    K = np.array([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1]])
    return render(meshes, K, (H, W), lights=lights, background=np.asarray(background, np.uint8), backend=backend).rgb


def make_grid(images: Sequence[np.ndarray], ncols: int, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile RGB uint8 images (any sizes) into a grid with `ncols` columns; each cell is as large as the largest image."""
    if not len(images):
        raise ValueError("make_grid needs at least one image")
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    images = [check_image(np.asarray(im)) for im in images]
    h = max(im.shape[0] for im in images)
    w = max(im.shape[1] for im in images)
    ncols = min(ncols, len(images))
    nrows = -(-len(images) // ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), pad_value, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y : y + im.shape[0], x : x + im.shape[1]] = im
    return grid
