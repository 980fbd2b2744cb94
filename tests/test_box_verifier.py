"""The detector's box verifier: RoI crops, candidate labels and box targets, re-scoring and moving
boxes, its training data mined from a detector, the engine recipe, calibration, and serving in torch
and on onnxruntime alike."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from handrecon.data.stream import sample_rng  # noqa: E402
from handrecon.geometry.boxes import apply_box_deltas, box_deltas, box_iou  # noqa: E402
from handrecon.models.handos.box_verifier import (  # noqa: E402
    BoxVerifier, BoxVerifierEnsemble, BoxVerifierHead, HandBoxCandidates, candidate_box_targets, candidate_targets,
)
from handrecon.models.handos.detections import (  # noqa: E402
    Detections, DetectorConfig, VerifierSettings, candidate_selection, reachable_floor, roi_crops, verified_candidates,
    verified_scores, find_hands, read_box_crops, read_roi_crops, read_verifier_settings, verify_detections,
)
from handrecon.models.handos.detector import load_detector, save_detector, wrap_detector  # noqa: E402
from handrecon.utils.image import normalize_images  # noqa: E402
from helpers import tiny_detr  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))


def test_the_crop_readers_turn_logits_into_probabilities_and_deltas_into_moved_boxes():
    """`read_box_crops` (side heads) and `read_roi_crops` (box verifiers), shared by torch and
    onnxruntime: p = sigmoid(logit), "left" where p_left > 0.5, boxes moved by their deltas, and the
    network sees one normalised crop per box; no box, no network call."""
    image = np.random.default_rng(0).integers(0, 255, (60, 80, 3), np.uint8)
    boxes = np.array([[10, 10, 30, 40], [40, 5, 70, 50]], float)
    shapes = []

    def side_network(crops):
        shapes.append(crops.shape)
        return np.array([2.0, -1.0], np.float32)

    sides, p_left = read_box_crops(side_network, image, boxes, 32, 1.5)
    assert sides == ["left", "right"] and shapes == [(2, 3, 32, 32)]
    np.testing.assert_allclose(p_left, 1 / (1 + np.exp([-2.0, 1.0])))
    deltas = np.array([[0.1, 0.0, 0.0, 0.0], [0.0, -0.1, 0.2, 0.0]], np.float32)
    p_hand, moved = read_roi_crops(lambda crops: (np.array([-3.0, 0.5]), deltas), image, boxes, 24, 1.5)
    np.testing.assert_allclose(p_hand, 1 / (1 + np.exp([3.0, -0.5])))
    np.testing.assert_allclose(moved, apply_box_deltas(boxes, deltas))
    assert moved[0, 0] > boxes[0, 0] and moved[1, 1] < boxes[1, 1]
    p_hand, unmoved = read_roi_crops(lambda crops: (np.zeros(2), None), image, boxes, 24, 1.5)
    np.testing.assert_array_equal(unmoved, boxes)
    assert read_box_crops(None, image, np.zeros((0, 4)), 32, 1.5)[0] == []
    assert read_roi_crops(None, image, np.zeros((0, 4)), 24, 1.5)[0].shape == (0,)


def test_roi_crops_put_every_box_edge_at_the_same_place():
    """A box fills the middle 1/context of the crop along each axis, whatever its aspect: a white
    rectangle exactly on the box covers that square of the crop and nothing else."""
    S, context = 60, 1.5
    inner = S / context
    lo, hi = (S - inner) / 2, (S + inner) / 2
    for box in ([20, 30, 60, 50], [100, 10, 110, 90], [5, 5, 45, 45]):
        image = np.zeros((120, 160, 3), np.uint8)
        x1, y1, x2, y2 = box
        image[y1:y2, x1:x2] = 255
        crop = roi_crops(image, np.array([box], float) - [0.5, 0.5, 0.5, 0.5], S, context)[0, ..., 0] > 127
        rows, cols = np.flatnonzero(crop.any(1)), np.flatnonzero(crop.any(0))
        assert abs(rows[0] - lo) <= 1.5 and abs(rows[-1] + 1 - hi) <= 1.5, (box, rows[[0, -1]])
        assert abs(cols[0] - lo) <= 1.5 and abs(cols[-1] + 1 - hi) <= 1.5, (box, cols[[0, -1]])
        assert crop[int(lo) + 2:int(hi) - 2, int(lo) + 2:int(hi) - 2].all()


def test_candidate_targets_rank_tight_boxes_above_loose_ones():
    gt = np.array([[0, 0, 100, 100], [200, 200, 300, 300]], float)
    detectable = np.array([True, False])
    boxes = np.array([[0, 0, 100, 100],      # on the visible hand
                      [0, 0, 70, 100],       # IoU 0.7
                      [0, 0, 50, 100],       # IoU 0.5: just found
                      [0, 0, 45, 100],       # IoU 0.45: loose, not found
                      [0, 0, 20, 20],        # a fragment, IoU 0.04
                      [500, 500, 600, 600],  # elsewhere
                      [200, 200, 300, 300]], float)  # on the hidden hand: left out
    target = candidate_targets(boxes, gt, detectable)
    np.testing.assert_allclose(target[:6], [1.0, 1.0, 0.5, 0.1 / 0.3, 0.0, 0.0], atol=1e-9)
    assert np.isnan(target[6])
    assert candidate_targets(boxes, np.zeros((0, 4)), np.zeros(0, bool)).tolist() == [0.0] * 7


def test_box_deltas_invert_and_mirror():
    """`apply_box_deltas` undoes `box_deltas`; mirroring both boxes negates dx only (what the
    verifier's mirror augmentation does to its target); wild deltas stay finite."""
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 500, (50, 2))
    boxes, targets = np.c_[xy, xy + rng.uniform(2, 200, (50, 2))], np.c_[xy + 3, xy + rng.uniform(5, 300, (50, 2))]
    d = box_deltas(boxes, targets)
    np.testing.assert_allclose(apply_box_deltas(boxes, d), targets, atol=1e-9)
    mirror = lambda b: np.c_[640 - b[:, 2], b[:, 1], 640 - b[:, 0], b[:, 3]]  # noqa: E731
    np.testing.assert_allclose(box_deltas(mirror(boxes), mirror(targets)), d * [-1, 1, 1, 1], atol=1e-12)
    assert np.isfinite(apply_box_deltas(boxes[:1], [[1e9, -1e9, 1e9, -1e9]])).all()


def test_candidate_box_targets_point_at_the_nearest_detectable_hand():
    gt = np.array([[0, 0, 100, 100], [200, 0, 300, 100], [400, 0, 500, 100]], float)
    detectable = np.array([True, True, False])
    boxes = np.array([[10, 10, 110, 110],  # IoU 0.68 with hand 0
                      [190, 0, 260, 100],  # 0.54 with hand 1
                      [400, 0, 500, 100],  # on the hidden hand: no target
                      [0, 0, 30, 30]], float)  # a fragment (IoU 0.09): no target
    t = candidate_box_targets(boxes, gt, detectable)
    np.testing.assert_allclose(apply_box_deltas(boxes[:2], t[:2]), gt[:2], atol=1e-9)
    assert np.isnan(t[2:]).all()
    assert np.isnan(candidate_box_targets(boxes, np.zeros((0, 4)), np.zeros(0, bool))).all()


class _FixedVerifier:
    def __init__(self, p_by_x1: dict, settings: VerifierSettings, moves: dict | None = None) -> None:
        self.p_by_x1, self.settings, self.moves = p_by_x1, settings, moves or {}

    def verify(self, image, boxes):
        p = np.array([self.p_by_x1[int(b[0])] for b in boxes], float)
        return p, np.array([self.moves.get(int(b[0]), b) for b in boxes], float).reshape(-1, 4)


def test_verification_rescores_reorders_and_thresholds():
    boxes = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], float)
    found = [Detections(boxes, np.array([0.9, 0.5, 0.2], np.float32), np.array([3, 1, 7]))]
    settings = VerifierSettings(top_k=2, candidate_threshold=0.01, exponent=0.5)
    verifier = _FixedVerifier({0: 0.1, 20: 0.98, 40: 0.99}, settings)
    assert candidate_selection(None, 0.5, 100) == (0.5, 100)
    assert candidate_selection(verifier, 0.5, 100) == pytest.approx((0.25, 2), rel=1e-5)  # 0.5 ** (1 / 0.5): the reachable floor
    assert candidate_selection(verifier, 0.05, 100) == pytest.approx((0.01, 2))  # 0.0025 is under the candidates' own
    assert candidate_selection(verifier, 0.0, 100) == (0.0, 2)
    assert candidate_selection(verifier, 0.0, 1) == (0.0, 1)  # no more candidates than hands asked for
    image = np.zeros((60, 80, 3), np.uint8)
    out = verify_detections(verifier, [image], found, 0.25, 0.5, 100)[0]
    expected = verified_scores([0.9, 0.5, 0.2], [0.1, 0.98, 0.99], 0.5)  # 0.30, 0.70, 0.44
    assert out.query.tolist() == [1, 7, 3]  # re-ranked by the verified score
    np.testing.assert_allclose(out.scores, expected[[1, 2, 0]], rtol=1e-6)
    assert verify_detections(verifier, [image], found, 0.35, 0.5, 100)[0].query.tolist() == [1, 7]
    assert verify_detections(verifier, [image], found, 0.0, 0.5, 1)[0].query.tolist() == [1]
    assert verify_detections(None, [image], found, 0.5, 0.5, 100) is found


def test_moved_boxes_are_served_and_two_moved_onto_one_hand_keep_the_better():
    """A refining verifier's boxes replace the candidates' (clipped to the image), and NMS runs again
    on them: two loose boxes on one hand (IoU 0.33 apart, both kept by the detector's NMS) moved onto
    it become one detection, the better-scored, at the hand's box."""
    hand = [20.0, 10.0, 50.0, 40.0]
    boxes = np.array([[10, 10, 40, 40], [30, 10, 60, 40], [60, 0, 75, 15]], float)
    found = Detections(boxes, np.array([0.9, 0.8, 0.7], np.float32), np.array([4, 5, 6]))
    settings = VerifierSettings(exponent=0.5)
    verifier = _FixedVerifier({10: 0.5, 30: 0.9, 60: 0.9}, settings, {10: hand, 30: hand, 60: [70, 0, 90, 20]})
    image = np.zeros((60, 80, 3), np.uint8)
    out = verified_candidates(verifier, image, found, 0.5)
    assert out.query.tolist() == [5, 6]  # 5: sqrt(0.8 * 0.9) = 0.85 beats 4: sqrt(0.9 * 0.5) = 0.67
    np.testing.assert_allclose(out.boxes, [hand, [70, 0, 80, 20]])  # clipped to the 80 px wide image
    served = verify_detections(verifier, [image], [found], 0.8, 0.5, 100)[0]
    assert served.query.tolist() == [5]


def test_a_second_pass_reads_and_scores_the_moved_box(tmp_path):
    """passes=2 (a cascade): the verifier reads the box it moved, and the served box and score come
    from that second reading; settings written before `passes` existed read as one pass."""
    found = Detections(np.array([[10, 10, 40, 40]], float), np.array([0.8], np.float32), np.array([3]))
    moves = {10: [20, 10, 50, 40], 20: [21, 12, 51, 42]}
    image = np.zeros((60, 80, 3), np.uint8)
    one = verified_candidates(_FixedVerifier({10: 0.3, 20: 0.9}, VerifierSettings(), moves), image, found, 0.5)
    two = verified_candidates(_FixedVerifier({10: 0.3, 20: 0.9}, VerifierSettings(passes=2), moves), image, found, 0.5)
    np.testing.assert_allclose(one.boxes, [moves[10]])
    np.testing.assert_allclose(one.scores, verified_scores([0.8], [0.3], 0.5))
    np.testing.assert_allclose(two.boxes, [moves[20]])
    np.testing.assert_allclose(two.scores, verified_scores([0.8], [0.9], 0.5))
    (tmp_path / "serving.json").write_text(json.dumps({"top_k": 20, "candidate_threshold": 0.01, "exponent": 0.4}))
    assert read_verifier_settings(tmp_path) == VerifierSettings(exponent=0.4, passes=1)
    (tmp_path / "serving.json").write_text(json.dumps({"top_k": 20, "candidate_threshold": 0.01, "exponent": 0.4,
                                                       "passes": 0}))
    with pytest.raises(ValueError, match="serving.json.*passes must be >= 1"):
        read_verifier_settings(tmp_path)
    for bad in ({"exponent": 0.0}, {"candidate_threshold": 1.0}, {"top_k": 0}, {"passes": 0},
                {"detector_weight": 0.0}, {"detector_weight": 1.5}):
        with pytest.raises(ValueError, match="must be >= 1, candidate_threshold in"):
            VerifierSettings(**bad)


def test_a_detector_weight_below_one_trusts_the_verifier_more(tmp_path):
    """detector_weight w: served (s_det ** w * p_hand) ** exponent, so a candidate the detector
    scored low but the verifier is sure of can outrank one the detector liked; its reachable floor
    is threshold ** (1 / (exponent * w)); read from serving.json, absent = 1."""
    found = Detections(np.array([[10, 10, 40, 40], [50, 10, 70, 40]], float), np.array([0.2, 0.8], np.float32),
                       np.array([0, 1]))
    image = np.zeros((60, 80, 3), np.uint8)
    p_hand = {10: 0.95, 50: 0.3}
    for w, first in ((1.0, 1), (0.5, 0), (0.25, 0)):
        served = verified_candidates(_FixedVerifier(p_hand, VerifierSettings(exponent=0.8, detector_weight=w)),
                                     image, found, 0.5)
        expected = (np.array([0.2, 0.8]) ** w * np.array([0.95, 0.3])) ** 0.8
        np.testing.assert_allclose(served.scores, np.sort(expected)[::-1])
        assert served.query[0] == first
        assert reachable_floor(0.5, 0.8, w) == pytest.approx(0.5 ** (1 / (0.8 * w)), rel=1e-5)  # less a hair
        assert verified_scores([reachable_floor(0.5, 0.8, w) * 1.001], [1.0], 0.8, w)[0] >= 0.5
    (tmp_path / "serving.json").write_text(json.dumps({"top_k": 20, "candidate_threshold": 0.01, "exponent": 0.4,
                                                       "passes": 2, "detector_weight": 0.5}))
    assert read_verifier_settings(tmp_path).detector_weight == 0.5


class _PseudoRandomVerifier:
    """p_hand and a small move of each box as fixed functions of its coordinates; counts the boxes it sees."""

    def __init__(self, exponent: float, detector_weight: float = 1.0) -> None:
        self.settings = VerifierSettings(top_k=20, candidate_threshold=0.01, exponent=exponent,
                                         detector_weight=detector_weight)
        self.seen = 0

    def verify(self, image, boxes):
        boxes = np.asarray(boxes, float).reshape(-1, 4)
        self.seen += len(boxes)
        phase = np.sin(boxes @ np.array([12.9898, 78.233, 37.719, 4.581])) * 43758.5453
        p = phase - np.floor(phase)
        return p, boxes + 3.0 * np.stack([np.cos(phase), np.sin(phase), np.cos(phase), np.sin(phase)], 1)


@pytest.mark.parametrize("exponent, detector_weight", [(0.43, 1.0), (1.0, 1.0), (1.7, 1.0), (1.14, 0.5), (1.7, 0.3)])
def test_candidates_that_cannot_reach_the_threshold_are_not_verified_and_nothing_served_changes(
        exponent, detector_weight, monkeypatch):
    """`candidate_selection` skips candidates whose verified score must stay under the request's
    threshold (`reachable_floor`): at every threshold the served detections are the same as when
    every candidate is verified (both NMS passes included), and at 0.5 the verifier sees far fewer boxes."""
    import handrecon.models.handos.detections as detections

    rng = np.random.default_rng(0)
    B, Q = 6, 60
    centres = rng.uniform(0.1, 0.9, (B, Q, 2))
    boxes = np.concatenate([centres, rng.uniform(0.05, 0.3, (B, Q, 2))], -1).astype(np.float32)
    boxes[:, Q // 2:, :2] = boxes[:, :Q // 2, :2] + rng.normal(0, 0.02, (B, Q // 2, 2))  # overlapping pairs
    scores = (rng.uniform(0, 1, (B, Q)) ** 3).astype(np.float32)
    images = [np.zeros((240, 320, 3), np.uint8)] * B
    args = (images, boxes, scores, (256, 256), np.full(B, 0.8))
    for threshold in [0.0, 0.02, 0.2, 0.3, 0.5, 0.7, 0.9]:
        for nms_iou, max_hands in [(0.5, 100), (0.7, 2)]:
            pruned = _PseudoRandomVerifier(exponent, detector_weight)
            served = find_hands(*args, threshold, nms_iou, max_hands, verifier=pruned)
            monkeypatch.setattr(detections, "reachable_floor", lambda *args: 0.0)
            every = _PseudoRandomVerifier(exponent, detector_weight)
            reference = find_hands(*args, threshold, nms_iou, max_hands, verifier=every)
            monkeypatch.undo()
            for a, b in zip(served, reference):
                assert a.query.tolist() == b.query.tolist()
                np.testing.assert_array_equal(a.boxes, b.boxes)
                np.testing.assert_array_equal(a.scores, b.scores)
            assert pruned.seen <= every.seen
            if threshold == 0.5 and max_hands == 100:  # (with max_hands 2 both read the 2 best candidates)
                assert sum(len(d.boxes) for d in reference) > 0
                assert pruned.seen < every.seen, (pruned.seen, every.seen)


class _BoxesAsFound:
    """A detector that proposes each scene's hands (shifted a little) and fragments of them."""

    def __init__(self, scenes) -> None:
        self.by_image = {id(s.image): s for s in scenes}

    def detect(self, images, score_threshold=0.0, nms_iou=0.5):
        out = []
        for image in images:
            hands = self.by_image[id(image)].hands
            boxes = [np.asarray(h.box, float) + [1, 1, 1, 1] for h in hands]
            boxes += [np.r_[h.box[:2], (np.asarray(h.box[:2]) + np.asarray(h.box[2:])) / 2 - 4] for h in hands]
            boxes += [np.array([0, 0, 8, 8], float)]
            scores = np.linspace(0.9, 0.05, len(boxes)).astype(np.float32)
            out.append(Detections(np.array(boxes, np.float32).reshape(-1, 4), scores, np.arange(len(boxes))))
        return out


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    """Six synthetic scenes and their candidates file, mined by tools/mine_candidates.py's `mine`."""
    from typer.testing import CliRunner

    from handrecon.cli import app
    from handrecon.data.loaders import build_dataset
    from mine_candidates import mine

    root = tmp_path_factory.mktemp("verifier")
    r = CliRunner().invoke(app, ["synth", "--preset", "scene", "--num", "6", "--shard-size", "3", "--image-size", "96x128",
                                 "--set", "num_hands=[1, 2]", "--out", str(root / "scenes"), "--quiet"])
    assert r.exit_code == 0, r.output
    scenes = build_dataset("synthetic", root / "scenes", "all")
    samples = [scenes[i] for i in range(len(scenes))]

    class _Cached:
        def __len__(self):
            return len(samples)

        def __getitem__(self, i):
            return samples[i]

    arrays = mine(_BoxesAsFound(samples), _Cached(), str(root / "scenes"), log_every=0)
    np.savez(root / "candidates.npz", **arrays)
    return root


def test_mined_candidates_give_balanced_labelled_roi_crops(mined):
    with np.load(mined / "candidates.npz") as c:
        assert int(c["n"]) == 6 and len(c["boxes"]) == len(c["scores"]) == len(c["image"])
        assert len(c["gt"]) == len(c["gt_image"]) == len(c["gt_detectable"]) >= 6
    data = HandBoxCandidates(str(mined / "scenes"), str(mined / "candidates.npz"), split="train", val_images=2, num=64,
                             input_size=32, seed=3)
    items = [data[i] for i in range(64)]
    assert items[0]["pixel_values"].shape == (3, 32, 32)
    hands = np.array([float(it["hand"]) for it in items])
    assert 16 <= (hands >= 0.5).sum() <= 48 and ((hands >= 0) & (hands <= 1)).all()  # half of the draws are found hands
    folder = data.folders[0]
    assert set(np.unique(folder.image[folder.hands])) <= {0, 1, 2, 3}  # the train split: the first 4 images
    again = HandBoxCandidates(str(mined / "scenes"), str(mined / "candidates.npz"), split="train", val_images=2, num=64,
                              input_size=32, seed=3)
    assert torch.equal(again[5]["pixel_values"], items[5]["pixel_values"])  # the same draw: exact resume
    data.set_epoch(1)
    assert not torch.equal(data[5]["pixel_values"], items[5]["pixel_values"])
    with pytest.raises(ValueError, match="one candidates file per scene folder"):
        HandBoxCandidates([str(mined / "scenes")] * 2, str(mined / "candidates.npz"))
    with np.load(mined / "candidates.npz") as c:
        np.savez(mined / "wrong.npz", **{**dict(c), "n": np.int64(7)})
    with pytest.raises(ValueError, match="mine it again"):
        HandBoxCandidates(str(mined / "scenes"), str(mined / "wrong.npz"))
    with np.load(mined / "candidates.npz") as c:
        np.savez(mined / "shuffled.npz", **{**dict(c), "image": c["image"][::-1].copy()})
    with pytest.raises(ValueError, match="not in image order"):
        HandBoxCandidates(str(mined / "scenes"), str(mined / "shuffled.npz"))
    intact = (mined / "candidates.npz").read_bytes()
    for damaged in (b"", intact[: len(intact) // 2]):  # empty, cut short in a copy: one line naming the file
        (mined / "damaged.npz").write_bytes(damaged)
        with pytest.raises(ValueError, match=r"damaged\.npz: not a candidates file of tools/mine_candidates\.py"):
            HandBoxCandidates(str(mined / "scenes"), str(mined / "damaged.npz"))
    with np.load(mined / "candidates.npz") as c:
        np.savez(mined / "partial.npz", **{k: v for k, v in c.items() if k != "gt_detectable"})
    with pytest.raises(ValueError, match=r"partial\.npz: not a candidates file .*no gt_detectable array"):
        HandBoxCandidates(str(mined / "scenes"), str(mined / "partial.npz"))
    with pytest.raises(ValueError, match=r"nope\.npz: not found; mine it with tools/mine_candidates\.py"):
        HandBoxCandidates(str(mined / "scenes"), str(mined / "nope.npz"))


def test_a_folder_of_hand_free_scenes_gives_non_hands_only(mined, tmp_path):
    """A scene folder without hands (hard negatives) joins the draws: every draw from it is a
    non-hand, the folder with hands still gives found hands, and a dataset with
    no hand anywhere is refused."""
    from typer.testing import CliRunner

    from handrecon.cli import app

    r = CliRunner().invoke(app, ["synth", "--preset", "scene", "--num", "4", "--image-size", "96x128", "--set",
                                 "num_hands=[0, 0]", "--out", str(tmp_path / "free"), "--quiet"])
    assert r.exit_code == 0, r.output
    np.savez(tmp_path / "free.npz", boxes=np.tile(np.array([[5, 5, 40, 50]], np.float32), (4, 1)),
             scores=np.full(4, 0.6, np.float32), image=np.arange(4), gt=np.zeros((0, 4), np.float32),
             gt_image=np.zeros(0, int), gt_detectable=np.zeros(0, bool), n=np.int64(4))
    data = HandBoxCandidates([str(mined / "scenes"), str(tmp_path / "free")], [str(mined / "candidates.npz"),
                             str(tmp_path / "free.npz")], split="train", val_images=1, num=80, input_size=32, seed=1)
    free, with_hands = data.folders[1], data.folders[0]
    assert len(free.hands) == 0 and len(free.others) == 3  # the last image is validation
    draws = [data[i] for i in range(80)]
    hands = np.array([float(d["hand"]) for d in draws])
    assert 10 <= (hands >= 0.5).sum() <= 30  # about a quarter: half the draws of the folder with hands
    rng_folders = [int(sample_rng(1, 0, i).integers(2)) for i in range(80)]  # the folder each draw picked
    assert all(hands[i] == 0 for i in range(80) if rng_folders[i] == 1)
    assert any(hands[i] >= 0.5 for i in range(80) if rng_folders[i] == 0)
    with pytest.raises(ValueError, match="no hand candidates"):
        HandBoxCandidates(str(tmp_path / "free"), str(tmp_path / "free.npz"), split="train", val_images=1)


def test_train_calibrate_and_serve_in_torch_and_onnx(mined, tmp_path, monkeypatch):
    """The recipe on tiny data: two engine steps from the shipped side head's trunk, packaged into a
    detector folder, calibrated (serving.json), then served by the torch and the onnxruntime
    detector alike: scores are (s_det * p_hand) ** exponent of the plain detector's candidates."""
    pytest.importorskip("onnxruntime")
    from typer.testing import CliRunner

    from handrecon.cli import app
    from handrecon.models.handos import onnx_detector as od

    monkeypatch.setenv("HANDRECON_CACHE", str(tmp_path / "cache"))
    scenes, cands = str(mined / "scenes"), str(mined / "candidates.npz")
    data = [f"data.{s}.kwargs.root={scenes}" for s in ("train", "val")]
    data += [f"data.{s}.kwargs.candidates={cands}" for s in ("train", "val")]
    data += [f"data.{s}.kwargs.val_images=2" for s in ("train", "val")]
    r = CliRunner().invoke(app, ["train", str(ROOT / "configs" / "box_verifier_cpu.yaml"), *data,
                                 "model.kwargs.input_size=32", "data.train.kwargs.input_size=32",
                                 "data.val.kwargs.input_size=32", "data.train.kwargs.num=8", "data.val.kwargs.num=8",
                                 "data.batch_size=4", "data.val_batch_size=4", "data.num_workers=0", "train.max_steps=2",
                                 "train.steps_per_epoch=2", "train.val_every=2", "train.ckpt_every=2", "train.log_every=1",
                                 "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    folder = save_detector(wrap_detector("rt-detr", tiny_detr("rt-detr"), DetectorConfig(input_size=96, square=True)),
                           tmp_path / "det")
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "package_model.py"), str(tmp_path / "run"), "--name",
                           "box_verifier", "--out-root", str(folder), "--max-mb", "8"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with pytest.raises(Exception, match="serving.json"):  # not calibrated yet: a clear error, not a guess
        load_detector(str(folder))
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "calibrate_box_verifier.py"), "--detector", str(folder),
                           "--root", scenes, "--candidates", cands, "--val-images", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    serving = json.loads((folder / "box_verifier" / "serving.json").read_text())
    t = serving["calibration"]["threshold_on_sqrt"]
    assert verified_scores([t], [t], serving["exponent"])[0] == pytest.approx(0.5)  # T is served as 0.5

    slow, fast = load_detector(str(folder)), od.detector_for_boxes(folder)
    assert isinstance(fast, od.OnnxDetector) and isinstance(fast.verifier, od.OnnxBoxVerifier)
    assert slow.verifier.settings == fast.verifier.settings and slow.describe()["box_verifier"].endswith("box_verifier")
    image = np.random.default_rng(5).integers(0, 255, (80, 120, 3), np.uint8)
    a, b = fast.detect([image], 0.0, 0.8)[0], slow.detect([image], 0.0, 0.8)[0]
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-3)
    verifier, slow.verifier = slow.verifier, None
    plain = slow.detect([image], 0.0, 0.8, max_hands=verifier.settings.top_k)[0]
    assert slow.verifier is None and verifier.model.refine  # the recipe's verifier moves boxes
    p, moved = verifier.verify(image, plain.boxes)
    expected = verified_candidates(verifier, image, plain, 0.8)
    np.testing.assert_allclose(b.scores, expected.scores, rtol=1e-5)
    np.testing.assert_allclose(b.boxes, expected.boxes, rtol=1e-5)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=0.05)  # onnxruntime moves them as torch does
    assert not np.allclose(moved, plain.boxes)
    np.testing.assert_allclose(np.sort(expected.scores)[::-1], expected.scores)
    assert set(expected.scores) <= set(verified_scores(plain.scores, p, verifier.settings.exponent))
    assert "box_verifier" not in json.loads((folder / "detector.json").read_text())


TINY_VERIFIER = {"width": 8, "input_size": 32, "context": 1.5, "refine": True}


def _random_verifiers(n: int, seed: int = 0) -> list[BoxVerifier]:
    """n tiny refining verifiers with random weights, spread enough that their readings differ."""
    torch.manual_seed(seed)
    members = [BoxVerifier(**TINY_VERIFIER).eval() for _ in range(n)]
    for member in members:
        for p in member.parameters():
            p.data.normal_(0, 0.3)
    return members


def test_an_ensemble_serves_the_mean_p_hand_and_the_mean_moved_box():
    """Three verifiers read as one: p_hand is the mean of theirs and the moved box the mean of
    their moved boxes (exact in delta units, `BoxVerifierEnsemble`), through the served reader."""
    members = _random_verifiers(3)
    ensemble = BoxVerifierEnsemble([TINY_VERIFIER] * 3).eval()
    ensemble.load_state_dict({f"members.{i}.{k}": v for i, m in enumerate(members) for k, v in m.state_dict().items()})
    image = np.random.default_rng(1).integers(0, 255, (90, 120, 3), np.uint8)
    boxes = np.array([[10, 12, 60, 70], [40, 5, 110, 80], [0, 0, 20, 30]], np.float32)
    settings = VerifierSettings()
    readings = [BoxVerifierHead(m, settings).verify(image, boxes) for m in members]
    p, moved = BoxVerifierHead(ensemble, settings).verify(image, boxes)
    assert np.ptp([r[0] for r in readings], axis=0).min() > 1e-3  # the members disagree: the mean is a real test
    np.testing.assert_allclose(p, np.mean([r[0] for r in readings], 0), rtol=1e-5)
    np.testing.assert_allclose(moved, np.mean([r[1] for r in readings], 0), atol=1e-3)


def test_ensemble_members_must_read_the_same_crops():
    with pytest.raises(ValueError, match="input_size, context and refine"):
        BoxVerifierEnsemble([TINY_VERIFIER, {**TINY_VERIFIER, "input_size": 48}])
    with pytest.raises(ValueError, match="two or more"):
        BoxVerifierEnsemble([TINY_VERIFIER])


def test_two_verifier_checkpoints_package_and_serve_as_one_in_torch_and_onnx(tmp_path, monkeypatch):
    """tools/package_model.py with two box-verifier checkpoints writes one ensemble into a detector
    folder; uncalibrated, both backends refuse it naming serving.json; calibrated, the torch and the
    onnxruntime detector serve the members' mean, and the card names both sources."""
    pytest.importorskip("onnxruntime")
    from helpers import save_model_checkpoint
    from package_model import main as package_main

    from handrecon.models.handos import onnx_detector as od

    monkeypatch.setenv("HANDRECON_CACHE", str(tmp_path / "cache"))
    members = _random_verifiers(2, seed=3)
    sources = [save_model_checkpoint(tmp_path / f"m{i}", "hand_box_verifier", TINY_VERIFIER, m)
               for i, m in enumerate(members)]
    folder = save_detector(wrap_detector("rt-detr", tiny_detr("rt-detr"), DetectorConfig(input_size=96, square=True)),
                           tmp_path / "det")
    assert package_main([*map(str, sources), "--name", "box_verifier", "--out-root", str(folder)]) == 0
    card = json.loads((folder / "box_verifier" / "card.json").read_text())
    assert card["architecture"] == "hand_box_verifier_ensemble" and card["inference"]["members"] == 2
    assert card["source_checkpoint"] == [str(s) for s in sources]
    for load in (load_detector, od.detector_for_boxes):
        with pytest.raises(ValueError, match="serving.json"):
            load(str(folder))
    (folder / "box_verifier" / "serving.json").write_text(json.dumps({"exponent": 0.8, "passes": 2, "top_k": 20,
                                                                      "candidate_threshold": 0.01}))
    slow, fast = load_detector(str(folder)), od.detector_for_boxes(folder)
    assert isinstance(slow.verifier.model, BoxVerifierEnsemble) and isinstance(fast.verifier, od.OnnxBoxVerifier)
    image = np.random.default_rng(5).integers(0, 255, (80, 120, 3), np.uint8)
    boxes = np.array([[5, 5, 60, 70], [50, 10, 115, 75]], np.float32)
    readings = [BoxVerifierHead(m, slow.verifier.settings).verify(image, boxes) for m in members]
    for verifier in (slow.verifier, fast.verifier):
        p, moved = verifier.verify(image, boxes)
        np.testing.assert_allclose(p, np.mean([r[0] for r in readings], 0), atol=1e-4)
        np.testing.assert_allclose(moved, np.mean([r[1] for r in readings], 0), atol=0.05)
    np.testing.assert_allclose(fast.detect([image], 0.0, 0.8)[0].scores, slow.detect([image], 0.0, 0.8)[0].scores,
                               atol=1e-3)


def test_only_box_verifiers_package_as_an_ensemble(tmp_path, capsys):
    from helpers import save_model_checkpoint
    from package_model import main as package_main

    from handrecon.models.handos.side_head import SideClassifier

    verifier = save_model_checkpoint(tmp_path / "v", "hand_box_verifier", TINY_VERIFIER, _random_verifiers(1)[0])
    side_kwargs = {"width": 8, "input_size": 32}
    side = save_model_checkpoint(tmp_path / "s", "hand_side", side_kwargs, SideClassifier(**side_kwargs))
    assert package_main([str(verifier), str(side), "--name", "x", "--out-root", str(tmp_path / "out")]) == 1
    assert "one ensemble only for ['hand_box_verifier']" in capsys.readouterr().err
    assert not (tmp_path / "out" / "x").exists()


def test_the_verifier_network_learns_a_whole_object_from_its_fragment():
    """The network separates RoI crops of a bright square (a "hand") from crops of its corner (a
    fragment) after a few steps: what the verifier must learn to re-rank fragments below hands."""
    torch.manual_seed(0)
    model = BoxVerifier(width=8, input_size=32).eval()  # fixed batch norms: two crops make no batch statistics
    image = np.zeros((64, 64, 3), np.uint8)
    image[16:48, 16:48] = 200
    whole, corner = np.array([[16, 16, 48, 48]], float), np.array([[16, 16, 28, 28]], float)
    from handrecon.utils.image import normalize_images

    x = torch.from_numpy(normalize_images(np.concatenate([roi_crops(image, whole, 32, 1.5), roi_crops(image, corner, 32, 1.5)])))
    y = torch.tensor([1.0, 0.0])
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(30):
        loss = model.loss(model({"pixel_values": x}), {"hand": y})[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    logits = model.outputs(x)[0]
    assert logits[0] > 0 > logits[1]
    assert model.validate([{"pixel_values": x, "hand": y}])["accuracy"] == 1.0


def test_calibration_holds_the_hand_free_rate_of_a_dedicated_hand_free_set(mined, tmp_path):
    """`--hand-free-root`: the served threshold keeps the detector's hand-free rate measured on a
    set of hand-free scenes (not the validation shard's few), or a rate given instead; a set with
    hands is refused."""
    from typer.testing import CliRunner

    from calibrate_box_verifier import calibrate
    from handrecon.cli import app

    r = CliRunner().invoke(app, ["synth", "--preset", "scene", "--num", "4", "--image-size", "96x128", "--set",
                                 "num_hands=[0, 0]", "--out", str(tmp_path / "free"), "--quiet"])
    assert r.exit_code == 0, r.output
    # the plain detector puts a hand on 1 of 4 images at 0.5 (score 0.55); the others score 0.49
    np.savez(tmp_path / "free.npz", boxes=np.tile(np.array([[0, 0, 20, 20]], np.float32), (4, 1)),
             scores=np.array([0.55, 0.49, 0.49, 0.49], np.float32), image=np.arange(4), gt=np.zeros((0, 4), np.float32),
             gt_image=np.zeros(0, int), gt_detectable=np.zeros(0, bool), n=np.int64(4))

    class _Sure:  # p_hand = 1 everywhere: the scenes' precision alone asks T >= 0.69 (its fragments score
        # 0.475), where sqrt(0.49) = 0.7 would put a hand on all four hand-free images; their rate asks 0.71
        settings = VerifierSettings(top_k=20)

        def verify(self, image, boxes):
            return np.ones(len(boxes)), boxes

    scenes, cands = str(mined / "scenes"), str(mined / "candidates.npz")
    found = calibrate(_Sure(), scenes, cands, 2, (str(tmp_path / "free"), str(tmp_path / "free.npz")))
    assert found["target_no_hand_fp_rate"] == 0.25 and found["no_hand_fp_rate"] <= 0.25
    assert found["threshold_on_sqrt"] == 0.71 and found["hand_free_root"] == str(tmp_path / "free")
    assert found["precision"] >= found["target_precision"]
    strict = calibrate(_Sure(), scenes, cands, 2, (str(tmp_path / "free"), str(tmp_path / "free.npz")),
                       hand_free_rate=0.0)  # a target of the user's: no hand-free image with a detection
    assert strict["target_no_hand_fp_rate"] == 0.0 and strict["no_hand_fp_rate"] == 0.0
    assert strict["threshold_on_sqrt"] == 0.75  # above sqrt(0.55) = 0.742
    with pytest.raises(ValueError, match="holds images with hands"):
        calibrate(_Sure(), scenes, cands, 2, (scenes, cands))


def test_the_verifier_network_learns_to_move_a_box_onto_its_object():
    """Boxes shifted off a bright square, left, right, up and down: after a few steps the predicted
    deltas move them onto it (mean IoU up from 0.6 to above 0.85): the regression's sign and scale
    conventions hold from crop to served box."""
    torch.manual_seed(0)
    model = BoxVerifier(width=8, input_size=32, refine=True).eval()
    image = np.zeros((64, 64, 3), np.uint8)
    image[16:48, 16:48] = 200
    square = np.array([16, 16, 48, 48], float)
    boxes = square + np.array([[-8, 0, -8, 0], [8, 0, 8, 0], [0, -8, 0, -8], [0, 8, 0, 8], [-4, -4, 4, 4], [4, 4, -4, -4]])
    x = torch.from_numpy(normalize_images(roi_crops(image, boxes, 32, 1.5)))
    target = torch.from_numpy(box_deltas(boxes, np.tile(square, (len(boxes), 1))).astype(np.float32))
    batch = {"pixel_values": x, "hand": torch.ones(len(boxes)), "deltas": target, "deltas_valid": torch.ones(len(boxes))}
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(60):
        loss = model.loss(model(batch), batch)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    moved = apply_box_deltas(boxes, model.outputs(x)[1].detach().numpy())
    before, after = np.diag(box_iou(boxes, square[None].repeat(len(boxes), 0))), box_iou(moved, square[None])[:, 0]
    assert before.mean() < 0.65 and after.mean() > 0.85
    metrics = model.validate([batch])
    assert metrics["iou_before"] == pytest.approx(before.mean()) and metrics["iou_after"] > 0.85


def test_a_mirrored_training_crop_gets_the_mirrored_delta_target(mined):
    """The training data's mirror augmentation flips dx with the crop: an augmented draw whose dx
    flipped sign shows the plain draw's crop mirrored, one whose dx kept its sign shows it unmirrored."""
    kw = dict(split="train", val_images=2, num=60, input_size=32, seed=3)
    aug = HandBoxCandidates(str(mined / "scenes"), str(mined / "candidates.npz"), **kw)
    plain = HandBoxCandidates(str(mined / "scenes"), str(mined / "candidates.npz"), augment=False, **kw)
    checked = {True: 0, False: 0}
    for i in range(60):
        a, p = aug[i], plain[i]  # epoch 0: the same candidate drawn
        if not p["deltas_valid"] or abs(float(p["deltas"][0])) < 1e-3:
            continue
        np.testing.assert_allclose(a["deltas"][1:], p["deltas"][1:], rtol=1e-6)
        flipped = np.sign(float(a["deltas"][0])) != np.sign(float(p["deltas"][0]))
        x, y = a["pixel_values"].numpy(), p["pixel_values"].numpy()
        assert (np.corrcoef(x.ravel(), y[:, :, ::-1].ravel())[0, 1] > np.corrcoef(x.ravel(), y.ravel())[0, 1]) == flipped
        checked[flipped] += 1
    assert checked[True] >= 3 and checked[False] >= 3


@pytest.mark.parametrize("args, message", [(["--passes", "0"], "--passes / --detector-weight: top_k and passes must be >= 1"),
                                           (["--top-k", "0"], "--passes / --detector-weight: top_k and passes must be >= 1"),
                                           (["--detector-weight", "0"], "detector_weight in (0, 1]"),
                                           (["--precision", "92"], "--precision is a fraction in [0, 1]"),
                                           (["--hand-free-rate", "-0.1"], "--hand-free-rate is a fraction")])
def test_calibration_refuses_impossible_settings_before_reading_anything(tmp_path, args, message):
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "calibrate_box_verifier.py"), "--detector",
                           str(tmp_path), "--root", str(tmp_path), "--candidates", str(tmp_path / "c.npz"), *args],
                          capture_output=True, text=True)
    assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr
