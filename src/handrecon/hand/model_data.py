"""`HandModelData`: the arrays that define a hand model, whatever its source (OpenHand or MANO).

This is the contract between the model sources (`hand/openhand.py`, `hand/mano.py`) and the
torch layer (`hand/model.py`). All arrays describe the RIGHT hand; the left hand is derived by
mirroring (see `HandModel`). Units are metres.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class HandModelData:
    """Arrays of an articulated hand model (right hand).

    Shapes: V vertices, F faces, J skeleton joints, S shape components, P pose-corrective inputs.

    name: "openhand" or "mano".
    v_template: (V, 3) float32 rest vertices, metres.
    faces: (F, 3) int64, counter-clockwise seen from outside (normals point outwards).
    weights: (V, J) float32 linear-blend-skinning weights, rows sum to 1.
    parents: (J,) int64 kinematic tree, parents[0] == -1, parents[j] < j.
    joint_names: J names.
    J_regressor: (J, V) float32 maps shaped rest vertices to rest joint positions.
    shapedirs: (V, 3, S) float32 linear shape basis.
    posedirs: (V, 3, P) float32 pose correctives driven by (R_j - I) of joints 1..J-1
        flattened (P = 9 * (J - 1)), or None.
    keypoint_joints: (21,) int64, for each OP21 keypoint the skeleton joint whose posed position
        it is, or -1 for the five fingertips (taken from `tip_vertex_ids`).
    tip_vertex_ids: (5,) int64 fingertip vertices (thumb, index, middle, ring, little).
    kp_regressor: (21, V) float32 regresses OP21 keypoints from posed vertices (for networks
        that predict vertices only).
    regions: (V,) int8 region per vertex: 0 palm, 1 thumb, 2 index, 3 middle, 4 ring, 5 little.
    uv: (V, 2) float32 texture coordinates, or None.
    pose_mean: (J, 3) float32 axis-angle added to every pose (MANO's hands_mean when
        flat_hand_mean is False); zeros for OpenHand.
    pose_pca: (C, 3 * (J - 1)) float32 PCA pose basis over the finger joints, or None.
    bone_frames: (J, 3, 3) float32 anatomical axes of each joint in the rest pose, columns
        (flexion axis, abduction axis, twist axis = bone direction), or None.
    joint_limits: (J, 3, 2) float32 [min, max] radians of (flexion, abduction, twist) per joint,
        or None.
    meta: free-form provenance (source, licence, version).
    """

    name: str
    v_template: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    parents: np.ndarray
    joint_names: list[str]
    J_regressor: np.ndarray
    shapedirs: np.ndarray
    keypoint_joints: np.ndarray
    tip_vertex_ids: np.ndarray
    kp_regressor: np.ndarray
    regions: np.ndarray
    posedirs: np.ndarray | None = None
    uv: np.ndarray | None = None
    pose_mean: np.ndarray | None = None
    pose_pca: np.ndarray | None = None
    bone_frames: np.ndarray | None = None
    joint_limits: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_joints(self) -> int:
        return int(self.parents.shape[0])

    @property
    def num_shape(self) -> int:
        return int(self.shapedirs.shape[-1])

    def validate(self) -> "HandModelData":
        """Check shapes and invariants; raise ValueError naming the first problem."""
        V, J = self.num_vertices, self.num_joints
        checks = [
            (self.v_template.shape == (V, 3), f"v_template must be (V,3), got {self.v_template.shape}"),
            (self.faces.ndim == 2 and self.faces.shape[1] == 3, f"faces must be (F,3), got {self.faces.shape}"),
            (self.faces.size == 0 or (self.faces.min() >= 0 and self.faces.max() < V), "faces index out of range"),
            (self.weights.shape == (V, J), f"weights must be ({V},{J}), got {self.weights.shape}"),
            (int(self.parents[0]) == -1, "parents[0] must be -1"),
            (bool(np.all(self.parents[1:] < np.arange(1, J))), "parents must precede children"),
            (len(self.joint_names) == J, f"need {J} joint names, got {len(self.joint_names)}"),
            (self.J_regressor.shape == (J, V), f"J_regressor must be ({J},{V}), got {self.J_regressor.shape}"),
            (self.shapedirs.shape[:2] == (V, 3), f"shapedirs must be ({V},3,S), got {self.shapedirs.shape}"),
            (self.keypoint_joints.shape == (21,), f"keypoint_joints must be (21,), got {self.keypoint_joints.shape}"),
            (self.tip_vertex_ids.shape == (5,), f"tip_vertex_ids must be (5,), got {self.tip_vertex_ids.shape}"),
            (self.kp_regressor.shape == (21, V), f"kp_regressor must be (21,{V}), got {self.kp_regressor.shape}"),
            (self.regions.shape == (V,), f"regions must be ({V},), got {self.regions.shape}"),
            (np.allclose(self.weights.sum(1), 1.0, atol=1e-3), "skinning weight rows must sum to 1"),
        ]
        if self.posedirs is not None:
            checks.append((self.posedirs.shape == (V, 3, 9 * (J - 1)), f"posedirs must be ({V},3,{9 * (J - 1)})"))
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"{self.name} hand model: {msg}")
        return self
