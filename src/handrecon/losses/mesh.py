"""Mesh losses (batched (B,V,3), vectorised): normal, edge length, normal consistency.

Definitions follow MobRecon / HandOS (eq. 10-11):
- normal: |unit pred edge · unit GT face normal| over the 3 edges of every face;
- edge: | |pred edge| - |GT edge| | over the 3 edges of every face (shared edges count twice);
- normal consistency: 1 - <n1, n2> over pairs of faces sharing an edge (needs no ground truth).
Each is averaged over its terms; `reduction="none"` gives one value per sample (B,) so callers
can mask samples without 3D labels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from handrecon.mesh.ops import face_adjacency
from handrecon.mesh.ops_torch import face_normals_torch


def _faces(faces, device) -> torch.Tensor:
    f = torch.as_tensor(np.asarray(faces) if not torch.is_tensor(faces) else faces, device=device).long()
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"faces must be (F,3), got {tuple(f.shape)}")
    return f


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "none":
        return per_sample
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def _check(pred: torch.Tensor, gt: torch.Tensor | None = None) -> None:
    if pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"vertices must be (B,V,3), got {tuple(pred.shape)}")
    if gt is not None and gt.shape != pred.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in shape")


def _edge_vectors(v: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """(B,F,3,3) edge vectors v1-v0, v2-v1, v0-v2 of every face."""
    tri = v[:, f]
    return tri.roll(-1, dims=2) - tri


def normal_loss(pred: torch.Tensor, gt: torch.Tensor, faces, reduction: str = "mean") -> torch.Tensor:
    """Mean |unit(pred edge) · GT face normal| over the 3 edges of every face (0 at GT)."""
    _check(pred, gt)
    f = _faces(faces, pred.device)
    n = face_normals_torch(gt.detach(), f)  # (B,F,3)
    e = F.normalize(_edge_vectors(pred, f), dim=-1, eps=1e-12)
    return _reduce((e * n[:, :, None]).sum(-1).abs().mean((1, 2)), reduction)


def edge_loss(pred: torch.Tensor, gt: torch.Tensor, faces, reduction: str = "mean") -> torch.Tensor:
    """Mean | |pred edge| - |GT edge| | over the 3 edges of every face (units of the input)."""
    _check(pred, gt)
    f = _faces(faces, pred.device)
    lp = _edge_vectors(pred, f).norm(dim=-1)
    lg = _edge_vectors(gt, f).norm(dim=-1)
    return _reduce((lp - lg).abs().mean((1, 2)), reduction)


def normal_consistency_loss(pred: torch.Tensor, faces, face_pairs=None, reduction: str = "mean") -> torch.Tensor:
    """Mean 1 - <n1, n2> over pairs of faces sharing an edge (HandOS L^nc; 0 for a flat sheet).

    face_pairs: (P,2) from `handrecon.mesh.face_adjacency(faces)`; computed here when None
    (precompute it once in training loops).
    """
    _check(pred)
    f = _faces(faces, pred.device)
    if face_pairs is None:
        face_pairs = face_adjacency(f.cpu().numpy())
    pairs = torch.as_tensor(np.asarray(face_pairs) if not torch.is_tensor(face_pairs) else face_pairs,
                            device=pred.device).long()
    n = face_normals_torch(pred, f)
    return _reduce((1.0 - (n[:, pairs[:, 0]] * n[:, pairs[:, 1]]).sum(-1)).mean(1), reduction)
