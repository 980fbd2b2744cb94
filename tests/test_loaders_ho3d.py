"""HO3D v3 loader on a tiny fixture in the real layout: OpenGL -> OpenCV, safe pickles, depth."""

from __future__ import annotations

import logging
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from handrecon.data import DatasetError
from handrecon.data.loaders import build_dataset
from handrecon.data.loaders.ho3d import DEPTH_SCALE, load_ho3d_depth
from handrecon.geometry.rotations import axis_angle_to_matrix
from handrecon.hand.keypoints import mano21_to_op21
from handrecon.hand.model import HandModel

FLIP = np.array([1.0, -1.0, -1.0])
K = np.array([[614.0, 0, 320], [0, 615, 240], [0, 0, 1]])


def write_fake_mano(folder, seed=0, left=False):
    """A MANO-structured pickle of plain numpy arrays (random values, real shapes and names)."""
    rng = np.random.default_rng(seed)
    V, J = 778, 16
    w = rng.random((V, J)) * 0.1
    w[np.arange(V), rng.integers(0, J, V)] += 1
    jreg = np.where(rng.random((J, V)) < 0.02, rng.random((J, V)), 0.0)
    arr = dict(
        v_template=rng.normal(size=(V, 3)) * [0.04, 0.02, 0.01] + [0.09, 0, 0],
        f=rng.choice(V, size=(1538, 3)).astype(np.int64),
        weights=w / w.sum(1, keepdims=True),
        J_regressor=jreg / jreg.sum(1, keepdims=True),
        posedirs=rng.normal(size=(V, 3, 135)) * 1e-3,
        shapedirs=rng.normal(size=(V, 3, 10)) * 5e-3,
        kintree_table=np.array([[-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14], np.arange(J)]),
        hands_components=rng.normal(size=(45, 45)) * 0.3,
        hands_mean=rng.normal(size=45) * 0.2,
    )
    (folder / "MANO_RIGHT.pkl").write_bytes(pickle.dumps(arr, protocol=4))
    if left:  # the mirror image, as the official left file relates to the right one
        m, aa = np.array([-1.0, 1, 1]), np.tile([1.0, -1, -1], 15)
        sign = np.tile(np.outer(m, m).ravel(), 15)
        left_arr = dict(arr, v_template=arr["v_template"] * m, shapedirs=arr["shapedirs"] * m[None, :, None],
                        posedirs=arr["posedirs"] * m[None, :, None] * sign, hands_mean=arr["hands_mean"] * aa,
                        hands_components=arr["hands_components"] * aa)
        (folder / "MANO_LEFT.pkl").write_bytes(pickle.dumps(left_arr, protocol=4))
        return arr, left_arr
    return arr


def gl_joints(rng):
    """HO3D-order joints in the OpenGL frame (in front of the camera means z < 0)."""
    return rng.normal(size=(21, 3)) * 0.03 + [0.02, -0.01, -0.6]


def write_ho3d(root, seed=0):
    rng = np.random.default_rng(seed)
    root.mkdir(exist_ok=True)
    (root / "train.txt").write_text("SEQA/0000\nSEQA/0001\n")
    (root / "evaluation.txt").write_text("SEQB/0000\n")
    metas = {
        ("train", "SEQA", "0000"): dict(camMat=K, handJoints3D=gl_joints(rng), handPose=rng.normal(size=48) * 0.3,
                                        handTrans=np.array([0.01, 0.02, -0.6]), handBeta=rng.normal(size=10),
                                        objRot=np.zeros((3, 1)), objName="003_cracker_box"),
        ("train", "SEQA", "0001"): dict(camMat=K, handJoints3D=None, handPose=None, handTrans=None, handBeta=None),
        ("evaluation", "SEQB", "0000"): dict(camMat=K, handJoints3D=np.array([0.0, 0.05, -0.5]),
                                             handBoundingBox=np.array([100.0, 120, 220, 260]), handPose=None),
    }
    for (split, seq, fid), meta in metas.items():
        for sub in ("rgb", "depth", "meta"):
            (root / split / seq / sub).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (640, 480)).save(root / split / seq / "rgb" / f"{fid}.jpg")
        (root / split / seq / "meta" / f"{fid}.pkl").write_bytes(pickle.dumps(meta, protocol=2))
    return metas


def test_train_converts_opengl_to_opencv(tmp_path, caplog):
    metas = write_ho3d(tmp_path)
    with caplog.at_level(logging.WARNING, logger="handrecon.data"):
        ds = build_dataset("ho3d", tmp_path, "train")
    assert len(ds) == 2
    s = ds[0]
    meta = metas[("train", "SEQA", "0000")]
    h = s.hands[0]
    expected = mano21_to_op21(meta["handJoints3D"]) * FLIP
    np.testing.assert_allclose(h.keypoints_3d, expected, rtol=1e-5)
    assert (h.keypoints_3d[:, 2] > 0).all() and h.side == "right" and h.vertices is None
    uv = expected[:, :2] / expected[:, 2:] * K[[0, 1], [0, 1]] + K[:2, 2]
    np.testing.assert_allclose(h.keypoints_2d, uv, atol=1e-3)
    # root rotation re-expressed in OpenCV: R_cv = diag(1,-1,-1) R_gl; finger rotations unchanged
    R_gl = axis_angle_to_matrix(torch.tensor(meta["handPose"][:3]))
    R_cv = axis_angle_to_matrix(torch.tensor(h.pose[0], dtype=torch.float64))
    np.testing.assert_allclose(R_cv.numpy(), (torch.diag(torch.tensor(FLIP)) @ R_gl).numpy(), atol=1e-5)
    np.testing.assert_allclose(h.pose[1:], meta["handPose"][3:].reshape(15, 3), rtol=1e-5)
    assert h.transl is None  # needs MANO's rest wrist
    assert s.sample_id == "SEQA/0000" and s.meta["depth_path"].name == "0000.png"
    assert ds[1].hands == []  # frame without hand annotation


def test_no_mano_warns_once(tmp_path, caplog):
    write_ho3d(tmp_path)
    from handrecon.data.loaders import common

    common._warned.discard("ho3d-no-mano")
    with caplog.at_level(logging.WARNING, logger="handrecon.data"):
        build_dataset("ho3d", tmp_path, "train")
        build_dataset("ho3d", tmp_path, "train")
    assert sum("joints only" in r.message for r in caplog.records) == 1


def test_mano_vertices_match_opengl_mesh_flipped(tmp_path):
    metas = write_ho3d(tmp_path / "ho3d")
    write_fake_mano(tmp_path)
    h = build_dataset("ho3d", tmp_path / "ho3d", "train", mano_dir=tmp_path)[0].hands[0]
    meta = metas[("train", "SEQA", "0000")]
    m = HandModel.from_mano(tmp_path / "MANO_RIGHT.pkl")
    f32 = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)[None]  # noqa: E731
    with torch.no_grad():
        gl = m(f32(meta["handPose"].reshape(16, 3)) - m.pose_mean, f32(meta["handBeta"]), f32(meta["handTrans"])).vertices[0]
        again = m(f32(h.pose) - m.pose_mean, f32(h.shape), f32(h.transl)).vertices[0]
    np.testing.assert_allclose(h.vertices, gl.numpy() * FLIP, atol=1e-5)
    np.testing.assert_allclose(again.numpy(), h.vertices, atol=1e-5)  # pose/shape/transl reproduce them


def test_evaluation_split(tmp_path):
    write_ho3d(tmp_path)
    s = build_dataset("ho3d", tmp_path, "evaluation")[0]
    h = s.hands[0]
    np.testing.assert_allclose(h.box, [100, 120, 220, 260])
    assert h.keypoints_valid.tolist() == [True] + [False] * 20 and h.keypoints_3d is None
    np.testing.assert_allclose(h.meta["root_3d"], [0.0, -0.05, 0.5])
    np.testing.assert_allclose(h.keypoints_2d[0], [320, 240 - 615 * 0.1], atol=1e-3)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_meta_pickle_is_restricted(tmp_path):
    write_ho3d(tmp_path)
    path = tmp_path / "train" / "SEQA" / "meta" / "0000.pkl"
    path.write_bytes(pickle.dumps({"camMat": K, "x": _Evil()}))
    with pytest.raises(DatasetError, match=r"0000\.pkl: refusing to load .*system"):
        build_dataset("ho3d", tmp_path, "train")[0]
    path.write_bytes(b"\x80\x02garbage")
    with pytest.raises(DatasetError, match=r"0000\.pkl: corrupt pickle"):
        build_dataset("ho3d", tmp_path, "train")[0]
    path.unlink()
    with pytest.raises(DatasetError, match=r"0000\.pkl: pickle file not found"):
        build_dataset("ho3d", tmp_path, "train")[0]


def test_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"train\.txt: HO3D split list not found"):
        build_dataset("ho3d", tmp_path, "train")
    (tmp_path / "train.txt").write_text("justonepart\n")
    with pytest.raises(DatasetError, match=r"lines must be 'SEQ/ID'"):
        build_dataset("ho3d", tmp_path, "train")


def test_depth_decoding(tmp_path):
    d = np.array([[0, 1000], [4660, 65535]])
    img = np.zeros((2, 2, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = d % 256, d // 256, 77  # red = low byte, green = high, blue unused
    Image.fromarray(img).save(tmp_path / "d.png")
    np.testing.assert_allclose(load_ho3d_depth(tmp_path / "d.png"), d * DEPTH_SCALE, rtol=1e-6)
