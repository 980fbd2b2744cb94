import numpy as np
import pytest
import torch
import trimesh

from handrecon.losses import edge_loss, normal_consistency_loss, normal_loss
from handrecon.mesh import face_adjacency
from handrecon.mesh.primitives import hex_patch


@pytest.fixture(scope="module")
def sphere():
    m = trimesh.creation.icosphere(2)
    gt = torch.tensor(m.vertices, dtype=torch.float32)[None].repeat(3, 1, 1) * 0.05
    return gt, torch.as_tensor(m.faces)


@pytest.mark.parametrize("loss", [normal_loss, edge_loss])
def test_zero_at_ground_truth_and_positive_with_finite_gradients_otherwise(sphere, loss):
    gt, f = sphere
    assert loss(gt.clone(), gt, f).item() == pytest.approx(0.0, abs=1e-6)
    torch.manual_seed(0)
    pred = (gt + 0.003 * torch.randn_like(gt)).requires_grad_()
    val = loss(pred, gt, f)
    val.backward()
    assert val.item() > 0 and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_normal_loss_ignores_in_plane_motion_and_edge_loss_ignores_rigid_motion():
    v, f = hex_patch()
    gt = torch.tensor(v, dtype=torch.float32)[None]
    sheared = gt.clone()
    sheared[..., 0] += 0.3 * sheared[..., 1]  # stays in z = 0
    assert normal_loss(sheared, gt, f).item() == pytest.approx(0.0, abs=1e-7)
    assert edge_loss(sheared, gt, f).item() > 0.01
    rot = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    moved = gt @ rot.T + torch.tensor([1.0, 2, 3])
    assert edge_loss(moved, gt, f).item() == pytest.approx(0.0, abs=1e-6)
    lifted = gt.clone()
    lifted[0, 0, 2] = 1.0  # centre pops up: its 6 spokes and nothing else tilt out of the plane
    e = lifted[0, f[:, [1, 2, 0]]] - lifted[0, f]
    expected = (e[..., 2].abs() / e.norm(dim=-1)).mean()
    assert normal_loss(lifted, gt, f).item() == pytest.approx(expected.item(), rel=1e-6)


def test_edge_loss_value():
    v, f = hex_patch()
    gt = torch.tensor(v, dtype=torch.float32)[None]
    assert edge_loss(gt * 1.5, gt, f).item() == pytest.approx(0.5 * edge_loss(gt * 0, gt, f).item(), rel=1e-6)


def test_normal_consistency():
    v, f = hex_patch()
    flat = torch.tensor(v, dtype=torch.float32)[None]
    assert normal_consistency_loss(flat, f).item() == pytest.approx(0.0, abs=1e-7)
    bent = flat.clone()
    bent[0, 0, 2] = 0.5
    bent.requires_grad_()
    pairs = face_adjacency(f)
    val = normal_consistency_loss(bent, f, face_pairs=pairs)
    val.backward()
    assert val.item() > 0 and torch.isfinite(bent.grad).all() and bent.grad[0, 0, 2] > 0  # pushes back down
    n = torch.nn.functional.normalize(torch.linalg.cross(bent[0, f[:, 1]] - bent[0, f[:, 0]], bent[0, f[:, 2]] - bent[0, f[:, 0]]), dim=-1)
    expected = (1 - (n[pairs[:, 0]] * n[pairs[:, 1]]).sum(-1)).mean()
    assert val.item() == pytest.approx(expected.item(), rel=1e-6)


def test_per_sample_reduction_and_degenerate_prediction(sphere):
    gt, f = sphere
    pred = gt.clone()
    pred[1] += 0.01 * torch.randn_like(pred[1])
    per = edge_loss(pred, gt, f, reduction="none")
    assert per.shape == (3,) and per[0] == 0 and per[1] > 0 and per[2] == 0
    collapsed = torch.zeros_like(gt, requires_grad=True)  # every edge zero length
    for loss in (lambda p: normal_loss(p, gt, f), lambda p: edge_loss(p, gt, f), lambda p: normal_consistency_loss(p, f)):
        val = loss(collapsed)
        val.backward()
        assert torch.isfinite(val) and torch.isfinite(collapsed.grad).all()
        collapsed.grad = None


def test_shape_errors():
    gt = torch.zeros(2, 5, 3)
    with pytest.raises(ValueError, match="differ in shape"):
        edge_loss(gt, torch.zeros(2, 6, 3), np.zeros((1, 3), int))
    with pytest.raises(ValueError, match="faces must be"):
        normal_loss(gt, gt, np.zeros((3,), int))
