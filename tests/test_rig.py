"""Rigged GLB: a standard glTF reader (pygltflib) and trimesh load it, the joints come in the
documented order, and skinning the file's own data reproduces the model's posed mesh."""

from __future__ import annotations

import io

import numpy as np
import pygltflib as gl
import pytest
import torch

from handrecon.geometry.rotations import quaternion_to_axis_angle, axis_angle_to_matrix
from handrecon.hand.model import HandModel
from handrecon.hand.pose import sample_poses, sample_shapes
from handrecon.infer.rig import rigged_glb


def read(doc: gl.GLTF2, accessor: int) -> np.ndarray:
    acc = doc.accessors[accessor]
    view = doc.bufferViews[acc.bufferView]
    dtype = {gl.FLOAT: np.float32, gl.UNSIGNED_SHORT: np.uint16, gl.UNSIGNED_INT: np.uint32}[acc.componentType]
    width = {gl.SCALAR: 1, gl.VEC3: 3, gl.VEC4: 4, gl.MAT4: 16}[acc.type]
    blob = doc.binary_blob()
    return np.frombuffer(blob[view.byteOffset: view.byteOffset + view.byteLength], dtype).reshape(acc.count, width)


def skin_from_file(doc: gl.GLTF2, frame: int) -> np.ndarray:
    """Vertices the file describes at keyframe `frame`, by plain linear blend skinning."""
    skin = doc.skins[0]
    prim = doc.meshes[0].primitives[0]
    v = read(doc, prim.attributes.POSITION).astype(np.float64)
    joints, weights = read(doc, prim.attributes.JOINTS_0), read(doc, prim.attributes.WEIGHTS_0).astype(np.float64)
    ibm = read(doc, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
    anim = {}
    for ch in (doc.animations[0].channels if doc.animations else []):
        anim[(ch.target.node, ch.target.path)] = read(doc, doc.animations[0].samplers[ch.sampler].output)[frame]

    def local(n: int) -> np.ndarray:
        node = doc.nodes[n]
        q = anim.get((n, "rotation"), node.rotation)
        t = anim.get((n, "translation"), node.translation)
        R = axis_angle_to_matrix(quaternion_to_axis_angle(torch.tensor([[q[3], q[0], q[1], q[2]]], dtype=torch.float64)))[0]
        M = np.eye(4)
        M[:3, :3], M[:3, 3] = R.numpy(), t
        return M

    parent = {c: i for i, n in enumerate(doc.nodes) for c in (n.children or [])}
    world = {}
    for n in skin.joints:  # parents come first in the model's order
        world[n] = (world[parent[n]] if parent[n] in world else np.eye(4)) @ local(n)
    mats = np.stack([world[n] @ ibm[k] for k, n in enumerate(skin.joints)])
    vh = np.concatenate([v, np.ones((len(v), 1))], 1)
    return np.einsum("vk,vkij,vj->vi", weights, mats[joints], vh)[:, :3]


@pytest.mark.parametrize("side", ["right", "left"])
def test_rigged_glb_reproduces_the_model(side):
    model = HandModel.openhand(side)
    T = 3
    pose = sample_poses(model, T, kind="mixed", seed=0, global_orient="random")
    shape = sample_shapes(model, 1, seed=1)
    transl = torch.tensor([[0.0, 0.0, 0.5], [0.01, 0.0, 0.5], [0.02, 0.01, 0.52]])
    data = rigged_glb(model, pose.numpy(), shape[0].numpy(), transl.numpy(), times=np.arange(T) / 25)
    doc = gl.GLTF2.load_from_bytes(data)
    assert [doc.nodes[n].name for n in doc.skins[0].joints] == model.joint_names
    assert len(doc.animations[0].channels) == model.num_joints + 1
    with torch.no_grad():
        target = model(pose, shape.expand(T, -1), transl).vertices.numpy()
    for t in range(T):
        err = np.linalg.norm(skin_from_file(doc, t) - target[t], axis=-1)
        assert err.mean() < 1e-3 and err.max() < 5e-3, (err.mean(), err.max())  # 4 influences per vertex
    import trimesh

    scene = trimesh.load(io.BytesIO(data), file_type="glb")
    assert sum(len(g.vertices) for g in scene.geometry.values()) == model.num_vertices


def test_a_single_pose_has_no_animation():
    model = HandModel.openhand()
    doc = gl.GLTF2.load_from_bytes(rigged_glb(model, np.zeros((1, model.num_joints, 3))))
    assert not doc.animations and len(doc.skins[0].joints) == model.num_joints
