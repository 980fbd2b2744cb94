"""OneHand10K loader on a tiny label_joint.txt in the original release format."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from handrecon.data import DatasetError
from handrecon.data.loaders import build_dataset


def line(name, kp):
    return ",".join([name, "320", "240", "1"] + [str(int(v)) for v in kp.ravel()])


def test_labels_and_missing_keypoints(tmp_path):
    rng = np.random.default_rng(0)
    kp = rng.integers(0, 200, size=(21, 2))
    kp[4] = -1  # unannotated
    two = rng.integers(0, 200, size=(42, 2))
    (tmp_path / "Train" / "source").mkdir(parents=True)
    (tmp_path / "Train" / "label_joint.txt").write_text(line("0.jpg", kp) + "\n" + line("1.jpg", two) + "\n\n")
    Image.new("RGB", (320, 240)).save(tmp_path / "Train" / "source" / "0.jpg")
    ds = build_dataset("onehand10k", tmp_path, "train")
    assert len(ds) == 2
    s = ds[0]
    h = s.hands[0]
    assert h.side is None and s.K is None and s.image.shape == (240, 320, 3)
    np.testing.assert_allclose(h.keypoints_2d, kp)
    assert h.keypoints_valid.tolist() == [i != 4 for i in range(21)]
    ok = np.delete(kp, 4, 0)
    np.testing.assert_allclose(h.box, [*ok.min(0), *ok.max(0)])
    assert s.meta["mask_path"] == tmp_path / "Train" / "mask" / "0.png"
    assert len(ds[1].hands) == 2  # 84 coordinates = two hands


def test_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"label_joint\.txt: OneHand10K label file not found"):
        build_dataset("onehand10k", tmp_path, "test")
    (tmp_path / "Test").mkdir()
    (tmp_path / "Test" / "label_joint.txt").write_text("0.jpg,10,10,1," + ",".join(["1"] * 40) + "\n")
    with pytest.raises(DatasetError, match=r"label_joint\.txt:1: 40 coordinates, expected a multiple of 42"):
        build_dataset("onehand10k", tmp_path, "test")
