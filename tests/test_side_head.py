"""The detector's side head (`models/handos/side_head.py`): the side as the parity of the hand's
chirality in the image and its palm facing the camera; its data, training, saving and serving."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from handrecon.checkpoint import load_model, save_checkpoint
from handrecon.cli import app
from handrecon.data.loaders import build_dataset
from handrecon.data.transforms import appearance_shift
from handrecon.geometry.camera import intrinsics, project
from handrecon.geometry.crop import crop_transform, invert_affine, transform_points
from handrecon.hand.model import HandModel
from handrecon.hand.pose import sample_poses
from handrecon.models.handos.side_head import (HandSideCrops, SideClassifier, SideHead, chirality, load_side_head,
                                               palm_facing, side_of)

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_the_side_is_the_parity_of_chirality_and_palm_facing():
    """For hands of both sides in every orientation, anywhere in front of the camera: left exactly
    when the palm's facing equals the image chirality; a mirrored image flips the chirality (and the
    side), not the facing."""
    rng = np.random.default_rng(0)
    K = intrinsics(500.0, 500.0, 320.0, 240.0)
    for side in ("right", "left"):
        model = HandModel.openhand(side)
        pose = sample_poses(model, 64, kind="random", seed=1, global_orient="random")
        with torch.no_grad():
            joints = model(pose).joints.double().numpy()
        joints += np.c_[rng.uniform(-0.3, 0.3, (64, 2)), rng.uniform(0.3, 1.5, 64)][:, None]
        uv = project(joints, K)
        facing = np.array([palm_facing(j, side) for j in joints])
        assert 10 < facing.sum() < 54  # both palms and backs towards the camera
        assert (side_of(facing, chirality(uv)) == (side == "left")).all()
        mirrored = uv * [-1, 1] + [639, 0]
        assert (side_of(facing, chirality(mirrored)) == (side == "right")).all()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    out = tmp_path_factory.mktemp("scenes")
    for name, seed in (("a", 0), ("b", 1)):
        r = CliRunner().invoke(app, ["synth", "--preset", "scene", "--num", "4", "--shard-size", "2", "--out",
                                     str(out / name), "--image-size", "96x128", "--set", "num_hands=[2, 3]",
                                     "--seed", str(seed), "--quiet"])
        assert r.exit_code == 0, r.output
    return out


def test_side_crops_carry_keypoints_facing_and_side_through_mirrors(scenes):
    """Every detectable hand, its keypoints in the crop's normalised coordinates; augmented items
    (jittered boxes, mirrors) keep left == side_of(facing, chirality(uv)); folders concatenate."""
    plain = HandSideCrops(scenes / "a", input_size=32, augment=False)
    samples = build_dataset("synthetic", scenes / "a", "all")
    for i in range(len(plain)):
        item, hands = plain[i], [h for h in samples[i].hands if h.detectable]
        assert item["pixel_values"].shape == (len(hands), 3, 32, 32)
        for uv, hand in zip(item["uv"].numpy(), hands):
            back = transform_points(uv.astype(np.float64) * 32 - 0.5, invert_affine(crop_transform(hand.box, 32, scale=1.325).affine))
            np.testing.assert_allclose(back, hand.keypoints_2d, atol=1e-3)
    both = HandSideCrops([scenes / "a", scenes / "b"], input_size=32, seed=3)
    assert len(both) == 8
    items = HandSideCrops.collate([both[i] for i in range(len(both))])
    assert len(items["left"]) > 10 and 0 < items["left"].mean() < 1
    left = side_of(items["facing"].bool().numpy(), chirality(items["uv"]).numpy())
    assert (left == items["left"].bool().numpy()).all()
    empty = {k: v[:0] for k, v in both[0].items()}  # an image without hands
    assert len(HandSideCrops.collate([both[0], empty])["left"]) == len(both[0]["left"])
    flipped = [HandSideCrops(scenes / "a", input_size=32, seed=s)[0]["uv"][:, 0, 0] for s in range(8)]
    assert len({bool(u[0] > 0.5) for u in flipped}) == 2  # some items mirrored, some not


def test_appearance_shift_takes_colour_away_and_leaves_the_labels(scenes):
    """`appearance`: the crops lose their colours (grey or channels permuted) and may blur; the
    keypoints, facing and side stay those of the same draw, and appearance 0 changes nothing."""
    base = HandSideCrops(scenes / "a", input_size=32, seed=5)
    assert all(torch.equal(base[0][k], HandSideCrops(scenes / "a", input_size=32, seed=5, appearance=0.0)[0][k])
               for k in base[0])
    shifted = HandSideCrops(scenes / "a", input_size=32, seed=5, appearance=1.0)
    a, b = base[0], shifted[0]
    for k in ("uv", "keypoints_valid", "facing", "left"):
        assert torch.equal(a[k], b[k]), k
    assert not torch.equal(a["pixel_values"], b["pixel_values"])
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    image[..., 0] = 250  # a strongly red image
    outs = [appearance_shift(image, np.random.default_rng(s), max_blur=0.0) for s in range(12)]
    grey = [o for o in outs if (o[..., 0] == o[..., 1]).all() and (o[..., 1] == o[..., 2]).all()]
    permuted = [o for o in outs if not (o[..., 0] == 250).all()]
    assert grey and len(permuted) > len(grey)  # both kinds drawn; red is gone from every permuted one but identity
    blurred = appearance_shift(image, np.random.default_rng(3), max_blur=3.0)
    assert blurred.dtype == np.uint8 and blurred.shape == image.shape


def test_side_classifier_learns_both_cues_and_serves(tmp_path):
    """Its loss reaches the keypoint and facing heads; its side logit is the facing logit signed by
    the predicted chirality; it saves into a detector folder and serves sides from boxes."""
    torch.manual_seed(0)
    model = SideClassifier(width=4, input_size=32)
    batch = {"pixel_values": torch.randn(6, 3, 32, 32), "uv": torch.rand(6, 21, 2),
             "keypoints_valid": torch.ones(6, 21, dtype=torch.bool), "facing": torch.tensor([1.0, 0, 1, 0, 1, 0]),
             "left": torch.tensor([1.0, 1, 0, 0, 1, 0])}
    loss, terms = model.loss(model(batch), batch)
    loss.backward()
    assert set(terms) == {"uv_l1", "facing_bce"} and torch.isfinite(loss)
    assert model.facing.weight.grad.abs().sum() > 0 and model.encoder.head1.conv.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        uv, facing = model.keypoints_and_facing(batch["pixel_values"])
        logits = model.logits(batch["pixel_values"])
    np.testing.assert_array_equal((logits > 0).numpy(), side_of((facing > 0).numpy(), chirality(uv).numpy()))
    np.testing.assert_allclose(logits.abs(), facing.abs())
    scores = model.validate([batch])
    assert scores["hands"] == 6 and {"side_accuracy", "facing_accuracy", "chirality_accuracy", "keypoint_error_px"} <= set(scores)

    assert load_side_head(tmp_path) is None  # a detector folder without a side head
    save_checkpoint(tmp_path / "side_head", model, {}, {"architecture": "hand_side", "kwargs": {"width": 4, "input_size": 32}})
    head = load_side_head(tmp_path)
    sides, p_left = head.sides(np.zeros((80, 80, 3), np.uint8), np.array([[10, 10, 40, 50], [0, 0, 20, 20]]))
    assert sides == ["left" if p > 0.5 else "right" for p in p_left] and len(sides) == 2
    none, p_none = SideHead(model).sides(np.zeros((8, 8, 3), np.uint8), np.zeros((0, 4)))
    assert none == [] and p_none.shape == (0,)


def test_the_side_head_recipe_starts_from_the_crop_models_first_stack(scenes, tmp_path):
    """configs/side_head_cpu.yaml through the engine: `train.init_from` with `init_partial` copies
    M3DHMR's first stack (another architecture) by name; the run saves a loadable side head."""
    r = CliRunner().invoke(app, ["train", str(ROOT / "configs" / "side_head_cpu.yaml"),
                                 f"data.train.kwargs.root={scenes / 'a'}", f"data.val.kwargs.root={scenes / 'a'}",
                                 "model.kwargs.input_size=32", "data.train.kwargs.input_size=32",
                                 "data.val.kwargs.input_size=32", "data.batch_size=2", "data.val_batch_size=2",
                                 "data.num_workers=0", "train.max_steps=1", "train.val_every=1", "train.ckpt_every=1",
                                 "optim.lr=1e-12", "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    assert "copied 170 of the model's 172 tensors" in r.output  # all but the facing head
    trained, _ = load_model(tmp_path / "run")
    crop_model, _ = load_model(ROOT / "src" / "handrecon" / "assets" / "models" / "m3dhmr-openhand")
    torch.testing.assert_close(trained.encoder.trunk1.conv1.weight, crop_model.encoder.trunk1.conv1.weight, rtol=0, atol=1e-6)


class _AlwaysLeft:
    def sides(self, image, boxes):
        return ["left"] * len(boxes), np.ones(len(boxes))


class _GroundTruthDetector:
    """Finds exactly the target hands of the scenes it is given (by image identity), sides from its head."""

    side_head = _AlwaysLeft()

    def __init__(self, samples, found: bool = True) -> None:
        self.boxes = {s.image.tobytes(): np.array([h.box for h in s.hands if h.detectable]).reshape(-1, 4) for s in samples}
        self.found = found

    def detect(self, images, score_threshold, nms_iou, max_hands=100):
        from handrecon.models.handos.detections import Detections

        boxes = self.boxes[images[0].tobytes()] if self.found else np.zeros((0, 4))
        sides, p_left = self.side_head.sides(images[0], boxes)
        return [Detections(boxes, np.full(len(boxes), 0.9), sides=sides, p_left=p_left)]


def test_evaluate_detector_reports_side_accuracy(scenes):
    """Side accuracy of the detected hands and of the side head on ground-truth boxes: a head that
    says "left" for everything scores the share of left hands; undetected hands are not read."""
    from handrecon.eval.detection import evaluate_detector

    samples = build_dataset("synthetic", scenes / "a", "all")
    targets = [h.side for s in samples for h in s.hands if h.detectable]
    share = targets.count("left") / len(targets)
    assert 0 < share < 1
    metrics = evaluate_detector(_GroundTruthDetector(samples), scenes / "a")
    assert metrics["side_hands"] == metrics["side_hands_detected"] == len(targets)
    assert metrics["side_accuracy"] == pytest.approx(share) and metrics["side_accuracy_gt_boxes"] == pytest.approx(share)
    missed = evaluate_detector(_GroundTruthDetector(samples, found=False), scenes / "a")
    assert missed["side_hands_detected"] == 0 and missed["side_accuracy_gt_boxes"] == pytest.approx(share)
