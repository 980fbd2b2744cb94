"""Augmentation: exact crop camera, flip, letterbox, two views, colour jitter, tensors; determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handrecon.data.schema import HandAnnotation, Sample
from handrecon.data.synth import SynthEngine, preset
from handrecon.data.transforms import (
    CropAugment, HandCrop, color_jitter, crop_hand, flip, flip_left, letterbox, to_tensors, two_views,
)
from handrecon.geometry.camera import project
from handrecon.geometry.crop import transform_points
from handrecon.hand.model import HandModel


@pytest.fixture(scope="module")
def samples():
    engine = SynthEngine(preset("scene", image_size=(72, 96), num_hands=(2, 2), p_left=0.5))
    return [engine.sample(i, seed=11) for i in range(4)]


def _skewed_sample() -> Sample:
    """A sample whose K has fx != fy and skew (exercises the general virtual-camera path)."""
    rng = np.random.default_rng(0)
    K = np.array([[310.0, 4.0, 50.0], [0.0, 290.0, 41.0], [0.0, 0.0, 1.0]])
    kp3 = rng.normal(0, 0.03, (21, 3)) + [0.01, -0.02, 0.45]
    kp2 = project(kp3, K)
    hand = HandAnnotation("left", np.r_[kp2.min(0), kp2.max(0)], kp2, np.ones(21), keypoints_3d=kp3,
                          vertices=rng.normal(0, 0.03, (30, 3)) + kp3[0], transl=np.array([0.01, 0.0, 0.4]))
    return Sample.from_image(rng.integers(0, 255, (80, 100, 3), dtype=np.uint8), [hand], K=K, sample_id="skew")


def _reprojection_error(s: Sample, h: int = 0) -> float:
    hand = s.hands[h]
    return float(np.abs(project(hand.keypoints_3d.astype(np.float64), s.K.astype(np.float64)) - hand.keypoints_2d).max())


def test_crop_updates_K_so_3d_projects_onto_2d(samples):
    rng = np.random.default_rng(1)
    crop = HandCrop(size=64, scale=(0.8, 2.0), shift=0.3, rotation_deg=180, hand_index=None)
    for s in samples + [_skewed_sample()]:
        for _ in range(3):
            c = crop(s, rng)
            assert c.image.shape == (64, 64, 3)
            for h in range(len(c.hands)):
                assert _reprojection_error(c, h) < 1e-3
            if len(s.hands) == 1:  # 2D follows the crop's affine (and 3D + K' agree with it, above)
                np.testing.assert_allclose(transform_points(s.hands[0].keypoints_2d.astype(np.float64), c.meta["crop_affine"]),
                                           c.hands[0].keypoints_2d, atol=1e-4)


def test_crop_keeps_model_parameters_consistent(samples):
    s = next(x for x in samples if x.hands[0].side == "right")
    c = crop_hand(s, 64, 0, scale=1.4, shift=(0.1, -0.05), rotation_deg=70.0)
    h = c.hands[0]
    model = HandModel.openhand(h.side)
    out = model(torch.as_tensor(h.pose)[None] - model.pose_mean, torch.as_tensor(h.shape)[None], torch.as_tensor(h.transl)[None])
    np.testing.assert_allclose(out.vertices[0].detach().numpy(), h.vertices, atol=1e-5)
    inside = (h.keypoints_2d >= -0.5).all(1) & (h.keypoints_2d < 63.5).all(1)
    assert np.all(h.visibility[~inside] == 0)


def test_flip_mirrors_scene_and_turns_left_into_right(samples):
    s = next(x for x in samples if x.hands[0].side == "left")
    f = flip_left(s)
    assert f.meta["flipped"] and f.hands[0].side == "right" and f.hands[0].meta["flipped"]
    assert _reprojection_error(f) < 1e-3
    np.testing.assert_array_equal(f.image, s.image[:, ::-1])
    # the flipped left hand is a right hand: the right model with its (mirrored) parameters gives its vertices
    h = f.hands[0]
    right = HandModel.openhand("right")
    out = right(torch.as_tensor(h.pose)[None] - right.pose_mean, torch.as_tensor(h.shape)[None], torch.as_tensor(h.transl)[None])
    np.testing.assert_allclose(out.vertices[0].detach().numpy(), h.vertices, atol=1e-5)
    W = s.image.shape[1]
    np.testing.assert_allclose(h.box, [W - 1 - s.hands[0].box[2], s.hands[0].box[1], W - 1 - s.hands[0].box[0], s.hands[0].box[3]])
    back = flip(f)
    assert not back.meta["flipped"] and back.hands[0].side == "left"
    np.testing.assert_allclose(back.hands[0].keypoints_2d, s.hands[0].keypoints_2d, atol=1e-4)
    np.testing.assert_allclose(back.hands[0].pose, s.hands[0].pose, atol=1e-6)
    np.testing.assert_allclose(back.K, s.K, atol=1e-4)
    r = next(x for x in samples if x.hands[0].side == "right")
    assert flip_left(r) is r
    skew = flip(_skewed_sample())
    assert _reprojection_error(skew) < 1e-3


def test_letterbox_updates_K_and_boxes(samples):
    s = samples[0]
    for size in ((50, 50), (100, 60), (72, 96)):
        lb = letterbox(s, size)
        assert lb.image.shape == (*size, 3)
        assert _reprojection_error(lb) < 1e-3
        sx, sy = lb.meta["letterbox"]["scale"]
        px, py = lb.meta["letterbox"]["pad"]
        x1, y1, x2, y2 = s.hands[0].box
        np.testing.assert_allclose(lb.hands[0].box, [sx * (x1 + 0.5) - 0.5 + px, sy * (y1 + 0.5) - 0.5 + py,
                                                     sx * (x2 + 0.5) - 0.5 + px, sy * (y2 + 0.5) - 0.5 + py], atol=1e-4)
    lb = letterbox(s, (144, 96), fill=7)  # wide image into a tall canvas: bands above and below
    assert (lb.image[:30] == 7).all() and (lb.image[-30:] == 7).all()


def test_two_views_relative_transform(samples):
    rng = np.random.default_rng(3)
    for s in samples:
        tv = two_views(s, rng, CropAugment(crop=HandCrop(size=48, rotation_deg=180)))
        h1, h2 = tv.view1.hands[0], tv.view2.hands[0]
        np.testing.assert_allclose(h1.keypoints_3d @ tv.R_12.T, h2.keypoints_3d, atol=1e-5)
        np.testing.assert_allclose(transform_points(h1.keypoints_2d.astype(np.float64), tv.affine_12), h2.keypoints_2d, atol=1e-3)
        assert not tv.flipped_12
        assert not np.allclose(h1.keypoints_2d, h2.keypoints_2d)


def test_augmentation_is_deterministic_under_a_seed(samples):
    aug = CropAugment(crop=HandCrop(size=40))
    a = aug(samples[1], np.random.default_rng(9))
    b = aug(samples[1], np.random.default_rng(9))
    c = aug(samples[1], np.random.default_rng(10))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.hands[0].keypoints_2d, b.hands[0].keypoints_2d)
    assert not np.array_equal(a.image, c.image)
    img = samples[0].image
    j1, j2 = color_jitter(img, np.random.default_rng(0)), color_jitter(img, np.random.default_rng(0))
    assert np.array_equal(j1, j2) and not np.array_equal(j1, img) and j1.dtype == np.uint8


def test_to_tensors(samples):
    c = CropAugment(crop=HandCrop(size=32))(samples[2], np.random.default_rng(0))
    t = to_tensors(c)
    assert t["image"].shape == (3, 32, 32) and t["image"].dtype == torch.float32
    assert t["vertices"].shape == (778, 3) and t["has_vertices"] == 1 and t["has_3d"] == 1
    h = c.hands[0]
    np.testing.assert_allclose(t["joints_3d"].numpy(), h.keypoints_3d - h.keypoints_3d[0], atol=1e-7)
    assert torch.all(t["joints_3d"][0] == 0)
    assert t["is_left"] == 0  # CropAugment flips left hands to right
    assert t["flipped"] == float(samples[2].hands[0].side == "left")
    batch = torch.utils.data.default_collate([t, to_tensors(c)])
    assert batch["image"].shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="square crop"):
        to_tensors(samples[0])
