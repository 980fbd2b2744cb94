"""HInt loader on a tiny fixture in the real layout: side from the name, validity, occlusion."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from handrecon.data import DatasetError
from handrecon.data.loaders import build_dataset


def write_item(folder, name, kp, occ, bbox=((10, 20, 110, 140),), image=True):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps([{"keypoints": kp, "occlusion": occ, "bbox": [list(b) for b in bbox]}]))
    if image:
        Image.new("RGB", (160, 120)).save(folder / f"{name}.jpg")


def test_sides_visibility_and_subsets(tmp_path, caplog):
    rng = np.random.default_rng(0)
    kp3 = np.concatenate([rng.uniform(0, 100, (21, 2)), np.where(np.arange(21) < 3, 0.0, 1.0)[:, None]], 1)
    occ = [1 if i in (5, 6) else 0 for i in range(21)]
    write_item(tmp_path / "TEST_newdays_img", "ND_abc_frame000001_l", kp3.tolist(), occ)
    write_item(tmp_path / "TEST_epick_img", "EK_0001_P01_frame_0000000249_r", kp3[:, :2].tolist(), [0] * 21)
    write_item(tmp_path / "TEST_ego4d_img", "uuid_12_pre_frame_r", kp3.tolist(), occ, image=False)  # Ego4D frame not retrieved
    write_item(tmp_path / "TRAIN_newdays_img", "ND_x_r", kp3.tolist(), occ)
    ds = build_dataset("hint", tmp_path, "test")
    assert len(ds) == 2 and "no .jpg" in caplog.text
    by_subset = {ds[i].meta["subset"]: ds[i] for i in range(len(ds))}
    left = by_subset["newdays"].hands[0]
    assert left.side == "left" and by_subset["epick"].hands[0].side == "right"
    np.testing.assert_allclose(left.keypoints_2d, kp3[:, :2], rtol=1e-6)
    np.testing.assert_allclose(left.box, [10, 20, 110, 140])
    assert left.keypoints_valid.tolist() == [False] * 3 + [True] * 18  # conf > 0.5
    expected_vis = np.ones(21)
    expected_vis[[0, 1, 2, 5, 6]] = 0  # invalid or occluded
    np.testing.assert_array_equal(left.visibility, expected_vis)
    assert left.meta["occluded"][5] and by_subset["epick"].hands[0].keypoints_valid.all()
    assert by_subset["newdays"].K is None and by_subset["newdays"].sample_id == "TEST_newdays_img/ND_abc_frame000001_l"
    assert len(build_dataset("hint", tmp_path, "test", subsets=("epick",))) == 1
    assert len(build_dataset("hint", tmp_path, "train")) == 1


def test_errors(tmp_path):
    with pytest.raises(DatasetError, match="no VAL_"):
        build_dataset("hint", tmp_path, "val")
    folder = tmp_path / "VAL_epick_img"
    write_item(folder, "a_l", [[0, 0]] * 20, [0] * 21)
    with pytest.raises(DatasetError, match=r"a_l\.json: keypoints must be 21×2 or 21×3, got \(20, 2\)"):
        build_dataset("hint", tmp_path, "val")[0]
    write_item(folder, "a_l", [[0, 0]] * 21, [0] * 21)
    write_item(folder, "b_x", [[0, 0]] * 21, [0] * 21)
    with pytest.raises(DatasetError, match=r"b_x\.json: HInt names end in _l or _r"):
        build_dataset("hint", tmp_path, "val")[1]
    (folder / "a_l.json").write_text("{bad")
    with pytest.raises(DatasetError, match=r"a_l\.json: invalid JSON"):
        build_dataset("hint", tmp_path, "val")[0]
