"""The second look (the default of `handrecon.load` for crop models; `--one-look`, `second_look=False`
off): a hand whose
first-look heatmap peak is below `SECOND_LOOK_PEAK` is cropped again at ±45 degrees as its winning
reading and its views averaged exactly as test-time rotations average them; every other hand is
the plain result; side, side score and heatmap peak stay the first look's; the mesh decoder runs
on the kept views only."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import assert_same_hand_mesh
from PIL import Image
from test_infer_onnx import _decoded_rows, models  # noqa: F401  (models: a module fixture)
from test_predictor import photo, tiny_checkpoint
from typer.testing import CliRunner

import handrecon
import handrecon.infer.predictor as predictor_module
import handrecon.models.m3dhmr.inference as m3dhmr_inference
from handrecon.cli import app

IMAGES = [photo(seed=20 + i) for i in range(3)]
BOXES = [[(30, 20, 110, 100), (5, 5, 60, 70)], [(40, 30, 120, 110)], [(10, 40, 70, 100), (60, 10, 150, 90)]]


def _hands(results):
    return [h for r in results for h in r.hands]


def _report_shifted_keypoints(rec, monkeypatch, shift) -> None:
    """`rec`'s staged network (as `_decoded_rows` spies on it) with its reported keypoints
    (``keypoints_px``) set to its landmarks (``uv_px``) plus `shift` crop pixels."""
    assert rec.network.staged  # the encoder's outputs come from first_stage alone
    first = rec.network.first_stage

    def shifted(inputs):
        outputs = first(inputs)
        return {**outputs, "keypoints_px": outputs["uv_px"] + np.float32(shift)}

    monkeypatch.setattr(rec.network, "first_stage", shifted)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
@pytest.mark.parametrize("read_sides", [False, True])
def test_a_second_look_is_test_time_rotations_for_the_unsure_hands_only(models, backend, read_sides, monkeypatch):
    torch_rec, onnx_rec, _ = models
    rec = torch_rec if backend == "torch" else onnx_rec
    monkeypatch.setattr(rec, "refine_root", False)  # closed-form root: see test_infer_onnx's staged test
    sides = [[None] * len(b) for b in BOXES] if read_sides else [["right", "left"], ["left"], ["right", "right"]]
    plain = _hands(rec.predict_batch(IMAGES, boxes=BOXES, sides=sides))
    peaks = np.array([h.heatmap_peak for h in plain])
    threshold = float(np.median(peaks))  # random weights: their peaks are all low; look again at half
    monkeypatch.setattr(m3dhmr_inference, "SECOND_LOOK_PEAK", threshold)
    unsure = peaks < threshold
    assert 0 < unsure.sum() < len(peaks)

    chosen = [[h.side for h in r.hands] for r in rec.predict_batch(IMAGES, boxes=BOXES, sides=sides)]
    monkeypatch.setattr(rec.adapter, "test_time_rotations", (0.0, -45.0, 45.0))
    turned = _hands(rec.predict_batch(IMAGES, boxes=BOXES, sides=chosen))  # every hand, its first-look side
    monkeypatch.setattr(rec.adapter, "test_time_rotations", (0.0,))

    rec.adapter.set_second_look(True)
    try:
        counts = _decoded_rows(rec, monkeypatch)
        looked = _hands(rec.predict_batch(IMAGES, boxes=BOXES, sides=sides))
    finally:
        rec.adapter.set_second_look(False)
    assert sum(counts) == len(plain) + 2 * unsure.sum()  # the decoder: each hand's kept view, two more if unsure
    for p, t, seen, low in zip(plain, turned, looked, unsure):
        assert (seen.side, seen.side_score, seen.heatmap_peak) == (p.side, p.side_score, p.heatmap_peak)
        want = t if low else p
        np.testing.assert_allclose(seen.vertices, want.vertices, atol=1e-6)
        np.testing.assert_allclose(seen.keypoints_2d, want.keypoints_2d, atol=1e-4)
        assert low == (not np.allclose(seen.vertices, p.vertices, atol=1e-6))  # the second look changed it


def test_no_second_look_with_test_time_rotations(models, monkeypatch):
    """--tta already sees every hand at those angles: the second look adds nothing there."""
    torch_rec = models[0]
    monkeypatch.setattr(m3dhmr_inference, "SECOND_LOOK_PEAK", 1.0)  # every hand would qualify
    monkeypatch.setattr(torch_rec.adapter, "test_time_rotations", (0.0, -45.0, 45.0))
    a = _hands(torch_rec.predict_batch(IMAGES, boxes=BOXES))
    torch_rec.adapter.set_second_look(True)
    try:
        assert not torch_rec.second_look and torch_rec.settings["second_look"] is False
        b = _hands(torch_rec.predict_batch(IMAGES, boxes=BOXES))
    finally:
        torch_rec.adapter.set_second_look(False)
    for ha, hb in zip(a, b):
        np.testing.assert_array_equal(ha.vertices, hb.vertices)


def test_a_crop_model_looks_twice_by_default_and_the_cli_says_so(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "ck")
    assert handrecon.load(ckpt).settings["second_look"] is True
    assert handrecon.load(ckpt, second_look=False).settings["second_look"] is False
    Image.fromarray(photo(seed=3)).save(tmp_path / "a.png")
    for flags, want in (([], True), (["--one-look"], False), (["--tta"], False)):  # --tta sees every hand so
        out = tmp_path / f"out{len(flags)}{want}"
        r = CliRunner().invoke(app, ["reconstruct", str(tmp_path / "a.png"), "--out", str(out), "--model", str(ckpt),
                                     "--crop", "--formats", "", "--no-overlay", *flags])
        assert r.exit_code == 0, r.output
        assert json.loads((out / "a.json").read_text())["model"]["second_look"] is want, flags


def test_a_network_served_whole_takes_the_same_second_look(models, monkeypatch):
    """An export without the stage link runs whole: the second look's crops then go through the whole
    network, with the same hands as the two stages."""
    onnx_rec = models[1]
    monkeypatch.setattr(onnx_rec, "refine_root", False)
    monkeypatch.setattr(m3dhmr_inference, "SECOND_LOOK_PEAK", 1.0)  # every hand looks again
    onnx_rec.adapter.set_second_look(True)
    try:
        staged = _hands(onnx_rec.predict_batch(IMAGES, boxes=BOXES))
        monkeypatch.setattr(onnx_rec.network, "staged", False)
        whole = _hands(onnx_rec.predict_batch(IMAGES, boxes=BOXES))
    finally:
        onnx_rec.adapter.set_second_look(False)
    for a, b in zip(staged, whole):
        assert (a.side, a.side_score, a.heatmap_peak) == (b.side, b.side_score, b.heatmap_peak)
        np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-6)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_a_whole_image_hand_is_also_seen_framed_around_its_landmarks(models, backend, monkeypatch):
    """The second look's first round: a hand given as the whole image (no box) is cropped once more, as
    its winning reading, around its first-look landmarks (their box x RECROP_EXPANSION, clipped), and
    the two framings are averaged (here with equal weights) in camera space and in the image; side,
    side score and heatmap peak stay the first look's; the decoder reads both framings' views. Without
    a box large enough nothing changes; a hand given by a box is never re-cropped (the first test)."""
    torch_rec, onnx_rec, _ = models
    rec = torch_rec if backend == "torch" else onnx_rec
    monkeypatch.setattr(rec, "refine_root", False)
    monkeypatch.setattr(m3dhmr_inference, "SECOND_LOOK_PEAK", 0.0)  # no turned views
    monkeypatch.setattr(m3dhmr_inference, "TEST_TIME_SHARPNESS", 0.0)  # equal weights
    monkeypatch.setattr(m3dhmr_inference, "RECROP_MIN_PX", 2.0)  # random weights: landmarks close together
    _report_shifted_keypoints(rec, monkeypatch, 0.0)  # reported = the landmarks the re-crop is drawn around
    first = _hands(rec.predict_batch(IMAGES))  # one look, sides read
    boxes, sides = [], []
    for image, hand in zip(IMAGES, first):
        kp = hand.keypoints_2d.astype(np.float64)
        centre, half = (kp.min(0) + kp.max(0)) / 2, m3dhmr_inference.RECROP_EXPANSION * (kp.max(0) - kp.min(0)) / 2
        H, W = image.shape[:2]
        boxes.append([np.r_[np.maximum(centre - half, -0.5), np.minimum(centre + half, (W - 0.5, H - 0.5))]])
        sides.append([hand.side])
    framed = _hands(rec.predict_batch(IMAGES, boxes=boxes, sides=sides))
    rec.adapter.set_second_look(True)
    try:
        monkeypatch.setattr(predictor_module, "SECOND_STAGE_ROWS", 1000)  # one decoder call per batch: rows per batch
        counts = _decoded_rows(rec, monkeypatch) if backend == "onnx" else None
        both = _hands(rec.predict_batch(IMAGES))
        monkeypatch.setattr(m3dhmr_inference, "SECOND_LOOK_PEAK", 1.0)  # every framing unsure: turned too
        rec.predict_batch(IMAGES)
        monkeypatch.setattr(m3dhmr_inference, "SECOND_LOOK_PEAK", 0.0)
        monkeypatch.setattr(m3dhmr_inference, "RECROP_MIN_PX", 1e6)  # no box that large: the first look alone
        alone = _hands(rec.predict_batch(IMAGES))
    finally:
        rec.adapter.set_second_look(False)
    if counts is not None:
        assert counts[:2] == [2 * len(IMAGES), 6 * len(IMAGES)]  # two framings; each also turned +-45
    for f, g, b, a in zip(first, framed, both, alone):
        assert (b.side, b.side_score, b.heatmap_peak) == (f.side, f.side_score, f.heatmap_peak)
        # the re-crop's box is recomputed here from float32 landmarks: equal up to rounding
        np.testing.assert_allclose(b.vertices - b.cam_t, ((f.vertices - f.cam_t) + (g.vertices - g.cam_t)) / 2, atol=1e-5)
        np.testing.assert_allclose(b.keypoints_2d, (f.keypoints_2d + g.keypoints_2d) / 2, atol=1e-2)
        assert not np.allclose(b.keypoints_2d, f.keypoints_2d, atol=0.1)  # the second framing moved it
        np.testing.assert_array_equal(b.box, f.box)  # still the whole image's box
        np.testing.assert_array_equal(a.keypoints_2d, f.keypoints_2d)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_reported_keypoints_move_nothing_the_mesh_depends_on(models, backend, monkeypatch):
    """The network's ``keypoints_px`` are what a hand reports in 2D and what root recovery fits; its
    ``uv_px`` (the landmarks the decoder samples at) draw the second framing. Shifting the first moves
    the 2D keypoints and the placement, never the mesh about its root, with or without a second
    framing."""
    torch_rec, onnx_rec, _ = models
    rec = torch_rec if backend == "torch" else onnx_rec
    monkeypatch.setattr(m3dhmr_inference, "RECROP_MIN_PX", 2.0)  # random weights: landmarks close together
    results = {}
    for second_look in (False, True):
        rec.adapter.set_second_look(second_look)
        try:
            for shift in ((0.0, 0.0), (3.0, -2.0)):
                with monkeypatch.context() as m:
                    _report_shifted_keypoints(rec, m, shift)
                    results[second_look, shift] = _hands(rec.predict_batch(IMAGES))
        finally:
            rec.adapter.set_second_look(False)
    for second_look in (False, True):
        for a, b in zip(results[second_look, (0.0, 0.0)], results[second_look, (3.0, -2.0)]):
            np.testing.assert_allclose(b.vertices - b.cam_t, a.vertices - a.cam_t, atol=1e-6)
            assert b.side == a.side
            moved = b.keypoints_2d - a.keypoints_2d
            if second_look:  # averaged with the second framing's (another scale): moved, by less
                assert (np.abs(moved) > 1.0).all()
            else:  # the whole image (160x120) seen at 64 px: 2.5 image px a crop px; a left hand's crop is mirrored
                sign = 1.0 if a.side == "right" else -1.0
                np.testing.assert_allclose(moved, np.broadcast_to([7.5 * sign, -5.0], moved.shape), atol=1e-3)
            assert np.abs(b.cam_t - a.cam_t).max() > 1e-4


def test_framings_count_as_wholes_in_the_average():
    """Two framings of a hand, each with turned views: within a framing the views weigh as test-time
    rotations (∝ peak^sharpness), and each framing's total weight is ∝ its plain view's peak^sharpness,
    however many views it has."""
    hand = m3dhmr_inference.HandViews(np.zeros(4), ["right"], [None], [0], [0], np.zeros((4, 4, 3), np.uint8),
                                      np.eye(3), 1.0)
    for row, framing in ((1, 1), (2, 0), (3, 0)):  # a re-crop, then two turned views of the first framing
        hand.add_view(None, 0, framing, row)
    peak = np.array([0.05, 0.04, 0.07, 0.03])
    w = np.exp(m3dhmr_inference.M3DHMRAdapter._view_log_weights([hand], [[0, 1, 2, 3]], peak))
    w /= w.sum()
    p = peak ** m3dhmr_inference.TEST_TIME_SHARPNESS
    np.testing.assert_allclose(w[[0, 2, 3]] / w[[0, 2, 3]].sum(), p[[0, 2, 3]] / p[[0, 2, 3]].sum())
    np.testing.assert_allclose([w[[0, 2, 3]].sum(), w[1]], [p[0] / (p[0] + p[1]), p[1] / (p[0] + p[1])])


def test_the_mesh_decoder_runs_in_bounded_chunks(models, monkeypatch):
    """A staged network's second stage gets at most SECOND_STAGE_ROWS rows per call (onnxruntime's
    arenas grow to the largest batch), with the same outputs as in one call."""
    onnx_rec = models[1]
    onnx_rec.adapter.set_second_look(True)
    try:
        whole = _hands(onnx_rec.predict_batch(IMAGES))
        monkeypatch.setattr(predictor_module, "SECOND_STAGE_ROWS", 2)
        counts = _decoded_rows(onnx_rec, monkeypatch)
        chunked = _hands(onnx_rec.predict_batch(IMAGES))
    finally:
        onnx_rec.adapter.set_second_look(False)
    assert len(counts) > 1 and max(counts) <= 2
    for a, b in zip(whole, chunked):  # onnxruntime's kernels sum in another order at another batch size
        assert_same_hand_mesh(b.vertices, b.cam_t, a.vertices, a.cam_t, atol=1e-5)
        np.testing.assert_allclose(b.keypoints_2d, a.keypoints_2d, atol=1e-3)


def test_views_that_would_barely_count_are_not_decoded(models, monkeypatch):
    """With the second look, a view whose normalised averaging weight (known from the first stage's
    peaks) is under MIN_VIEW_WEIGHT is not decoded and leaves the average, the rest renormalised; the
    heaviest view always stays; a threshold no view falls under changes nothing."""
    monkeypatch.setattr(m3dhmr_inference, "MIN_VIEW_WEIGHT", 0.05)
    kept, lw = m3dhmr_inference._drop_light_views([[0, 1, 2], [3]], np.log([0.9, 0.08, 0.02, 1.0]))
    assert kept == [[0, 1], [3]]
    np.testing.assert_allclose(np.exp(lw), [0.9, 0.08, 1.0])
    monkeypatch.setattr(m3dhmr_inference, "MIN_VIEW_WEIGHT", 0.95)
    assert m3dhmr_inference._drop_light_views([[4, 5]], np.log([0.3, 0.7]))[0] == [[5]]

    onnx_rec = models[1]
    monkeypatch.setattr(m3dhmr_inference, "SECOND_LOOK_PEAK", 1.0)  # every framing unsure: three views a framing
    monkeypatch.setattr(predictor_module, "SECOND_STAGE_ROWS", 1000)
    onnx_rec.adapter.set_second_look(True)
    results, rows = {}, {}
    counts = _decoded_rows(onnx_rec, monkeypatch)
    try:
        for w in (0.0, 1e-12, 0.4):
            monkeypatch.setattr(m3dhmr_inference, "MIN_VIEW_WEIGHT", w)
            calls = len(counts)
            results[w] = _hands(onnx_rec.predict_batch(IMAGES, boxes=BOXES))
            rows[w] = sum(counts[calls:])
    finally:
        onnx_rec.adapter.set_second_look(False)
    n = sum(len(b) for b in BOXES)
    assert rows[0.0] == rows[1e-12] == 3 * n and n <= rows[0.4] < 3 * n  # at most two of three views over 0.4
    for a, b, c in zip(results[0.0], results[1e-12], results[0.4]):
        np.testing.assert_array_equal(a.vertices, b.vertices)
        assert (c.side, c.heatmap_peak) == (a.side, a.heatmap_peak)
        assert np.isfinite(c.vertices).all()
