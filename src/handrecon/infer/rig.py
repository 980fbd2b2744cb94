"""Rigged exports: the hand model as a skinned glTF 2.0 binary (GLB), posed by fitted parameters
(`handrecon.fit`), one keyframe per frame for a video.

The GLB holds the bind-pose mesh of the fitted shape (the model's faces for its side), one node
per skeleton joint in the model's kinematic tree and `joint_names` order (local rest offsets,
rotations from the pose), inverse bind matrices, and per-vertex JOINTS_0 / WEIGHTS_0 — the model's
linear-blend-skinning weights, the 4 largest per vertex renormalised (glTF's limit). With several
frames an animation samples every joint's rotation and the root's translation (LINEAR, at the
video's times). Coordinates are the camera's (OpenCV, metres) under a root node turned 180° about
x, so glTF readers (y up) show it upright; BVH is not written. MANO's pose correctives are not
representable in glTF skinning and are left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pygltflib as gl
import torch

from handrecon.geometry.rotations import axis_angle_to_matrix, matrix_to_quaternion
from handrecon.hand.model import HandModel
from handrecon.utils.io import atomic_write_bytes

MAX_INFLUENCES = 4


def rigged_glb(model: HandModel, pose: np.ndarray, shape: np.ndarray | None = None,
               transl: np.ndarray | None = None, times: np.ndarray | None = None) -> bytes:
    """GLB bytes of `model` (its side) with shape (S,) posed by pose (T, J, 3) model inputs and
    transl (T, 3) m; times (T,) seconds (default 1/30 s apart) when T > 1 (an animation)."""
    pose = np.asarray(pose, np.float32).reshape(-1, model.num_joints, 3)
    T, J = pose.shape[:2]
    transl = np.zeros((T, 3), np.float32) if transl is None else np.asarray(transl, np.float32).reshape(T, 3)
    times = np.arange(T, dtype=np.float32) / 30.0 if times is None else np.asarray(times, np.float32)
    beta = None if shape is None else torch.as_tensor(np.asarray(shape, np.float32))[None]
    with torch.no_grad():
        v_rest, j_rest = (x[0].numpy().astype(np.float32) for x in model.shaped(beta, 1))
        rot = axis_angle_to_matrix(torch.as_tensor(pose) + model.pose_mean)  # (T, J, 3, 3)
        quat = matrix_to_quaternion(rot).numpy()[..., [1, 2, 3, 0]].astype(np.float32)  # glTF: x, y, z, w
    parents = model.parents.numpy()
    local_t = j_rest - np.where(parents[:, None] >= 0, j_rest[np.maximum(parents, 0)], 0.0)
    root_t = (j_rest[0] + transl).astype(np.float32)  # (T, 3)

    weights = model.weights.numpy()
    top = np.argsort(-weights, axis=1)[:, :MAX_INFLUENCES]
    w = np.take_along_axis(weights, top, 1)
    w = (w / w.sum(1, keepdims=True)).astype(np.float32)
    ibm = np.tile(np.eye(4, dtype=np.float32), (J, 1, 1))
    ibm[:, :3, 3] = -j_rest  # rest rotations are the identity: the inverse bind is a translation
    faces = model.faces.numpy().astype(np.uint32)

    blobs: list[bytes] = []
    views: list[gl.BufferView] = []
    accessors: list[gl.Accessor] = []

    def add(array: np.ndarray, kind: str, component: int, target: int | None = None, bounds: bool = False) -> int:
        data = np.ascontiguousarray(array).tobytes()
        offset = sum(len(b) for b in blobs)
        blobs.append(data + b"\0" * (-len(data) % 4))
        views.append(gl.BufferView(buffer=0, byteOffset=offset, byteLength=len(data), target=target))
        count = len(array)
        acc = gl.Accessor(bufferView=len(views) - 1, componentType=component, count=count, type=kind)
        if bounds:
            acc.min, acc.max = array.min(0).tolist(), array.max(0).tolist()
        accessors.append(acc)
        return len(accessors) - 1

    pos = add(v_rest, gl.VEC3, gl.FLOAT, gl.ARRAY_BUFFER, bounds=True)
    jnt = add(top.astype(np.uint16), gl.VEC4, gl.UNSIGNED_SHORT, gl.ARRAY_BUFFER)
    wgt = add(w, gl.VEC4, gl.FLOAT, gl.ARRAY_BUFFER)
    idx = add(faces.reshape(-1), gl.SCALAR, gl.UNSIGNED_INT, gl.ELEMENT_ARRAY_BUFFER)
    ibm_acc = add(ibm.transpose(0, 2, 1).reshape(J, 16), gl.MAT4, gl.FLOAT)  # column-major

    first_joint = 2  # node 0: the scene root (OpenCV -> glTF), node 1: the mesh
    nodes = [gl.Node(name="hand", rotation=[1.0, 0.0, 0.0, 0.0], children=[1, first_joint]),
             gl.Node(name="hand_mesh", mesh=0, skin=0)]
    for j in range(J):
        children = [first_joint + c for c in np.flatnonzero(parents == j)]
        t = root_t[0] if j == 0 else local_t[j]
        nodes.append(gl.Node(name=model.joint_names[j], translation=t.tolist(), rotation=quat[0, j].tolist(),
                             children=[int(c) for c in children]))
    prim = gl.Primitive(attributes=gl.Attributes(POSITION=pos, JOINTS_0=jnt, WEIGHTS_0=wgt), indices=idx)
    doc = gl.GLTF2(scene=0, scenes=[gl.Scene(nodes=[0])], nodes=nodes,
                   meshes=[gl.Mesh(name=f"{model.name}_{model.side}", primitives=[prim])],
                   skins=[gl.Skin(joints=list(range(first_joint, first_joint + J)), inverseBindMatrices=ibm_acc,
                                  skeleton=first_joint)],
                   asset=gl.Asset(generator="handrecon"))
    if T > 1:
        time_acc = add(times, gl.SCALAR, gl.FLOAT, bounds=False)
        accessors[time_acc].min, accessors[time_acc].max = [float(times.min())], [float(times.max())]
        samplers, channels = [], []
        for j in range(J):
            samplers.append(gl.AnimationSampler(input=time_acc, output=add(quat[:, j], gl.VEC4, gl.FLOAT),
                                                interpolation="LINEAR"))
            channels.append(gl.AnimationChannel(sampler=len(samplers) - 1,
                                                target=gl.AnimationChannelTarget(node=first_joint + j, path="rotation")))
        samplers.append(gl.AnimationSampler(input=time_acc, output=add(root_t, gl.VEC3, gl.FLOAT), interpolation="LINEAR"))
        channels.append(gl.AnimationChannel(sampler=len(samplers) - 1,
                                            target=gl.AnimationChannelTarget(node=first_joint, path="translation")))
        doc.animations = [gl.Animation(name="hand", samplers=samplers, channels=channels)]
    blob = b"".join(blobs)
    doc.buffers = [gl.Buffer(byteLength=len(blob))]
    doc.bufferViews, doc.accessors = views, accessors
    doc.set_binary_blob(blob)
    return b"".join(doc.save_to_bytes())


def save_rigged_glb(path: str | Path, model: HandModel, fit: dict | list[dict], times: np.ndarray | None = None) -> Path:
    """Write `rigged_glb` for one fit (``HandResult.fit``) or a list of them (a track's frames, bound
    in their mean shape)."""
    fits = fit if isinstance(fit, list) else [fit]
    shape = np.mean([f["shape"] for f in fits], 0)  # one bind shape: the mean over the frames
    data = rigged_glb(model, np.array([f["pose"] for f in fits]), shape,
                      np.array([f["transl"] for f in fits]), times)
    atomic_write_bytes(Path(path), data)
    return Path(path)


__all__ = ["MAX_INFLUENCES", "rigged_glb", "save_rigged_glb"]
