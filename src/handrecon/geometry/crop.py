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
H x W x C image or a torch (B, C, H, W) batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


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
    if isinstance(affine, torch.Tensor):
        inv = torch.linalg.inv(affine[..., :2])
        return torch.cat([inv, -(inv @ affine[..., 2:])], -1)
    affine = np.asarray(affine, np.float64)
    inv = np.linalg.inv(affine[..., :2])
    return np.concatenate([inv, -(inv @ affine[..., 2:])], -1)


def transform_points(uv, affine):
    """Apply (..., 2, 3) affine maps to (..., N, 2) points (numpy or torch)."""
    if isinstance(uv, torch.Tensor):
        affine = torch.as_tensor(affine, dtype=uv.dtype, device=uv.device)
        return uv @ affine[..., :2].transpose(-1, -2) + affine[..., None, :, 2]
    affine = np.asarray(affine)
    return uv @ np.swapaxes(affine[..., :2], -1, -2) + affine[..., None, :, 2]


def warp_image(image, affine, size: int | tuple[int, int]):
    """Resample an image into a crop with bilinear interpolation (zeros outside the image).

    image: numpy (H, W, C) or (H, W) array (uint8 stays uint8, rounded), affine (2, 3) -> numpy;
    or torch (B, C, H, W) float with affine (B, 2, 3) or (2, 3) -> torch (B, C, h, w).
    size: crop side, or (width, height).
    """
    w, h = (size, size) if isinstance(size, int) else size
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3):
            raise ValueError(f"image must be (H, W) or (H, W, C), got shape {image.shape}")
        pixels = np.ascontiguousarray(image.reshape(*image.shape[:2], -1))
        if not pixels.flags.writeable:  # torch wants writable memory; only read here, but copy to be exact
            pixels = pixels.copy()
        chw = torch.from_numpy(pixels).permute(2, 0, 1)
        out = _grid_warp(chw[None].to(torch.float32), torch.as_tensor(affine, dtype=torch.float32)[None], w, h)[0]
        out = out.permute(1, 2, 0).reshape(h, w, *image.shape[2:])
        if image.dtype == np.uint8:
            return out.round().clamp(0, 255).to(torch.uint8).numpy()
        return out.numpy().astype(image.dtype, copy=False)
    if image.ndim != 4:
        raise ValueError(f"torch image must be (B, C, H, W), got shape {tuple(image.shape)}")
    affine = torch.as_tensor(affine, dtype=image.dtype, device=image.device)
    return _grid_warp(image, affine.expand(image.shape[0], 2, 3), w, h)


def _grid_warp(image: torch.Tensor, affine: torch.Tensor, w: int, h: int) -> torch.Tensor:
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
    return F.grid_sample(image, norm.reshape(-1, h, w, 2), mode="bilinear", padding_mode="zeros", align_corners=True)


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
