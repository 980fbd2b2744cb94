"""Anatomical joint frames and limits, and a sampler of plausible hand poses.

Each skeleton joint has an anatomical frame (J, 3, 3) whose columns are the flexion axis, the
abduction axis and the twist axis (= bone direction), in the model's canonical rest frame, and
limits (J, 3, 2) in radians for (flexion, abduction, twist). A joint's rotation is the
axis-angle vector `frame @ (flex, abd, twist)`, so anatomical angles and model axis-angles
convert linearly both ways. Signs (right hand): positive flexion curls towards the palm;
positive abduction moves a finger towards the thumb side (for the thumb: away from the palm).

Models without frames/limits (MANO) get frames derived from the rest skeleton and generic
human limits, by the role of each joint (read from `keypoint_joints`).
"""

from __future__ import annotations

import numpy as np
import torch

from handrecon.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from handrecon.hand.model import mirror_axis_angle
from handrecon.hand.model_data import HandModelData

KINDS = ("random", "open", "fist", "pinch", "point", "grasp", "relaxed", "peace", "thumbs_up", "ok")
GLOBAL_ORIENTS = ("zero", "random", "natural", "mixed")
ROLES = ("root", "thumb_cmc", "thumb_mcp", "thumb_ip", "mcp", "pip", "dip", "other")

# Limits (radians) per role: (flexion, abduction, twist) x (min, max).
ROLE_LIMITS = {
    "root": ((-np.pi, np.pi), (-np.pi, np.pi), (-np.pi, np.pi)),
    "thumb_cmc": ((-0.4, 0.8), (-0.3, 0.8), (-0.3, 0.5)),
    "thumb_mcp": ((-0.1, 1.0), (-0.15, 0.15), (-0.2, 0.2)),
    "thumb_ip": ((-0.3, 1.4), (-0.05, 0.05), (-0.1, 0.1)),
    "mcp": ((-0.3, 1.6), (-0.35, 0.35), (-0.15, 0.15)),
    "pip": ((0.0, 1.9), (-0.05, 0.05), (-0.1, 0.1)),
    "dip": ((0.0, 1.3), (-0.05, 0.05), (-0.1, 0.1)),
    "other": ((-0.05, 0.25), (-0.05, 0.05), (-0.05, 0.05)),
}

# Flexion ranges (radians) by role: the tables a pose kind assigns to each finger.
_FLEX = {
    "open": {"thumb_cmc": (-0.3, 0.1), "thumb_mcp": (0.0, 0.2), "thumb_ip": (-0.2, 0.2),
             "mcp": (-0.2, 0.2), "pip": (0.0, 0.2), "dip": (0.0, 0.15), "other": (-0.05, 0.05)},
    "fist": {"thumb_cmc": (0.4, 0.8), "thumb_mcp": (0.5, 0.9), "thumb_ip": (0.5, 1.0),
             "mcp": (1.3, 1.6), "pip": (1.5, 1.9), "dip": (0.8, 1.3), "other": (0.1, 0.25)},
    "curl": {"mcp": (0.4, 0.6), "pip": (0.7, 1.0), "dip": (0.3, 0.6)},
    "pinch_thumb": {"thumb_cmc": (0.2, 0.4), "thumb_mcp": (0.0, 0.3), "thumb_ip": (0.3, 0.6)},
    # a power grasp around a handle or a cup: every finger half closed, the thumb opposed
    "grasp": {"thumb_cmc": (0.3, 0.6), "thumb_mcp": (0.2, 0.5), "thumb_ip": (0.2, 0.6),
              "mcp": (0.7, 1.1), "pip": (0.8, 1.3), "dip": (0.4, 0.8), "other": (0.0, 0.15)},
    # a hand at rest, hanging or lying: slight, varied flexion
    "relaxed": {"thumb_cmc": (-0.1, 0.3), "thumb_mcp": (0.1, 0.4), "thumb_ip": (0.0, 0.5),
                "mcp": (0.1, 0.6), "pip": (0.2, 0.8), "dip": (0.1, 0.5), "other": (0.0, 0.1)},
}
# Per kind: the table of each finger (thumb, index, middle, ring, little; joints of the palm
# follow the middle finger); a role a table lacks takes "open"'s range. Abduction and twist are drawn within the limits shrunk around their
# midpoint by the kind's spread. "random" draws every angle uniformly within the limits.
_KIND_FINGERS = {
    "open": ("open",) * 5,
    "fist": ("fist",) * 5,
    "pinch": ("pinch_thumb",) + ("curl",) * 4,
    "point": ("fist", "open", "fist", "fist", "fist"),
    "grasp": ("grasp",) * 5,
    "relaxed": ("relaxed",) * 5,
    "peace": ("fist", "open", "open", "fist", "fist"),
    "thumbs_up": ("open", "fist", "fist", "fist", "fist"),
    "ok": ("pinch_thumb", "curl", "open", "open", "open"),
}
_SPREAD = {"open": 0.8, "fist": 0.2, "pinch": 0.3, "point": 0.3, "grasp": 0.3, "relaxed": 0.6, "peace": 0.6,
           "thumbs_up": 0.3, "ok": 0.5}


def joint_roles(data: HandModelData) -> tuple[list[str], np.ndarray]:
    """Role (one of ROLES) and finger (0 palm, 1 thumb .. 5 little) of each skeleton joint."""
    roles, finger = ["other"] * data.num_joints, np.zeros(data.num_joints, np.int64)
    roles[0] = "root"
    names = (("thumb_cmc", "thumb_mcp", "thumb_ip"),) + (("mcp", "pip", "dip"),) * 4
    for f, triple in enumerate(names):
        for k, role in enumerate(triple):
            j = int(data.keypoint_joints[4 * f + 1 + k])
            if j > 0:
                roles[j], finger[j] = role, f + 1
    return roles, finger


def default_bone_frames(data: HandModelData) -> np.ndarray:
    """(J, 3, 3) anatomical frames (columns flexion, abduction, twist) from the rest skeleton.

    Twist = direction to the next joint along the finger (the fingertip vertex for the last
    joint); flexion axis = twist x volar, where volar is the palm normal for fingers and, for
    the thumb, the direction from the joint to a point in front of the palm centre.
    """
    joints = data.J_regressor.astype(np.float64) @ data.v_template
    kp = np.where(data.keypoint_joints >= 0, data.keypoint_joints, 0)
    kp_pos = joints[kp]
    kp_pos[data.keypoint_joints < 0] = data.v_template[data.tip_vertex_ids]
    wrist, index, middle, little = kp_pos[0], kp_pos[5], kp_pos[9], kp_pos[17]
    fwd = _unit(middle - wrist)
    volar = -_unit(np.cross(fwd, _unit(index - little)))  # right hand: thumb side x fingers
    hand_len = np.linalg.norm(middle - wrist)
    palm_front = kp_pos[[0, 5, 9, 13, 17]].mean(0) + 0.2 * hand_len * volar
    roles, _ = joint_roles(data)

    twist = np.zeros_like(joints)
    normal = np.repeat(volar[None], len(joints), 0)
    for j in range(len(joints)):
        children = np.flatnonzero(data.parents == j)
        if j == 0:
            twist[j] = fwd
        elif j in data.keypoint_joints:
            k = int(np.flatnonzero(data.keypoint_joints == j)[0])
            twist[j] = kp_pos[k + 1] - joints[j]
        elif len(children):
            twist[j] = joints[children].mean(0) - joints[j]
        else:
            twist[j] = twist[data.parents[j]]
        if roles[j].startswith("thumb"):
            normal[j] = palm_front - joints[j]
    twist = _unit(twist)
    flex = _unit(np.cross(twist, normal))
    abd = np.cross(twist, flex)
    return np.stack([flex, abd, twist], -1).astype(np.float32)


def default_joint_limits(data: HandModelData) -> np.ndarray:
    """(J, 3, 2) generic human limits (radians) by joint role."""
    roles, _ = joint_roles(data)
    return np.asarray([ROLE_LIMITS[r] for r in roles], np.float32)


def frames_and_limits(source) -> tuple[np.ndarray, np.ndarray]:
    """The model's bone_frames and joint_limits, or the derived defaults when absent."""
    data = _data(source)
    frames = data.bone_frames if data.bone_frames is not None else default_bone_frames(data)
    limits = data.joint_limits if data.joint_limits is not None else default_joint_limits(data)
    return frames, limits


def anatomical_to_axis_angle(angles: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """(..., J, 3) (flex, abd, twist) radians -> (..., J, 3) axis-angle in the model frame."""
    return (frames.to(angles) @ angles[..., None])[..., 0]


def axis_angle_to_anatomical(pose: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Inverse of `anatomical_to_axis_angle` (frames are orthonormal)."""
    return (frames.to(pose).transpose(-1, -2) @ pose[..., None])[..., 0]


def sample_poses(
    source,
    n: int,
    kind: str = "random",
    seed: int | None = None,
    generator: torch.Generator | None = None,
    global_orient: str = "zero",
    p_natural: float = 0.6,
) -> torch.Tensor:
    """Sample n plausible poses (n, J, 3) axis-angle, ready for `HandModel.forward`.

    source: a HandModelData (right hand) or a HandModel (its side is respected: left poses are
    mirrored). kind: "random" (uniform within the limits), "open", "fist", "pinch" (thumb and
    index curled towards each other), "point" (index extended), "grasp" (a power grasp: fingers
    half closed round a handle, thumb opposed), "relaxed" (slight varied flexion), "peace" (index
    and middle extended), "thumbs_up", "ok" (thumb-index ring, three fingers open), or "mixed"
    (a kind per sample).
    global_orient: "zero" (wrist unrotated), "random" (uniform over rotations), "natural" (how
    hands are usually seen, `natural_rotations`) or "mixed" (natural with probability
    `p_natural`, else uniform). Deterministic for a given seed / generator state.
    """
    if kind not in KINDS + ("mixed",):
        raise ValueError(f"pose kind must be one of {KINDS + ('mixed',)}, got {kind!r}")
    if global_orient not in GLOBAL_ORIENTS:
        raise ValueError(f"global_orient must be one of {GLOBAL_ORIENTS}, got {global_orient!r}")
    data = _data(source)
    g = generator if generator is not None else torch.Generator().manual_seed(0 if seed is None else seed)
    frames, limits = frames_and_limits(data)
    ranges = torch.as_tensor(_kind_ranges(data, limits), dtype=torch.float32)  # (K,J,3,2)
    if kind == "mixed":
        kinds = torch.randint(len(KINDS), (n,), generator=g)
    else:
        kinds = torch.full((n,), KINDS.index(kind), dtype=torch.long)
    lo, hi = ranges[kinds].unbind(-1)
    angles = lo + torch.rand(lo.shape, generator=g) * (hi - lo)
    angles[:, 0] = 0.0
    pose = anatomical_to_axis_angle(angles, torch.as_tensor(frames))
    if global_orient == "random":
        pose[:, 0] = _random_rotations(n, g)
    elif global_orient in ("natural", "mixed"):
        natural = natural_rotations(data, n, g)
        if global_orient == "mixed":
            uniform = _random_rotations(n, g)
            natural = torch.where((torch.rand(n, generator=g) < p_natural)[:, None], natural, uniform)
        pose[:, 0] = natural
    return _to_model_pose(pose, source)


def natural_rotations(data: HandModelData, n: int, g: torch.Generator) -> torch.Tensor:
    """(n, 3) axis-angle root rotations of a right hand as hands are usually seen (OpenCV camera:
    x right, y down, z forward), about the wrist:

    - palm towards the camera or its back (half each), turned about the vertical by N(0, 40°);
    - fingers up — the wrist below the fingers — rolled about the view axis by N(0, 35°), and in
      15 % of the samples rolled uniformly (wrist above, sideways);
    - tilted about the horizontal by N(0, 30°), and in 25 % of the samples pitched 35-75° away from
      the camera: the egocentric view of one's own hand, seen from above.
    The canonical frame (fingers up, palm towards the camera) is measured on the rest skeleton:
    wrist -> middle-finger base, and the palm's normal from the index and little-finger bases.
    """
    R = torch.as_tensor(_canonical_view(data), dtype=torch.float32)
    deg = torch.pi / 180
    yaw = torch.randn(n, generator=g) * 40 * deg + torch.pi * (torch.rand(n, generator=g) < 0.5)
    roll = torch.randn(n, generator=g) * 35 * deg
    roll = torch.where(torch.rand(n, generator=g) < 0.15, (torch.rand(n, generator=g) * 2 - 1) * torch.pi, roll)
    pitch = torch.randn(n, generator=g) * 30 * deg
    ego = torch.rand(n, generator=g) < 0.25
    pitch = torch.where(ego, (35 + torch.rand(n, generator=g) * 40) * deg, pitch)
    x, y, z = torch.eye(3).unbind(0)
    rot = (axis_angle_to_matrix(z[None] * roll[:, None]) @ axis_angle_to_matrix(x[None] * pitch[:, None])
           @ axis_angle_to_matrix(y[None] * yaw[:, None]) @ R)
    return matrix_to_axis_angle(rot)


def _canonical_view(data: HandModelData) -> np.ndarray:
    """(3, 3) rotation taking the right hand's rest frame to fingers up (-y), palm to the camera (-z)."""
    rest = np.asarray(data.kp_regressor, np.float64) @ np.asarray(data.v_template, np.float64)  # OP21 joints
    wrist, index, middle, little = rest[0], rest[5], rest[9], rest[17]
    up = _unit(middle - wrist)
    palm = _unit(np.cross(little - wrist, index - wrist))  # the right hand's palm side (flexion curls towards it)
    palm = _unit(palm - up * (palm @ up))
    src = np.stack([up, palm, np.cross(up, palm)], 1)
    dst_up, dst_palm = np.array([0.0, -1.0, 0.0]), np.array([0.0, 0.0, -1.0])
    dst = np.stack([dst_up, dst_palm, np.cross(dst_up, dst_palm)], 1)
    return dst @ src.T


def sample_shapes(source_or_num_shape, n: int, scale: float = 1.0, seed: int | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, S) shape coefficients ~ N(0, scale^2) (unit-variance shape bases)."""
    s = source_or_num_shape if isinstance(source_or_num_shape, int) else _data(source_or_num_shape).num_shape
    g = generator if generator is not None else torch.Generator().manual_seed(0 if seed is None else seed)
    return torch.randn(n, s, generator=g) * scale


def clamp_pose(pose: torch.Tensor, source) -> torch.Tensor:
    """Clamp (B, J, 3) model poses into the joint limits (the root joint is left free)."""
    angles, frames, limits = _anatomical(pose, source)
    lo, hi = limits[..., 0], limits[..., 1]
    clamped = torch.maximum(torch.minimum(angles, hi), lo)
    clamped[:, 0] = angles[:, 0]
    return _to_model_pose(anatomical_to_axis_angle(clamped, frames), source)


def limit_violation(pose: torch.Tensor, source) -> torch.Tensor:
    """(B, J, 3) radians by which each anatomical angle exceeds its limits (0 inside; root 0)."""
    angles, _, limits = _anatomical(pose, source)
    excess = torch.relu(limits[..., 0] - angles) + torch.relu(angles - limits[..., 1])
    excess[:, 0] = 0.0
    return excess


def _anatomical(pose: torch.Tensor, source):
    data = _data(source)
    frames, limits = (torch.as_tensor(a).to(pose) for a in frames_and_limits(data))
    right = _from_model_pose(pose, source)
    return axis_angle_to_anatomical(right, frames), frames, limits


def _kind_ranges(data: HandModelData, limits: np.ndarray) -> np.ndarray:
    """(K, J, 3, 2) sampling ranges of the anatomical angles for each kind in KINDS."""
    roles, finger = joint_roles(data)
    mid, half = limits.mean(-1), (limits[..., 1] - limits[..., 0]) / 2
    out = np.repeat(limits[None], len(KINDS), 0).copy()
    for k, kind in enumerate(KINDS[1:], start=1):
        spread = _SPREAD[kind]
        out[k, :, 1:, 0] = mid[:, 1:] - spread * half[:, 1:]
        out[k, :, 1:, 1] = mid[:, 1:] + spread * half[:, 1:]
        for j, role in enumerate(roles):
            if role == "root":
                continue
            table = _FLEX[_KIND_FINGERS[kind][finger[j] - 1 if finger[j] > 0 else 2]]  # palm joints: as the middle finger
            out[k, j, 0] = table.get(role, _FLEX["open"].get(role, (0.0, 0.0)))
    return np.clip(out, limits[None, ..., :1], limits[None, ..., 1:])


def _random_rotations(n: int, g: torch.Generator) -> torch.Tensor:
    """(n, 3) axis-angle of rotations uniform over SO(3)."""
    q = torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1)
    q = torch.where(q[:, :1] < 0, -q, q)
    half = torch.atan2(q[:, 1:].norm(dim=-1), q[:, 0])
    return torch.nn.functional.normalize(q[:, 1:], dim=-1) * (2 * half)[:, None]


def _to_model_pose(right_pose: torch.Tensor, source) -> torch.Tensor:
    """Right-hand full rotations -> the model's pose input (minus pose_mean, mirrored for left)."""
    data = _data(source)
    if data.pose_mean is not None:
        right_pose = right_pose - torch.as_tensor(data.pose_mean).to(right_pose)
    if getattr(source, "side", "right") == "left":
        return mirror_axis_angle(right_pose)
    return right_pose


def _from_model_pose(pose: torch.Tensor, source) -> torch.Tensor:
    data = _data(source)
    if getattr(source, "side", "right") == "left":
        pose = mirror_axis_angle(pose)
    if data.pose_mean is not None:
        pose = pose + torch.as_tensor(data.pose_mean).to(pose)
    return pose


def _data(source) -> HandModelData:
    data = getattr(source, "data", source)
    if not isinstance(data, HandModelData):
        raise TypeError(f"expected a HandModelData or HandModel, got {type(source).__name__}")
    return data


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True).clip(1e-12)
