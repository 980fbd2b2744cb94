"""Square crops around a box, with scale / shift / rotation, and the crop's virtual camera.

A crop is a 2D similarity `affine` (2x3, image pixels -> crop pixels, pixel centres at
integers). For a camera with intrinsics K, the crop is exactly the image of a virtual camera
with intrinsics K' rotated about its optical axis by R:

    project(R @ X, K') == transform_points(project(X, K), affine)   for every 3D point X,

so 3D labels (joints, vertices, root translation, global orientation) are carried into the crop
frame by left-multiplying with R, and K' is the camera the network sees. For square pixels
(fx = fy, no skew) R is the in-plane rotation itself and K' = [[s f, 0, c'x], [0, s f, c'y]]; in
general R and K' come from an RQ decomposition, still exact.

API: `crop_transform` works in numpy float64 on one sample; `transform_points`,
`invert_affine` accept numpy or torch (batched over leading dims); `warp_image` takes a numpy
H x W x C image (resampled in numpy) or a torch (B, C, H, W) batch (`grid_sample`). `crop_view` is
the deterministic crop a crop model sees at inference, exactly as training makes it. Nothing here
imports torch: numpy in, numpy out (`utils.arrays.torch_of`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from handrecon.utils.arrays import torch_of

_MIRROR_X = np.array([-1.0, 1.0, 1.0])  # the camera frame's x axis, mirrored


@dataclass
class CropTransform:
    """One crop. affine: (2, 3) image px -> crop px. size: (width, height) of the crop.

    K: (3, 3) intrinsics of the crop's virtual camera (None when no K was given).
    R: (3, 3) rotation from the original camera frame to the crop camera frame (about z).
    """

    affine: np.ndarray
    size: tuple[int, int]
    R: np.ndarray
    K: np.ndarray | None = None

    @property
    def inverse_affine(self) -> np.ndarray:
        """(2, 3) crop px -> image px."""
        return invert_affine(self.affine)


def crop_transform(
    box,
    size: int,
    K: np.ndarray | None = None,
    scale: float = 1.0,
    shift: tuple[float, float] = (0.0, 0.0),
    rotation_deg: float = 0.0,
) -> CropTransform:
    """Square crop of `size` x `size` px around box (x1, y1, x2, y2) px.

    The crop covers a square of side max(w, h) * scale centred on the box centre moved by
    shift * side (fractions of the side, x and y), rotated so the crop shows the image content
    turned by `rotation_deg` counter-clockwise as seen on screen. K: (3, 3) intrinsics of the
    image, to get the crop camera's K'.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * scale
    if not side > 0 or not math.isfinite(side):
        raise ValueError(f"crop box must have positive finite size, got box {box} with scale {scale}")
    centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2]) + np.asarray(shift, np.float64) * side
    a = math.radians(rotation_deg)
    rot = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])  # CCW on screen, y down
    lin = size / side * rot
    affine = np.concatenate([lin, ((size - 1) / 2 - lin @ centre)[:, None]], 1)

    if K is None:
        return CropTransform(affine, (size, size), _rotation_about_z(rot))
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K must be (3, 3), got {K.shape}")
    upper, q = _rq2(lin @ K[:2, :2])
    K_crop = np.eye(3)
    K_crop[:2, :2] = upper
    K_crop[:2, 2] = lin @ K[:2, 2] + affine[:, 2]
    return CropTransform(affine, (size, size), _rotation_about_z(q), K_crop)


def invert_affine(affine):
    """Inverse of (..., 2, 3) affine maps (numpy or torch)."""
    torch = torch_of(affine)
    if torch is not None:
        inv = torch.linalg.inv(affine[..., :2])
        return torch.cat([inv, -(inv @ affine[..., 2:])], -1)
    affine = np.asarray(affine, np.float64)
    inv = np.linalg.inv(affine[..., :2])
    return np.concatenate([inv, -(inv @ affine[..., 2:])], -1)


def transform_points(uv, affine):
    """Apply (..., 2, 3) affine maps to (..., N, 2) points (numpy or torch)."""
    torch = torch_of(uv)
    if torch is not None:
        affine = torch.as_tensor(affine, dtype=uv.dtype, device=uv.device)
        return uv @ affine[..., :2].transpose(-1, -2) + affine[..., None, :, 2]
    affine = np.asarray(affine)
    return uv @ np.swapaxes(affine[..., :2], -1, -2) + affine[..., None, :, 2]


def warp_image(image, affine, size: int | tuple[int, int]):
    """Resample an image into a crop with bilinear interpolation (zeros outside the image).

    image: numpy (H, W, C) or (H, W) array (uint8 stays uint8, rounded), affine (2, 3) -> numpy;
    or torch (B, C, H, W) float with affine (B, 2, 3) or (2, 3) -> torch (B, C, h, w).
    size: crop side, or (width, height). Both kinds sample at the same positions; numpy computes
    the weights in float64 and sums in float32, so a uint8 result can differ from the torch one by
    one level where a value lies within rounding of a half.
    """
    w, h = (size, size) if isinstance(size, int) else size
    torch = torch_of(image)
    if torch is None:
        image = np.asarray(image)
        if image.ndim not in (2, 3):
            raise ValueError(f"image must be (H, W) or (H, W, C), got shape {image.shape}")
        out = _bilinear_numpy(image.reshape(*image.shape[:2], -1), np.asarray(affine, np.float64), w, h)
        out = out.reshape(h, w, *image.shape[2:])
        if image.dtype == np.uint8:
            return np.clip(np.rint(out), 0, 255).astype(np.uint8)
        return out.astype(image.dtype, copy=False)
    if image.ndim != 4:
        raise ValueError(f"torch image must be (B, C, H, W), got shape {tuple(image.shape)}")
    affine = torch.as_tensor(affine, dtype=image.dtype, device=image.device)
    return _grid_warp(torch, image, affine.expand(image.shape[0], 2, 3), w, h)


def _bilinear_numpy(image: np.ndarray, affine: np.ndarray, w: int, h: int) -> np.ndarray:
    """(H, W, C) -> (h, w, C) float32: each crop pixel's four image neighbours, weighted (a tap
    outside the image weighs nothing). Only the taps are read, never a copy of the whole image; an
    axis-aligned affine (every inference crop) is sampled by rows and columns apart."""
    H, W, C = image.shape
    inv = invert_affine(affine)
    if inv[0, 1] == 0 and inv[1, 0] == 0:
        x0, x1, gu, fu = _taps(np.arange(w) * inv[0, 0] + inv[0, 2], W)
        y0, y1, gv, fv = _taps(np.arange(h) * inv[1, 1] + inv[1, 2], H)
        lo, hi = x0.min(), x1.max() + 1  # the columns the crop reads
        span = image[:, lo:hi]
        rows = span.take(y0, 0) * gv[:, None, None]  # the crop's rows first (h, hi - lo, C), then its columns
        rows += span.take(y1, 0) * fv[:, None, None]
        out = rows.take(x0 - lo, 1) * gu[None, :, None]
        out += rows.take(x1 - lo, 1) * fu[None, :, None]
        return out
    xs, ys = np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)[:, None]
    x0, x1, gu, fu = _taps(xs * inv[0, 0] + ys * inv[0, 1] + inv[0, 2], W)  # (h, w) image px of each crop pixel
    y0, y1, gv, fv = _taps(xs * inv[1, 0] + ys * inv[1, 1] + inv[1, 2], H)
    pixels = image.reshape(-1, C)
    out = np.zeros((h, w, C), np.float32)
    for index, weight in ((y0 * W + x0, gv * gu), (y0 * W + x1, gv * fu), (y1 * W + x0, fv * gu), (y1 * W + x1, fv * fu)):
        out += pixels.take(index.ravel(), axis=0).reshape(h, w, C) * weight[..., None]
    return out


def _taps(coord: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps along one axis of `size` px at float64 positions `coord`: the two neighbour
    indices (clipped into the image) and their float32 weights (zero for a tap outside the image)."""
    c0 = np.floor(coord)
    frac = (coord - c0).astype(np.float32)
    i0 = c0.astype(np.int64)
    g = (1 - frac) * ((i0 >= 0) & (i0 < size))
    f = frac * ((i0 >= -1) & (i0 < size - 1))
    return np.clip(i0, 0, size - 1), np.clip(i0 + 1, 0, size - 1), g.astype(np.float32), f.astype(np.float32)


def _grid_warp(torch, image, affine, w: int, h: int):
    H, W = image.shape[-2:]
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=image.dtype, device=image.device),
        torch.arange(w, dtype=image.dtype, device=image.device),
        indexing="ij",
    )
    crop_px = torch.stack([xs, ys], -1).reshape(1, -1, 2)
    src = transform_points(crop_px, invert_affine(affine))  # (B, h*w, 2) image px
    # align_corners=True puts -1 / +1 on the centres of the first / last pixels.
    norm = src * src.new_tensor([2 / max(W - 1, 1), 2 / max(H - 1, 1)]) - 1
    return torch.nn.functional.grid_sample(image, norm.reshape(-1, h, w, 2), mode="bilinear", padding_mode="zeros",
                                           align_corners=True)


@dataclass(frozen=True)
class CropView:
    """What a crop model sees of one hand, and how to map its outputs back.

    image: (S, S, 3) uint8. K: (3, 3) float64 view intrinsics (view px). affine: (2, 3) image px →
    view px. R: (3, 3) image camera frame → view frame (det -1 when mirrored), so that
    project(R X, K) = affine(project(X, K_image)). mirrored: a left hand shown as a right hand.
    """

    image: np.ndarray
    K: np.ndarray
    affine: np.ndarray
    R: np.ndarray
    mirrored: bool


def crop_view(image: np.ndarray, K: np.ndarray, box: np.ndarray, size: int, scale: float,
              mirror: bool = False, rotation_deg: float = 0.0) -> CropView:
    """The deterministic crop of `data.transforms.crop_hand` (no shift or rotation) around `box`
    (x1, y1, x2, y2 px; side = longest box side * scale), resized to `size`, then mirrored if
    `mirror` (as `data.transforms.flip_left` does for a left hand): exactly the view the training
    pipeline gives the model, bit for bit (the box and K' pass through float32, as a `Sample`
    stores them). rotation_deg: the content turned counter-clockwise on screen about the box
    centre (`crop_transform`), as training's rotation augmentation does (test-time views)."""
    ct = crop_transform(np.asarray(box, np.float32), size, K, scale, rotation_deg=rotation_deg)
    view = warp_image(image, ct.affine, size)
    K_view, affine, R = ct.K.astype(np.float32).astype(np.float64), ct.affine, ct.R
    if mirror:
        view = np.ascontiguousarray(view[:, ::-1])
        K_view = mirror_intrinsics(K_view, size)
        affine, R = mirror_maps(affine, R, size)
    return CropView(view, K_view, np.asarray(affine, np.float64), np.asarray(R, np.float64), mirror)


def mirror_intrinsics(K: np.ndarray, width: int) -> np.ndarray:
    """(3, 3) float64 intrinsics of the horizontally mirrored image: cx -> W-1-cx, skew negated."""
    K = np.asarray(K, np.float64).copy()
    K[0, 2] = width - 1 - K[0, 2]
    K[0, 1] = -K[0, 1]
    return K


def mirror_maps(affine: np.ndarray, R: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(affine (2, 3) image px -> view px, R (3, 3) camera -> view frame) composed with the
    horizontal mirror of a view `width` px wide (u -> W-1-u, x -> -x)."""
    F = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]])
    A = np.asarray(affine, np.float64)
    mirrored = np.concatenate([F[:, :2] @ A[:, :2], (F[:, :2] @ A[:, 2] + F[:, 2])[:, None]], 1)
    return mirrored, np.diag(_MIRROR_X) @ np.asarray(R, np.float64)


def _rq2(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """m (2, 2) with det > 0 -> (upper triangular U with positive diagonal, rotation Q), m = U @ Q."""
    c, d = m[1]
    r = math.hypot(c, d)
    q = np.array([[d, -c], [c, d]]) / r
    upper = np.array([[m[0] @ q[0], m[0] @ q[1]], [0.0, r]])
    return upper, q


def _rotation_about_z(rot2: np.ndarray) -> np.ndarray:
    R = np.eye(3)
    R[:2, :2] = rot2
    return R
