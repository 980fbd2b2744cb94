"""`eval.scoring`: box IoU, one-to-one matching by score, and the one scoring function with the
HandOS convention for a missed hand; and the runner over whole images with a detecting model."""

from __future__ import annotations

import numpy as np
import pytest
from test_eval_runner import write_synthetic

from handrecon.data.loaders import build_dataset
from handrecon.eval.metrics import keypoint_errors, summarize_errors
from handrecon.eval.runner import evaluate
from handrecon.eval.scoring import HandSet, match_hands, score_hands
from handrecon.geometry.boxes import box_iou
from handrecon.eval.submission import FreihandSet, evaluate_freihand
from handrecon.geometry.procrustes import procrustes_align
from handrecon.infer.results import HandResult, ImageResult


def test_box_iou_values():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 10]])
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0, 0.0]])


def test_matching_is_one_to_one_highest_score_first_at_iou_half():
    gt = np.array([[0, 0, 10, 10], [100, 100, 110, 110]])
    # two predictions on GT 0: the higher score wins it even though it is listed second; the other
    # is left unmatched (one-to-one) although its IoU is higher
    pred = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [100, 100, 110, 110]])
    np.testing.assert_array_equal(match_hands(pred, [0.5, 0.9, 0.1], gt), [1, 2])
    # IoU exactly 0.5 matches, just below does not
    half = np.array([[0, 0, 10, 20]])  # IoU with [0, 0, 10, 10] = 100 / 200
    assert match_hands(half, [1.0], gt[:1])[0] == 0
    assert match_hands(np.array([[0, 0, 10, 20.5]]), [1.0], gt[:1])[0] == -1
    assert (match_hands(np.zeros((0, 4)), [], gt) == -1).all()


def _hands(n: int, seed: int) -> HandSet:
    rng = np.random.default_rng(seed)
    kp3d = rng.normal(size=(n, 21, 3)) * 0.04 + [0, 0, 0.5]
    verts = rng.normal(size=(n, 50, 3)) * 0.04 + [0, 0, 0.5]
    kp2d = rng.uniform(0, 100, size=(n, 21, 2))
    boxes = np.concatenate([kp2d.min(1), kp2d.max(1)], -1)
    return HandSet(kp2d, kp3d, verts, boxes, ["right"] * n, np.ones((n, 21), bool))


def test_a_missed_hand_scores_zero_vertices_in_3d_and_zero_in_pck_and_auc():
    """HandOS §4: "In terms of missed detection, we use V = 0 for 3D metrics and set 0 for PCK/AUC".
    Expectations are computed here from the definitions, hand by hand."""
    gt, pred = _hands(4, 0), _hands(4, 1)
    pred.keypoints_2d = gt.keypoints_2d + 1.0  # every found keypoint within 0.1 of the box side
    found = np.array([True, False, True, True])
    metrics, official, notes = score_hands(pred, gt, found, num_predictions=5)
    zero = lambda a: np.where(found[:, None, None], a, 0.0)  # noqa: E731
    want = evaluate_freihand(FreihandSet(zero(pred.keypoints_3d), zero(pred.vertices)),
                             FreihandSet(gt.keypoints_3d, gt.vertices))
    assert metrics["pa_mpjpe_mm"] == pytest.approx(want["xyz_al_mean3d"])
    assert metrics["pa_mpvpe_mm"] == pytest.approx(want["mesh_al_mean3d"])
    assert metrics["mpjpe_mm"] == pytest.approx(want["xyz_mean3d"])
    assert metrics["pck2d@0.1"] == pytest.approx(3 / 4)  # the missed hand's 21 keypoints count as wrong
    errors = keypoint_errors(procrustes_align(pred.keypoints_3d, gt.keypoints_3d), gt.keypoints_3d)
    auc_found = summarize_errors(errors[found]).auc
    assert metrics["auc"] == pytest.approx(auc_found * 3 / 4)  # PCK curves average per joint over hands
    root = np.linalg.norm(pred.keypoints_3d[found, 0] - gt.keypoints_3d[found, 0], axis=-1).mean()
    assert metrics["root_error_mm"] == pytest.approx(1000 * root)  # over the found hands only
    assert metrics["recall"] == 0.75 and metrics["precision"] == 0.6 and metrics["side_accuracy"] == 1.0
    assert any("1 of 4 ground-truth hands were not found" in n for n in notes)
    # all found: the plain official numbers
    metrics, _, notes = score_hands(pred, gt, np.ones(4, bool))
    assert metrics["auc"] == pytest.approx(evaluate_freihand(FreihandSet(pred.keypoints_3d, pred.vertices),
                                                             FreihandSet(gt.keypoints_3d, gt.vertices))["xyz_al_auc3d"])
    assert notes == [] and metrics["precision"] == 1.0


class Detector:
    """A full-image 'model' that returns the ground truth of every hand of its image but misses
    one hand, reports one extra box and gets one side wrong (by image content: the image index)."""

    detects_hands = True
    hand_model = "openhand"
    source = "detector"

    def __init__(self, samples):
        self.samples = {s.image.tobytes(): s for s in samples}

    def predict_batch(self, images, Ks=None, boxes=None, sides=None, batch_size=32):
        assert boxes is None and sides is None  # a detector gets no prompts
        out = []
        for image, K in zip(images, Ks):
            smp = self.samples[image.tobytes()]
            hands = [HandResult(box=h.box, side=h.side, keypoints_2d=h.keypoints_2d, keypoints_3d=h.keypoints_3d,
                                vertices=h.vertices, cam_t=h.keypoints_3d[0], score=0.9) for h in smp.hands]
            out.append(ImageResult(K=K, image_size=image.shape[:2], hands=hands))
        out[0].hands = out[0].hands[1:]  # image 0: its first hand is missed
        out[1].hands.append(HandResult(box=np.array([0, 0, 5, 5]), side="left", keypoints_2d=np.zeros((21, 2)),
                                       keypoints_3d=np.zeros((21, 3)), vertices=np.zeros((778, 3)),
                                       cam_t=np.zeros(3), score=0.3))  # a false positive
        out[1].hands[0].side = {"left": "right", "right": "left"}[out[1].hands[0].side]  # wrong side
        return out


def test_runner_gives_whole_images_to_a_detector_and_matches_its_hands(tmp_path):
    write_synthetic(tmp_path / "syn", n_shards=1, per_shard=3)  # images with 1, 2 and 1 hands
    ds = build_dataset("synthetic", tmp_path / "syn", "all")
    samples = [ds[i] for i in range(len(ds))]
    n_gt = sum(len(s.hands) for s in samples)
    res = evaluate(Detector(samples), "synthetic", tmp_path / "syn", split="all", batch_size=8)
    m = res.metrics
    assert res.num_samples == 3 and res.num_hands == n_gt == 4
    # 4 GT hands, 3 found; 4 predictions (0 + 2 + 1 extra + 1), 3 of them matched
    assert m["recall"] == pytest.approx(3 / 4) and m["precision"] == pytest.approx(3 / 4)
    assert m["side_accuracy"] == pytest.approx(2 / 3)
    assert m["pck2d@0.1"] == pytest.approx(3 / 4) and m["root_error_mm"] < 1e-6
    # found hands are exact (their AUC ~1: errors ~1e-9 m miss only the 0 mm threshold), the missed one is 0
    assert 0.74 < m["auc"] <= 0.75


def test_full_image_scores_follow_the_handos_protocol():
    """Perfect hands score PCK 1 in 2D and projected, 0 mm over matched hands; a missed hand
    scores 0 in PCK and is left out of the matched-only errors."""
    from handrecon.eval.scoring import full_image_scores

    rng = np.random.default_rng(0)
    xyz = rng.normal(0, 0.03, (3, 21, 3)) + [0, 0, 0.5]
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    q = xyz @ K.T
    uv = q[..., :2] / q[..., 2:]
    boxes = np.concatenate([uv.min(1), uv.max(1)], 1)
    gt = HandSet(uv, xyz, xyz, boxes, ["right"] * 3)
    found = np.array([True, True, False])
    out = full_image_scores(HandSet(uv, xyz, xyz, boxes, ["right"] * 3), gt, found, np.stack([K] * 3))
    for t in ("0.05", "0.1", "0.15"):
        assert out[f"pck2d@{t}"] == pytest.approx(2 / 3) and out[f"pck2d_proj@{t}"] == pytest.approx(2 / 3)
    assert out["pa_mpjpe_matched_mm"] == pytest.approx(0.0, abs=1e-4)  # mm
    wrong = xyz.copy()
    wrong[2] += 1.0  # the missed hand's prediction does not count
    assert full_image_scores(HandSet(uv, wrong, wrong, boxes, ["right"] * 3), gt, found,
                             np.stack([K] * 3))["pa_mpjpe_matched_mm"] == pytest.approx(0.0, abs=1e-4)  # mm
