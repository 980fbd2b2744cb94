"""Pose sampler: limits, determinism, kinds that look like their names, MANO-style fallback."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from handrecon.hand.model import HandModel, mirror_axis_angle
from handrecon.hand.openhand import load_openhand
from handrecon.hand.pose import (
    KINDS,
    clamp_pose,
    default_bone_frames,
    default_joint_limits,
    limit_violation,
    sample_poses,
    sample_shapes,
)


@pytest.fixture(scope="module")
def model() -> HandModel:
    return HandModel.openhand()


def tip_to_palm(model: HandModel, pose: torch.Tensor) -> torch.Tensor:
    """(B, 5) fingertip distance to the palm centre (wrist + MCPs)."""
    j = model(pose).joints
    palm = j[:, [0, 5, 9, 13, 17]].mean(1, keepdim=True)
    return (j[:, [4, 8, 12, 16, 20]] - palm).norm(dim=-1)


@pytest.mark.parametrize("kind", KINDS + ("mixed",))
def test_samples_within_limits_and_deterministic(model, kind):
    a = sample_poses(model, 64, kind, seed=7)
    assert a.shape == (64, model.num_joints, 3) and a.dtype == torch.float32
    assert limit_violation(a, model).max() < 1e-5
    torch.testing.assert_close(a, sample_poses(model, 64, kind, seed=7), rtol=0, atol=0)
    assert not torch.equal(a, sample_poses(model, 64, kind, seed=8))
    assert torch.all(a[:, 0] == 0), "wrist unrotated by default"


def test_kinds_look_like_their_names(model):
    open_, fist = tip_to_palm(model, sample_poses(model, 100, "open", seed=0)), tip_to_palm(
        model, sample_poses(model, 100, "fist", seed=0))
    assert torch.all(fist[:, 1:] < open_[:, 1:] * 0.5), "fist: finger tips much closer to the palm"
    assert torch.all(fist[:, 0] < open_[:, 0])
    point = tip_to_palm(model, sample_poses(model, 100, "point", seed=0))
    assert torch.all(point[:, 1] > 2 * point[:, 2:].max(1).values), "point: index extended, others curled"
    j_open = model(sample_poses(model, 100, "open", seed=0)).joints
    j_pinch = model(sample_poses(model, 100, "pinch", seed=0)).joints
    gap_open, gap_pinch = (j_open[:, 4] - j_open[:, 8]).norm(dim=-1), (j_pinch[:, 4] - j_pinch[:, 8]).norm(dim=-1)
    assert gap_pinch.median() < 0.02 and gap_open.min() > 0.05, (gap_pinch.median(), gap_open.min())


def test_mixed_covers_kinds_and_random_global_orientation(model):
    pose = sample_poses(model, 500, "mixed", seed=1, global_orient="random")
    angles = pose[:, 0].norm(dim=-1)
    assert angles.max() <= np.pi + 1e-5 and angles.min() >= 0
    # Uniform rotations: P(angle < pi/2) = (pi/2 - 1)/pi ~ 0.18.
    assert 0.12 < (angles < np.pi / 2).float().mean() < 0.25
    spread = tip_to_palm(model, pose)[:, 2]
    assert spread.max() - spread.min() > 0.06


def test_left_samples_are_mirrored():
    right, left = HandModel.openhand("right"), HandModel.openhand("left")
    torch.testing.assert_close(sample_poses(left, 8, "mixed", seed=4), mirror_axis_angle(sample_poses(right, 8, "mixed", seed=4)))
    assert limit_violation(sample_poses(left, 8, "fist", seed=4), left).max() < 1e-5


def test_clamp_pose(model):
    inside = sample_poses(model, 16, "random", seed=2)
    torch.testing.assert_close(clamp_pose(inside, model), inside, atol=1e-6, rtol=0)
    wild = torch.randn(16, model.num_joints, 3, generator=torch.Generator().manual_seed(0)) * 2
    assert limit_violation(wild, model).max() > 0.5
    clamped = clamp_pose(wild, model)
    assert limit_violation(clamped, model).max() < 1e-5
    torch.testing.assert_close(clamped[:, 0], wild[:, 0])


def test_fallback_frames_and_limits_for_models_without_them():
    """A model without bone_frames/joint_limits (like MANO) gets frames from its rest skeleton."""
    data = dataclasses.replace(load_openhand(), bone_frames=None, joint_limits=None)
    frames, limits = default_bone_frames(data), default_joint_limits(data)
    np.testing.assert_allclose(frames @ frames.transpose(0, 2, 1), np.broadcast_to(np.eye(3), frames.shape), atol=1e-5)
    np.testing.assert_allclose(limits[data.keypoint_joints[6]], [[0.0, 1.9], [-0.05, 0.05], [-0.1, 0.1]])  # index PIP
    model = HandModel(data)
    fist, open_ = (tip_to_palm(model, sample_poses(model, 50, k, seed=0)) for k in ("fist", "open"))
    assert torch.all(fist[:, 1:] < open_[:, 1:] * 0.5)


def test_sample_shapes():
    s = sample_shapes(10, 2000, scale=0.5, seed=3)
    assert s.shape == (2000, 10)
    assert abs(float(s.std()) - 0.5) < 0.02
    torch.testing.assert_close(s, sample_shapes(10, 2000, scale=0.5, seed=3))


def test_bad_kind_raises(model):
    with pytest.raises(ValueError, match="pose kind"):
        sample_poses(model, 2, "wave")
    with pytest.raises(TypeError, match="HandModelData or HandModel"):
        sample_poses("openhand", 2)


def _finger_direction(model, pose):
    """(n, 3) direction wrist -> middle-finger base per sample, camera frame."""
    with torch.no_grad():
        joints = model(pose).joints
    return joints[:, 9] - joints[:, 0]


@pytest.mark.parametrize("side", ["right", "left"])
def test_natural_orientations_are_how_hands_are_usually_seen(side):
    """global_orient="natural": fingers mostly up (wrist below), palm or back towards the camera
    about half each; "random" is uniform (fingers up about half the time); "mixed" in between."""
    model = HandModel.openhand(side)
    n = 400
    up = {o: _finger_direction(model, sample_poses(model, n, kind="open", generator=torch.Generator().manual_seed(3),
                                              global_orient=o)) for o in ("natural", "random", "mixed")}
    fingers_up = {o: float((u[:, 1] < 0).float().mean()) for o, u in up.items()}
    assert fingers_up["natural"] > 0.8 and 0.35 < fingers_up["random"] < 0.65
    assert fingers_up["random"] < fingers_up["mixed"] < fingers_up["natural"]
    # palm towards the camera in about half of the natural samples: a fist then curls towards it
    g = torch.Generator().manual_seed(4)
    fist = sample_poses(model, n, kind="fist", generator=g, global_orient="natural")
    opened = fist.clone()
    opened[:, 1:] = sample_poses(model, n, kind="open", generator=torch.Generator().manual_seed(4))[:, 1:]
    with torch.no_grad():
        dz = (model(fist).joints[:, [8, 12, 16, 20], 2] - model(opened).joints[:, [8, 12, 16, 20], 2]).mean(1)
    towards = float((dz < 0).float().mean())
    assert 0.3 < towards < 0.7
    with pytest.raises(ValueError, match="global_orient"):
        sample_poses(model, 1, global_orient="sideways")


def test_gesture_and_grasp_kinds_look_like_their_names(model):
    """The kinds beyond the first four: which fingers are extended, how far a grasp closes."""
    tips = {k: tip_to_palm(model, sample_poses(model, 100, k, seed=2)) for k in ("open", "fist", "grasp", "relaxed",
                                                                                   "peace", "thumbs_up", "ok")}
    peace = tips["peace"]
    assert torch.all(peace[:, 1:3].min(1).values > 1.6 * peace[:, 3:].max(1).values), "peace: index and middle out"
    thumbs = tips["thumbs_up"]
    assert torch.all(thumbs[:, 0] > tips["fist"][:, 0] * 1.2) and torch.all(thumbs[:, 1:] < tips["open"][:, 1:] * 0.5)
    grasp = tips["grasp"][:, 1:].mean(1)
    assert torch.all(grasp < tips["open"][:, 1:].mean(1)) and torch.all(grasp > tips["fist"][:, 1:].mean(1)), \
        "grasp: between a fist and an open hand"
    j_ok = model(sample_poses(model, 100, "ok", seed=2)).joints
    assert (j_ok[:, 4] - j_ok[:, 8]).norm(dim=-1).median() < 0.025, "ok: thumb meets index"
    assert torch.all(tips["ok"][:, 2:] > 0.8 * tips["open"][:, 2:].min(0).values)
