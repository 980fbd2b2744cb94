"""Sample schema, box helper and the one image reader (EXIF orientation, errors naming the file)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from handrecon.data import DatasetError, HandAnnotation, Sample, box_from_keypoints, load_image


def hand(**kw):
    args = dict(side="right", box=[0, 0, 10, 10], keypoints_2d=np.zeros((21, 2)), visibility=np.ones(21))
    args.update(kw)
    return HandAnnotation(**args)


def test_hand_coerces_and_defaults():
    h = hand(keypoints_3d=np.ones((21, 3)))
    assert h.keypoints_2d.dtype == np.float32 and h.keypoints_3d.dtype == np.float32
    assert h.keypoints_valid.dtype == bool and h.keypoints_valid.all()
    h.validate()


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(side="both"), "side"),
        (dict(keypoints_2d=np.zeros((20, 2))), r"keypoints_2d must have shape \(21, 2\)"),
        (dict(box=[1, 2, 3]), r"box must have shape \(4,\)"),
        (dict(vertices=np.zeros((10, 2))), r"vertices must have shape \(N, 3\)"),
    ],
)
def test_hand_shape_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        hand(**kw)


def test_validate_value_errors():
    with pytest.raises(ValueError, match="x2>=x1"):
        hand(box=[10, 0, 0, 10]).validate()
    with pytest.raises(ValueError, match="in front of the camera"):
        hand(keypoints_3d=-np.ones((21, 3))).validate()
    with pytest.raises(ValueError, match="visible without being valid"):
        hand(keypoints_valid=np.zeros(21, bool)).validate()
    s = Sample.from_image(np.zeros((4, 4, 3), np.uint8), [hand(box=[10, 0, 0, 10])], source="x", sample_id="7")
    with pytest.raises(ValueError, match=r"x sample '7': hand 0: box"):
        s.validate()


def test_box_from_keypoints_valid_and_pad():
    pts = np.array([[0, 0], [10, 20], [100, 100]], np.float32)
    np.testing.assert_allclose(box_from_keypoints(pts, [True, True, False]), [0, 0, 10, 20])
    np.testing.assert_allclose(box_from_keypoints(pts[:2], pad=0.1), [-1, -2, 11, 22])
    assert np.isnan(box_from_keypoints(pts, [False] * 3)).all()


def test_load_image_applies_exif_orientation(tmp_path):
    arr = np.zeros((2, 4, 3), np.uint8)
    arr[:, 0] = 255  # left column white
    im = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    im.save(tmp_path / "a.jpg", exif=exif.tobytes(), quality=100)
    out = load_image(tmp_path / "a.jpg")
    assert out.shape == (4, 2, 3) and out.dtype == np.uint8
    assert out[0].mean() > 200 and out[-1].mean() < 50  # the white column became the top row


def test_load_image_converts_to_rgb(tmp_path):
    Image.new("L", (3, 5), 7).save(tmp_path / "g.png")
    Image.new("RGBA", (3, 5), (1, 2, 3, 4)).save(tmp_path / "a.png")
    assert load_image(tmp_path / "g.png").shape == (5, 3, 3)
    np.testing.assert_array_equal(load_image(tmp_path / "a.png")[0, 0], [1, 2, 3])


def test_load_image_errors_name_the_file(tmp_path):
    with pytest.raises(DatasetError, match=r"nope\.jpg: image file not found"):
        load_image(tmp_path / "nope.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"bad\.jpg: cannot read image"):
        load_image(tmp_path / "bad.jpg")


def test_sample_loads_image_lazily_and_caches(tmp_path):
    Image.new("RGB", (6, 4), (10, 20, 30)).save(tmp_path / "x.png")
    s = Sample(tmp_path / "x.png", [hand()], K=np.eye(3), source="t", sample_id="0")
    assert s._image is None
    assert s.image.shape == (4, 6, 3) and s.image is s.image
    with pytest.raises(ValueError, match="needs an image_path or an image"):
        Sample(None, [])
    with pytest.raises(ValueError, match="RGB uint8"):
        Sample.from_image(np.zeros((4, 4)), [])
