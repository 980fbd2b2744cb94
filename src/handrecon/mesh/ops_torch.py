"""Batched, differentiable torch versions of `mesh.ops`: vertices (B,V,3), faces (F,3) long (or
int numpy), counter-clockwise seen from outside."""

from __future__ import annotations

import numpy as np
import torch

from handrecon.mesh.ops import boundary_loops, cap_faces


def _as_faces(faces: torch.Tensor | np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(faces) if not torch.is_tensor(faces) else faces, device=device).long()


def face_normals_torch(vertices: torch.Tensor, faces: torch.Tensor | np.ndarray, normalize: bool = True,
                       eps: float = 1e-12) -> torch.Tensor:
    """(B,F,3) face normals of batched vertices (B,V,3); unit (eps-safe) if `normalize`."""
    f = _as_faces(faces, vertices.device)
    tri = vertices[:, f]  # (B,F,3,3)
    n = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    return torch.nn.functional.normalize(n, dim=-1, eps=eps) if normalize else n


def vertex_normals_torch(vertices: torch.Tensor, faces: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(B,V,3) unit area-weighted vertex normals of batched vertices (B,V,3)."""
    f = _as_faces(faces, vertices.device)
    fn = face_normals_torch(vertices, f, normalize=False)
    vn = torch.zeros_like(vertices)
    for k in range(3):
        vn = vn.index_add(1, f[:, k], fn)
    return torch.nn.functional.normalize(vn, dim=-1, eps=1e-12)


def signed_volume_torch(vertices: torch.Tensor, faces: torch.Tensor | np.ndarray, close: bool = True) -> torch.Tensor:
    """(B,) signed volume of batched vertices (B,V,3); > 0 when faces point outwards.

    With `close=True` every boundary loop is capped by a fan around its (per-sample) centroid,
    as in `signed_volume`.
    """
    f = _as_faces(faces, vertices.device)
    if close:
        loops = boundary_loops(f.cpu().numpy())
        if loops:
            n = vertices.shape[1]
            centres = torch.stack([vertices[:, torch.as_tensor(lp, device=vertices.device)].mean(1) for lp in loops], 1)
            vertices = torch.cat([vertices, centres], 1)
            f = torch.cat([f, torch.as_tensor(cap_faces(loops, n), device=f.device)])
    tri = vertices[:, f]
    return (tri[:, :, 0] * torch.linalg.cross(tri[:, :, 1], tri[:, :, 2], dim=-1)).sum((-1, -2)) / 6.0
