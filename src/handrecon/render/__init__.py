"""Headless offscreen rendering on the CPU, and overlays.

    from handrecon.render import Mesh, Lights, render
    out = render([Mesh(verts, faces, color=(0.8, 0.6, 0.5))], K, (224, 224), lights=Lights())
    out.rgb, out.depth, out.instance, out.normals

Two interchangeable backends give the same outputs: ``gl`` (moderngl on a headless EGL context,
Mesa llvmpipe, the fast path) and ``soft`` (pure numpy). The backend is chosen by the
environment variable ``HANDRECON_RENDERER`` = ``gl`` | ``soft`` | ``auto`` (default: ``gl`` when
an EGL context can be made, else ``soft``), or per call with ``backend=``.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from handrecon.render.common import Lights, Mesh, RenderResult, as_mesh_list, check_camera
from handrecon.render.gl import get_gl_renderer  # moderngl itself is imported on first use
from handrecon.render.soft import render_soft

__all__ = ["Lights", "Mesh", "RenderResult", "render", "resolve_backend", "gl_available"]

BACKENDS = ("auto", "gl", "soft")


def gl_available() -> bool:
    """True if this process can make (or already has) a headless EGL context."""
    try:
        get_gl_renderer()
    except RuntimeError:
        return False
    return True


def resolve_backend(backend: str | None = None) -> str:
    """The backend to use: `backend` if given, else $HANDRECON_RENDERER, else auto; returns 'gl' or 'soft'.

    Raises RuntimeError if 'gl' is asked for but no EGL context can be made.
    """
    choice = (backend or os.environ.get("HANDRECON_RENDERER") or "auto").strip().lower()
    if choice not in BACKENDS:
        raise ValueError(f"unknown renderer {choice!r} (from backend= or HANDRECON_RENDERER); use one of {BACKENDS}")
    if choice == "gl":
        get_gl_renderer()  # raises with the reason and the fix
        return "gl"
    if choice == "auto":
        return "gl" if gl_available() else "soft"
    return "soft"


def render(
    meshes: Mesh | Sequence[Mesh],
    K: np.ndarray,
    image_size: tuple[int, int],
    lights: Lights | None = None,
    background: np.ndarray | Sequence[float] | None = None,
    near: float = 0.01,
    far: float = 100.0,
    backend: str | None = None,
    normals: bool = True,
) -> RenderResult:
    """Render meshes seen by the pinhole camera K into an image of `image_size` = (H, W).

    meshes: one Mesh or a list; vertices in the OpenCV camera frame (metres). Mesh i is
    instance i + 1. K: (3, 3) intrinsics; a vertex projecting to (u, v) = K·X/z is drawn at
    pixel column u, row v (pixel centres at integer coordinates). lights: default Lights().
    background: None (black), an RGB colour, or an (H, W, 3) uint8 image shown where nothing is
    drawn. near, far: clipping distances along z in metres. Faces are two-sided (see common.py).
    Returns RenderResult(rgb uint8 (H,W,3), depth float32 (H,W) metres with inf where empty,
    instance int32 (H,W), normals float32 (H,W,3), or None if `normals` is False: the GL backend
    then skips reading it back).
    """
    meshes = as_mesh_list(meshes)
    K, H, W = check_camera(K, image_size, near, far)
    lights = lights if lights is not None else Lights()
    if resolve_backend(backend) == "gl":
        return get_gl_renderer().render(meshes, K, H, W, lights, background, near, far, normals)
    out = render_soft(meshes, K, H, W, lights, background, near, far)
    return out if normals else RenderResult(out.rgb, out.depth, out.instance, None)
