"""`eval.bootstrap`: percentile intervals of ratio metrics, images resampled; and the per-hand terms
(`eval.scoring.per_hand_terms`) they resample, which must add up to `score_hands`' own numbers."""

from __future__ import annotations

import numpy as np
import pytest

from handrecon.eval.bootstrap import bootstrap_intervals, paired_intervals
from handrecon.eval.scoring import HandSet, per_hand_terms, score_hands


def _mean_terms(x):
    return {"m": (np.asarray(x, np.float64), np.ones(len(x)))}


def test_interval_of_a_mean_matches_the_normal_theory_one():
    """For the mean of 400 iid values the 95 % interval is about mean ± 1.96 s / sqrt(n): the bootstrap's
    ends within 15 % of that half-width; the value is the plain mean, inside its interval."""
    x = np.random.default_rng(1).normal(10.0, 2.0, 400)
    out = bootstrap_intervals(_mean_terms(x), np.arange(400), 2000)["m"]
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    assert out["value"] == pytest.approx(x.mean(), rel=1e-12)
    assert out["low"] < out["value"] < out["high"]
    assert out["value"] - out["low"] == pytest.approx(half, rel=0.15)
    assert out["high"] - out["value"] == pytest.approx(half, rel=0.15)


def test_the_same_seed_gives_the_same_interval_and_more_data_a_narrower_one():
    x = np.random.default_rng(2).exponential(5.0, 1600)
    a = bootstrap_intervals(_mean_terms(x[:400]), np.arange(400), 500, seed=3)["m"]
    assert a == bootstrap_intervals(_mean_terms(x[:400]), np.arange(400), 500, seed=3)["m"]
    assert a != bootstrap_intervals(_mean_terms(x[:400]), np.arange(400), 500, seed=4)["m"]
    b = bootstrap_intervals(_mean_terms(x), np.arange(1600), 500, seed=3)["m"]
    ratio = (b["high"] - b["low"]) / (a["high"] - a["low"])
    assert 0.35 < ratio < 0.7  # 4x the hands: about half the width


def test_images_are_resampled_not_hands():
    """Two identical hands per image carry no more information than one: the interval is the one of
    the single hands, exactly (same seed); resampled as if independent it would be ~1/sqrt(2) as wide."""
    x = np.random.default_rng(5).normal(0.8, 0.1, 300)
    single = bootstrap_intervals(_mean_terms(x), np.arange(300), 400, seed=0)["m"]
    pairs = bootstrap_intervals(_mean_terms(np.repeat(x, 2)), np.repeat(np.arange(300), 2), 400, seed=0)["m"]
    assert pairs == pytest.approx(single, rel=1e-12)
    loose = bootstrap_intervals(_mean_terms(np.repeat(x, 2)), np.arange(600), 400, seed=0)["m"]
    assert (loose["high"] - loose["low"]) < 0.85 * (single["high"] - single["low"])


def test_ratio_metrics_weigh_hands_by_their_denominators():
    """PCK pools keypoints: a hand with 2 valid keypoints counts 2/21 of one with 21; the value is Σ/Σ."""
    hits, valid = np.array([21, 0, 1, 0]), np.array([21, 21, 2, 0])  # the last hand: no valid keypoint
    out = bootstrap_intervals({"pck": (hits, valid)}, np.arange(4), 300)["pck"]
    assert out["value"] == pytest.approx(22 / 44)
    assert 0.0 <= out["low"] <= out["value"] <= out["high"] <= 1.0


@pytest.mark.parametrize("kwargs, match", [({"resamples": 50}, "integer >= 100"), ({"resamples": True}, "integer"),
                                           ({"level": 1.5}, r"level must be in \(0, 1\)"),
                                           ({"clusters": np.arange(3)}, "3 hands"),
                                           ({"terms": {"m": (np.ones(4), np.zeros(4))}}, "no weight")])
def test_bad_arguments_are_clear_errors(kwargs, match):
    args = {"terms": _mean_terms(np.ones(4)), "clusters": np.arange(4), "resamples": 200, **kwargs}
    with pytest.raises(ValueError, match=match):
        bootstrap_intervals(**args)


def test_per_hand_terms_add_up_to_score_hands_numbers():
    """Summed over any hands, the terms give `score_hands`' PA-MPJPE, MPJPE, PA-MPVPE (official
    alignment) and PCK@0.1, with a missed hand (zero joints and vertices, PCK 0) and keypoints that are
    not valid; no vertex term across hand models, no 3D term without 3D ground truth."""
    rng = np.random.default_rng(7)
    n = 12
    gt_3d = rng.normal(0, 0.05, (n, 21, 3)) + [0, 0, 0.5]
    gt_v = rng.normal(0, 0.05, (n, 50, 3)) + [0, 0, 0.5]
    gt_2d = rng.uniform(20, 200, (n, 21, 2))
    boxes = np.concatenate([gt_2d.min(1), gt_2d.max(1)], -1)
    valid = rng.random((n, 21)) > 0.2
    gt = HandSet(gt_2d, gt_3d, gt_v, boxes, ["right"] * n, valid)
    pred = HandSet(gt_2d + rng.normal(0, 8, gt_2d.shape), gt_3d + rng.normal(0, 0.01, gt_3d.shape),
                   gt_v + rng.normal(0, 0.01, gt_v.shape), boxes, ["right"] * n)
    found = np.ones(n, bool)
    found[3] = False
    terms = per_hand_terms(pred, gt, found)
    assert set(terms) == {"pck2d@0.1", "mpjpe_mm", "pa_mpjpe_mm", "pa_mpvpe_mm"}
    for rows in (np.arange(n), np.array([0, 3, 5, 6])):
        sub = lambda s: HandSet(s.keypoints_2d[rows], s.keypoints_3d[rows], s.vertices[rows], s.boxes[rows],  # noqa: E731
                                [s.sides[i] for i in rows], None if s.valid is None else s.valid[rows])
        metrics, _, _ = score_hands(sub(pred), sub(gt), found[rows])
        for key, (num, den) in terms.items():
            assert num[rows].sum() / den[rows].sum() == pytest.approx(metrics[key], rel=1e-12), key
    assert "pa_mpvpe_mm" not in per_hand_terms(pred, gt, found, "openhand", "mano")
    gt2d_only = HandSet(gt_2d, None, None, boxes, ["right"] * n, valid)
    assert set(per_hand_terms(pred, gt2d_only, found)) == {"pck2d@0.1"}


def test_paired_intervals_cancel_what_the_images_share():
    """Two models on the same hands: hard images are hard for both, so the interval of B − A is far
    narrower than either model's own; a model that is worse by exactly 0.5 on every hand gives exactly
    0.5, and only metrics both scored are compared."""
    rng = np.random.default_rng(11)
    hardness = rng.exponential(10.0, 500)
    a = hardness + rng.normal(0, 0.5, 500)
    b = hardness + rng.normal(-0.3, 0.5, 500)
    ones = np.ones(500)
    out = paired_intervals({"m": (a, ones), "only_a": (a, ones)}, {"m": (b, ones)}, np.arange(500), 1000)
    assert set(out) == {"m"}
    r = out["m"]
    assert r["difference"] == pytest.approx(b.mean() - a.mean(), rel=1e-12)
    assert r["low"] < r["difference"] < r["high"] < 0  # B is better, and the interval says so
    alone = bootstrap_intervals({"m": (a, ones)}, np.arange(500), 1000)["m"]
    assert (r["high"] - r["low"]) < 0.2 * (alone["high"] - alone["low"])
    shifted = paired_intervals({"m": (a, ones)}, {"m": (a + 0.5, ones)}, np.arange(500), 200)["m"]
    assert shifted["low"] == pytest.approx(0.5) and shifted["high"] == pytest.approx(0.5)
