"""Attention of the HandOS decoder: multi-scale deformable cross-attention in pure PyTorch and the
four self-attention policies of the paper's Fig. 8.

Deformable attention (Deformable DETR, as transformers' Grounding DINO computes it; REFERENCE.md
§5): each query samples `points` locations per head and level around its reference box,
``loc = ref_xy + offset / points · ref_wh · 0.5`` (the reference scaled by the level's valid
ratio), bilinearly with zero padding (``grid_sample(align_corners=False)``), and sums them with
softmax weights. Queries here belong to instances (hands); `image_index` says which image's
memory each instance reads, so the memory is projected once per image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

POLICIES = ("independent", "unidirectional", "hierarchical", "full")


def policy_mask(policy: str, num_joints: int, num_vertices: int) -> torch.Tensor:
    """(T, T) bool, True where query token i may attend to key token j, over the tokens
    [J joints | V vertices | t camera] of one hand (T = J + V + 1), Fig. 8:

    (a) "independent": J↔J, V↔V, t↔t; (b) "unidirectional": J→J, V→{J, V}, t→all;
    (c) "hierarchical" (the paper's): J and V see each other, t sees everything, nothing else
    sees t; (d) "full": everything.
    """
    if policy not in POLICIES:
        raise ValueError(f"attention policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    J, V = num_joints, num_vertices
    T = J + V + 1
    jj, vv, tt = slice(0, J), slice(J, J + V), slice(J + V, T)
    allowed = torch.zeros(T, T, dtype=torch.bool)
    if policy == "full":
        allowed[:] = True
    elif policy == "independent":
        allowed[jj, jj] = allowed[vv, vv] = allowed[tt, tt] = True
    elif policy == "unidirectional":
        allowed[jj, jj] = True
        allowed[vv, : J + V] = True
        allowed[tt, :] = True
    else:  # hierarchical
        allowed[: J + V, : J + V] = True
        allowed[tt, :] = True
    return allowed


def instance_slots(image_index: torch.Tensor, num_images: int) -> tuple[torch.Tensor, int]:
    """(slot (N,), slots): each instance's rank among the instances of its image (in order), and
    the largest count per image — where an instance goes in a (num_images, slots, ...) padded
    layout. ONNX-exportable ops (no bincount, no argsort)."""
    member = image_index[:, None] == torch.arange(num_images, device=image_index.device)  # (N, B)
    slots = int(member.sum(0).max()) if len(image_index) else 0
    return (member.long().cumsum(0) - 1).gather(1, image_index[:, None])[:, 0], slots


class MultiScaleDeformableAttention(nn.Module):
    """Deformable cross-attention from instance queries into a batch of multi-level memories.

    query (N, T, d); reference (N, T, 4) cxcywh in [0, 1] of the padded input; value (B, ΣHW, d)
    (per image); spatial_shapes (L, 2) (H, W) per level; level_start_index (L,); valid_ratios
    (B, L, 2); image_index (N,) the image of each instance. A level reads the reference at
    ``ref · valid_ratio + level_offset``: level_offsets (B, L, 2), zero by default (a level
    that covers a crop of the input has ratio 1 / crop size and offset −crop origin / crop
    size). Returns (N, T, d).
    """

    def __init__(self, d_model: int, heads: int = 8, levels: int = 4, points: int = 4) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} must be divisible by heads {heads}")
        self.d, self.heads, self.levels, self.points = d_model, heads, levels, points
        self.sampling_offsets = nn.Linear(d_model, heads * levels * points * 2)
        self.attention_weights = nn.Linear(d_model, heads * levels * points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """Deformable DETR's initialisation: offsets start on a ring of directions, one per head."""
        nn.init.zeros_(self.sampling_offsets.weight)
        theta = torch.arange(self.heads, dtype=torch.float32) * (2.0 * math.pi / self.heads)
        grid = torch.stack([theta.cos(), theta.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.heads, 1, 1, 2).repeat(1, self.levels, self.points, 1)
        for i in range(self.points):
            grid[:, :, i, :] *= i + 1
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(self, query: torch.Tensor, reference: torch.Tensor, value: torch.Tensor, spatial_shapes: torch.Tensor,
                level_start_index: torch.Tensor, valid_ratios: torch.Tensor, image_index: torch.Tensor,
                level_offsets: torch.Tensor | None = None) -> torch.Tensor:
        N, T, _ = query.shape
        H, L, P, c = self.heads, self.levels, self.points, self.d // self.heads
        if spatial_shapes.shape[0] != L:
            raise ValueError(f"deformable attention built for {L} levels got a memory of {spatial_shapes.shape[0]}")
        value = self.value_proj(value)
        offsets = self.sampling_offsets(query).view(N, T, H, L, P, 2)
        weights = self.attention_weights(query).view(N, T, H, L * P).softmax(-1).view(N, T, H, L, P)
        ratios = valid_ratios[image_index]  # (N, L, 2)
        ref_xy = reference[:, :, None, None, None, :2] * ratios[:, None, None, :, None, :]
        if level_offsets is not None:
            ref_xy = ref_xy + level_offsets[image_index][:, None, None, :, None, :]
        ref_wh = reference[:, :, None, None, None, 2:] * ratios[:, None, None, :, None, :]
        loc = ref_xy + offsets / P * ref_wh * 0.5  # (N, T, H, L, P, 2) in [0, 1]
        # instances of one image share its memory: lay them side by side per image (padded to the
        # largest count) so every level is sampled once per image, not copied per instance
        B = value.shape[0]
        slot, slots = instance_slots(image_index, B)
        grids = query.new_zeros(B, slots, T, H, L, P, 2)
        grids[image_index, slot] = (2.0 * loc - 1.0).to(grids.dtype)
        grids = grids.permute(0, 3, 4, 1, 2, 5, 6).reshape(B * H, L, slots * T, P, 2)
        w = query.new_zeros(B, slots, T, H, L, P)
        w[image_index, slot] = weights.to(w.dtype)
        w = w.permute(0, 3, 4, 1, 2, 5).reshape(B * H, L, 1, slots * T, P)
        out = query.new_zeros(B * H, c, slots * T)
        shapes = [(int(h), int(w_)) for h, w_ in spatial_shapes.tolist()]
        for lvl, v in enumerate(value.split([h * w_ for h, w_ in shapes], 1)):  # one split: one backward copy
            h, w_ = shapes[lvl]
            v = v.reshape(B, h, w_, H, c).permute(0, 3, 4, 1, 2).reshape(B * H, c, h, w_)
            sampled = F.grid_sample(v, grids[:, lvl], mode="bilinear", padding_mode="zeros", align_corners=False)
            out = out + (sampled * w[:, lvl]).sum(-1)  # (B*H, c, slots*T)
        out = out.view(B, H * c, slots, T).permute(0, 2, 3, 1)[image_index, slot]  # (N, T, d)
        return self.output_proj(out)


__all__ = ["MultiScaleDeformableAttention", "POLICIES", "instance_slots", "policy_mask"]
