"""Metrics against straightforward per-sample references that follow the official scripts literally."""

import numpy as np
import pytest
from test_procrustes import hand_joints, official_align_w_scale

from handrecon.eval.metrics import (
    dexycb_metrics,
    f_scores,
    f_scores_sets,
    hint_pck,
    keypoint_errors,
    mpjpe,
    pa_mpjpe,
    pa_mpvpe,
    pck_2d,
    scale_translation_align,
    summarize_errors,
)
from handrecon.hand.keypoints import op21_to_mano21


class RefEvalUtil:
    """The official EvalUtil semantics: lists per keypoint, loops, trapezoid AUC."""

    def __init__(self, num_kp=21):
        self.data = [[] for _ in range(num_kp)]

    def feed(self, gt, vis, pred):
        d = np.sqrt(np.sum(np.square(gt - pred), axis=1))
        for i in range(len(d)):
            if vis[i]:
                self.data[i].append(d[i])

    def get_measures(self, val_min, val_max, steps):
        thresholds = np.linspace(val_min, val_max, steps)
        norm = np.trapezoid(np.ones_like(thresholds), thresholds)
        means, medians, aucs, curves = [], [], [], []
        for data in self.data:
            if not data:
                continue
            data = np.array(data)
            means.append(np.mean(data))
            medians.append(np.median(data))
            curve = np.array([np.mean((data <= t).astype(float)) for t in thresholds])
            curves.append(curve)
            aucs.append(np.trapezoid(curve, thresholds) / norm)
        return np.mean(means), np.mean(medians), np.mean(aucs), np.mean(curves, 0), thresholds


def ref_fscore(gt, pr, th):
    d_gt = np.array([np.min(np.linalg.norm(pr - g, axis=1)) for g in gt])
    d_pr = np.array([np.min(np.linalg.norm(gt - p, axis=1)) for p in pr])
    recall = float(sum(d < th for d in d_pr)) / len(d_pr)
    precision = float(sum(d < th for d in d_gt)) / len(d_gt)
    return 2 * recall * precision / (recall + precision) if recall + precision > 0 else 0.0


def ref_align_sc_tr(gt, pred, wrist, mcp):
    pred = pred.copy()
    s = np.sqrt(np.sum(np.square(pred[mcp] - pred[wrist])))
    if s > 0:
        pred = pred / s
    pred = pred * np.sqrt(np.sum(np.square(gt[mcp] - gt[wrist])))
    return pred - pred[wrist : wrist + 1] + gt[wrist : wrist + 1]


def random_hands(rng, n, k=21, noise=0.01):
    gt = rng.normal(size=(n, k, 3)) * 0.04 + [0.0, 0.0, 0.6]
    return gt + rng.normal(size=gt.shape) * noise, gt


def test_summary_matches_official_evalutil_with_and_without_mask():
    rng = np.random.default_rng(0)
    pred, gt = random_hands(rng, 60, noise=0.02)
    vis = rng.random((60, 21)) > 0.3
    vis[:, 7] = False  # a keypoint never visible is skipped
    for mask in (np.ones_like(vis), vis):
        ref = RefEvalUtil()
        for g, m, p in zip(gt, mask, pred):
            ref.feed(g, m, p)
        mean, median, auc, curve, thr = ref.get_measures(0.0, 0.05, 100)
        got = summarize_errors(keypoint_errors(pred, gt), mask)
        assert got.mean == pytest.approx(mean, abs=1e-12)
        assert got.median == pytest.approx(median, abs=1e-12)
        assert got.auc == pytest.approx(auc, abs=1e-12)
        np.testing.assert_allclose(got.pck, curve, atol=1e-12)
        np.testing.assert_array_equal(got.thresholds, thr)


def test_auc_is_half_for_constant_25mm_errors_and_pck_is_inclusive():
    assert summarize_errors(np.full((10, 21), 0.025)).auc == pytest.approx(0.5, abs=1e-12)
    thresholds = np.linspace(0.0, 0.05, 100)
    s = summarize_errors(np.full((3, 2), thresholds[40]))
    assert s.pck[40] == 1.0 and s.pck[39] == 0.0


def test_pa_metrics_match_per_sample_official_alignment():
    rng = np.random.default_rng(1)
    pred, gt = random_hands(rng, 30)
    ref = np.mean([np.linalg.norm(official_align_w_scale(g, p) - g, axis=1).mean() for g, p in zip(gt, pred)])
    assert pa_mpjpe(pred, gt) == pytest.approx(ref, abs=1e-9)
    vpred, vgt = random_hands(rng, 10, k=300)
    ref_v = np.mean([np.linalg.norm(official_align_w_scale(g, p) - g, axis=1).mean() for g, p in zip(vgt, vpred)])
    assert pa_mpvpe(vpred, vgt) == pytest.approx(ref_v, abs=1e-9)
    assert mpjpe(pred, gt) == pytest.approx(np.linalg.norm(pred - gt, axis=-1).mean(), abs=1e-12)
    assert pa_mpjpe(pred, gt) < mpjpe(pred, gt)


@pytest.mark.parametrize("noise", [0.003, 0.03])
def test_f_scores_match_brute_force_reference(noise):
    rng = np.random.default_rng(2)
    pred, gt = random_hands(rng, 8, k=120, noise=noise)
    got = f_scores(pred, gt, (0.005, 0.015))
    ref = np.array([[ref_fscore(g, p, t) for t in (0.005, 0.015)] for g, p in zip(gt, pred)])
    np.testing.assert_allclose(got, ref, atol=1e-12)
    assert 0 < got.mean() < 1
    other = rng.normal(size=(8, 90, 3)) * 0.04 + [0, 0, 0.6]  # different vertex count: no shortcut
    got2 = f_scores_sets([other, pred], gt, (0.015, 0.005), workers=2)
    ref2 = np.array([[ref_fscore(g, p, t) for t in (0.015, 0.005)] for g, p in zip(gt, other)])
    np.testing.assert_allclose(got2[0], ref2, atol=1e-12)
    np.testing.assert_allclose(got2[1], ref[:, ::-1], atol=1e-12)


def test_f_score_threshold_is_strict():
    gt = np.zeros((1, 2, 3))
    gt[0, 1] = [10.0, 0, 0]
    pred = gt.copy()
    pred[0, :, 0] += 0.25  # every nearest distance is exactly 0.25
    assert f_scores(pred, gt, (0.25,))[0, 0] == 0.0
    assert f_scores(pred, gt, (0.2500001,))[0, 0] == 1.0
    assert f_scores(pred[:, :1], gt, (0.2500001,))[0, 0] == pytest.approx(2 * 1 * 0.5 / 1.5)


def test_ho3d_scale_translation_alignment_and_explicit_order():
    rng = np.random.default_rng(3)
    pred, gt = random_hands(rng, 5)
    got = scale_translation_align(pred, gt, order="ho3d")
    ref = np.stack([ref_align_sc_tr(g, p, 0, 4) for g, p in zip(gt, pred)])
    np.testing.assert_allclose(got, ref, atol=1e-12)
    # the same hands given in OP21 order align identically (middle MCP is joint 9 there)
    op21 = scale_translation_align(pred, gt, order="op21")
    np.testing.assert_allclose(op21_to_mano21(op21), scale_translation_align(op21_to_mano21(pred), op21_to_mano21(gt), order="ho3d"), atol=1e-12)
    verts = rng.normal(size=(5, 50, 3))
    moved = scale_translation_align(pred, gt, order="op21", points=np.concatenate([pred, verts], 1))
    np.testing.assert_allclose(moved[:, :21], op21, atol=1e-12)
    zero = scale_translation_align(np.zeros((21, 3)), gt[0], order="ho3d")  # zero length: no rescale
    np.testing.assert_allclose(zero, np.broadcast_to(gt[0, 0], (21, 3)))


def test_dexycb_metrics_match_official_toolkit_semantics():
    rng = np.random.default_rng(4)
    pred, gt = random_hands(rng, 40, noise=0.015)
    evals = {k: RefEvalUtil() for k in ("absolute", "root-relative", "procrustes")}
    for g, p in zip(gt * 1000, pred * 1000):
        vis = np.ones(21)
        evals["absolute"].feed(g, vis, p)
        evals["root-relative"].feed(g - g[0], vis, p - p[0])
        evals["procrustes"].feed(g, vis, official_align_w_scale(g, p))
    got = dexycb_metrics(pred, gt)
    for name, ev in evals.items():
        mean, _, auc, _, _ = ev.get_measures(0.0, 50.0, 100)
        assert got[name]["mpjpe"] == pytest.approx(mean, abs=1e-6)
        assert got[name]["auc"] == pytest.approx(auc, abs=1e-9)
    assert got["procrustes"]["mpjpe"] < got["absolute"]["mpjpe"]


def hint_toy():
    """REFERENCE §1: 6 px errors, boxes of long side [100, 100, 50, 200], 10 joints of sample 0 invalid."""
    gt = np.random.default_rng(5).uniform(0, 300, size=(4, 21, 2))
    angle = np.random.default_rng(6).uniform(0, 2 * np.pi, size=(4, 21))
    pred = gt + 6.0 * np.stack([np.cos(angle), np.sin(angle)], -1)
    boxes = np.array([[0, 0, 100, 60], [10, 10, 80, 110], [0, 0, 50, 20], [5, 5, 105, 205]], float)
    conf = np.ones((4, 21))
    conf[0, :10] = 0.0
    return pred, gt, conf, boxes


def test_hint_pck_toy_check():
    pred, gt, conf, boxes = hint_toy()
    out = hint_pck(pred, gt, conf, boxes, np.zeros((4, 21)))
    assert out["all"][0.05] == pytest.approx(0.2897, abs=5e-5)
    assert out["all"][0.1] == pytest.approx(0.7103, abs=5e-5)
    assert out["all"][0.15] == pytest.approx(1.0)
    assert out["visible"] == out["all"]
    assert np.isnan(out["occluded"][0.05])  # no occluded joint at all


def test_hint_pck_matches_loop_reference_on_random_inputs():
    rng = np.random.default_rng(7)
    n = 30
    gt = rng.uniform(0, 500, size=(n, 21, 2))
    pred = gt + rng.normal(size=gt.shape) * 12
    boxes = np.concatenate([rng.uniform(0, 100, (n, 2)), rng.uniform(150, 400, (n, 2))], 1)
    conf = rng.random((n, 21))
    occ = rng.random((n, 21)) > 0.6
    got = hint_pck(pred, gt, conf, boxes, occ)
    for split in ("all", "visible", "occluded"):
        for thr in (0.05, 0.1, 0.15):
            per_joint = []
            for j in range(21):
                correct = valid = 0
                for i in range(n):
                    use = conf[i, j] > 0.5 and (split == "all" or (occ[i, j] == (split == "occluded")))
                    if use:
                        norm = max(boxes[i, 2] - boxes[i, 0], boxes[i, 3] - boxes[i, 1])
                        valid += 1
                        correct += np.linalg.norm(pred[i, j] - gt[i, j]) <= thr * norm
                if valid:
                    per_joint.append(correct / valid)
            assert got[split][thr] == pytest.approx(np.mean(per_joint), abs=1e-12)


def test_pck_2d_pools_valid_keypoints():
    pred, gt, conf, boxes = hint_toy()
    assert pck_2d(pred, gt, boxes, 0.1, conf > 0.5) == pytest.approx((11 + 21 + 21) / 74)
    assert pck_2d(pred, gt, boxes, 0.05) == pytest.approx(21 / 84)


def test_zero_prediction_gives_finite_large_errors():
    rng = np.random.default_rng(8)
    gt = np.stack([hand_joints() + [0.0, 0.0, 0.6] + rng.normal(size=3) * 0.02 for _ in range(6)])
    zero = np.zeros_like(gt)
    assert mpjpe(zero, gt) == pytest.approx(np.linalg.norm(gt, axis=-1).mean())
    assert mpjpe(zero, gt) > 0.5  # ~the camera distance
    pa = pa_mpjpe(zero, gt)  # aligned to the GT centroid: the hand's spread around its centre
    assert np.isfinite(pa) and 0.02 < pa < 0.1
    f = f_scores(zero, gt)
    assert np.isfinite(f).all() and (f <= 1).all()
    s = summarize_errors(keypoint_errors(zero, gt))
    assert s.auc == 0.0


def test_pa_metrics_default_to_the_official_reflection_alignment():
    rng = np.random.default_rng(11)
    gt = rng.normal(size=(3, 30, 3)) * 0.04
    mirrored = gt * [-1.0, 1.0, 1.0] + 0.1
    assert pa_mpjpe(mirrored, gt) < 1e-7 and pa_mpvpe(mirrored, gt) < 1e-7
    assert pa_mpjpe(mirrored, gt, allow_reflection=False) > 1e-3
