"""HandModel: LBS correctness, keypoint regressor accuracy, gradients, left/right mirroring."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from handrecon.geometry.rotations import axis_angle_to_matrix
from handrecon.hand.model import HandModel, mirror_axis_angle
from handrecon.hand.openhand import load_openhand
from handrecon.hand.pose import sample_poses, sample_shapes


@pytest.fixture(scope="module")
def right() -> HandModel:
    return HandModel.openhand("right")


@pytest.fixture(scope="module")
def left() -> HandModel:
    return HandModel.openhand("left")


def zero_pose(model: HandModel, b: int = 1) -> torch.Tensor:
    return torch.zeros(b, model.num_joints, 3)


def signed_volume(v: np.ndarray, f: np.ndarray) -> float:
    """Volume of the mesh closed by a planar-ish cap: origin at the boundary-loop centroid."""
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), 1)
    uniq, count = np.unique(edges, axis=0, return_counts=True)
    o = v[np.unique(uniq[count == 1])].mean(0)
    a, b, c = v[f[:, 0]] - o, v[f[:, 1]] - o, v[f[:, 2]] - o
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6)


def test_zero_pose_returns_template(right):
    out = right(zero_pose(right))
    torch.testing.assert_close(out.vertices[0], right.v_template)
    torch.testing.assert_close(out.skeleton[0], right.J_regressor @ right.v_template)
    assert out.vertices.shape == (1, right.num_vertices, 3) and out.joints.shape == (1, 21, 3)
    assert out.transforms.shape == (1, right.num_joints, 4, 4)


def test_op21_joints_are_skeleton_joints_and_tip_vertices(right):
    out = right(sample_poses(right, 4, "random", seed=3), sample_shapes(right, 4, seed=3))
    kp = right.keypoint_joints
    torch.testing.assert_close(out.joints[:, kp >= 0], out.skeleton[:, kp[kp >= 0]])
    torch.testing.assert_close(out.joints[:, [4, 8, 12, 16, 20]], out.vertices[:, right.tip_vertex_ids])


def test_single_joint_rotation_moves_its_bone_rigidly(right):
    """Rotating the index DIP moves the vertices fully skinned to it as R (v - j) + j."""
    j = right.joint_names.index("finger2-3")
    pose = zero_pose(right)
    pose[0, j] = torch.tensor([0.0, 0.0, 0.9])
    out = right(pose)
    rigid = right.weights[:, j] > 0.999
    assert rigid.sum() >= 5
    R = axis_angle_to_matrix(pose[0, j])
    joint = right.J_regressor[j] @ right.v_template
    expected = (right.v_template[rigid] - joint) @ R.T + joint
    torch.testing.assert_close(out.vertices[0, rigid], expected, atol=1e-6, rtol=0)
    unaffected = right.weights[:, 0] > 0.999  # skinned to the wrist only
    torch.testing.assert_close(out.vertices[0, unaffected], right.v_template[unaffected])


def test_root_rotation_and_translation_are_rigid(right):
    pose = sample_poses(right, 3, "mixed", seed=5)
    shape = sample_shapes(right, 3, seed=5)
    base = right(pose, shape)
    rot = torch.tensor([[0.3, -1.2, 0.5]]).expand(3, 3)
    moved_pose = pose.clone()
    moved_pose[:, 0] = rot
    t = torch.tensor([[0.1, -0.2, 0.5]]).expand(3, 3)
    moved = right(moved_pose, shape, t)
    R = axis_angle_to_matrix(rot)
    wrist = base.skeleton[:, :1]  # the root rotates about the wrist joint
    for a, b in ((moved.vertices, base.vertices), (moved.joints, base.joints)):
        torch.testing.assert_close(a, (b - wrist) @ R.transpose(1, 2) + wrist + t[:, None], atol=1e-6, rtol=0)
    torch.testing.assert_close(moved.transforms[..., :3, 3], moved.skeleton)


def test_kp_regressor_reproduces_fk_joints_within_2mm(right):
    """The issue's acceptance test: 1000 random plausible poses and shapes."""
    g = torch.Generator().manual_seed(1234)
    pose = torch.cat([sample_poses(right, 500, "random", generator=g), sample_poses(right, 500, "mixed", generator=g)])
    out = right(pose, sample_shapes(right, 1000, generator=g), torch.randn(1000, 3, generator=g))
    err = (right.regress_keypoints(out.vertices) - out.joints).norm(dim=-1)
    assert err.mean() < 2e-3, f"kp_regressor mean error {err.mean() * 1e3:.3f} mm"
    assert err.quantile(0.99) < 2e-3, f"kp_regressor p99 error {err.quantile(0.99) * 1e3:.3f} mm"


def test_gradients_flow_to_pose_shape_and_translation(right):
    pose = zero_pose(right, 2).requires_grad_()  # zero pose: Rodrigues' Taylor branch
    shape = torch.zeros(2, right.num_shape, requires_grad=True)
    transl = torch.zeros(2, 3, requires_grad=True)
    out = right(pose, shape, transl)
    (out.vertices.square().sum() + out.joints.square().sum()).backward()
    for name, t in (("pose", pose), ("shape", shape), ("transl", transl)):
        assert torch.isfinite(t.grad).all(), name
        assert t.grad.abs().sum() > 0, name
    assert (pose.grad[:, 1:].abs().sum(-1) > 0).all(), "every joint must receive gradient"


def test_double_precision_and_partial_shape(right):
    model = HandModel.openhand().double()
    out = model(zero_pose(model).double(), torch.ones(1, 3, dtype=torch.float64))
    assert out.vertices.dtype == torch.float64
    full = torch.zeros(1, model.num_shape, dtype=torch.float64)
    full[:, :3] = 1
    torch.testing.assert_close(out.vertices, model(zero_pose(model).double(), full).vertices)


def test_bad_inputs_raise_clear_errors(right):
    with pytest.raises(ValueError, match="pose must be"):
        right(torch.zeros(1, 16, 3))
    with pytest.raises(ValueError, match="shape must be"):
        right(zero_pose(right), torch.zeros(1, right.num_shape + 1))
    with pytest.raises(ValueError, match="side"):
        HandModel(load_openhand(), "both")


def test_left_is_mirror_of_right(right, left):
    pose = sample_poses(right, 4, "mixed", seed=11)
    shape = sample_shapes(right, 4, seed=11)
    r = right(pose, shape)
    lo = left(mirror_axis_angle(pose), shape)
    flip = torch.tensor([-1.0, 1.0, 1.0])
    torch.testing.assert_close(lo.vertices, r.vertices * flip, atol=1e-6, rtol=0)
    torch.testing.assert_close(lo.joints, r.joints * flip, atol=1e-6, rtol=0)
    torch.testing.assert_close(left.regress_keypoints(lo.vertices), right.regress_keypoints(r.vertices) * flip,
                               atol=1e-6, rtol=0)


def test_faces_point_outwards_for_both_sides(right, left):
    for model in (right, left):
        v = model(zero_pose(model)).vertices[0].numpy()
        f = model.faces.numpy()
        vol = signed_volume(v, f)
        assert vol > 2e-4, f"{model.side}: signed volume {vol * 1e6:.1f} cm^3 must be positive (outward normals)"
        assert model.faces.dtype == torch.long
    assert torch.equal(left.faces, right.faces[:, [0, 2, 1]])


def test_left_mirror_includes_pose_correctives():
    """posedirs are mirrored consistently (MANO has them; OpenHand does not)."""
    data = load_openhand()
    rng = np.random.default_rng(0)
    pd = rng.normal(0, 1e-3, (data.num_vertices, 3, 9 * (data.num_joints - 1))).astype(np.float32)
    data = dataclasses.replace(data, posedirs=pd, pose_mean=rng.normal(0, 0.1, (data.num_joints, 3)).astype(np.float32))
    right, left = HandModel(data, "right"), HandModel(data, "left")
    pose = sample_poses(right, 3, "random", seed=2)
    flip = torch.tensor([-1.0, 1.0, 1.0])
    torch.testing.assert_close(left(mirror_axis_angle(pose)).vertices, right(pose).vertices * flip, atol=1e-6, rtol=0)
    assert not torch.allclose(right(pose).vertices, HandModel(load_openhand())(pose).vertices)


def test_from_mano_uses_the_mano_loader(monkeypatch):
    calls = []

    def fake_loader(path, side=None, tips="freihand"):
        calls.append((path, side, tips))
        return load_openhand()

    monkeypatch.setattr("handrecon.hand.model.load_mano_data", fake_loader)
    # The file's own side comes from its name (side=None); the posed side is the model's.
    model = HandModel.from_mano("/x/MANO_RIGHT.pkl", side="left", tips="smplx")
    assert calls == [("/x/MANO_RIGHT.pkl", None, "smplx")] and model.side == "left"
