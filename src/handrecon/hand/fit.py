"""Inverse kinematics: the hand model's pose, shape and placement that best explain predicted
vertices or keypoints (camera frame, metres), batched over hands.

    fit = fit_hands(HandModel.openhand("left"), vertices=pred_vertices)   # (B, V, 3)
    fit.pose, fit.shape, fit.transl        # the model's inputs: model(fit.pose, fit.shape, fit.transl)

1. Initialisation, in tree order, so each joint's rotation is its parent's inverse times its own.
   From vertices: every bone's world rotation by a rigid fit (Kabsch) of the vertices it
   dominates (skinning weight > 0.6) in the rest hand to the same vertices in the target — nearly
   exact for a linear-blend-skinned target. From keypoints: a joint with several next keypoints
   (the wrist: the thumb base and the four knuckles) by a rigid fit of it and them; a joint with
   one (along a finger) by the smallest turn of its parent-carried rest bone onto the target's
   (swing; the twist stays the parent's); a joint without a keypoint of its own keeps its parent's
   rotation. Then, in turns (`rounds`), the shape and translation that best explain the targets
   for that pose (linear least squares: LBS is linear in the shape for fixed rotations) and again
   every bone's rotation from the shaped rest hand.
2. Refinement: Adam over all joint rotations (axis-angle, the root being the global rotation),
   shape coefficients and translation, minimising the mean squared point distance plus a penalty
   on the joint-limit excess (`hand.pose.limit_violation`) and a small shape prior; then the pose
   is clamped into the limits. The model's side is respected (fit a left hand with a left model).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from handrecon.geometry.procrustes import rigid_transform_torch
from handrecon.geometry.rotations import matrix_to_axis_angle, rotation_between
from handrecon.hand.keypoints import OP21_PARENTS
from handrecon.hand.model import HandModel
from handrecon.hand.pose import clamp_pose, limit_violation

MAX_HAND_SPAN_M = 2.0  # a target whose bounding box is longer (diagonal) is not in metres


@dataclass
class HandFit:
    """Fitted parameters and their mesh. pose (B, J, 3) axis-angle (the model's input, root
    first); shape (B, S); transl (B, 3) m; vertices (B, V, 3) and keypoints (B, 21, 3) m of the
    fitted model; error_mm (B,) mean distance to the targets after the fit."""

    pose: torch.Tensor
    shape: torch.Tensor
    transl: torch.Tensor
    vertices: torch.Tensor
    keypoints: torch.Tensor
    error_mm: torch.Tensor


def fit_hands(model: HandModel, vertices: torch.Tensor | None = None, keypoints: torch.Tensor | None = None,
              iterations: int = 40, lr: float = 0.01, fit_shape: bool = True,
              limit_weight: float = 10.0, shape_weight: float = 1e-3, rounds: int = 2) -> HandFit:
    """Fit `model` to target vertices (B, V, 3) of its topology or OP21 keypoints (B, 21, 3),
    metres, camera frame (see the module docstring): `iterations` Adam steps at `lr` refine the
    initialisation. A target over `MAX_HAND_SPAN_M` across is refused as not in metres."""
    if (vertices is None) == (keypoints is None):
        raise ValueError("fit_hands: give either vertices (B, V, 3) or keypoints (B, 21, 3)")
    target = torch.as_tensor(vertices if vertices is not None else keypoints, dtype=torch.float32)
    n = model.num_vertices if vertices is not None else 21
    if target.ndim != 3 or target.shape[1:] != (n, 3) or not torch.isfinite(target).all():
        what = f"vertices (B, {model.num_vertices}, 3)" if vertices is not None else "keypoints (B, 21, 3)"
        raise ValueError(f"fit_hands: targets must be finite {what} for the {model.name} model, got "
                         f"{tuple(target.shape)}")
    span = (target.amax(1) - target.amin(1)).norm(dim=-1)  # (B,) bounding-box diagonal, about 0.2 m for a hand
    if len(span) and span.max() > MAX_HAND_SPAN_M:
        i = int(span.argmax())
        raise ValueError(f"fit_hands: target {i} spans {float(span[i]):.4g} m, where a hand spans about 0.2 m; the "
                         "targets are in metres (millimetres / 1000, centimetres / 100)")
    B, J = target.shape[0], model.num_joints

    def points(out) -> torch.Tensor:
        return out.vertices if vertices is not None else out.joints

    shape = torch.zeros(B, model.num_shape)
    init = initial_pose if vertices is not None else initial_pose_from_keypoints
    with torch.no_grad():
        for _ in range(rounds):
            pose = init(model, target, shape)
            shape, t = solve_shape(model, pose, target, points, shape_weight if fit_shape else None)
    pose = pose.requires_grad_(True)
    shape = shape.requires_grad_(fit_shape)
    transl = t.clone().requires_grad_(True)
    params = [pose, transl] + ([shape] if fit_shape else [])
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations, eta_min=lr * 0.05)
    scale = 100.0  # centimetres: well-conditioned squared errors
    for _ in range(iterations):
        opt.zero_grad(set_to_none=True)
        out = model(pose, shape if fit_shape else None, transl)
        data = ((points(out) - target) * scale).pow(2).sum(-1).mean()
        loss = data + limit_weight * limit_violation(pose, model).pow(2).sum((1, 2)).mean()
        if fit_shape:
            loss = loss + shape_weight * shape.pow(2).sum(1).mean()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        pose = clamp_pose(pose.detach(), model)
        shape = shape.detach()
        out = model(pose, shape if fit_shape else None, transl.detach())
        error = (points(out) - target).norm(dim=-1).mean(1) * 1000.0
    return HandFit(pose, shape, transl.detach(), out.vertices, out.joints, error)


def initial_pose(model: HandModel, vertices: torch.Tensor, shape: torch.Tensor | None = None,
                 dominance: float = 0.6) -> torch.Tensor:
    """(B, J, 3) model pose from target vertices (B, V, 3) by per-bone rigid fits of the rest hand
    of `shape` (B, S) (None: the mean shape) (module doc)."""
    B, J = vertices.shape[0], model.num_joints
    rest = model.shaped(shape, B)[0]
    world = [torch.eye(3).expand(B, 3, 3)] * J
    local = torch.zeros(B, J, 3, 3)
    parents = model.parents.tolist()
    for j in range(J):  # parents[j] < j: a parent's world rotation is known first
        ids = torch.nonzero(model.weights[:, j] > dominance)[:, 0]
        parent = world[parents[j]] if parents[j] >= 0 else torch.eye(3).expand(B, 3, 3)
        world[j] = rigid_transform_torch(rest[:, ids], vertices[:, ids])[0] if len(ids) >= 4 else parent
        local[:, j] = parent.transpose(1, 2) @ world[j]
    return matrix_to_axis_angle(local) - model.pose_mean


def solve_shape(model: HandModel, pose: torch.Tensor, target: torch.Tensor, points,
                ridge: float | None = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Shape (B, S) and translation (B, 3) minimising |points(model(pose, shape, t)) - target|²
    (+ ridge |shape|², in cm²) for a fixed pose: the points are linear in both, so the columns come
    from one batched forward of the S unit shapes. ridge None: shape stays 0, translation only."""
    B, S = pose.shape[0], model.num_shape
    if ridge is None:
        return torch.zeros(B, S), (target - points(model(pose))).mean(1)
    shapes = torch.cat([torch.zeros(1, S), torch.eye(S)]).repeat_interleave(B, 0)  # (S+1)·B
    out = points(model(pose.repeat(S + 1, 1, 1), shapes)).view(S + 1, B, -1, 3)
    base, cols = out[0], (out[1:] - out[:1]).permute(1, 2, 3, 0)  # (B, N, 3, S)
    N = base.shape[1]
    eye = torch.eye(3).expand(B, N, 3, 3)
    A = torch.cat([cols, eye], -1).reshape(B, N * 3, S + 3) * 100.0  # centimetres
    b = (target - base).reshape(B, N * 3, 1) * 100.0
    reg = torch.diag(torch.cat([torch.full((S,), ridge * N), torch.zeros(3)]))
    x = torch.linalg.solve(A.transpose(1, 2) @ A + reg, A.transpose(1, 2) @ b)[..., 0]
    return x[:, :S], x[:, S:]


def initial_pose_from_keypoints(model: HandModel, keypoints: torch.Tensor, shape: torch.Tensor | None = None
                                ) -> torch.Tensor:
    """(B, J, 3) model pose from target OP21 keypoints (B, 21, 3) by per-joint rigid fits and swings
    of the rest hand of `shape` (B, S) (None: the mean shape) (module doc)."""
    B, J = keypoints.shape[0], model.num_joints
    rest_hand = model(-model.pose_mean.expand(B, J, 3), shape)  # every joint unrotated
    rest, rest_joints = rest_hand.joints, rest_hand.skeleton  # its OP21 keypoints, its skeleton joints
    parents, owner = model.parents.tolist(), model.keypoint_joints.tolist()
    own = {j: owner.index(j) for j in range(J) if j in owner}  # joint -> its OP21 keypoint
    children = [[c for c in range(J) if parents[c] == j] for j in range(J)]

    def next_keypoint(j: int) -> int | None:  # the first keypoint at or below joint j
        while j not in own and children[j]:
            j = children[j][0]
        return own.get(j)

    world = [torch.eye(3).expand(B, 3, 3)] * J
    at = [keypoints[:, 0]] * J  # each joint's place: its keypoint, else carried from its parent
    local = torch.zeros(B, J, 3, 3)
    for j in range(J):  # parents[j] < j: a parent's world rotation and place are known first
        p = parents[j]
        parent = world[p] if p >= 0 else torch.eye(3).expand(B, 3, 3)
        if j in own:
            at[j] = keypoints[:, own[j]]
        elif p >= 0:
            at[j] = at[p] + (parent @ (rest_joints[:, j] - rest_joints[:, p])[..., None])[..., 0]
        here = rest[:, own[j]] if j in own else rest_joints[:, j]
        ahead = [k for k in map(next_keypoint, children[j]) if k is not None]
        if not children[j] and j in own:  # a last joint: its fingertip
            ahead = [OP21_PARENTS.index(own[j])]
        if not ahead:
            world[j] = parent
        elif len(ahead) >= 2:
            world[j] = rigid_transform_torch(torch.cat([here[:, None], rest[:, ahead]], 1),
                                             torch.cat([at[j][:, None], keypoints[:, ahead]], 1))[0]
        else:
            bone = (parent @ (rest[:, ahead[0]] - here)[..., None])[..., 0]
            world[j] = rotation_between(bone, keypoints[:, ahead[0]] - at[j]) @ parent
        local[:, j] = parent.transpose(1, 2) @ world[j]
    return matrix_to_axis_angle(local) - model.pose_mean


__all__ = ["HandFit", "fit_hands", "initial_pose", "initial_pose_from_keypoints", "solve_shape"]
