"""Image encoders in plain PyTorch and a small name → builder registry.

| name               | returns                                        | module      |
|--------------------|------------------------------------------------|-------------|
| resnet18, resnet34 | `ResNet`: `forward_features` → 4 maps, strides 4..32 | resnet.py   |
| stacked_resnet18/34| `StackedResNet`: dict uv / latent / heatmaps    | stacked.py  |
| hourglass2         | `HourglassNet`: dict uv / latent / heatmaps     | hourglass.py|

The landmark encoders (stacked_*, hourglass2) return the dict described in
`handrecon.models.heads.encoder_output`. Every builder takes `pretrained=PATH` (.safetensors or .pth
state_dict) and the keyword arguments of its class. Inputs are ImageNet-normalised RGB crops,
128×128 for M3DHMR.
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from handrecon.models.backbones.hourglass import HourglassNet, hourglass2
from handrecon.models.backbones.resnet import ResNet, resnet18, resnet34
from handrecon.models.backbones.stacked import StackedResNet, stacked_resnet18, stacked_resnet34

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "resnet18": resnet18,
    "resnet34": resnet34,
    "stacked_resnet18": stacked_resnet18,
    "stacked_resnet34": stacked_resnet34,
    "hourglass2": hourglass2,
}
LANDMARK_ENCODERS = ("stacked_resnet18", "stacked_resnet34", "hourglass2")


def build_backbone(name: str, **kw) -> nn.Module:
    """Build the encoder registered as `name` with builder keyword arguments `kw`."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; available: {', '.join(BACKBONES)}")
    return BACKBONES[name](**kw)


__all__ = [
    "BACKBONES", "LANDMARK_ENCODERS", "build_backbone",
    "ResNet", "StackedResNet", "HourglassNet",
    "resnet18", "resnet34", "stacked_resnet18", "stacked_resnet34", "hourglass2",
]
