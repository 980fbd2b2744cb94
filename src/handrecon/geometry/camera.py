"""Pinhole camera: intrinsics, projection and back-projection (OpenCV frame, pixel centres at integers).

Conventions (DESIGN.md): camera frame x right, y down, z forward, metres; K maps a point to
pixels as u = fx*x/z + s*y/z + cx, v = fy*y/z + cy, and pixel (row r, col c) has its centre at
(c, r), so an image of width W spans u in [-0.5, W - 0.5] and its centre is ((W-1)/2, (H-1)/2).

API: `project` and `backproject` are batched over leading dims. Given a torch tensor they are
torch functions (differentiable) computing in the dtype and on the device of their first argument
(K may be numpy); all-numpy inputs are computed in numpy (float64 for float64 data) and give numpy
outputs, without importing torch (`utils.arrays.torch_of`). The intrinsics builders return numpy
float64 (3, 3) matrices, since cameras are set up once per sample on the CPU.
"""

from __future__ import annotations

import math

import numpy as np

from handrecon.utils.arrays import torch_of

# Focal length (pixels) assumed for an image without K, as a multiple of its larger side: the
# COLMAP default (1.2), i.e. a 45 degree field of view across the larger side, typical of phone
# and consumer cameras at their widest zoom. Used only when no calibration is known.
DEFAULT_FOCAL_FACTOR = 1.2


def intrinsics(fx: float, fy: float, cx: float, cy: float, skew: float = 0.0) -> np.ndarray:
    """(3, 3) float64 intrinsics matrix."""
    return np.array([[fx, skew, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], np.float64)


def default_intrinsics(
    image_size: tuple[int, int], fov_deg: float | None = None, focal: float | None = None
) -> np.ndarray:
    """Intrinsics for an uncalibrated image. image_size: (width, height) pixels.

    The principal point is the image centre ((W-1)/2, (H-1)/2). The focal length is `focal` if
    given, else the one giving `fov_deg` across the larger side, else DEFAULT_FOCAL_FACTOR *
    max(W, H) (45 degrees across the larger side).
    """
    width, height = image_size
    if width <= 0 or height <= 0:
        raise ValueError(f"image_size must be positive (width, height), got {image_size}")
    if focal is not None and fov_deg is not None:
        raise ValueError("give either focal or fov_deg, not both")
    if fov_deg is not None:
        if not 0 < fov_deg < 180:
            raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
        focal = max(width, height) / 2 / math.tan(math.radians(fov_deg) / 2)
    elif focal is None:
        focal = DEFAULT_FOCAL_FACTOR * max(width, height)
    return intrinsics(focal, focal, (width - 1) / 2, (height - 1) / 2)


def scale_intrinsics(K: np.ndarray, sx: float, sy: float | None = None) -> np.ndarray:
    """Intrinsics (..., 3, 3) after resizing the image by (sx, sy) (new width = sx * width).

    With pixel centres at integers a resize maps u -> sx * (u + 0.5) - 0.5, so fx and skew scale
    by sx, fy by sy, and cx -> sx * (cx + 0.5) - 0.5.
    """
    sy = sx if sy is None else sy
    S = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    return S @ np.asarray(K, np.float64)


def scale_points(points: np.ndarray, sx: float, sy: float | None = None) -> np.ndarray:
    """(..., 2) pixel coordinates after resizing the image by (sx, sy): u -> sx * (u + 0.5) - 0.5
    (pixel centres at integers, as `scale_intrinsics`); (1/sx, 1/sy) maps back."""
    sy = sx if sy is None else sy
    return (np.asarray(points, np.float64) + 0.5) * (sx, sy) - 0.5


def inside_image(uv: np.ndarray, width: int, height: int) -> np.ndarray:
    """(..., 2) pixel positions u, v -> (...) bool: inside the image's extent, u in [-0.5, W - 0.5)
    and v in [-0.5, H - 0.5) (pixel centres at integers, as above)."""
    uv = np.asarray(uv)
    return (uv[..., 0] >= -0.5) & (uv[..., 0] < width - 0.5) & (uv[..., 1] >= -0.5) & (uv[..., 1] < height - 0.5)


def project(points, K):
    """Project (..., N, 3) camera-frame points with K (..., 3, 3) to (..., N, 2) pixels.

    Points must lie in front of the camera (z > 0); nothing is clamped.
    """
    torch = torch_of(points, K)
    if torch is None:
        points, K = _as_numpy(points, K)
        q = points @ np.swapaxes(K, -1, -2)
        return q[..., :2] / q[..., 2:]
    points_t, K_t = _as_torch(torch, points, K)
    q = points_t @ K_t.transpose(-1, -2)
    return q[..., :2] / q[..., 2:]


def backproject(uv, depth, K):
    """Lift (..., N, 2) pixels with depths z (..., N) through K (..., 3, 3) to (..., N, 3) points."""
    torch = torch_of(uv, depth, K)
    if torch is None:
        uv, depth, K = _as_numpy(uv, depth, K)
        uv1 = np.concatenate([uv, np.ones_like(uv[..., :1])], -1)
        rays = np.swapaxes(np.linalg.solve(K, np.swapaxes(uv1, -1, -2)), -1, -2)  # z = 1
        return rays * depth[..., None]
    uv_t, depth_t, K_t = _as_torch(torch, uv, depth, K)
    uv1 = torch.cat([uv_t, torch.ones_like(uv_t[..., :1])], -1)
    rays = torch.linalg.solve(K_t, uv1.transpose(-1, -2)).transpose(-1, -2)  # z = 1
    return rays * depth_t[..., None]


def _as_numpy(*arrays):
    """numpy arrays of one floating dtype (float32 promoted with the inputs' dtypes: float64 stays)."""
    arrays = [np.asarray(a) for a in arrays]
    dtype = np.result_type(np.float32, *arrays)
    return [a.astype(dtype, copy=False) for a in arrays]


def _as_torch(torch, *arrays):
    """The inputs as tensors on the first one's device, in its dtype if floating (else float32
    promoted with the inputs' dtypes)."""
    tensors = [torch.as_tensor(a) for a in arrays]
    first = tensors[0]
    if first.is_floating_point():
        dtype = first.dtype
    else:
        dtype = torch.float32
        for t in tensors:
            dtype = torch.promote_types(dtype, t.dtype)
    return [t.to(device=first.device, dtype=dtype) for t in tensors]
