"""FreiHAND loader on a tiny fixture in the real on-disk layout (N = 3 instead of 32560)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from PIL import Image

from handrecon.data import DatasetError
from handrecon.data.loaders import build_dataset

N = 3


def write_freihand(root, n=N, eval_gt=True):
    rng = np.random.default_rng(0)

    def dump(name, arr):
        (root / name).write_text(json.dumps(np.asarray(arr).tolist()))

    def gt(prefix, m):
        K = np.tile(np.array([[500.0, 0, 112], [0, 510, 110], [0, 0, 1]]), (m, 1, 1))
        K[:, 0, 0] += np.arange(m)
        xyz = rng.normal(size=(m, 21, 3)) * 0.03 + [0.0, 0.0, 0.7]
        verts = rng.normal(size=(m, 778, 3)) * 0.04 + xyz[:, :1]
        mano = rng.normal(size=(m, 1, 61))
        dump(f"{prefix}_K.json", K)
        dump(f"{prefix}_scale.json", rng.uniform(0.5, 1, m))
        return K, xyz, verts, mano

    K, xyz, verts, mano = gt("training", n)
    for name, arr in (("xyz", xyz), ("verts", verts), ("mano", mano)):
        dump(f"training_{name}.json", arr)
    (root / "training" / "rgb").mkdir(parents=True)
    (root / "training" / "mask").mkdir(parents=True)
    for k in range(4):  # 4 versions, each image coloured by its version
        for i in range(n):
            Image.new("RGB", (224, 224), (60 * k, 0, 0)).save(root / "training" / "rgb" / f"{i + n * k:08d}.jpg")
    for i in range(n):
        Image.new("L", (224, 224), 255).save(root / "training" / "mask" / f"{i:08d}.jpg")
    eK, exyz, everts, emano = gt("evaluation", 2)
    if eval_gt:
        for name, arr in (("xyz", exyz), ("verts", everts), ("mano", emano)):
            dump(f"evaluation_{name}.json", arr)
    (root / "evaluation" / "rgb").mkdir(parents=True)
    for i in range(2):
        Image.new("RGB", (224, 224)).save(root / "evaluation" / "rgb" / f"{i:08d}.jpg")
    return K, xyz, verts, mano


def test_training_samples(tmp_path):
    K, xyz, verts, mano = write_freihand(tmp_path)
    ds = build_dataset("freihand", tmp_path, "train")
    assert len(ds) == 4 * N
    s = ds[N + 1]  # version 1 ("hom") of sample 1
    assert s.image_path.name == f"{1 + N:08d}.jpg" and s.meta["version"] == "hom"
    assert s.meta["mask_path"].name == "00000001.jpg"
    h = s.hands[0]
    assert h.side == "right" and s.source == "freihand"
    np.testing.assert_allclose(s.K, K[1], rtol=1e-6)
    np.testing.assert_allclose(h.keypoints_3d, xyz[1], rtol=1e-5)
    np.testing.assert_allclose(h.vertices, verts[1], rtol=1e-5)
    # 2D keypoints are the projection u = fx x / z + cx, v = fy y / z + cy
    p = xyz[1]
    expected = np.stack([K[1, 0, 0] * p[:, 0] / p[:, 2] + K[1, 0, 2], K[1, 1, 1] * p[:, 1] / p[:, 2] + K[1, 1, 2]], 1)
    np.testing.assert_allclose(h.keypoints_2d, expected, atol=1e-3)
    np.testing.assert_allclose(h.pose, mano[1, 0, :48].reshape(16, 3), rtol=1e-5)
    np.testing.assert_allclose(h.shape, mano[1, 0, 48:58], rtol=1e-5)
    # the box encloses the projected mesh
    v2d = verts[1][:, :2] / verts[1][:, 2:] * K[1, [0, 1], [0, 1]] + K[1, :2, 2]
    np.testing.assert_allclose(h.box, [*v2d.min(0), *v2d.max(0)], atol=1e-2)
    s.validate()


def test_version_selection_maps_to_ids(tmp_path):
    write_freihand(tmp_path)
    ds = build_dataset("freihand", tmp_path, "train", versions=("gs", "auto"), load_vertices=False)
    assert len(ds) == 2 * N
    names = [ds[i].image_path.name for i in range(len(ds))]
    assert names == [f"{i:08d}.jpg" for i in [0, 1, 2, 9, 10, 11]]
    assert ds[N].image[..., 0].mean() == pytest.approx(180, abs=3)  # version 3 colour
    assert ds[0].hands[0].vertices is None


def test_evaluation_split(tmp_path, caplog):
    write_freihand(tmp_path)
    ds = build_dataset("freihand", tmp_path, "evaluation")
    assert len(ds) == 2 and ds[1].image_path.name == "00000001.jpg" and ds[1].hands[0].keypoints_3d is not None
    for f in ("xyz", "verts", "mano"):
        (tmp_path / f"evaluation_{f}.json").unlink()
    with caplog.at_level(logging.WARNING, logger="handrecon.data"):
        ds = build_dataset("freihand", tmp_path, "eval")
    assert ds[0].hands == [] and ds[0].K is not None


def test_errors_name_file_and_problem(tmp_path):
    write_freihand(tmp_path)
    (tmp_path / "training_xyz.json").write_text(json.dumps(np.zeros((100, 21, 3)).tolist()))
    with pytest.raises(DatasetError, match=r"training_xyz\.json: has 100 entries but 3 were expected"):
        build_dataset("freihand", tmp_path, "train")
    (tmp_path / "training_xyz.json").write_text("[[1, 2")
    with pytest.raises(DatasetError, match=r"training_xyz\.json: invalid JSON"):
        build_dataset("freihand", tmp_path, "train")
    (tmp_path / "training_xyz.json").unlink()
    with pytest.raises(DatasetError, match=r"training_xyz\.json: JSON file not found"):
        build_dataset("freihand", tmp_path, "train")
    (tmp_path / "training_xyz.json").write_text(json.dumps(np.zeros((3, 20, 3)).tolist()))
    with pytest.raises(DatasetError, match=r"training_xyz\.json: each entry must have shape \(21, 3\)"):
        build_dataset("freihand", tmp_path, "train")


def test_check_files_reports_missing_image(tmp_path):
    write_freihand(tmp_path)
    (tmp_path / "training" / "rgb" / "00000010.jpg").unlink()
    with pytest.raises(DatasetError, match=r"1 of 12 images missing \(first: 00000010\.jpg\)"):
        build_dataset("freihand", tmp_path, "train", check_files=True)
