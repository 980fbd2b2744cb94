"""Rotation representations in torch: axis-angle (interfaces), matrices and 6D (inside networks).

All functions are batched over leading dimensions, differentiable and device-agnostic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula. aa: (..., 3) axis * angle in radians -> (..., 3, 3).

    Uses a Taylor expansion near zero so gradients stay finite at the identity.
    """
    theta2 = (aa * aa).sum(-1, keepdim=True).unsqueeze(-1)  # (...,1,1)
    theta = torch.sqrt(theta2.clamp_min(1e-12))
    small = theta2 < 1e-8
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-12))
    k = _skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(k.shape)
    return eye + a * k + b * (k @ k)


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle with angle in [0, pi]."""
    return quaternion_to_axis_angle(matrix_to_quaternion(R))


def rotation_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3): the smallest rotation turning direction `a` (..., 3) onto direction `b` (any
    lengths). Opposite directions turn by pi about an axis perpendicular to `a`."""
    a = F.normalize(a, dim=-1)
    b = F.normalize(b, dim=-1)
    axis = torch.cross(a, b, dim=-1)
    sin, cos = axis.norm(dim=-1, keepdim=True), (a * b).sum(-1, keepdim=True)
    least = F.one_hot(a.abs().argmin(-1), 3).to(a.dtype)  # the basis direction furthest from a
    axis = torch.where(sin > 1e-6, axis, torch.cross(a, least, dim=-1))
    return axis_angle_to_matrix(F.normalize(axis, dim=-1) * torch.atan2(sin, cos))


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 4) unit quaternions (w, x, y, z) with w >= 0."""
    m = R.reshape(*R.shape[:-2], 9)
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m.unbind(-1)
    q_abs = torch.sqrt(
        torch.stack(
            [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1
        ).clamp_min(0)
    )
    cands = torch.stack(
        [
            torch.stack([q_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], -1),
            torch.stack([m21 - m12, q_abs[..., 1] ** 2, m10 + m01, m02 + m20], -1),
            torch.stack([m02 - m20, m10 + m01, q_abs[..., 2] ** 2, m12 + m21], -1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[..., 3] ** 2], -1),
        ],
        -2,
    ) / (2.0 * q_abs[..., None].clamp_min(0.1))
    best = q_abs.argmax(-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = F.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternions (w, x, y, z) -> (..., 3) axis-angle."""
    q = torch.where(q[..., :1] < 0, -q, q)
    xyz = q[..., 1:]
    sin_half = xyz.norm(dim=-1, keepdim=True)
    half = torch.atan2(sin_half, q[..., :1])
    small = sin_half < 1e-6
    scale = torch.where(small, 2.0 / q[..., :1].clamp_min(1e-6), 2.0 * half / sin_half.clamp_min(1e-12))
    return xyz * scale


def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """Zhou et al. 6D representation (..., 6) -> (..., 3, 3) via Gram-Schmidt.

    The 6 numbers are the first two columns of the matrix, (a1, a2) = x[..., :3], x[..., 3:].
    """
    a1, a2 = x[..., :3], x[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns, matching rot6d_to_matrix."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def _skew(v: torch.Tensor) -> torch.Tensor:
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*v.shape[:-1], 3, 3)
