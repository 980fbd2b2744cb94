"""Two-stack hourglass encoder (Newell, Yang & Deng, ECCV 2016), as M3DHMR's encoder (§3.1).

M3DHMR §3.1: "a two-stack hourglass network generates encoding features F^e and predicts 2D joint
landmarks L^p; the first stack and the first layer of the second stack are pretrained under
guidance of heatmaps and landmarks". We read this as: stack 1 ends in heatmaps (intermediate
supervision), stack 2 ends in the landmarks L^p (L1 on coordinates, §3.4), and F^e comes from
stack 2. Layer details follow Newell et al.:

- stem: 7×7/2 conv-BN-ReLU (64) → Residual(64→128) → max-pool → Residual(128) → Residual(128→C),
  stride 4 (32×32 for a 128×128 crop);
- per stack: Hourglass(depth 4) → Residual → 1×1 conv-BN-ReLU → 1×1 heatmap logits; between
  stacks x ← x + 1×1(features) + 1×1(heatmaps);
- Residual: pre-activation bottleneck BN-ReLU-1×1(C/2)-BN-ReLU-3×3(C/2)-BN-ReLU-1×1(C).

Where the paper is silent (MobRecon/CMR lineage, REFERENCE §4): F^e is stack 2's hourglass output
at stride 32 (4×4 for 128×128, the level whose inner branch holds the 2×2 bottleneck) projected to
256 channels by a 1×1 conv, the same 4×4×256 latent as MobRecon; L^p is the soft-argmax of stack 2's
heatmaps. Up-sampling is nearest to the skip's size, so any input size divisible by 4 works.
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from handrecon.hand.keypoints import NUM_KEYPOINTS
from handrecon.models.backbones.resnet import check_state_dict, read_state_dict
from handrecon.models.heads import LandmarkHead, encoder_output


class Residual(nn.Module):
    """Pre-activation bottleneck residual module of the stacked hourglass."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        mid = out_ch // 2
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_ch, 1)
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + self.skip(x)


class Hourglass(nn.Module):
    """Recursive hourglass of `depth` halvings; returns its merged outputs per level, fine→coarse.

    (B, C, h, w) → [(B, C, h, w), (B, C, h/2, w/2), …] (`depth` maps).
    """

    def __init__(self, depth: int, channels: int) -> None:
        super().__init__()
        self.depth = depth
        self.up = Residual(channels, channels)
        self.down = Residual(channels, channels)
        self.inner = Hourglass(depth - 1, channels) if depth > 1 else Residual(channels, channels)
        self.up_out = Residual(channels, channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        up = self.up(x)
        low = self.down(F.max_pool2d(x, 2))
        deeper: list[torch.Tensor] = []
        if self.depth > 1:
            deeper = self.inner(low)
            low = deeper[0]
        else:
            low = self.inner(low)
        low = self.up_out(low)
        return [up + F.interpolate(low, size=up.shape[-2:], mode="nearest")] + deeper


class HourglassNet(nn.Module):
    """Stacked hourglass with intermediate supervision and a stride-32 latent for the mesh decoder.

    Input (B, 3, H, W) ImageNet-normalised RGB crop. Output: the dict of
    `handrecon.models.heads.encoder_output` ("uv", "latent", "heatmaps", "uv_stacks").
    """

    latent_stride = 32
    heatmap_stride = 4

    def __init__(
        self,
        num_stacks: int = 2,
        channels: int = 256,
        depth: int = 4,
        num_joints: int = NUM_KEYPOINTS,
        latent_channels: int = 256,
    ) -> None:
        super().__init__()
        if depth < 4:
            raise ValueError(f"hourglass depth must be >= 4 to reach the stride-32 latent, got {depth}")
        self.num_stacks = num_stacks
        self.num_joints = num_joints
        self.latent_channels = latent_channels
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            Residual(64, 128), nn.MaxPool2d(2), Residual(128, 128), Residual(128, channels),
        )
        self.hourglasses = nn.ModuleList(Hourglass(depth, channels) for _ in range(num_stacks))
        self.features = nn.ModuleList(
            nn.Sequential(Residual(channels, channels), nn.Conv2d(channels, channels, 1, bias=False),
                          nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
            for _ in range(num_stacks)
        )
        self.heads = nn.ModuleList(LandmarkHead(channels, num_joints) for _ in range(num_stacks))
        self.merge_features = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(num_stacks - 1))
        self.merge_heatmaps = nn.ModuleList(nn.Conv2d(num_joints, channels, 1) for _ in range(num_stacks - 1))
        self.latent_proj = nn.Conv2d(channels, latent_channels, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.stem(x)
        logits, uvs = [], []
        for i in range(self.num_stacks):
            levels = self.hourglasses[i](x)
            feat = self.features[i](levels[0])
            hm, uv = self.heads[i](feat)
            logits.append(hm)
            uvs.append(uv)
            if i < self.num_stacks - 1:
                x = x + self.merge_features[i](feat) + self.merge_heatmaps[i](hm)
        return encoder_output(logits, uvs, self.latent_proj(levels[3]))

    def load_pretrained(self, path: str | os.PathLike) -> None:
        """Load a state_dict saved from this architecture (strict keys and shapes)."""
        state = read_state_dict(path)
        check_state_dict(self, state, str(path))
        self.load_state_dict(state, strict=True)


def hourglass2(pretrained: str | os.PathLike | None = None, **kw) -> HourglassNet:
    """Two-stack hourglass, Newell's defaults (256 channels, depth 4)."""
    model = HourglassNet(num_stacks=2, **kw)
    if pretrained is not None:
        model.load_pretrained(pretrained)
    return model
