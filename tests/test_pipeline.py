"""Full images by default: the two-stage pipeline (detector + crop model), `--crop`, and the
detector's side head hook."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_predictor import tiny_checkpoint
from typer.testing import CliRunner

from handrecon.cli import app
from handrecon.infer.load import load
from handrecon.infer.pipeline import (PEAK_BOUND, SIDE_HEAD_PRIOR_WEIGHT, TwoStagePredictor, candidate_floor,
                                      presence_scores)
from handrecon.models.handos.detections import read_box_sides
from handrecon.models.handos.detector import Detections
from handrecon.models.m3dhmr.inference import SIDE_EVIDENCE_SCALE, SIDE_EVIDENCE_SCALE_ALONE
from handrecon.models.handos.detections import DetectorConfig, box_crops, prepare_arrays

runner = CliRunner()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ck") / "ck")


class FakeDetector:
    """Two hands in every image, or none; counts its calls."""

    kind = "fake"
    side_head = None
    test_time_flip = False

    def __init__(self, hands: int = 2) -> None:
        self.hands, self.calls = hands, 0

    def detect(self, images, score_threshold, nms_iou, max_hands=100):
        self.calls += 1
        boxes = np.array([[10, 10, 60, 70], [70, 20, 110, 80]], np.float64)[: self.hands]
        return [Detections(boxes, np.array([0.9, 0.7])[: self.hands], np.arange(self.hands), ["left", "right"][: self.hands],
                           np.array([0.8, 0.1])[: self.hands]) for _ in images]

    def describe(self):
        return {"kind": self.kind}


def p_left(hand) -> float:
    """A read hand's probability of "left" (side_score is that of its reported side)."""
    return hand.side_score if hand.side == "left" else 1.0 - hand.side_score


def assert_side_combined(found, own, prior) -> None:
    """`found`: the pipeline's hand, `own`: the crop model's reading of the same box alone, `prior`:
    the side head's weighted logit. The pipeline adds them: log-odds of "left" = the crop model's
    log peak ratio at the combined scale + prior (alone it is scaled for a calibrated side_score)."""
    ratio = np.log(p_left(own) / (1 - p_left(own))) / SIDE_EVIDENCE_SCALE_ALONE
    z = SIDE_EVIDENCE_SCALE * ratio + prior
    assert found.side == ("left" if z > 0 else "right")
    assert found.side_score == pytest.approx(1 / (1 + np.exp(-abs(z))), abs=1e-5)


def test_every_detected_hand_is_reconstructed_with_its_score_and_side(ckpt):
    crop = load(ckpt, second_look=False)  # one view per reading: the outputs compared to 1e-6 m (tests/test_second_look.py)
    image = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    result = TwoStagePredictor(FakeDetector(), crop).predict(image)
    assert [h.score for h in result.hands] == [0.9, 0.7]  # the detector's (hand presence: its own test)
    boxes = [[10, 10, 60, 70], [70, 20, 110, 80]]
    own = crop.predict(image, boxes=boxes).hands  # the crop model's reading alone (crop and mirror)
    priors = SIDE_HEAD_PRIOR_WEIGHT * np.log(np.array([0.8, 0.1]) / np.array([0.2, 0.9]))  # the head's p_left
    for found, alone, prior in zip(result.hands, own, priors):
        assert_side_combined(found, alone, prior)
        given = crop.predict(image, boxes=[found.box], sides=[found.side]).hands[0]
        # the winning reading's outputs, to a few float32 steps (hands ~2 m deep: one step is 2.4e-7 m; a batch of
        # two sums in another order than a batch of one, measured 1.2e-6 m on one machine)
        np.testing.assert_allclose(found.vertices, given.vertices, rtol=1e-6, atol=1e-6)
    assert [h["side_score"] for h in result.to_json()["hands"]] == pytest.approx([h.side_score for h in result.hands],
                                                                                 abs=1e-4)


class CandidateDetector(FakeDetector):
    """Four candidates at fixed scores, kept at the score threshold it is asked for (which it records)."""

    BOXES = np.array([[10, 10, 60, 70], [70, 20, 110, 80], [5, 40, 45, 85], [60, 5, 100, 45]], np.float64)
    SCORES = np.array([0.95, 0.6, 0.3, 0.08])

    def __init__(self) -> None:
        super().__init__()
        self.thresholds = []

    def detect(self, images, score_threshold, nms_iou, max_hands=100):
        self.thresholds.append(score_threshold)
        keep = self.SCORES >= score_threshold
        n = int(keep.sum())
        return [Detections(self.BOXES[keep], self.SCORES[keep], np.arange(n), ["right"] * n, np.full(n, 0.3))
                for _ in images]


def test_detections_are_rescored_with_the_crop_models_keypoint_peak(ckpt):
    """The crop model reads every candidate that could reach the threshold (detector score >= the
    floor); each hand's score combines the detector's score and the crop model's heatmap peak on its
    box; hands under the threshold are dropped, the rest come best first, at most max_hands."""
    crop = load(ckpt)
    image = np.random.default_rng(2).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    peaks = np.array([h.heatmap_peak for h in crop.predict(image, boxes=CandidateDetector.BOXES).hands])
    assert np.isfinite(peaks).all() and (peaks > 0).all()
    want = presence_scores(CandidateDetector.SCORES, peaks)
    for threshold in (0.0, 0.3, 0.5):
        detector = CandidateDetector()
        result = TwoStagePredictor(detector, crop, score_threshold=threshold, hand_presence=True).predict(image)
        assert detector.thresholds == [pytest.approx(candidate_floor(threshold))]
        read = CandidateDetector.SCORES >= candidate_floor(threshold)
        kept = [i for i in np.argsort(-want) if read[i] and want[i] >= threshold]
        assert [h.score for h in result.hands] == pytest.approx(want[kept])
        np.testing.assert_allclose([h.box for h in result.hands], CandidateDetector.BOXES[kept].reshape(-1, 4))
    capped = TwoStagePredictor(CandidateDetector(), crop, score_threshold=0.0, max_hands=2, hand_presence=True).predict(image)
    plain = TwoStagePredictor(CandidateDetector(), crop, score_threshold=0.5).predict(image)  # the default: detector scores
    assert [h.score for h in plain.hands] == [0.95, 0.6]
    assert [h.score for h in capped.hands] == pytest.approx(np.sort(want)[::-1][:2])


def test_thorough_is_carried_by_the_pipeline_and_its_settings(ckpt):
    """`--thorough` (with_detector's hand_presence) survives a change of threshold and is written
    beside every result, so a video run is not resumed with the other scoring."""
    from handrecon.infer.pipeline import with_detector

    pipeline = TwoStagePredictor(FakeDetector(), load(ckpt))
    thorough = with_detector(pipeline, "unused", 0.4, hand_presence=True)
    assert thorough.hand_presence and thorough.settings["hand_presence"] and thorough.score_threshold == 0.4
    assert thorough.at_threshold(0.2).hand_presence and not pipeline.settings["hand_presence"]


def test_the_hand_score_and_its_candidate_floor():
    """Higher detector scores and sharper heatmaps score higher; the floor is exactly the detector
    score that reaches the threshold at a peak of PEAK_BOUND; a missing peak leaves the detector's
    scores (an old export)."""
    s = np.array([0.2, 0.5, 0.9])
    assert (np.diff(presence_scores(s, [0.1] * 3)) > 0).all()
    assert (np.diff(presence_scores([0.5] * 3, [0.05, 0.1, 0.2])) > 0).all()
    for t in (0.3, 0.5, 0.8):
        assert presence_scores([candidate_floor(t)], [PEAK_BOUND])[0] == pytest.approx(t)
        assert candidate_floor(t) <= t
    np.testing.assert_array_equal(presence_scores(s, [0.1, None, 0.1]), s)
    assert candidate_floor(0.0) == 0.0 and candidate_floor(1.0) == 1.0


def test_no_hand_gives_an_empty_list_and_given_boxes_skip_the_detector(ckpt):
    crop = load(ckpt)
    image = np.zeros((90, 120, 3), np.uint8)
    assert TwoStagePredictor(FakeDetector(hands=0), crop).predict(image).hands == []
    detector = FakeDetector()
    result = TwoStagePredictor(detector, crop).predict(image, boxes=[[5, 5, 50, 50]], sides=["left"])
    assert detector.calls == 0 and len(result.hands) == 1 and result.hands[0].score is None
    assert result.hands[0].side_score is None and result.to_json()["hands"][0]["side_score"] is None  # a given side
    with pytest.raises(ValueError, match="score threshold"):
        TwoStagePredictor(detector, crop, score_threshold=2.0)


def test_settings_name_the_model_its_operating_point_and_rotations(ckpt, tmp_path):
    """What produced a result travels with it: written into the per-image JSON as "model"."""
    from handrecon.infer.batch import write_result

    crop = load(ckpt, test_time_rotations=(0, -45, 45))
    assert crop.settings == {"model": str(ckpt), "test_time_rotations": [0.0, -45.0, 45.0], "second_look": False,
                             "precision": "float32"}
    pipeline = TwoStagePredictor(FakeDetector(), crop, score_threshold=0.3, nms_iou=0.6, source="fake+crop")
    assert pipeline.settings == {"model": "fake+crop", "test_time_rotations": [0.0, -45.0, 45.0], "second_look": False,
                                 "precision": "float32",
                                 "score_threshold": 0.3, "nms_iou": 0.6, "test_time_flip": True,  # --tta: both stages
                                 "tiles": 1, "hand_presence": False}
    image = np.zeros((90, 120, 3), np.uint8)
    write_result(pipeline.predict(image), image, tmp_path, "a", mesh_formats=(), overlay=False,
                 settings=pipeline.settings)
    assert json.loads((tmp_path / "a.json").read_text())["model"] == pipeline.settings


class FakeSideHead:
    """Reads a box left when it starts in the image's left half, p_left 0.9 / 0.2; counts boxes."""

    def __init__(self) -> None:
        self.boxes_read = 0

    def sides(self, image, boxes):
        self.boxes_read += len(boxes)
        p_left = np.where(boxes[:, 0] < image.shape[1] / 2, 0.9, 0.2)
        return ["left" if p > 0.5 else "right" for p in p_left], p_left


class SidedFakeDetector(FakeDetector):
    def __init__(self) -> None:
        super().__init__()
        self.side_head = FakeSideHead()

    def read_sides(self, image, boxes):
        return read_box_sides(self.side_head, image, boxes)


@pytest.mark.parametrize("image, match", [
    ("photo.jpg", "load_image"),  # used to be AttributeError: 'str' object has no attribute 'shape'
    (Image.new("RGB", (40, 30)), "convert"),
    (np.zeros((30, 40, 3), np.float32), "uint8"),
    (np.zeros((30, 40, 4), np.uint8), "RGBA"),
    (np.zeros((3, 30, 40), np.uint8), r"transpose\(1, 2, 0\)"),
    (np.zeros((0, 0, 3), np.uint8), "empty"),  # used to be ZeroDivisionError
])
def test_bad_images_are_refused_before_the_detector_sees_them(ckpt, image, match):
    detector = FakeDetector()
    with pytest.raises(ValueError, match=match):
        TwoStagePredictor(detector, load(ckpt)).predict(image)
    assert detector.calls == 0
    good = np.zeros((30, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="^item 1: "):  # which one of a batch
        TwoStagePredictor(detector, load(ckpt)).predict_batch([good, image])
    with pytest.raises(ValueError, match="^image 1: "):  # a detector used on its own says which image, too
        prepare_arrays([good, image], DetectorConfig())


def test_given_boxes_without_a_side_take_the_side_heads_reading(ckpt):
    crop = load(ckpt)
    image = np.random.default_rng(1).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    detector = SidedFakeDetector()
    boxes = [[5, 5, 50, 50], [70, 10, 115, 60], [65, 30, 110, 85]]
    result = TwoStagePredictor(detector, crop).predict(image, boxes=boxes, sides=[None, None, "left"])
    assert detector.calls == 0 and detector.side_head.boxes_read == 3
    assert result.hands[2].side == "left" and result.hands[2].side_score is None  # as given, not as read
    own = crop.predict(image, boxes=boxes[:2]).hands
    for found, alone, p in zip(result.hands, own, (0.9, 0.2)):  # the head's p_left: the prior
        assert_side_combined(found, alone, SIDE_HEAD_PRIOR_WEIGHT * np.log(p / (1 - p)))
    alone = crop.predict(image, boxes=boxes, sides=[h.side for h in result.hands])
    for a, b in zip(result.hands, alone.hands):  # the read side's reconstruction
        np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-6)
    every = TwoStagePredictor(detector, crop).predict(image, boxes=boxes[:1], sides=["right"])
    assert detector.side_head.boxes_read == 3 and every.hands[0].side == "right"  # every side given: not read
    plain = TwoStagePredictor(FakeDetector(), crop).predict(image, boxes=boxes[:1])
    mine = crop.predict(image, boxes=boxes[:1]).hands[0]
    assert (plain.hands[0].side, plain.hands[0].side_score) == (mine.side, mine.side_score)  # no side head: the crop model's


def test_test_time_augmentation_covers_the_detector(ckpt):
    detector = FakeDetector()
    TwoStagePredictor(detector, load(ckpt))
    assert detector.test_time_flip is False  # plain
    TwoStagePredictor(detector, load(ckpt, test_time_rotations=(0, -45, 45)))
    assert detector.test_time_flip is True  # --tta: the detector reads the mirror image too


def test_load_builds_a_pipeline_from_detector_plus_model(ckpt):
    predictor = load(f"handrecon-hand-detector+{ckpt}")
    assert isinstance(predictor, TwoStagePredictor) and predictor.detects_hands
    assert predictor.card["pipeline"]["detector"]["kind"] == "rt-detr"
    assert predictor.predict(np.zeros((240, 320, 3), np.uint8)).hands == []  # a black image: no hand


def test_cli_runs_full_images_by_default_and_crop_on_request(ckpt, tmp_path):
    Image.fromarray(np.zeros((90, 120, 3), np.uint8)).save(tmp_path / "black.png")
    r = runner.invoke(app, ["reconstruct", str(tmp_path / "black.png"), "--out", str(tmp_path / "a"), "--model", str(ckpt),
                            "--no-overlay", "--formats", ""])
    assert r.exit_code == 0, r.output
    assert "1 image(s) reconstructed, 0 hand(s)" in r.output  # no hand: an empty list, not a guess
    assert json.loads((tmp_path / "a" / "black.json").read_text())["hands"] == []
    r = runner.invoke(app, ["reconstruct", str(tmp_path / "black.png"), "--out", str(tmp_path / "b"), "--model", str(ckpt),
                            "--crop", "--no-overlay", "--formats", ""])
    assert r.exit_code == 0 and "1 hand(s)" in r.output
    for args, message in ((["--crop", "--box", "1", "1", "50", "50"], "--crop"), (["--side", "left"], "--side applies"),
                          (["--detector", "nope"], "cannot load detector")):
        r = runner.invoke(app, ["reconstruct", str(tmp_path / "black.png"), "--out", str(tmp_path / "c"), "--model",
                                str(ckpt), *args])
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_cli_applies_the_score_threshold_to_a_loaded_pipeline_and_says_where_no_hand_was_found(ckpt, tmp_path):
    Image.fromarray(np.zeros((90, 120, 3), np.uint8)).save(tmp_path / "black.png")
    for model in (str(ckpt), f"handrecon-hand-detector+{ckpt}"):  # a DETECTOR+MODEL pipeline ignored it before
        out = tmp_path / model.replace("/", "_")
        r = runner.invoke(app, ["reconstruct", str(tmp_path / "black.png"), "--out", str(out), "--model", model,
                                "--score-threshold", "0.3", "--no-overlay", "--formats", ""])
        assert r.exit_code == 0, r.output
        assert json.loads((out / "black.json").read_text())["model"]["score_threshold"] == 0.3
        assert "note: no hand found in 1 image(s) at score >= 0.3 (black.png)" in r.output and "--crop" in r.output
        assert "--thorough finds more" in r.output
    r = runner.invoke(app, ["reconstruct", str(tmp_path / "black.png"), "--out", str(tmp_path / "t"), "--model", str(ckpt),
                            "--thorough", "--no-overlay", "--formats", ""])
    assert r.exit_code == 0 and "no hand found in 1 image(s)" in r.output and "--thorough finds" not in r.output
    r = runner.invoke(app, ["reconstruct", str(tmp_path / "black.png"), "--out", str(tmp_path / "c"), "--model", str(ckpt),
                            "--crop", "--no-overlay", "--formats", ""])
    assert r.exit_code == 0 and "no hand found" not in r.output  # --crop: no detector, nothing to say


def test_box_crops_cut_the_box_out():
    image = np.zeros((100, 100, 3), np.uint8)
    image[20:60, 30:50] = 255  # a 20 x 40 white box: pixels 30-49 x 20-59, centres at integers
    crop = box_crops(image, np.array([[29.5, 19.5, 49.5, 59.5]]), 40, 1.0)[0]
    assert crop.shape == (40, 40, 3)
    assert crop[:, 10:30].mean() > 250 and crop[:, :8].max() == 0 and crop[:, 32:].max() == 0
