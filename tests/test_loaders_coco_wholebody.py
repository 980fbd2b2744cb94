"""COCO-WholeBody hands on a tiny annotation file in the real format: grouping, sides, boxes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from handrecon.data import DatasetError
from handrecon.data.loaders import build_dataset


def kpts(seed, v=2.0):
    r = np.random.default_rng(seed)
    k = np.concatenate([r.uniform(0, 300, (21, 2)), np.full((21, 1), v)], 1)
    k[0] = 0  # an unlabeled keypoint: x = y = v = 0
    return k.ravel().tolist()


def person(aid, image_id, left_valid, right_valid):
    return {
        "id": aid, "image_id": image_id, "category_id": 1, "keypoints": [0] * 51, "num_keypoints": 0,
        "lefthand_valid": left_valid, "righthand_valid": right_valid,
        "lefthand_kpts": kpts(aid) if left_valid else [0] * 63, "righthand_kpts": kpts(aid + 100, 0.7) if right_valid else [0] * 63,
        "lefthand_box": [10, 20, 30, 40] if left_valid else [0, 0, 0, 0], "righthand_box": [50, 60, 5, 6] if right_valid else [0, 0, 0, 0],
        "face_valid": False, "foot_valid": False,
    }


def write_coco(root):
    (root / "annotations").mkdir(parents=True)
    doc = {
        "images": [{"id": i, "file_name": f"{i:012d}.jpg", "height": 480, "width": 640} for i in (1, 2, 3)],
        "annotations": [person(1, 1, True, False), person(2, 1, True, True), person(3, 2, False, False), person(4, 3, False, True)],
        "categories": [{"id": 1, "name": "person"}],
    }
    (root / "annotations" / "coco_wholebody_val_v1.0.json").write_text(json.dumps(doc))


def test_hands_grouped_per_image(tmp_path):
    write_coco(tmp_path)
    ds = build_dataset("coco_wholebody", tmp_path, "val")
    assert len(ds) == 2  # image 2 has no valid hand
    s = ds[0]
    assert s.sample_id == "1" and s.image_path == tmp_path / "val2017" / "000000000001.jpg" and s.K is None
    assert [h.side for h in s.hands] == ["left", "left", "right"]
    np.testing.assert_allclose(s.hands[0].box, [10, 20, 40, 60])  # xywh -> xyxy
    np.testing.assert_allclose(s.hands[2].box, [50, 60, 55, 66])
    k = np.asarray(kpts(2)).reshape(21, 3)
    np.testing.assert_allclose(s.hands[1].keypoints_2d, k[:, :2], rtol=1e-6)
    assert s.hands[1].keypoints_valid.tolist() == [False] + [True] * 20
    assert s.hands[2].keypoints_valid[1:].all()  # fractional v > 0 counts as reliable
    assert ds[1].hands[0].side == "right"
    assert len(build_dataset("coco_wholebody", tmp_path, "val", include_empty=True)) == 3
    ds[0].hands[0].keypoints_2d[:] = -1  # samples are copies; the index is untouched
    assert ds[0].hands[0].keypoints_2d.max() > 0


def test_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"coco_wholebody_val_v1\.0\.json: JSON file not found"):
        build_dataset("coco_wholebody", tmp_path, "val")
    write_coco(tmp_path)
    p = tmp_path / "annotations" / "coco_wholebody_val_v1.0.json"
    doc = json.loads(p.read_text())
    doc["annotations"][0]["lefthand_kpts"] = [0] * 60
    p.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=r"annotation id 1: bad hand fields"):
        build_dataset("coco_wholebody", tmp_path, "val")
    p.write_text(json.dumps({"images": []}))
    with pytest.raises(DatasetError, match="not a COCO annotation file"):
        build_dataset("coco_wholebody", tmp_path, "val")
