import math

import torch

from handrecon.geometry.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rot6d,
    rot6d_to_matrix,
    rotation_between,
)


def test_axis_angle_roundtrip_and_orthonormal():
    g = torch.Generator().manual_seed(0)
    axis = torch.nn.functional.normalize(torch.randn(1000, 3, generator=g, dtype=torch.float64), dim=-1)
    angle = torch.rand(1000, 1, generator=g, dtype=torch.float64) * (math.pi - 1e-3)
    aa = axis * angle
    R = axis_angle_to_matrix(aa)
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(R @ R.transpose(-1, -2), eye.expand_as(R), atol=1e-10)
    assert torch.allclose(torch.linalg.det(R), torch.ones(1000, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(matrix_to_axis_angle(R), aa, atol=1e-8)


def test_axis_angle_known_rotation_and_zero_gradient():
    R = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2]))
    assert torch.allclose(R @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    aa = torch.zeros(4, 3, requires_grad=True)
    axis_angle_to_matrix(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()


def test_rot6d_roundtrip():
    R = axis_angle_to_matrix(torch.randn(50, 3))
    assert torch.allclose(rot6d_to_matrix(matrix_to_rot6d(R)), R, atol=1e-5)


def test_rotation_between_turns_one_direction_onto_another():
    """The smallest rotation (angle = the angle between them), parallel and opposite included."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 3, generator=g), torch.randn(64, 3, generator=g) * 3
    a[0], b[0] = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([2.0, 0.0, 0.0])  # parallel: identity
    a[1], b[1] = torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, -0.5, 0.0])  # opposite: half a turn
    R = rotation_between(a, b)
    unit = torch.nn.functional.normalize
    torch.testing.assert_close((R @ unit(a, dim=-1)[..., None])[..., 0], unit(b, dim=-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3).expand(64, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(64), atol=1e-5, rtol=0)
    angle = torch.acos((unit(a, dim=-1) * unit(b, dim=-1)).sum(-1).clamp(-1, 1))
    torch.testing.assert_close(matrix_to_axis_angle(R).norm(dim=-1), angle, atol=1e-3, rtol=0)
    torch.testing.assert_close(R[0], torch.eye(3), atol=1e-6, rtol=0)
