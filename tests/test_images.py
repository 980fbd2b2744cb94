"""Reading image files (`data.schema.read_image`): every PIL mode converted right, a pixel limit,
animated files refused, large images decoded reduced with their scale, and the batch runner
working in the file's own pixels whatever the decode size (issue 11, items 2, 5 and 9)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import OneByOne
from PIL import Image

import handrecon.data.schema as schema
from handrecon.data.schema import DatasetError, read_image
from handrecon.infer.batch import predict_file_pixels, reconstruct_paths, render_overlay
from handrecon.infer.results import HandResult, ImageResult


def test_16_bit_and_other_modes_are_converted_not_clipped(tmp_path):
    """A 16-bit PNG used to read as all white (PIL's convert clips at 255)."""
    ramp = (np.arange(48 * 64).reshape(48, 64) * 21).astype(np.uint16)  # 0 .. 64491
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    img = read_image(tmp_path / "g16.png").image
    assert img.dtype == np.uint8 and img.shape == (48, 64, 3)
    np.testing.assert_array_equal(img[..., 0], np.rint(ramp * (255 / 65535)).astype(np.uint8))
    assert (img[..., 0] == img[..., 2]).all() and img.min() == 0 and img.max() == 251

    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.full((20, 30, 1), 255, np.uint8)], -1)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png").image, rgb)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    np.testing.assert_array_equal(read_image(tmp_path / "gray.png").image, np.repeat(rgb[..., :1], 3, -1))
    Image.fromarray(rgb).convert("P").save(tmp_path / "pal.png")
    assert read_image(tmp_path / "pal.png").image.shape == (20, 30, 3)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    assert read_image(tmp_path / "cmyk.jpg").image.shape == (20, 30, 3)
    Image.fromarray((rgb[..., 0] / 255.0).astype(np.float32), mode="F").save(tmp_path / "f.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "f.tif").image[..., 0], rgb[..., 0])


def test_pixel_limit_and_decompression_bombs_are_clear_errors(tmp_path, monkeypatch):
    Image.new("RGB", (300, 200)).save(tmp_path / "big.png")
    monkeypatch.setattr(schema, "MAX_IMAGE_PIXELS", 50_000)
    with pytest.raises(DatasetError, match=r"big.png: 300 x 200 = 0 megapixels is over handrecon's limit"):
        read_image(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # PIL's own bomb check (2x its limit) fires first
    with pytest.raises(DatasetError, match="limit"):
        read_image(tmp_path / "big.png")


def test_animated_images_are_refused_with_what_to_do(tmp_path):
    """Read as one image, an animation is refused, saying that `reconstruct` reads it as a video."""
    frames = [Image.new("RGB", (16, 16), (c, 0, 0)) for c in (0, 128, 255)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(DatasetError, match="animated image with 3 frames; `handrecon reconstruct` reads it as a video"):
        read_image(tmp_path / "anim.gif")
    frames[0].save(tmp_path / "still.gif")
    assert read_image(tmp_path / "still.gif").image.shape == (16, 16, 3)


@pytest.mark.parametrize("fmt", ["jpg", "png"])
def test_large_images_are_decoded_reduced_with_their_scale(tmp_path, monkeypatch, fmt):
    monkeypatch.setattr(schema, "WORK_PIXELS", 100 * 80)
    Image.new("RGB", (400, 320), (200, 100, 50)).save(tmp_path / f"x.{fmt}")
    loaded = read_image(tmp_path / f"x.{fmt}", reduce=True)
    h, w = loaded.image.shape[:2]
    assert h * w <= 100 * 80 and loaded.size == (320, 400) and loaded.reduced
    assert loaded.scale == (w / 400, h / 320)
    full = read_image(tmp_path / f"x.{fmt}")  # without reduce: full size
    assert full.image.shape == (320, 400, 3) and full.scale == (1.0, 1.0) and not full.reduced
    # EXIF orientation 6 (90 degrees): the size is the upright one
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (400, 320)).save(tmp_path / "rot.jpg", exif=exif)
    loaded = read_image(tmp_path / "rot.jpg", reduce=True)
    assert loaded.size == (400, 320) and loaded.image.shape[0] > loaded.image.shape[1]


class BoxEcho(OneByOne):
    """Returns one hand whose box and first keypoints are the box it was given (or the image extent)."""

    def __init__(self):
        self.seen = []

    def predict(self, image, K=None, boxes=None, sides=None):
        self.seen.append((image.shape, K, boxes))
        h, w = image.shape[:2]
        b = np.asarray(boxes[0] if boxes else [-0.5, -0.5, w - 0.5, h - 0.5], np.float32)
        kp = np.zeros((21, 2), np.float32)
        kp[0], kp[1] = b[:2], b[2:]
        tetra = np.array([[0, 0, 0.5], [0.01, 0, 0.5], [0, 0.01, 0.5], [0, 0, 0.51]], np.float32)
        hand = HandResult(box=b, side="right", keypoints_2d=kp, keypoints_3d=np.resize(tetra, (21, 3)),
                          vertices=tetra, cam_t=tetra[0])
        faces = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]])
        return ImageResult(K=K, image_size=(h, w), hands=[hand], faces_right=faces, faces_left=faces[:, ::-1])


def test_results_of_a_reduced_image_are_in_the_file_pixels(tmp_path, monkeypatch):
    monkeypatch.setattr(schema, "WORK_PIXELS", 100 * 80)
    Image.new("RGB", (400, 320)).save(tmp_path / "x.png")
    loaded = read_image(tmp_path / "x.png", reduce=True)
    pred = BoxEcho()
    box = (100.0, 60.0, 300.0, 260.0)
    res = predict_file_pixels(pred, loaded, box=box, focal=500.0)
    shape, K_used, boxes_used = pred.seen[0]
    assert shape[:2] == loaded.image.shape[:2] and K_used[0, 0] == pytest.approx(500.0 * loaded.scale[0])
    np.testing.assert_allclose(res.hands[0].box, box, atol=1e-4)  # back in file pixels
    np.testing.assert_allclose(res.hands[0].keypoints_2d[:2], np.reshape(box, (2, 2)), atol=1e-4)
    assert res.image_size == (320, 400) and res.K[0, 0] == 500.0 and res.K[0, 2] == pytest.approx(199.5)
    overlay = render_overlay(res, loaded.image, max_side=128)
    assert overlay.shape[0] == round(320 * 128 / 400) and overlay.shape[1] > 128  # bounded, plus side view


def test_a_bad_image_in_a_batch_is_reported_and_the_rest_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr(schema, "MAX_IMAGE_PIXELS", 50_000)
    (tmp_path / "in").mkdir()
    Image.new("RGB", (300, 200)).save(tmp_path / "in" / "a_huge.png")
    Image.new("RGB", (60, 40)).save(tmp_path / "in" / "b_ok.png")
    Image.new("RGB", (60, 40)).save(tmp_path / "in" / "c_ok.png")
    frames = [Image.new("RGB", (16, 16), (c, 0, 0)) for c in (0, 255)]
    frames[0].save(tmp_path / "in" / "d_anim.gif", save_all=True, append_images=frames[1:])
    report = reconstruct_paths(BoxEcho(), [tmp_path / "in"], tmp_path / "out", overlay=False)
    failed = dict(report.failed)
    assert set(failed) == {str(tmp_path / "in" / "a_huge.png"), str(tmp_path / "in" / "d_anim.gif")}
    assert "megapixels" in failed[str(tmp_path / "in" / "a_huge.png")] and "reads videos" in failed[str(tmp_path / "in" / "d_anim.gif")]
    assert len(report.written) == 2 and (tmp_path / "out" / "c_ok.json").is_file()


def test_normalisation_is_the_per_pixel_formula():
    """`normalize_images` (a per-level table) equals x / 255 - mean over std on every pixel, for one
    image and for batches, in float32, channels first; anything but RGB uint8 is refused."""
    from handrecon.utils.image import IMAGENET_MEAN, IMAGENET_STD, normalize_images

    rng = np.random.default_rng(0)
    for shape in ((5, 7, 3), (2, 5, 7, 3), (2, 3, 4, 6, 3)):
        images = rng.integers(0, 256, shape, dtype=np.uint8)
        x = np.moveaxis(images, -1, -3).astype(np.float32) / np.float32(255)
        want = (x - np.float32(IMAGENET_MEAN).reshape(3, 1, 1)) / np.float32(IMAGENET_STD).reshape(3, 1, 1)
        got = normalize_images(images)
        assert got.dtype == np.float32 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)
    other = normalize_images(images, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    np.testing.assert_allclose(other, np.moveaxis(images, -1, -3) / 127.5 - 1, atol=1e-6)
    for bad in (images.astype(np.float32), images[..., :2]):
        with pytest.raises(ValueError, match="RGB uint8"):
            normalize_images(bad)


def test_projected_keypoints_are_the_3d_keypoints_through_k():
    """`ImageResult.projected_keypoints`: each hand's 3D keypoints through the image's K (u = fx x/z + cx)."""
    K = np.array([[500.0, 0, 320], [0, 400.0, 240], [0, 0, 1]])
    xyz = np.random.default_rng(0).uniform([-0.1, -0.1, 0.4], [0.1, 0.1, 0.8], (21, 3))
    hand = HandResult(box=np.zeros(4), side="right", keypoints_2d=np.zeros((21, 2)), keypoints_3d=xyz,
                      vertices=np.zeros((778, 3)), cam_t=xyz[0])
    (proj,) = ImageResult(K=K, image_size=(480, 640), hands=[hand]).projected_keypoints()
    np.testing.assert_allclose(proj, np.stack([500 * xyz[:, 0] / xyz[:, 2] + 320, 400 * xyz[:, 1] / xyz[:, 2] + 240], -1))
