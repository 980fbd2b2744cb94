"""`handrecon show-dataset`: a grid of samples from any loader with skeletons and meshes overlaid."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from handrecon.data.loaders import build_dataset
from handrecon.data.schema import Sample
from handrecon.data.transforms import letterbox
from handrecon.hand.model import HandModel
from handrecon.render.overlay import draw_skeleton, make_grid, overlay_mesh
from handrecon.utils.io import atomic_open, check_output_file

GRID_FORMATS = {".png": ("PNG", {"optimize": True}), ".jpg": ("JPEG", {"quality": 92}),
                ".jpeg": ("JPEG", {"quality": 92})}  # output suffix -> PIL format and its save options
MIN_CELL = 32  # px: a tile's largest side, at least


def _faces_for(hand_model: str | None, num_vertices: int, mano_dir: str | os.PathLike | None, side: str | None):
    """Faces of the topology the vertices belong to, or None when unknown (then vertices are drawn as dots)."""
    try:
        if hand_model == "openhand":
            m = HandModel.openhand("left" if side == "left" else "right")
        elif hand_model == "mano" and mano_dir is not None:
            name = "MANO_LEFT.pkl" if side == "left" else "MANO_RIGHT.pkl"
            m = HandModel.from_mano(Path(mano_dir) / name, "left" if side == "left" else "right")
        else:
            return None
    except (FileNotFoundError, ValueError):
        return None
    return m.faces.numpy() if m.num_vertices == num_vertices else None


def render_sample(sample: Sample, mano_dir: str | os.PathLike | None = None, cell: int = 256,
                  caption: bool = True, backend: str | None = None) -> np.ndarray:
    """The sample's image with every hand's mesh (projected with K, when vertices and their faces
    are known; else vertices as dots) and skeleton drawn, resized to fit a cell x cell square."""
    image = sample.image
    H, W = image.shape[:2]
    s = min(1.0, cell / max(H, W))  # draw at (at most) the cell resolution: faster, sharper lines
    if s < 1.0:
        sample = letterbox(sample, (max(1, round(H * s)), max(1, round(W * s))))
        image = sample.image
    out = image
    for h in sample.hands:
        if h.vertices is None or sample.K is None:
            continue
        faces = _faces_for(h.hand_model, len(h.vertices), mano_dir, h.side)
        if faces is not None:
            color = (0.55, 0.72, 0.95) if h.side != "left" else (0.95, 0.65, 0.45)
            out = overlay_mesh(out, h.vertices, faces, sample.K, alpha=0.45, color=color, backend=backend)
        else:
            uv = h.vertices.astype(np.float64) @ sample.K.T.astype(np.float64)
            uv = np.rint(uv[:, :2] / uv[:, 2:]).astype(int)
            ok = (uv[:, 0] >= 0) & (uv[:, 0] < out.shape[1]) & (uv[:, 1] >= 0) & (uv[:, 1] < out.shape[0])
            out = out.copy()
            out[uv[ok, 1], uv[ok, 0]] = (120, 180, 255)
    for h in sample.hands:
        out = draw_skeleton(out, h.keypoints_2d, h.visibility)
    if caption:
        im = Image.fromarray(out)
        draw = ImageDraw.Draw(im)
        sides = ",".join((h.side or "?")[0].upper() for h in sample.hands) or "-"
        for h in sample.hands:
            if np.isfinite(h.box).all():
                draw.rectangle(tuple(float(v) for v in h.box), outline=(255, 255, 255))
        text = f"{sample.sample_id} [{sides}]"
        draw.rectangle((0, 0, 7 * len(text) + 4, 12), fill=(0, 0, 0))
        draw.text((2, 0), text, fill=(255, 255, 255))
        out = np.asarray(im)
    return out


def dataset_grid(dataset: Any, num: int = 16, seed: int = 0, ncols: int | None = None, cell: int = 256,
                 mano_dir: str | os.PathLike | None = None, backend: str | None = None) -> np.ndarray:
    """RGB uint8 grid of `num` random samples (without replacement, chosen by `seed`) of a map-style dataset."""
    n = len(dataset)
    if n == 0:
        raise ValueError("the dataset is empty; nothing to show")
    idx = np.sort(np.random.default_rng(seed).choice(n, size=min(num, n), replace=False))
    tiles = [render_sample(dataset[int(i)], mano_dir, cell, backend=backend) for i in idx]
    return make_grid(tiles, ncols or int(np.ceil(np.sqrt(len(tiles)))))


def show_dataset(name: str, root: str | os.PathLike, out: str | os.PathLike, split: str | None = None,
                 num: int = 16, seed: int = 0, cell: int = 256, mano_dir: str | os.PathLike | None = None,
                 **loader_kw: Any) -> Path:
    """Build dataset `name` from `root` (data.loaders.build_dataset) and write a grid image to `out`
    (.png, or .jpg / .jpeg). ValueError before any work for a bad `out`, `num` or `cell`."""
    out = check_output_file(out, tuple(GRID_FORMATS), "grid image")
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ValueError(f"num (--num) must be a positive number of samples, got {num!r}")
    if isinstance(cell, bool) or not isinstance(cell, int) or cell < MIN_CELL:
        raise ValueError(f"cell (--cell) must be at least {MIN_CELL} pixels, got {cell!r}")
    ds = build_dataset(name, root, split, **loader_kw)
    grid = dataset_grid(ds, num, seed, cell=cell, mano_dir=mano_dir)
    image_format, options = GRID_FORMATS[out.suffix.lower()]
    with atomic_open(out, "wb") as f:
        Image.fromarray(grid).save(f, format=image_format, **options)
    return out
