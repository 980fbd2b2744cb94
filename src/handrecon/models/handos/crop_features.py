"""Per-hand features from a frozen crop model: HandOS's `side: crop`, a CPU deviation.

On two CPU cores the paper's side tuning (3 convolutions per backbone scale) does not learn to
show the joints (docs/handos.md, "The decoder learns; the features do not"). This side network
instead crops each hand instance's box (enlarged to a square, as the crop models do) out of the
model's input, runs a crop model (its stacked encoder and mesh decoder) on the crop and on its
mirror image (the crop model was trained on right hands; the decoder, not a classifier, tells
the sides apart) and hands the decoder three per-hand levels: the last stack's stride-4 map with
its keypoint heatmap logits, its stride-16 trunk map and its stride-32 latent, each view's map
flipped back to the crop's frame and both concatenated, projected to d by a 1×1 convolution.
It also gives starting points: the landmarks and the wrist-relative mesh of the view whose
heatmaps are sharper (the mirror's mesh mirrored back, x → −x: a left hand's geometry), and the
2D keypoints the crop model reports for that view (`models.m3dhmr.model.reported_keypoints`: its
heatmaps read near each peak), which HandOS reports where its 2D joints stay at the start.

The crop model is frozen (`requires_grad=False`, always `eval()`, run under `no_grad`); only the
projections train. A level's samples reach the crop through an affine per instance and level:
``loc_crop = loc_input · scale + offset`` (`MultiScaleDeformableAttention`'s `level_offsets`).

Shapes: pixel_values (B, 3, S, S) ImageNet-normalised; boxes (N, 4) cxcywh in [0, 1] of the
input; image_index (N,). Crops are `crop_size` px, the box's long side times `crop_scale`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from handrecon.checkpoint import load_model
from handrecon.models.heads import heatmap_peak, soft_argmax_2d
from handrecon.models.m3dhmr.model import reported_keypoints

CROP_ENCODER_NAME = "m3dhmr-openhand"  # the shipped crop model whose encoder `side: crop` reads
ASSET_MODELS = Path(__file__).resolve().parents[2] / "assets" / "models"


def crop_encoder_folder(spec: str | os.PathLike) -> Path:
    """A shipped crop model's name (its folder in the package) or a checkpoint directory;
    FileNotFoundError saying what to pass otherwise."""
    folder = ASSET_MODELS / str(spec) if str(spec) == CROP_ENCODER_NAME else Path(spec)
    if not (folder / "card.json").is_file() or not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"side 'crop': no crop-model checkpoint at {folder} (card.json and model.safetensors); "
                                f"give crop_encoder={CROP_ENCODER_NAME!r} or a checkpoint directory of a stacked-encoder model")
    return folder


class CropEncoderFeatures(nn.Module):
    """`side: crop`: a frozen crop model read per hand instance (see the module docstring).

    encoder: a shipped crop model's name or a checkpoint directory (card.json +
    model.safetensors) of a crop model with a stacked encoder (`forward_crops(..., features=True)`).
    forward -> (levels: 3 maps (N, d, h, w), crop boxes (N, 4) x0, y0, side_x, side_y in [0, 1]
    of the input, landmarks (N, 21, 2) in [0, 1] of the input: the soft-argmax of the sharper
    view's last heatmaps, mapped back, that view's mesh (N, V, 3) m, wrist-relative, in the
    input camera's axes, and keypoints (N, 21, 2) in [0, 1] of the input: the same heatmaps read
    near their peaks, as the crop model reports them).
    """

    def __init__(self, encoder: str | os.PathLike, d_model: int) -> None:
        super().__init__()
        folder = crop_encoder_folder(encoder)
        self.crop_model, card = load_model(folder)
        if not hasattr(getattr(self.crop_model, "encoder", None), "forward_features"):
            raise ValueError(f"{folder}: side 'crop' needs a crop model with a stacked encoder (forward_features)")
        self.crop_model.requires_grad_(False)
        inference = card.get("inference", {})
        self.crop_size = int(inference.get("input_size", 128))
        self.crop_scale = float(inference.get("crop", {}).get("scale", 1.325))
        enc = self.encoder
        chans = (2 * (enc.decoder2.smooth[0][0].out_channels + enc.num_joints), 2 * enc.trunk2.stage_channels[2],
                 2 * enc.latent_channels)
        self.register_buffer("wrist_row", torch.as_tensor(self.crop_model.kp_regressor[0]).float(), persistent=False)
        self.proj = nn.ModuleList(nn.Sequential(nn.Conv2d(c, d_model, 1), nn.GroupNorm(32 if d_model % 32 == 0 else 1, d_model))
                                  for c in chans)

    @property
    def encoder(self) -> nn.Module:
        return self.crop_model.encoder

    def train(self, mode: bool = True) -> "CropEncoderFeatures":
        super().train(mode)
        self.crop_model.train(False)
        return self

    def crop_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """(N, 4) cxcywh -> (N, 4) x0, y0, side_x, side_y in [0, 1]: the square around each box,
        its long side times `crop_scale` (the input is square, so side_x = side_y)."""
        side = boxes[:, 2:].amax(-1, keepdim=True).clamp(min=1e-3) * self.crop_scale
        size = side.expand(-1, 2)
        return torch.cat([boxes[:, :2] - size / 2, size], -1)

    def forward(self, pixel_values: torch.Tensor, image_index: torch.Tensor, boxes: torch.Tensor
                ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        crop = self.crop_boxes(boxes.float())
        n, c = len(boxes), self.crop_size
        theta = torch.zeros(n, 2, 3, device=boxes.device)
        theta[:, 0, 0], theta[:, 1, 1] = crop[:, 2], crop[:, 3]  # grid [-1, 1] of the crop -> of the input
        theta[:, :, 2] = 2 * (crop[:, :2] + crop[:, 2:] / 2) - 1
        grid = F.affine_grid(theta, [n, 3, c, c], align_corners=False)
        with torch.no_grad():
            images = F.grid_sample(pixel_values[image_index].float(), grid, mode="bilinear", padding_mode="zeros",
                                   align_corners=False)
            out = self.crop_model.forward_crops(torch.cat([images, images.flip(-1)]), features=True)
        f = out["features"]
        stride4 = torch.cat([f["decoder"], f["logits"][-1]], 1)
        maps = [stride4, f["stages"][2], f["latent"]]
        # each view's map in the crop's frame: the mirror's flipped back, then both side by side
        maps = [torch.cat([m[:n], m[n:].flip(-1)], 1) for m in maps]
        levels = [proj(m.to(proj[0].weight.dtype)) for proj, m in zip(self.proj, maps)]
        logits = f["logits"][-1]
        sharper = heatmap_peak(logits[:n]) >= heatmap_peak(logits[n:])

        def sharper_view(read) -> torch.Tensor:  # (N, 21, 2) in [0, 1] of the input: read from the sharper view's maps
            uv = torch.where(sharper[:, None, None], read(logits[:n].float()), read(logits[n:].flip(-1).float()))
            return crop[:, None, :2] + uv * crop[:, None, 2:]

        landmarks = sharper_view(soft_argmax_2d)
        keypoints = sharper_view(reported_keypoints)
        verts = out["verts"].float()
        verts = verts - torch.einsum("v,nvc->nc", self.wrist_row, verts)[:, None]
        mesh = torch.where(sharper[:, None, None], verts[:n], verts[n:] * verts.new_tensor([-1.0, 1.0, 1.0]))
        return levels, crop, landmarks, mesh, keypoints


__all__ = ["CROP_ENCODER_NAME", "CropEncoderFeatures", "crop_encoder_folder"]
