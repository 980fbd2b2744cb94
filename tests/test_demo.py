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
    from helpers import random_checkpoint

    return random_checkpoint(tmp_path_factory.mktemp("ckpt"), {"backbone_kwargs": {"width": 16}}, input_size=64)


@pytest.mark.parametrize("name", ["hand", "scene"])
def test_sample_has_ground_truth(name):
    image, meta = load_sample(name)
    assert image.shape == (meta["height"], meta["width"], 3) and image.dtype == np.uint8
    for hand in meta["hands"]:
        assert np.asarray(hand["keypoints_3d"]).shape == (21, 3) and hand["side"] in ("left", "right")


def test_demo_writes_reconstruction_and_posed_meshes(tmp_path, tiny_checkpoint):
    (tmp_path / "a_file").touch()
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "a_file"), "--model", "nope"])
    assert result.exit_code == 2 and "--out: the output folder" in result.output and "is a file" in result.output
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

    scene = summary["scene"]  # the multi-hand scene through the detector, then the crop model
    _, scene_gt = load_sample("scene")
    assert len(scene["hands"]) == len(scene_gt["hands"]) == 3 and scene["model"].startswith("handrecon-hand-detector+")
    found = [h for h in scene["hands"] if h["found"]]
    assert all(0 < h["score"] <= 1 and np.isfinite(h["pa_mpjpe_mm"]) for h in found)
    assert len(json.loads((tmp_path / "scene.json").read_text())["hands"]) == scene["detections"]
    assert "scene_overlay.png" in scene["files"] and "multi-hand scene" in result.output

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


# The engine as the shipped weights were trained and measured with (tools/train_shipped.sh's PLAIN:
# the realistic additions of issue 12 switched off).
PLAIN_ENGINE = dict(render_subdivisions=0, p_forearm=0.0, p_color=0.0, p_motion_blur=0.0, p_truncated=0.0,
                    pose_kinds=("random", "open", "fist", "pinch", "point"))


def _heldout_hands(n: int = 24):
    """n hands rendered with seed 1000 (the shipped model was trained on seed 0), one per image."""
    from handrecon.data.synth import SynthEngine, preset

    engine = SynthEngine(preset("crop", **PLAIN_ENGINE))
    samples = [engine.sample(i, 1000) for i in range(n)]
    return [s.hands[0] for s in samples], [s.image for s in samples], [s.K for s in samples], samples


def test_shipped_model_crops_exactly_like_its_validation_pipeline():
    """The predictor's view of a hand is the training pipeline's deterministic centre crop of the
    card's validation data (what the model was validated on; stage 4 trains on a wider scale range
    around it): same pixels, same camera. A different crop scale, size, mirror or normalisation
    would put the model off the data it was measured on."""
    import handrecon
    from handrecon.models.m3dhmr import CropPipeline

    rec = handrecon.load("m3dhmr-openhand")
    val_kwargs = rec.card["config"]["data"]["val"]["kwargs"]
    assert val_kwargs["augment"] is False
    pipeline = CropPipeline(input_size=val_kwargs["input_size"], augment=False,
                            **{k: val_kwargs[k] for k in ("scale",) if k in val_kwargs})
    hands, images, Ks, samples = _heldout_hands(6)
    assert {h.side for h in hands} == {"left", "right"}
    prepared = rec.prepare(images, Ks, [[h.box] for h in hands], [[h.side] for h in hands])
    for i, sample in enumerate(samples):
        item = pipeline(sample, np.random.default_rng(0))
        np.testing.assert_array_equal(prepared.inputs[i], item["image"].numpy())  # bit-identical
        # the same camera; the pipeline stores K in float32, the predictor in float64 (mirroring a
        # left hand's K can round differently by one float32 ulp)
        np.testing.assert_array_max_ulp(prepared.views[i][0].views[0].K.astype(np.float32), item["K"].numpy(), maxulp=1)


# The sample (assets/sample/hand.json) has exact ground truth. Bounds on a trained model cannot be
# derived from first principles: these are the values measured for the shipped weights when they
# were packaged (demo output, first shipped weights: PA-MPJPE 8.4 mm, 2D error 4.7 px, root error
# 180 mm; photo-fine-tuned weights now shipped: 7.0 mm, 4.5 px, 160 mm), each with a margin. A change
# to preprocessing, crop, camera or root recovery moves them past the bounds.
SAMPLE_PA_MPJPE_MM = 10.0
SAMPLE_2D_ERROR_PX = 7.0
SAMPLE_ROOT_ERROR_MM = 200.0


def test_shipped_model_reconstructs_the_sample_near_its_ground_truth():
    import handrecon
    from handrecon.eval.metrics import keypoint_errors
    from handrecon.geometry.procrustes import procrustes_align

    image, meta = load_sample()
    gt = meta["hands"][0]
    rec = handrecon.load("m3dhmr-openhand")
    assert rec.hand_model == "openhand" and rec.spec["input_size"] == 128
    hand = rec.predict(image, K=np.asarray(meta["K"]), boxes=[gt["box"]], sides=[gt["side"]]).hands[0]
    assert hand.side == gt["side"] and hand.vertices.shape == (778, 3)
    gt3d, gt2d = np.asarray(gt["keypoints_3d"]), np.asarray(gt["keypoints_2d"])
    assert 1000 * keypoint_errors(procrustes_align(hand.keypoints_3d, gt3d), gt3d).mean() < SAMPLE_PA_MPJPE_MM
    assert keypoint_errors(hand.keypoints_2d, gt2d).mean() < SAMPLE_2D_ERROR_PX
    assert 1000 * np.linalg.norm(hand.cam_t - gt3d[0]) < SAMPLE_ROOT_ERROR_MM


# Accuracy of the shipped model on 256 held-out synthetic hands (seed 1000; training used seed 0),
# through the public API with ground-truth boxes, sides and K. Where the bounds come from: the
# model card's held-out numbers on 2184 hands (PA-MPJPE 15.35 mm, box PCK 0.697, root error
# 94.5 mm) with a margin for a small sample. It was 24 hands until the engine's random stream
# changed with issue 12's realism (the same distribution, other hands): the new first 24 gave a
# mean root error of 100.3 mm (per-hand std 77 mm), so the sample grew to 64 instead of the bound
# moving: 13.2 mm, 0.755, 77.4 mm with the shipped weights. The rest-pose template scores 23.7 mm,
# so a model that learnt nothing, wrong weights or a preprocessing mismatch fails. With the stage-5
# weights (2026-12-01, fourth session; root error on the 1000-image held-out set 94.4 -> 95.6 mm)
# the first 64 hands' mean root error rose to 101.7 mm (stage 4: 92.5): a few far-off hands in a
# small sample (the first 128: 83.5 vs 77.5, the first 256: 81.2 vs 77.9). So the sample grew to
# 256 (standard error of the mean about 5 mm instead of 10) and the bounds stayed.
HELDOUT_PA_MPJPE_MM = 16.0
HELDOUT_PCK_BOX = 0.70
HELDOUT_ROOT_ERROR_MM = 100.0


def test_shipped_model_accuracy_on_held_out_synthetic_hands():
    import handrecon
    from handrecon.eval.metrics import keypoint_errors, pck_2d
    from handrecon.geometry.procrustes import procrustes_align

    hands, images, Ks, _ = _heldout_hands(256)
    rec = handrecon.load("m3dhmr-openhand")
    results = rec.predict_batch(images, Ks, [[h.box] for h in hands], [[h.side] for h in hands])
    pred = np.stack([r.hands[0].keypoints_3d for r in results])
    gt = np.stack([np.asarray(h.keypoints_3d) for h in hands])
    pa_mpjpe_mm = 1000 * keypoint_errors(procrustes_align(pred, gt), gt).mean()
    pck = pck_2d(np.stack([r.hands[0].keypoints_2d for r in results]),
                 np.stack([np.asarray(h.keypoints_2d) for h in hands]), np.stack([h.box for h in hands]), 0.1)
    root_mm = 1000 * keypoint_errors(pred[:, :1], gt[:, :1]).mean()
    assert pa_mpjpe_mm < HELDOUT_PA_MPJPE_MM, pa_mpjpe_mm
    assert pck > HELDOUT_PCK_BOX, pck
    assert root_mm < HELDOUT_ROOT_ERROR_MM, root_mm


# The foreign test set (benchmarks/foreign_testset.py): 24 of its crops are kept in tests/data/foreign24
# (pyrender over CC0/public-domain scikit-image photographs, CC0 hand; JPEG). Whole crop as input.
# Measured: rest hand 26.9 mm; first shipped weights 26.7 mm and PCK 0.171 (no better than the rest
# hand: they had learnt their renderer); the photo-fine-tuned weights 21.4 mm and 0.274.
FOREIGN_MARGIN_BELOW_REST_MM = 3.0
FOREIGN_PCK = 0.23


def test_shipped_model_does_better_than_the_rest_hand_on_foreign_crops():
    from pathlib import Path

    from helpers import load_script

    import handrecon
    from handrecon.eval.runner import evaluate

    root = Path(__file__).parent / "data" / "foreign24"
    result = evaluate(handrecon.load("m3dhmr-openhand"), "synthetic", root, split="all", whole_image=True)
    rest_mm = load_script("benchmarks/foreign_testset.py").rest_hand_baseline(root)
    assert result.metrics["pa_mpjpe_mm"] < rest_mm - FOREIGN_MARGIN_BELOW_REST_MM, (result.metrics, rest_mm)
    assert result.metrics["pck2d@0.1"] > FOREIGN_PCK, result.metrics
