"""handrecon.load / Predictor.predict with a tiny random-weights M3DHMR checkpoint, and the
crop → camera chain proven exact on ground truth (the network replaced by a GT oracle)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import handrecon
from handrecon.models.m3dhmr.inference import TEST_TIME_SHARPNESS
from handrecon.geometry.camera import default_intrinsics, intrinsics, project
from handrecon.geometry.crop import crop_transform, transform_points
from handrecon.hand.model import HandModel
from helpers import random_checkpoint
from handrecon.infer.registry import SHIPPED_MODELS, ModelNotFoundError
from handrecon.infer.results import ImageResult

SIZE = 64
TINY = {"backbone_kwargs": {"width": 16, "latent_channels": 32, "decoder_width": 16},
        "channels": [8, 8, 16, 16], "num_kernels": 2}


def tiny_checkpoint(path, seed: int = 0):
    """A random-weights M3DHMR checkpoint written through the trained model's path (card + safetensors)."""
    return random_checkpoint(path, TINY, input_size=SIZE, seed=seed)


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    return handrecon.load(tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "ck"))


def photo(h=120, w=160, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_predict_shapes_and_types(rec):
    image = photo()
    res = rec.predict(image, boxes=[(40, 30, 100, 90)])
    assert isinstance(res, ImageResult) and res.image_size == (120, 160) and len(res.hands) == 1
    np.testing.assert_allclose(res.K, default_intrinsics((160, 120)))
    h = res.hands[0]
    # a crop model has no hand-presence output: no made-up confidence (it used to say 1.0 for noise)
    assert h.score is None and res.to_json()["hands"][0]["score"] is None
    assert h.side in ("left", "right") and 0.5 <= h.side_score <= 1  # no side given: read (test_golden_outputs)
    assert h.keypoints_2d.shape == (21, 2) and h.keypoints_3d.shape == (21, 3) and h.vertices.shape == (778, 3)
    assert all(a.dtype == np.float32 for a in (h.keypoints_2d, h.keypoints_3d, h.vertices, h.cam_t))
    assert np.isfinite(h.vertices).all()
    np.testing.assert_array_equal(h.cam_t, h.keypoints_3d[0])  # cam_t is the wrist in camera space
    np.testing.assert_array_equal(h.box, [40, 30, 100, 90])
    assert res.faces_right.shape == res.faces_left.shape and res.faces_right.shape[1] == 3
    np.testing.assert_array_equal(res.faces_left, res.faces_right[:, [0, 2, 1]])
    assert "hands" in res.to_json()
    # the crop model's keypoint sharpness is a reliability cue, written with the hand
    assert 0 < h.heatmap_peak <= 1 and res.to_json()["hands"][0]["heatmap_peak"] == pytest.approx(h.heatmap_peak, abs=1e-4)


def test_box_moves_keypoints_with_the_content(rec):
    """The same patch at two places in a photo: 2D keypoints move by the offset, inside the crop."""
    patch = photo(48, 48, seed=3)
    canvas = np.zeros((200, 240, 3), np.uint8)
    results = []
    for x, y in ((20, 30), (150, 110)):
        img = canvas.copy()
        img[y:y + 48, x:x + 48] = patch
        results.append(rec.predict(img, boxes=[(x, y, x + 47, y + 47)]).hands[0])
        side = 47 * rec.adapter.crop_scale
        centre = np.array([x + 23.5, y + 23.5])
        assert (np.abs(results[-1].keypoints_2d - centre) <= side / 2).all()  # inside the crop square
    np.testing.assert_allclose(results[1].keypoints_2d - results[0].keypoints_2d, np.tile([130, 80], (21, 1)), atol=1e-3)


def test_whole_image_is_the_crop_without_a_box(rec):
    image = photo(SIZE, SIZE)
    hand_views = rec.prepare([image], [None], [None], [None]).views[0][0]
    assert hand_views.readings == ["right", "left"]  # no side given: the crop and its mirror
    view = hand_views.views[0]
    np.testing.assert_array_equal(hand_views.views[1].image, image[:, ::-1])
    np.testing.assert_array_equal(view.image, image)  # identity crop: same size, no expansion
    np.testing.assert_allclose(view.affine, [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    h = rec.predict(image).hands[0]
    np.testing.assert_allclose(h.box, [-0.5, -0.5, SIZE - 0.5, SIZE - 0.5])


def test_left_hand_mirrors_right_hand(rec):
    """predict(mirrored photo, side=left) is the mirror of predict(photo, side=right) for a camera
    whose principal point is the image centre (the default K). The box maps pixels 1:1 onto the
    crop so both crops are bit-identical and only the geometry is under test: exactly with one
    look; with the second look (this random model's heatmaps are flat, so it also reads turned
    views, whose crops are resampled and not bit-identical between the two) to the rounding the
    reported keypoints, decoded near each heatmap's peak, follow (~1e-3 px, ~1e-5 m through root
    recovery). A wrong mirror moves a hand by pixels and centimetres."""
    image, (H, W) = photo(), (120, 160)
    half = SIZE / rec.adapter.crop_scale / 2
    cx, cy = 60.5, 50.5
    box = np.array([cx - half, cy - half, cx + half, cy + half])
    for second_look, atol_m, atol_px in ((False, 1e-6, 1e-4), (True, 5e-5, 2e-3)):
        rec.adapter.set_second_look(second_look)
        try:
            right = rec.predict(image, boxes=[box], sides=["right"]).hands[0]
            left = rec.predict(np.ascontiguousarray(image[:, ::-1]), boxes=[[W - 1 - box[2], box[1], W - 1 - box[0], box[3]]],
                               sides=["left"]).hands[0]
        finally:
            rec.adapter.set_second_look(True)
        assert left.side == "left"
        np.testing.assert_allclose(left.vertices, right.vertices * [-1, 1, 1], atol=atol_m)
        np.testing.assert_allclose(left.keypoints_3d, right.keypoints_3d * [-1, 1, 1], atol=atol_m)
        np.testing.assert_allclose(left.keypoints_2d[:, 0], W - 1 - right.keypoints_2d[:, 0], atol=atol_px)
        np.testing.assert_allclose(left.keypoints_2d[:, 1], right.keypoints_2d[:, 1], atol=atol_px)


def test_K_is_used_and_returned(rec):
    """An explicit K is returned and only changes 3D (2D comes from the crop); None means the
    default camera. (That K' and R are right is proven on ground truth below.)"""
    image = photo()
    box = (40, 30, 100, 90)
    base = rec.predict(image, boxes=[box])
    np.testing.assert_array_equal(base.K, default_intrinsics((160, 120)))
    K2 = default_intrinsics((160, 120), focal=0.5 * 1.2 * 160)
    res = rec.predict(image, K=K2, boxes=[box])
    np.testing.assert_array_equal(res.K, K2)
    np.testing.assert_allclose(res.hands[0].keypoints_2d, base.hands[0].keypoints_2d, atol=1e-3)
    assert np.abs(res.hands[0].cam_t - base.hands[0].cam_t).max() > 1e-3


@pytest.mark.parametrize("kwargs, match", [
    ({"image": np.zeros((50, 60, 3), np.float32)}, "uint8"),
    ({"image": np.zeros((50, 60), np.uint8)}, r"\(H, W, 3\)"),
    ({"image": np.zeros((50, 60, 4), np.uint8)}, r"\(H, W, 3\)"),
    ({"image": [[1, 2, 3]]}, "numpy array"),
    ({"box": (100, 100, 140, 150)}, "outside the image"),
    ({"box": (-40, 10, -1, 20)}, "outside the image"),
    ({"box": (30, 10, 20, 40)}, "x2 > x1"),
    ({"box": (0, 0, np.nan, 5)}, "finite"),
    ({"side": "up"}, "side"),
    ({"K": np.eye(2)}, "3 x 3"),
    ({"K": [[-100, 0, 30], [0, 100, 25], [0, 0, 1]]}, "fx, fy > 0"),
    # absurd values used to give absurd hands (a hand at (-2447, 14471, 0.04) m, or 8e7 m away)
    ({"box": (-1e9, -1e9, 1e9, 1e9)}, "over 3 x the image"),
    ({"box": (10, 10, 10.001, 10.001)}, "at least 4 px"),
    ({"K": [[1e-9, 0, 30], [0, 1e-9, 25], [0, 0, 1]]}, "focal length"),
    ({"K": [[1e7, 0, 30], [0, 1e7, 25], [0, 0, 1]]}, "focal length"),
    ({"K": [[60, 0, 1e6], [0, 60, 25], [0, 0, 1]]}, "principal point"),
])
def test_bad_inputs_raise_clear_errors(rec, kwargs, match):
    args = {"image": photo(50, 60), "box": None, "side": None, "K": None, **kwargs}
    with pytest.raises(ValueError, match=match):
        rec.predict(args["image"], K=args["K"], boxes=None if args["box"] is None else [args["box"]],
                    sides=None if args["side"] is None else [args["side"]])


@pytest.mark.parametrize("priors", [[0.5, 0.5], [np.nan], [[1.0], [2.0]], "left"])
def test_bad_side_priors_are_refused(rec, priors):
    with pytest.raises(ValueError, match="side priors: give 1 finite log-odds"):
        rec.predict(photo(50, 60), boxes=[(5, 5, 40, 40)], side_priors=priors)
    with pytest.raises(ValueError, match="side-prior lists"):
        rec.predict_batch([photo(50, 60)], side_priors=[None, None])


def test_predict_batch_matches_predict_and_names_bad_items(rec, monkeypatch):
    # Closed-form root only: the robust refinement's inlier choice is discontinuous, and on random
    # weights (2D and 3D disagree) float-level differences between batch sizes can flip it.
    monkeypatch.setattr(rec, "refine_root", False)
    images = [photo(seed=i) for i in range(3)]
    boxes = [(40, 30, 100, 90), None, (10, 10, 70, 60)]
    sides = ["right", "left", None]
    box_lists = [None if b is None else [b] for b in boxes]
    batch = rec.predict_batch(images, None, box_lists, [[s] for s in sides], batch_size=2)
    for img, image_boxes, side, r in zip(images, box_lists, sides, batch):
        single = rec.predict(img, boxes=image_boxes, sides=[side])
        np.testing.assert_allclose(r.hands[0].vertices, single.hands[0].vertices, atol=1e-5)
        assert r.hands[0].side == (side or "right")
    with pytest.raises(ValueError, match="item 1: box"):
        rec.predict_batch(images[:2], None, [None, [(500, 500, 600, 600)]])
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            rec.predict_batch(images, batch_size=bad)


def test_several_boxes_give_one_hand_each_and_no_boxes_list_gives_none(rec, monkeypatch):
    """boxes are per-image lists of prompts: each box is one hand (in order, with its side), exactly
    what predicting it alone gives; an empty list gives an image without hands."""
    monkeypatch.setattr(rec, "refine_root", False)
    image = photo()
    boxes, sides = [(40, 30, 100, 90), (90, 20, 150, 80), (5, 60, 45, 110)], ["left", "right", None]
    res = rec.predict(image, boxes=boxes, sides=sides)
    assert [h.side for h in res.hands][:2] == ["left", "right"] and res.hands[2].side in ("left", "right")
    assert res.hands[0].side_score is None and res.hands[2].side_score >= 0.5  # given, read
    for box, side, hand in zip(boxes, sides, res.hands):
        alone = rec.predict(image, boxes=[box], sides=[side]).hands[0]
        np.testing.assert_array_equal(hand.box, np.asarray(box, np.float32))
        np.testing.assert_allclose(hand.vertices, alone.vertices, atol=1e-5)
    assert rec.predict(image, boxes=[]).hands == []
    with pytest.raises(ValueError, match="3 boxes but 2 sides"):
        rec.predict(image, boxes=boxes, sides=sides[:2])


# ----------------------------------------------------------------------------- GT chain
def gt_hand(side: str, depth: float = 0.55):
    """A posed OpenHand (float64) placed off-axis in front of the camera: vertices, OP21 joints."""
    model = HandModel.openhand(side).double()
    g = torch.Generator().manual_seed(1)
    pose = torch.randn(1, model.num_joints, 3, generator=g, dtype=torch.float64) * 0.2
    pose[0, 0] = torch.tensor([0.4, -0.7, 2.2], dtype=torch.float64)
    out = model(pose, transl=torch.tensor([[0.12, -0.06, 0.55]], dtype=torch.float64) * depth / 0.55)
    return out.vertices[0].numpy(), out.joints[0].numpy()


def oracle_network(verts, joints, K, box, scale, size, side):
    """What a perfect network outputs for this crop, computed independently of the predictor:
    view = crop camera (crop_transform's R, K', affine), mirrored about the crop centre for a left hand."""
    ct = crop_transform(box, size, K, scale)
    X, V = joints @ ct.R.T, verts @ ct.R.T
    uv = transform_points(project(joints, K), ct.affine)
    if side == "left":
        X, V, uv = X * [-1, 1, 1], V * [-1, 1, 1], np.c_[size - 1 - uv[:, 0], uv[:, 1]]

    def network(images):
        assert images.shape == (1, 3, size, size)
        return {"uv_px": uv[None].astype(np.float32), "verts": (V - X[0])[None].astype(np.float32),
                "joints": (X - X[0])[None].astype(np.float32)}

    return network


@pytest.mark.parametrize("side, given_K, depth", [("right", True, 0.55), ("left", True, 0.55), ("left", False, 0.55),
                                                  ("right", True, 1.3), ("left", True, 1.8)])
def test_camera_chain_is_exact_on_ground_truth(rec, side, given_K, depth, monkeypatch):
    """GT 3D joints projected into a photo with a non-trivial K (or the default one, K=None); the
    network replaced by the GT in its crop frame. The recovered camera-space root, joints and
    vertices match the GT < 1 mm."""
    W, H = 640, 480
    K = intrinsics(520.0, 540.0, 300.0, 250.0) if given_K else default_intrinsics((W, H))
    verts, joints = gt_hand(side, depth)
    uv = project(verts, K)
    box = np.r_[uv.min(0), uv.max(0)]
    monkeypatch.setattr(rec, "network", oracle_network(verts, joints, K, box, rec.adapter.crop_scale, SIZE, side))
    h = rec.predict(np.zeros((H, W, 3), np.uint8), K=K if given_K else None, boxes=[box], sides=[side]).hands[0]
    assert h.side == side
    np.testing.assert_allclose(h.cam_t, joints[0], atol=1e-3)
    np.testing.assert_allclose(h.keypoints_3d, joints, atol=1e-3)
    np.testing.assert_allclose(h.vertices, verts, atol=1e-3)
    np.testing.assert_allclose(h.keypoints_2d, project(joints, K), atol=0.05)
    assert np.abs(h.cam_t - joints[0]).max() < 1e-4  # in fact float32-exact


# ----------------------------------------------------------------------------- loading
def test_load_errors(monkeypatch, tmp_path):
    from handrecon.infer import registry

    name = "m3dhmr-openhand"
    assert name in SHIPPED_MODELS and SHIPPED_MODELS[name].installed  # the weights ship in the package
    missing = registry.ShippedModel("missing-model", "m3dhmr", "registered, weights absent")
    monkeypatch.setitem(SHIPPED_MODELS, "missing-model", missing)
    monkeypatch.setattr(registry.ShippedModel, "directory", property(lambda self: tmp_path / self.name))
    with pytest.raises(ModelNotFoundError, match="not installed"):
        handrecon.load("missing-model")
    with pytest.raises(ModelNotFoundError, match="neither a shipped model"):
        handrecon.load("no-such-model")
    hint = r"is a hand detector, which finds boxes only: load 'handrecon-hand-detector\+m3dhmr-openhand'"
    with pytest.raises(ModelNotFoundError, match=hint):  # a detector alone, or the pipeline's two names swapped
        handrecon.load("handrecon-hand-detector")
    with pytest.raises(ModelNotFoundError, match=hint):
        handrecon.load("m3dhmr-openhand+handrecon-hand-detector")


def test_import_handrecon_stays_cheap():
    code = "import handrecon, sys; print('torch' in sys.modules); print(callable(handrecon.load))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]


def test_the_loaders_and_evaluation_runners_import_without_torch():
    """Dataset loaders and the evaluation runners stay numpy at import (an exported model is
    evaluated without torch's start-up); the torch-side dataset helpers live in `data.stream`."""
    code = ("import sys, handrecon.data.loaders, handrecon.eval.runner, handrecon.eval.detection; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False"]


def test_the_card_carries_the_inference_spec_and_a_bad_one_is_refused(rec, tmp_path):
    """The predictor is configured only by the card's inference spec (written from
    `model.inference_spec()`); a card without one, an unknown architecture or another mesh
    topology is a one-line error, not a guess."""
    import json

    from handrecon.checkpoint import seal_card

    spec = rec.card["inference"]
    assert spec["input_size"] == SIZE and spec["crop"] == {"rule": "box", "scale": 1.325, "mirror_left": True}
    assert spec["hand_model"] == "openhand" and rec.hand_model == "openhand"
    ck = tiny_checkpoint(tmp_path / "ck")
    card = json.loads((ck / "card.json").read_text())

    def write(**changes):
        body = {k: v for k, v in {**card, **changes}.items() if k != "card_sha256" and v is not None}
        (ck / "card.json").write_text(json.dumps(seal_card(body)))

    write(inference=None)
    with pytest.raises(ValueError, match="no inference spec"):
        handrecon.load(ck)
    write(inference={**spec, "topology_sha256": "0" * 64})
    with pytest.raises(ValueError, match="another mesh topology"):
        handrecon.load(ck)
    write(inference={**spec, "crop": {"rule": "letterbox"}})
    with pytest.raises(ValueError, match="crop rule 'box'"):
        handrecon.load(ck)


# ----------------------------------------------------------------------------- test-time rotations
def oracle_views_network(verts, joints, K, box, scale, size, side, angles, uv_offset_view=None, peaks=None):
    """`oracle_network` for rotated views (one per angle, hand-major like the adapter's batch),
    computed independently from `crop_transform`'s R and affine. uv_offset_view: (view index,
    (du, dv) px) added to that view's landmarks. peaks: each view's heatmap_peak (None: no such output)."""
    outputs = {"uv_px": [], "verts": [], "joints": []}
    for v, angle in enumerate(angles):
        ct = crop_transform(box, size, K, scale, rotation_deg=angle)
        X, V = joints @ ct.R.T, verts @ ct.R.T
        uv = transform_points(project(joints, K), ct.affine)
        if side == "left":
            X, V, uv = X * [-1, 1, 1], V * [-1, 1, 1], np.c_[size - 1 - uv[:, 0], uv[:, 1]]
        if uv_offset_view is not None and uv_offset_view[0] == v:
            uv = uv + uv_offset_view[1]
        for key, value in zip(("uv_px", "verts", "joints"), (uv, V - X[0], X - X[0])):
            outputs[key].append(value.astype(np.float32))

    def network(images):
        assert images.shape == (len(angles), 3, size, size)
        out = {key: np.stack(value) for key, value in outputs.items()}
        return out if peaks is None else {**out, "heatmap_peak": np.asarray(peaks, np.float32)}

    return network


@pytest.mark.parametrize("side", ["right", "left"])
def test_test_time_rotations_keep_the_camera_chain_exact_and_average_every_view(rec, side, monkeypatch):
    """Three views turned 0, -45 and +45 degrees, each answered by the ground truth in its own
    frame: the averaged hand is the ground truth (so every view is carried back into the right
    frame). One view's landmarks moved by 3 view px: the averaged landmarks move by exactly a third
    with equal peaks (or none), and by that view's weight ∝ peak^TEST_TIME_SHARPNESS otherwise."""
    W, H = 640, 480
    K = intrinsics(520.0, 540.0, 300.0, 250.0)
    verts, joints = gt_hand(side)
    box = np.r_[project(verts, K).min(0), project(verts, K).max(0)]
    angles = (0.0, -45.0, 45.0)
    monkeypatch.setattr(rec.adapter, "test_time_rotations", angles)
    args = (verts, joints, K, box, rec.adapter.crop_scale, SIZE, side, angles)
    monkeypatch.setattr(rec, "network", oracle_views_network(*args))
    h = rec.predict(np.zeros((H, W, 3), np.uint8), K=K, boxes=[box], sides=[side]).hands[0]
    np.testing.assert_allclose(h.keypoints_3d, joints, atol=1e-3)
    np.testing.assert_allclose(h.vertices, verts, atol=1e-3)
    np.testing.assert_allclose(h.keypoints_2d, project(joints, K), atol=0.05)
    px_per_view_px = max(box[2] - box[0], box[3] - box[1]) * rec.adapter.crop_scale / SIZE
    sharp = (0.08, 0.1, 0.085)  # view 1 sharpest
    weights = np.power(sharp, TEST_TIME_SHARPNESS) / np.power(sharp, TEST_TIME_SHARPNESS).sum()
    assert 0.6 < weights[1] < 0.9  # the sharpest counts most, the others still count
    for peaks, share in ((None, [1 / 3] * 3), ((0.1, 0.1, 0.1), [1 / 3] * 3), (sharp, weights)):
        monkeypatch.setattr(rec, "network", oracle_views_network(*args, peaks=peaks))
        h = rec.predict(np.zeros((H, W, 3), np.uint8), K=K, boxes=[box], sides=[side]).hands[0]
        np.testing.assert_allclose(h.keypoints_3d, joints, atol=1e-3)  # the truth, however weighted
        np.testing.assert_allclose(h.keypoints_2d, project(joints, K), atol=0.05)
        for v in (0, 1, 2):  # every view: a bug that drops, mis-rotates or mis-weights one shows here
            monkeypatch.setattr(rec, "network", oracle_views_network(*args, uv_offset_view=(v, (3.0, 0.0)), peaks=peaks))
            h = rec.predict(np.zeros((H, W, 3), np.uint8), K=K, boxes=[box], sides=[side]).hands[0]
            shift = h.keypoints_2d - project(joints, K)
            moved = 3 * share[v] * px_per_view_px
            np.testing.assert_allclose(np.linalg.norm(shift, axis=1), moved, rtol=2e-3)
            a = np.radians(angles[v])  # the offset, +u in view v, is turned back into the image
            direction = np.array([np.cos(a), np.sin(a)]) * (-1 if side == "left" else 1)  # a left view is mirrored
            np.testing.assert_allclose(shift.mean(0) / moved, direction, atol=2e-3)


def test_test_time_rotations_in_batches_and_their_errors(rec, monkeypatch, tmp_path):
    """With three views per hand, a batch of images with several boxes gives one hand per box, as
    each image alone does; bad angle lists are refused; `load` sets them."""
    monkeypatch.setattr(rec, "refine_root", False)  # as in test_predict_batch_matches_predict_and_names_bad_items
    images = [photo(seed=1), photo(100, 90, seed=2)]
    boxes = [[[10, 10, 60, 70], [40, 30, 150, 110]], [[5, 5, 50, 40]]]
    plain = rec.predict_batch(images, boxes=boxes)
    monkeypatch.setattr(rec.adapter, "test_time_rotations", (0.0, -45.0, 45.0))
    batch = rec.predict_batch(images, boxes=boxes, sides=[["right", "left"], None])
    assert [len(r.hands) for r in batch] == [2, 1]
    for image, image_boxes, image_sides, result in zip(images, boxes, [["right", "left"], None], batch):
        alone = rec.predict(image, boxes=image_boxes, sides=image_sides)
        for a, b, box in zip(alone.hands, result.hands, image_boxes):
            np.testing.assert_allclose(b.box, box)
            np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-5)
            np.testing.assert_allclose(a.keypoints_2d, b.keypoints_2d, atol=1e-3)
    assert not np.allclose(plain[0].hands[0].keypoints_2d, batch[0].hands[0].keypoints_2d)
    read = batch[1].hands[0]  # no side given: six views (two readings x three turns), the winner's three averaged
    told = rec.predict(images[1], boxes=boxes[1], sides=[read.side]).hands[0]
    np.testing.assert_allclose(read.vertices, told.vertices, atol=1e-5)
    assert read.side_score >= 0.5 and told.side_score is None and read.heatmap_peak >= told.heatmap_peak - 1e-6
    for bad in ([], [0, 0], [0, float("nan")]):
        with pytest.raises(ValueError, match="distinct finite angles"):
            rec.adapter.set_test_time_rotations(bad)
    loaded = handrecon.load(tiny_checkpoint(tmp_path / "ck"), test_time_rotations=[0, 30])
    assert loaded.adapter.test_time_rotations == (0.0, 30.0)
    assert handrecon.load(tiny_checkpoint(tmp_path / "ck2")).adapter.test_time_rotations == (0.0,)
