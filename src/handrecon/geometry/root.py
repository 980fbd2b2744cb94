"""Camera-space root recovery: the translation t that makes root-relative 3D joints project onto 2D joints.

Given root-relative joints P_i (metres), their pixel positions (u_i, v_i) and K, find t with
project(P_i + t, K) ~ (u_i, v_i) (REFERENCE §4, as in MobRecon / M3DHMR):

1. `recover_root_translation`: closed form. With [x, y, 1] ~ K^-1 [u, v, 1] each joint gives two
   linear equations, t_x - x t_z = x Z - X and t_y - y t_z = y Z - Y; their weighted least
   squares solution comes from the 3x3 normal equations, eliminated by hand. Differentiable
   (torch; numpy too), batched, exact on noise-free data.
2. `refine_root_translation`: minimises the pixel reprojection error itself (Levenberg-Marquardt),
   dropping joints whose error exceeds mean + std of the current inliers, for up to 5 rounds,
   with the depth kept in [0.05, 2] m. One guard added to that rule: a joint whose error is
   within `noise_ratio` (2.5) x the inliers' median error is never dropped, since such errors
   are what Gaussian noise alone produces (Rayleigh p99 / median ~ 2.6). Without it every round
   discards ~16% of good joints and, on noise without outliers, the refined depth is worse than
   the closed form's (measured in tests/test_root.py); `noise_ratio=0` gives the plain rule.

`solve_root_translation` is the one entry point the model and the predictor call (1, then 2 unless
switched off). Batched over B; torch in, torch out (the closed form differentiable), numpy in,
numpy out (without importing torch: `utils.arrays.torch_of`); the refinement iterates in numpy
float64 either way (a 3-parameter fit is all per-call overhead in torch). Measured on the shipped
model's outputs (`benchmarks/bench_inference.py`): closed form 0.13 ms, closed form + refinement 0.9 ms for one
hand, 0.13 ms per hand in a batch of 16.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from handrecon.utils.arrays import torch_of

DEPTH_RANGE = (0.05, 2.0)  # metres
MIN_RAY_SPREAD = 1e-12  # weighted variance of the landmarks' normalised rays below which depth is unobservable


class RootFit(NamedTuple):
    """Result of `refine_root_translation`.

    t: (B, 3) translation, metres. inliers: (B, N) bool joints kept in the final fit.
    error_px: (B,) mean reprojection error over the inliers, pixels. Arrays of the inputs' kind.
    """

    t: Any
    inliers: Any
    error_px: Any


def recover_root_translation(joints_rel: Any, uv: Any, K: Any, weights: Any = None) -> Any:
    """Closed-form weighted linear least squares for t (B, 3).

    joints_rel: (B, N, 3) metres; uv: (B, N, 2) pixels; K: (B, 3, 3) or (3, 3) pinhole intrinsics
    [[fx, s, cx], [0, fy, cy], [0, 0, 1]]; weights: (B, N) non-negative (None: all 1). Needs at
    least two joints with positive weight. The 3x3 normal equations are eliminated by hand (tx and
    ty in terms of tz), a few dozen elementwise operations: cheap enough to run per hand.
    """
    joints_rel, uv, K, w = _check(joints_rel, uv, K, weights)
    torch = torch_of(joints_rel)
    stack = np.stack if torch is None else torch.stack
    fx, fy, skew, cx, cy = (K[:, None, i, j] for i, j in ((0, 0), (1, 1), (0, 1), (0, 2), (1, 2)))
    y = (uv[..., 1] - cy) / fy  # K^-1 [u, v, 1] of a pinhole K
    x = (uv[..., 0] - cx - skew * y) / fx
    X, Y, Z = joints_rel[..., 0], joints_rel[..., 1], joints_rel[..., 2]
    bx, by = x * Z - X, y * Z - Y  # t_x - x t_z = bx, t_y - y t_z = by
    sw = w.sum(1)
    sx, sy = (w * x).sum(1), (w * y).sum(1)
    sbx, sby = (w * bx).sum(1), (w * by).sum(1)
    sxx = (w * (x * x + y * y)).sum(1)
    sxb = (w * (x * bx + y * by)).sum(1)
    # the spread of the rays; 0 when every landmark is at one pixel, where depth is unobservable: a
    # floor keeps t finite there (far away, which refinement clamps to its depth range), not NaN
    spread = (sxx - (sx * sx + sy * sy) / sw).clip(min=MIN_RAY_SPREAD)
    tz = (-sxb + (sx * sbx + sy * sby) / sw) / spread
    return stack([(sbx + sx * tz) / sw, (sby + sy * tz) / sw, tz], -1)


def refine_root_translation(
    joints_rel: Any,
    uv: Any,
    K: Any,
    t_init: Any = None,
    weights: Any = None,
    rounds: int = 5,
    iterations: int = 10,
    depth_range: tuple[float, float] = DEPTH_RANGE,
    min_inliers: int | None = None,
    noise_ratio: float = 2.5,
) -> RootFit:
    """Robust non-linear refinement of t by reprojection error (pixels).

    Each round fits t to the current inliers with `iterations` Levenberg-Marquardt steps, then
    drops the joints whose error exceeds both mean + std and `noise_ratio` x median of the
    inliers' errors, unless fewer than
    `min_inliers` (default ceil(0.6 N), 13 of 21 as in MobRecon) would remain. After the last
    round t is refitted on the final inliers. t_init: (B, 3), default the closed-form solution.
    Shapes as in `recover_root_translation`; returns a `RootFit` (float64 inside: the iterations
    run in numpy, ~10x less overhead per step than torch for these 3-parameter fits).
    """
    joints_rel, uv, K, w = _check(joints_rel, uv, K, weights)
    N = joints_rel.shape[1]
    min_inliers = max(2, math.ceil(0.6 * N)) if min_inliers is None else min_inliers
    torch = torch_of(joints_rel)
    t0 = recover_root_translation(joints_rel, uv, K, w) if t_init is None else t_init
    P, UV, KK, W, t0 = (_float64(x) for x in (joints_rel, uv, K, w, t0))
    t = _clamp_depth(t0, depth_range)
    inliers = W > 0
    for _ in range(rounds):
        t = _levenberg_marquardt(P, UV, KK, W * inliers, t, iterations, depth_range)
        err = np.linalg.norm(_residual(P, UV, KK, t), axis=-1)  # (B, N)
        keep = inliers & (err <= _drop_threshold(err, inliers, noise_ratio))
        enough = keep.sum(1) >= min_inliers
        changed = enough & (keep != inliers).any(1)
        if not changed.any():
            break
        inliers = np.where(enough[:, None], keep, inliers)
    else:
        t = _levenberg_marquardt(P, UV, KK, W * inliers, t, iterations, depth_range)
    err = np.linalg.norm(_residual(P, UV, KK, t), axis=-1)
    error_px = (err * inliers).sum(1) / np.maximum(inliers.sum(1), 1)
    if torch is None:
        return RootFit(t.astype(joints_rel.dtype), inliers, error_px.astype(joints_rel.dtype))
    like = lambda a: torch.as_tensor(a, device=joints_rel.device)  # noqa: E731
    return RootFit(like(t).to(joints_rel.dtype), like(inliers), like(error_px).to(joints_rel.dtype))


def solve_root_translation(joints_rel: Any, uv: Any, K: Any, refine: bool = True) -> Any:
    """t (B, 3): the robust refinement started from the closed form, or the closed form alone when
    `refine` is False. Shapes as in `recover_root_translation`."""
    if refine:
        return refine_root_translation(joints_rel, uv, K).t
    return recover_root_translation(joints_rel, uv, K)


def _levenberg_marquardt(P, UV, K, w, t, iterations, depth_range, tol: float = 1e-7):
    """Minimise sum_i w_i |project(P_i + t) - uv_i|^2 over t (numpy float64, batched), tz clamped.

    Stops early once every proposed step of the batch is below `tol` metres (nothing left to gain).
    The residuals and Jacobian of an accepted step are reused by the next iteration."""
    lam = np.full(len(t), 1e-3)
    w2 = np.repeat(w, 2, axis=1)[..., None]  # (B, 2N, 1): one weight per residual row
    r, Jac = _residual(P, UV, K, t, jacobian=True)
    cost = (r.reshape(len(t), -1) ** 2 * w2[..., 0]).sum(1)
    for _ in range(iterations):
        Jf = Jac.reshape(len(t), -1, 3)
        wJ = Jf * w2
        H = np.swapaxes(wJ, 1, 2) @ Jf  # (B, 3, 3)
        g = (np.swapaxes(wJ, 1, 2) @ r.reshape(len(t), -1, 1))[..., 0]
        damped = H + lam[:, None, None] * (H * _EYE3 + 1e-12 * _EYE3)
        t_new = _clamp_depth(t + np.linalg.solve(damped, -g[..., None])[..., 0], depth_range)
        r_new, Jac_new = _residual(P, UV, K, t_new, jacobian=True)
        cost_new = (r_new.reshape(len(t), -1) ** 2 * w2[..., 0]).sum(1)
        better = cost_new < cost
        converged = bool((np.abs(t_new - t).max(-1) < tol).all())
        t = np.where(better[:, None], t_new, t)
        r = np.where(better[:, None, None], r_new, r)
        Jac = np.where(better[:, None, None, None], Jac_new, Jac)
        cost = np.where(better, cost_new, cost)
        lam = np.clip(np.where(better, lam * 0.1, lam * 10), 1e-9, 1e9)
        if converged:
            break
    return t


_EYE3 = np.eye(3)


def _residual(P, UV, K, t, jacobian: bool = False):
    """Pixel residuals (B, N, 2) of the points P + t (numpy), and optionally d(residual)/dt (B, N, 2, 3)."""
    q = (P + t[:, None]) @ np.swapaxes(K, -1, -2)  # (B, N, 3)
    proj = q[..., :2] / q[..., 2:]
    r = proj - UV
    if not jacobian:
        return r
    # d(q_k / q_z)/dt = (K_k - proj_k K_z) / q_z for k in {u, v}
    Jac = (K[:, None, :2, :] - proj[..., None] * K[:, None, 2:, :]) / q[..., 2:, None]
    return r, Jac


def _drop_threshold(err: np.ndarray, mask: np.ndarray, noise_ratio: float) -> np.ndarray:
    """(B, 1) max(mean + std, noise_ratio * median) of the errors (B, N) of the masked joints."""
    m = mask.astype(err.dtype)
    n = np.maximum(m.sum(1, keepdims=True), 1)
    mean = (err * m).sum(1, keepdims=True) / n
    std = np.sqrt(((err - mean) ** 2 * m).sum(1, keepdims=True) / n)
    ordered = np.sort(np.where(mask, err, np.inf), axis=1)  # the masked-out errors sort last
    k = mask.sum(1, keepdims=True)
    lower_median = np.take_along_axis(ordered, np.maximum((k - 1) // 2, 0), 1)  # of an even count: the lower one
    return np.maximum(mean + std, noise_ratio * np.where(k > 0, lower_median, 0.0))


def _clamp_depth(t: np.ndarray, depth_range: tuple[float, float]) -> np.ndarray:
    return np.concatenate([t[:, :2], np.clip(t[:, 2:], *depth_range)], 1)


def _float64(x) -> np.ndarray:
    """A numpy float64 copy of an array or (detached, on the CPU) tensor."""
    return x.detach().cpu().double().numpy() if torch_of(x) is not None else np.asarray(x, np.float64)


def _check(joints_rel, uv, K, weights):
    """The inputs of one kind: torch (following joints_rel's dtype and device) or numpy (floating)."""
    if joints_rel.ndim != 3 or joints_rel.shape[-1] != 3:
        raise ValueError(f"joints_rel must be (B, N, 3), got {tuple(joints_rel.shape)}")
    B, N = joints_rel.shape[:2]
    if tuple(uv.shape) != (B, N, 2):
        raise ValueError(f"uv must be ({B}, {N}, 2) to match joints_rel, got {tuple(uv.shape)}")
    if N < 2:
        raise ValueError(f"root recovery needs at least 2 joints, got {N}")
    if tuple(np.shape(K)[-2:]) != (3, 3):
        raise ValueError(f"K must be (B, 3, 3) or (3, 3), got {tuple(np.shape(K))}")
    if weights is not None and tuple(weights.shape) != (B, N):
        raise ValueError(f"weights must be ({B}, {N}), got {tuple(weights.shape)}")
    torch = torch_of(joints_rel)
    if torch is None:
        joints_rel = np.asarray(joints_rel)
        dtype = np.result_type(np.float32, joints_rel)
        K = np.broadcast_to(np.asarray(K, dtype), (B, 3, 3))
        w = np.ones((B, N), dtype) if weights is None else np.asarray(weights, dtype)
        return joints_rel.astype(dtype, copy=False), np.asarray(uv, dtype), K, w
    K = torch.as_tensor(K, dtype=joints_rel.dtype, device=joints_rel.device).expand(B, 3, 3)
    w = torch.ones(B, N, dtype=joints_rel.dtype, device=joints_rel.device) if weights is None else weights
    return joints_rel, uv.to(joints_rel.dtype), K, w.to(joints_rel.dtype)
