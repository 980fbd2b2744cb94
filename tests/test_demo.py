import json

import numpy as np
import pytest
import trimesh
from PIL import Image
from typer.testing import CliRunner

from handrecon.cli import app
from handrecon.demo import load_sample


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from handrecon.infer.predictor import random_checkpoint

    return random_checkpoint(tmp_path_factory.mktemp("ckpt"), {"backbone_kwargs": {"width": 16}}, input_size=64)


def test_sample_has_ground_truth():
    image, meta = load_sample()
    assert image.shape == (meta["height"], meta["width"], 3) and image.dtype == np.uint8
    hand = meta["hands"][0]
    assert np.asarray(hand["keypoints_3d"]).shape == (21, 3) and hand["side"] in ("left", "right")


def test_demo_writes_reconstruction_and_posed_meshes(tmp_path, tiny_checkpoint):
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--model", str(tiny_checkpoint)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())

    rec = summary["reconstruction"]
    assert rec["side"] == load_sample()[1]["hands"][0]["side"]
    for name in rec["files"]:
        assert (tmp_path / name).is_file()
    for fmt in ("obj", "ply", "glb"):
        assert len(trimesh.load(tmp_path / f"sample_hand0.{fmt}", force="mesh", process=False).vertices) == 778
    assert np.asarray(Image.open(tmp_path / "sample_overlay.png")).shape[1] > 224  # image + side view
    assert all(np.isfinite(rec[k]) for k in ("mpjpe_mm", "pa_mpjpe_mm", "root_error_mm", "keypoints_2d_error_px"))

    posed = summary["posed_hand_model"]["meshes"]
    assert {(m["side"], m["pose"]) for m in posed} == {
        (s, p) for s in ("right", "left") for p in ("open", "fist", "pinch", "point")
    }
    for entry in posed:
        obj = trimesh.load(tmp_path / "poses" / entry["files"]["obj"], force="mesh", process=False)
        glb = trimesh.load(tmp_path / "poses" / entry["files"]["glb"], force="mesh", process=False)
        assert len(obj.vertices) == entry["num_vertices"] == len(glb.vertices)
        # GLB is the OBJ rotated into glTF's y-up frame.
        np.testing.assert_allclose(glb.vertices, obj.vertices * [1, -1, -1], atol=1e-5)
        # The hand sits half a metre in front of the camera and is hand-sized.
        assert 0.35 < obj.vertices[:, 2].mean() < 0.65
        assert 0.08 < max(entry["extent_m"]) < 0.25


def test_shipped_model_loads_and_reconstructs_the_sample():
    import handrecon

    image, meta = load_sample()
    gt = meta["hands"][0]
    rec = handrecon.load("m3dhmr-openhand")
    assert rec.hand_model == "openhand" and rec.input_size == 128
    result = rec.predict(image, box=gt["box"], side=gt["side"], K=np.asarray(meta["K"]))
    hand = result.hands[0]
    assert hand.side == gt["side"] and hand.vertices.shape == (778, 3)
    assert np.isfinite(hand.vertices).all() and 0.05 <= hand.cam_t[2] <= 2.0  # root depth within the solver's bounds
    assert (hand.keypoints_2d >= -1).all() and (hand.keypoints_2d <= 224).all()


# Accuracy of the shipped model on 24 held-out synthetic hands (seed 1000; training used seed 0),
# through the public API with ground-truth boxes, sides and K. Bounds: the model card's held-out
# numbers with a margin for 24 hands; the rest-pose template scores PA-MPJPE 23.7 mm on this set,
# so a model that learnt nothing, wrong weights or a preprocessing mismatch fails.
HELDOUT_PA_MPJPE_MM = 18.0  # measured 14.9 mm on these 24 hands (2000-image card: 15.35)
HELDOUT_PCK_BOX = 0.65  # measured 0.766 (card: 0.697 of the box side)


def test_shipped_model_accuracy_on_held_out_synthetic_hands():
    import handrecon
    from handrecon.data.synth import SynthEngine, preset
    from handrecon.eval.metrics import keypoint_errors, pck_2d
    from handrecon.geometry.procrustes import procrustes_align

    engine = SynthEngine(preset("crop"))
    hands, images, Ks = [], [], []
    for i in range(24):
        sample = engine.sample(i, 1000)
        hands.append(sample.hands[0])
        images.append(sample.image)
        Ks.append(sample.K)
    rec = handrecon.load("m3dhmr-openhand")
    results = rec.predict_batch(images, [h.box for h in hands], [h.side for h in hands], Ks)
    pred = np.stack([r.hands[0].keypoints_3d for r in results])
    gt = np.stack([np.asarray(h.keypoints_3d) for h in hands])
    pa_mpjpe_mm = 1000 * keypoint_errors(procrustes_align(pred, gt), gt).mean()
    pck = pck_2d(np.stack([r.hands[0].keypoints_2d for r in results]),
                 np.stack([np.asarray(h.keypoints_2d) for h in hands]), np.stack([h.box for h in hands]), 0.1)
    assert pa_mpjpe_mm < HELDOUT_PA_MPJPE_MM, pa_mpjpe_mm
    assert pck > HELDOUT_PCK_BOX, pck
