"""ResNet-18/34 (BasicBlock) in plain PyTorch, structurally identical to torchvision's.

Module and parameter names/shapes are those of `torchvision.models.resnet18/34` (and timm's
`resnet18/34`), so an ImageNet state_dict from either loads with strict key checking through
`load_pretrained`. Beyond classification the model exposes the multi-scale features the hand
encoders need: `forward_features(x)` returns the outputs of layer1..layer4 at strides 4, 8, 16, 32
(for a 128×128 crop: 32², 16², 8², 4²).

Input: float32 (B, 3, H, W), RGB normalised by `handrecon.utils.image.normalize_images`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

RESNET_LAYERS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
STAGE_STRIDES = (4, 8, 16, 32)


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN with identity (or 1×1 conv-BN projection) shortcut; stride on conv1."""

    expansion = 1

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class ResNet(nn.Module):
    """torchvision-layout ResNet with BasicBlocks.

    Args:
        layers: blocks per stage, (2, 2, 2, 2) for ResNet-18, (3, 4, 6, 3) for ResNet-34.
        num_classes: size of the `fc` classifier; 0 drops `fc` (timm convention) and `forward`
            then returns the globally pooled (B, 8·width) features.
        stem: with False there is no conv1/bn1/maxpool and the input is a stride-4, `width`-channel
            feature map (used by the second stack of `StackedResNet`).
        in_chans: input channels of conv1.
        width: channels of the stem and layer1; stages have width·(1, 2, 4, 8). Only the default
            64 is torchvision's (and loads ImageNet weights); 32 is a 4× cheaper variant.

    `feature_info` lists (channels, stride) of the four `forward_features` outputs.
    """

    def __init__(
        self,
        layers: tuple[int, int, int, int] = (2, 2, 2, 2),
        num_classes: int = 1000,
        stem: bool = True,
        in_chans: int = 3,
        width: int = 64,
    ) -> None:
        super().__init__()
        self.has_stem = stem
        self.stage_channels = tuple(width * m for m in (1, 2, 4, 8))
        if stem:
            self.conv1 = nn.Conv2d(in_chans, width, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch = width
        for i, (n, ch) in enumerate(zip(layers, self.stage_channels)):
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock(in_ch, ch, stride)] + [BasicBlock(ch, ch) for _ in range(n - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            in_ch = ch
        self.num_classes = num_classes
        if num_classes > 0:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(in_ch, num_classes)
        self.feature_info = [dict(num_chs=c, reduction=s) for c, s in zip(self.stage_channels, STAGE_STRIDES)]
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) → (B, width, H/4, W/4): conv1-bn1-relu-maxpool."""
        if not self.has_stem:
            raise RuntimeError("this ResNet was built with stem=False; feed stride-4 features to forward_stages")
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stride-4, `width`-channel input → [layer1, layer2, layer3, layer4] outputs (strides 4..32)."""
        feats = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            feats.append(x)
        return feats

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Image (B, 3, H, W) → 4 maps (B,64,H/4,W/4), (B,128,H/8,·), (B,256,H/16,·), (B,512,H/32,·) at width 64."""
        return self.forward_stages(self.forward_stem(x) if self.has_stem else x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes), or pooled features (B, 8·width) when num_classes == 0."""
        x = self.forward_features(x)[-1]
        if self.num_classes == 0:
            return F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def load_pretrained(self, path: str | os.PathLike) -> None:
        """Load a torchvision/timm state_dict file (.safetensors or .pth), strictly; see `load_pretrained`."""
        load_pretrained(self, path)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state_dict from .safetensors (safetensors) or .pth/.pt/.bin (torch.load, weights_only).

    A checkpoint dict wrapping the weights under "state_dict" or "model" is unwrapped and a
    DistributedDataParallel "module." prefix is stripped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    elif path.suffix in (".pth", ".pt", ".bin"):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - re-raised with the file named
            raise ValueError(
                f"{path}: not loadable as a plain tensor state_dict with torch.load(weights_only=True) "
                f"({type(e).__name__}: {e}). Re-save it as a state_dict or convert it to .safetensors."
            ) from None
    else:
        raise ValueError(f"{path}: unsupported weights format {path.suffix!r}; use .safetensors or .pth")
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a mapping of parameter names to tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise ValueError listing missing, unexpected and wrongly shaped keys of `state` vs `model`."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
             for k in sorted(set(own) & set(state)) if state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        def show(title: str, items: list[str]) -> str:
            more = f" … and {len(items) - 10} more" if len(items) > 10 else ""
            return f"\n  {title} ({len(items)}): " + ", ".join(items[:10]) + more if items else ""

        raise ValueError(
            f"{source} does not match {type(model).__name__}:"
            + show("missing in file", missing) + show("unexpected in file", unexpected)
            + show("shape mismatch", wrong)
            + "\n  Expected a torchvision/timm ResNet state_dict of the same depth (resnet18 vs resnet34)."
        )


def load_pretrained(model: ResNet, path: str | os.PathLike) -> None:
    """Load weights from `path` into `model` with strict key and shape checking.

    Keys of parts the model was built without are dropped first: `fc.*` when num_classes == 0,
    `conv1.*`/`bn1.*` when stem=False. Anything else missing, unexpected or of the wrong shape
    raises ValueError listing the offending keys.
    """
    state = read_state_dict(path)
    if model.num_classes == 0:
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    if not model.has_stem:
        state = {k: v for k, v in state.items() if not k.startswith(("conv1.", "bn1."))}
    check_state_dict(model, state, str(path))
    model.load_state_dict(state, strict=True)


def resnet18(num_classes: int = 0, pretrained: str | os.PathLike | None = None, **kw) -> ResNet:
    """ResNet-18 trunk (11,176,512 parameters without fc; 11,689,512 with a 1000-way fc)."""
    model = ResNet(RESNET_LAYERS["resnet18"], num_classes=num_classes, **kw)
    if pretrained is not None:
        model.load_pretrained(pretrained)
    return model


def resnet34(num_classes: int = 0, pretrained: str | os.PathLike | None = None, **kw) -> ResNet:
    """ResNet-34 trunk (21,284,672 parameters without fc; 21,797,672 with a 1000-way fc)."""
    model = ResNet(RESNET_LAYERS["resnet34"], num_classes=num_classes, **kw)
    if pretrained is not None:
        model.load_pretrained(pretrained)
    return model
