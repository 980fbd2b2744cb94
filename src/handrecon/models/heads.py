"""2D landmark head and feature sampling at landmarks (M3DHMR §3.1, eq. 1: F^p = F^e(L^p)).

Normalised crop coordinates (used by every tensor named `uv_norm` here)
----------------------------------------------------------------------
A crop of W×H pixels spans [0, 1]² with (0, 0) at the top-left *edge* of the top-left pixel and
(1, 1) at the bottom-right edge of the bottom-right pixel. With the project convention that pixel
(row r, col c) has its centre at (u, v) = (c, r):

    u_norm = (u + 0.5) / W,        v_norm = (v + 0.5) / H,

so pixel centres sit at (c + 0.5)/W and the same point has the same `uv_norm` at every feature
stride: feature cell (i, j) of an h×w map has its centre at ((j + 0.5)/w, (i + 0.5)/h), the centre
of the image pixels it pools. `sample_features_at` therefore calls
`grid_sample(align_corners=False)` with grid = 2·uv_norm − 1 (MobRecon's released code uses
align_corners=True with uv in [0, 1], which shifts samples by half a feature cell; we do not).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from handrecon.hand.keypoints import NUM_KEYPOINTS


def pixels_to_normalized(uv_px: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(..., 2) pixel coordinates (pixel centres at integers) → (..., 2) normalised [0, 1] coords."""
    size = uv_px.new_tensor([width, height])
    return (uv_px + 0.5) / size


def normalized_to_pixels(uv_norm: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Inverse of `pixels_to_normalized`."""
    size = uv_norm.new_tensor([width, height])
    return uv_norm * size - 0.5


def cell_centres(h: int, w: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised centres of an h×w grid: xs (w,), ys (h,)."""
    xs = (torch.arange(w, device=like.device, dtype=like.dtype) + 0.5) / w
    ys = (torch.arange(h, device=like.device, dtype=like.dtype) + 0.5) / h
    return xs, ys


def soft_argmax_2d(logits: torch.Tensor) -> torch.Tensor:
    """Integral regression (Sun et al. 2018): (B, J, h, w) logits → (B, J, 2) expected uv_norm.

    A spatial softmax turns each map into a distribution over cell centres; the output is its
    mean. Differentiable, resolution-agnostic, and exportable to ONNX (softmax + reductions).
    """
    b, j, h, w = logits.shape
    prob = torch.softmax(logits.reshape(b, j, h * w), dim=-1).reshape(b, j, h, w)
    xs, ys = cell_centres(h, w, logits)
    u = (prob.sum(dim=2) * xs).sum(dim=-1)
    v = (prob.sum(dim=3) * ys).sum(dim=-1)
    return torch.stack([u, v], dim=-1)


def local_soft_argmax_2d(logits: torch.Tensor, radius: int) -> torch.Tensor:
    """(B, J, h, w) logits → (B, J, 2) uv_norm: `soft_argmax_2d` of each map within ±`radius` cells
    (a (2r+1)² window, clipped at the border) of its largest logit. Where a map is spread or has
    two modes, the plain soft-argmax lands between them and drifts towards the map's centre; this
    keeps the peak's mode. Exportable to ONNX (ArgMax, comparisons, Where)."""
    b, j, h, w = logits.shape
    peak = logits.reshape(b, j, h * w).argmax(-1)
    rows, cols = torch.div(peak, w, rounding_mode="floor"), peak % w
    near_rows = (torch.arange(h, device=logits.device) - rows[..., None]).abs() <= radius  # (B, J, h)
    near_cols = (torch.arange(w, device=logits.device) - cols[..., None]).abs() <= radius  # (B, J, w)
    window = near_rows[..., :, None] & near_cols[..., None, :]
    return soft_argmax_2d(logits.float().masked_fill(~window, float("-inf")))


def heatmap_peak(logits: torch.Tensor) -> torch.Tensor:
    """(B, J, h, w) heatmap logits → (B,) the mean over joints of each map's largest softmax
    probability: how sharply the encoder places the keypoints (1: every joint in one cell). The
    crop models read a hand's side from it (`models.m3dhmr.inference`: the crop and its mirror)."""
    b, j, h, w = logits.shape
    return torch.softmax(logits.reshape(b, j, h * w).float(), dim=-1).amax(-1).mean(-1)


def gaussian_heatmaps(uv_norm: torch.Tensor, height: int, width: int, sigma: float = 1.0) -> torch.Tensor:
    """Heatmap targets for intermediate supervision (Newell et al. 2016).

    (B, J, 2) uv_norm → (B, J, height, width), an unnormalised Gaussian of peak 1 and std `sigma`
    (in heatmap cells) at each keypoint, evaluated at cell centres.
    """
    xs, ys = cell_centres(height, width, uv_norm)
    du = (xs - uv_norm[..., 0:1]) * width  # (B, J, w) in cells
    dv = (ys - uv_norm[..., 1:2]) * height  # (B, J, h)
    gx = torch.exp(-0.5 * (du / sigma) ** 2)
    gy = torch.exp(-0.5 * (dv / sigma) ** 2)
    return gy[..., :, None] * gx[..., None, :]


def sample_features_at(feature_map: torch.Tensor, uv_norm: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample (B, C, h, w) features at (B, N, 2) normalised points → (B, N, C).

    Points outside the crop take the value of the nearest border cell (padding_mode="border"),
    so a truncated joint still gets a meaningful feature.
    """
    if not torch.jit.is_tracing() and (feature_map.dim() != 4 or uv_norm.dim() != 3 or uv_norm.shape[-1] != 2):
        raise ValueError(
            f"expected feature_map (B,C,h,w) and uv_norm (B,N,2), got {tuple(feature_map.shape)} "
            f"and {tuple(uv_norm.shape)}"
        )
    grid = (uv_norm * 2.0 - 1.0).unsqueeze(2)  # (B, N, 1, 2)
    out = F.grid_sample(feature_map, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.squeeze(3).transpose(1, 2)


class LandmarkHead(nn.Module):
    """1×1 conv to one heatmap logit map per keypoint, and the soft-argmax keypoints from it.

    (B, C, h, w) → logits (B, J, h, w) and uv_norm (B, J, 2).
    """

    def __init__(self, in_channels: int, num_joints: int = NUM_KEYPOINTS) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_joints, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.conv(x)
        return logits, soft_argmax_2d(logits)


def encoder_output(
    logits: list[torch.Tensor], uvs: list[torch.Tensor], latent: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The output dict shared by the landmark encoders (stacked ResNet, hourglass).

    - "uv": (B, J, 2) final 2D landmarks L^p in uv_norm, from the last stack (L1-supervised).
    - "latent": (B, C_lat, H/32, W/32) encoding features F^e the mesh decoder samples at "uv"
      (4×4×256 for a 128×128 crop, as MobRecon).
    - "heatmaps": (B, S, J, H/4, W/4) heatmap logits of every stack (intermediate supervision).
    - "uv_stacks": (B, S, J, 2) soft-argmax landmarks of every stack.

    Supervision (M3DHMR §3.1, §3.4): L_pose2D is L1 on "uv". The intermediate "guidance of heatmaps"
    of the earlier stacks is either MSE of their "heatmaps" against `gaussian_heatmaps` (Newell) or
    L1 on their "uv_stacks" — not both on one stack: MSE-trained maps are not logits, so their
    soft-argmax is pulled towards the crop centre.
    """
    return {
        "uv": uvs[-1],
        "latent": latent,
        "heatmaps": torch.stack(logits, dim=1),
        "uv_stacks": torch.stack(uvs, dim=1),
    }
