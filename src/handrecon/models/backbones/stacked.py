"""Stack-ResNet-18/34: the two-stack ResNet encoder M3DHMR uses for its real-time results.

Paper (M3DHMR §3.1 and §4.3, Tab. 4): the encoder is stacked; the first stack is trained under
heatmap guidance and the second predicts the 2D landmarks L^p (L1 loss, §3.4) and the encoding
features F^e that the mesh decoder grid-samples at L^p. MobRecon's Stacked-ResNet was never
released and M3DHMR gives no layer details, so where the paper is silent we follow:

- Newell et al. 2016 for the stacking: stack 2 starts from stack 1's stride-4 input plus 1×1
  conv-BN re-projections of stack 1's features and heatmap logits (intermediate supervision
  re-injected into the next stack).
- MobRecon / CMR for the latent: F^e is the deepest (stride-32) map of the second stack
  projected by a 1×1 conv to 256 channels — 4×4×256 for a 128×128 crop.
- A light FPN-style top-down decoder (64 channels, nearest up-sampling to the skip's size) brings
  each stack to stride 4 for its heatmaps; landmarks are read by soft-argmax (integral
  regression), which keeps the head resolution-agnostic and ONNX-exportable (MobRecon's MLP over
  a flattened 16×16 map ties the head to one input size).

Each stack's trunk is a torchvision-layout ResNet (stack 2 without conv1/bn1/maxpool), so both
load ImageNet weights via `load_pretrained`. `width=32` halves every trunk channel count (4× fewer
parameters and FLOPs; no ImageNet weights) for the CPU real-time budget.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from handrecon.hand.keypoints import NUM_KEYPOINTS
from handrecon.models.backbones.resnet import RESNET_LAYERS, ResNet, load_pretrained
from handrecon.models.heads import LandmarkHead, encoder_output


def conv_bn(in_ch: int, out_ch: int, k: int = 1, relu: bool = False) -> nn.Sequential:
    layers = [nn.Conv2d(in_ch, out_ch, k, 1, k // 2, bias=False), nn.BatchNorm2d(out_ch)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class TopDownDecoder(nn.Module):
    """FPN-style decoder: strides (4, 8, 16, 32) features → one (B, width, H/4, W/4) map.

    Each level is projected to `width` by 1×1 conv-BN, added to the nearest-up-sampled coarser
    result and smoothed by a 3×3 conv-BN-ReLU.
    """

    def __init__(self, in_channels: tuple[int, ...], width: int = 64) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(conv_bn(c, width) for c in in_channels)
        self.smooth = nn.ModuleList(conv_bn(width, width, 3, relu=True) for _ in in_channels)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = self.smooth[-1](self.lateral[-1](feats[-1]))
        for i in range(len(feats) - 2, -1, -1):
            skip = self.lateral[i](feats[i])
            x = self.smooth[i](skip + F.interpolate(x, size=skip.shape[-2:], mode="nearest"))
        return x


class StackedResNet(nn.Module):
    """Two ResNet stacks with intermediate heatmap supervision.

    Input (B, 3, H, W) ImageNet-normalised RGB crop (H, W multiples of 32; 128×128 in M3DHMR).
    Output: the dict of `handrecon.models.heads.encoder_output` ("uv", "latent", "heatmaps",
    "uv_stacks"); heatmaps at stride 4, latent at stride 32.
    """

    latent_stride = 32
    heatmap_stride = 4
    num_stacks = 2

    def __init__(
        self,
        layers: tuple[int, int, int, int] = RESNET_LAYERS["resnet18"],
        num_joints: int = NUM_KEYPOINTS,
        latent_channels: int = 256,
        decoder_width: int = 64,
        width: int = 64,
    ) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.latent_channels = latent_channels
        self.trunk1 = ResNet(layers, num_classes=0, width=width)
        chans = self.trunk1.stage_channels
        self.decoder1 = TopDownDecoder(chans, decoder_width)
        self.head1 = LandmarkHead(decoder_width, num_joints)
        self.remap_features = conv_bn(decoder_width, chans[0])
        self.remap_heatmaps = conv_bn(num_joints, chans[0])
        self.trunk2 = ResNet(layers, num_classes=0, stem=False, width=width)
        self.decoder2 = TopDownDecoder(chans, decoder_width)
        self.head2 = LandmarkHead(decoder_width, num_joints)
        self.latent_proj = nn.Conv2d(chans[-1], latent_channels, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.forward_features(x)
        return encoder_output(f["logits"], f["uv"], f["latent"])

    def forward_features(self, x: torch.Tensor) -> dict[str, Any]:
        """The stacks' intermediate maps: "logits" and "uv" per stack (as `forward`), "decoder"
        the last stack's stride-4 top-down map (B, decoder_width, H/4, W/4), "stages" its trunk
        maps at strides 4-32 and "latent" (B, latent_channels, H/32, W/32)."""
        x0 = self.trunk1.forward_stem(x)
        dec1 = self.decoder1(self.trunk1.forward_stages(x0))
        logits1, uv1 = self.head1(dec1)
        x1 = x0 + self.remap_features(dec1) + self.remap_heatmaps(logits1)
        feats2 = self.trunk2.forward_stages(x1)
        dec2 = self.decoder2(feats2)
        logits2, uv2 = self.head2(dec2)
        return {"logits": [logits1, logits2], "uv": [uv1, uv2], "decoder": dec2, "stages": feats2,
                "latent": self.latent_proj(feats2[-1])}

    def load_pretrained(self, path: str | os.PathLike) -> None:
        """Initialise both trunks from one torchvision/timm ResNet state_dict file (strict keys)."""
        load_pretrained(self.trunk1, path)
        load_pretrained(self.trunk2, path)


def stacked_resnet18(pretrained: str | os.PathLike | None = None, **kw) -> StackedResNet:
    model = StackedResNet(RESNET_LAYERS["resnet18"], **kw)
    if pretrained is not None:
        model.load_pretrained(pretrained)
    return model


def stacked_resnet34(pretrained: str | os.PathLike | None = None, **kw) -> StackedResNet:
    model = StackedResNet(RESNET_LAYERS["resnet34"], **kw)
    if pretrained is not None:
        model.load_pretrained(pretrained)
    return model
