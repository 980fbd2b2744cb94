import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from handrecon.geometry.procrustes import (
    freihand_align_by_joint_trafo,
    procrustes_align,
    procrustes_trafo,
)


def official_align_w_scale(gt, pred, return_trafo=False):
    """FreiHAND eval.py `align_w_scale` semantics, written out per sample with scipy."""
    t1, t2 = gt.mean(0), pred.mean(0)
    gt_t, pred_t = gt - t1, pred - t2
    s1 = np.linalg.norm(gt_t) + 1e-8
    s2 = np.linalg.norm(pred_t) + 1e-8
    gt_t, pred_t = gt_t / s1, pred_t / s2
    R, s = orthogonal_procrustes(gt_t, pred_t)
    if return_trafo:
        return R, s, s1, t1 - t2
    return np.dot(pred_t, R.T) * s * s1 + t1


def official_align_by_trafo(mtx, trafo):
    t2 = mtx.mean(0)
    R, s, s1, t1 = trafo
    return np.dot(mtx - t2, R.T) * s * s1 + t1 + t2


def hand_joints() -> np.ndarray:
    """A chiral, hand-shaped 21-joint set (metres): a thumb on one side, curled fingers."""
    pts = [[0.0, 0.0, 0.0]]
    bases = [(-0.03, 0.02), (-0.02, 0.09), (0.0, 0.095), (0.02, 0.09), (0.037, 0.08)]
    for f, (x, y) in enumerate(bases):
        direction = np.array([-0.6, 0.8, 0.0]) if f == 0 else np.array([0.05 * (f - 2.5), 1.0, 0.0])
        direction /= np.linalg.norm(direction)
        p = np.array([x, y, 0.01 if f == 0 else 0.0])
        for k in range(4):
            pts.append(p.copy())
            curl = 0.35 * (k + 1)
            step = direction * np.cos(curl) + np.array([0.0, 0.0, 0.9]) * np.sin(curl)
            p = p + 0.025 * step
    return np.array(pts)


def test_matches_official_per_sample_scipy_for_batches():
    rng = np.random.default_rng(0)
    for n in (21, 200):
        gt = rng.normal(size=(40, n, 3)) * 0.05 + [0, 0, 0.6]
        pred = gt + rng.normal(size=gt.shape) * 0.02
        pred[::3] *= [-1, 1, 1]  # some mirrored samples, so reflections occur
        batched = procrustes_align(pred, gt)
        expected = np.stack([official_align_w_scale(g, p) for g, p in zip(gt, pred)])
        np.testing.assert_allclose(batched, expected, rtol=0, atol=1e-10)
        np.testing.assert_allclose(procrustes_align(pred[5], gt[5]), expected[5], rtol=0, atol=1e-10)


def test_recovers_exact_similarity_with_both_variants():
    rng = np.random.default_rng(1)
    gt = hand_joints() + [0.05, -0.02, 0.7]
    R = Rotation.random(random_state=2).as_matrix()
    pred = 1.7 * gt @ R.T + rng.normal(size=3)
    for reflect in (True, False):
        np.testing.assert_allclose(procrustes_align(pred, gt, allow_reflection=reflect), gt, atol=1e-7)


def test_mirrored_hand_aligns_only_with_the_official_variant():
    gt = hand_joints() + [0.0, 0.0, 0.6]
    R = Rotation.from_rotvec([0.3, -0.5, 0.2]).as_matrix()
    mirrored = (gt * [-1.0, 1.0, 1.0]) @ R.T + [0.1, 0.0, 0.05]
    err_official = np.linalg.norm(procrustes_align(mirrored, gt) - gt, axis=-1).mean()
    err_fixed = np.linalg.norm(procrustes_align(mirrored, gt, allow_reflection=False) - gt, axis=-1).mean()
    assert err_official < 1e-6  # ~0 (the official +1e-8 on the norms leaves nanometres)
    assert err_fixed > 0.01  # > 10 mm: a proper rotation cannot undo the mirror
    assert np.linalg.det(procrustes_trafo(mirrored, gt).R) == pytest.approx(-1.0)
    assert np.linalg.det(procrustes_trafo(mirrored, gt, allow_reflection=False).R) == pytest.approx(1.0)


def _normalised_sets(pred, gt):
    """Centred, Frobenius-normalised A (gt) and B (pred), as in the official script (+1e-8)."""
    A, B = gt - gt.mean(0), pred - pred.mean(0)
    return A / (np.linalg.norm(A) + 1e-8), B / (np.linalg.norm(B) + 1e-8)


def _aligned_error(pred, gt, R):
    """Error of the similarity with rotation R and the least-squares scale for that R on the
    unit-normalised sets, s = <A, B R^T> (derived independently of the SVD formula)."""
    A, B = _normalised_sets(pred, gt)
    BR = B @ R.T
    s = max((A * BR).sum(), 0.0)  # a negative scale would be a reflection (-I) in disguise
    s1 = np.linalg.norm(gt - gt.mean(0)) + 1e-8
    return np.linalg.norm(BR * s * s1 + gt.mean(0) - gt), s


@pytest.mark.parametrize("mirrored", [False, True])
def test_det_fixed_variant_is_optimal_among_proper_rotations(mirrored):
    rng = np.random.default_rng(3)
    gt = hand_joints() + [0.0, 0.0, 0.6]
    pred = gt @ Rotation.random(random_state=rng).as_matrix().T + rng.normal(size=gt.shape) * 0.004
    if mirrored:  # the optimal orthogonal map is a reflection: the det fix (S3 -> -S3) matters
        pred = pred * [-1.0, 1.0, 1.0]
    tr = procrustes_trafo(pred, gt, allow_reflection=False)
    best = np.linalg.norm(procrustes_align(pred, gt, allow_reflection=False) - gt)
    # the returned scale is the least-squares scale for the returned rotation
    err_own, s_own = _aligned_error(pred, gt, tr.R)
    assert tr.scale == pytest.approx(s_own, rel=1e-9)
    assert best == pytest.approx(err_own, rel=1e-9)
    # and no random proper rotation, each with its own optimal scale, does better
    for _ in range(300):
        R = Rotation.random(random_state=rng).as_matrix()
        assert _aligned_error(pred, gt, R)[0] >= best - 1e-10
    # a local search around the fitted rotation finds nothing better either
    for _ in range(300):
        R = Rotation.from_rotvec(rng.normal(size=3) * 0.02).as_matrix() @ tr.R
        assert _aligned_error(pred, gt, R)[0] >= best - 1e-10


def test_official_variant_scale_is_least_squares_for_its_rotation():
    rng = np.random.default_rng(5)
    gt = hand_joints() + [0.0, 0.0, 0.6]
    for mirrored in (False, True):
        pred = 0.8 * gt @ Rotation.random(random_state=rng).as_matrix().T + rng.normal(size=gt.shape) * 0.003
        pred = pred * ([-1.0, 1.0, 1.0] if mirrored else 1.0)
        tr = procrustes_trafo(pred, gt)
        assert tr.scale == pytest.approx(_aligned_error(pred, gt, tr.R)[1], rel=1e-9)
        assert np.linalg.det(tr.R) == pytest.approx(-1.0 if mirrored else 1.0)


def test_zero_prediction_is_finite_and_maps_to_gt_centroid():
    gt = hand_joints() + [0.0, 0.0, 0.6]
    out = procrustes_align(np.zeros_like(gt), gt)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, np.broadcast_to(gt.mean(0), gt.shape), atol=1e-12)


def test_joint_trafo_on_vertices_reproduces_official_align_by_trafo():
    rng = np.random.default_rng(4)
    gt_j = rng.normal(size=(5, 21, 3)) * 0.04
    pred_j = gt_j + rng.normal(size=gt_j.shape) * 0.01
    verts = rng.normal(size=(5, 300, 3)) * 0.05
    got = freihand_align_by_joint_trafo(verts, procrustes_trafo(pred_j, gt_j))
    for i in range(5):
        trafo = official_align_w_scale(gt_j[i], pred_j[i], return_trafo=True)
        np.testing.assert_allclose(got[i], official_align_by_trafo(verts[i], trafo), atol=1e-10)


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="same shape"):
        procrustes_align(np.zeros((21, 3)), np.zeros((20, 3)))


def test_float32_input_is_computed_in_float64():
    rng = np.random.default_rng(9)
    gt, pred = rng.normal(size=(2, 21, 3)).astype(np.float32), rng.normal(size=(2, 21, 3)).astype(np.float32)
    want = procrustes_align(pred.astype(np.float64), gt.astype(np.float64))
    got = procrustes_align(pred, gt)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)
    tr = procrustes_trafo(pred.astype(np.float64), gt.astype(np.float64))
    np.testing.assert_array_equal(freihand_align_by_joint_trafo(pred, tr), freihand_align_by_joint_trafo(pred.astype(np.float64), tr))


@pytest.mark.parametrize("shape", [(21, 2), (21,), (2, 21, 4)])
def test_points_must_be_three_dimensional(shape):
    with pytest.raises(ValueError, match=r"\(\.\.\., N, 3\)"):
        procrustes_align(np.zeros(shape), np.zeros(shape))
