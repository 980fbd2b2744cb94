"""The HandOS decoder (paper §3.2-3.3, Fig. 2-3): side tuning, instance-to-joint expansion,
2D-to-3D lifting, 2D and interactive decoding layers and the regression heads.

Shapes: N selected hand instances (over the whole batch), J = 21 joints, V vertex queries (the
lifting level of the mesh: the full mesh in the paper, a coarse level on the CPU), T tokens per
instance. Reference boxes are cxcywh in [0, 1] of the padded detector input, refined in
inverse-sigmoid space and detached between layers (ED-Pose).

    F^s = SideTuning(backbone maps)                       3 convs per scale (suppl. §VI.1)
    Q^2D = Q̃^inst + e^Q,  R^J_c = σ(σ⁻¹(B̃_c) + FFN(Q^2D)),  R^J_s = B̃_s · σ(e^R_2D)      (6-7)
    [Q^V, Q^t] = L ⋄ Q^J,  [R^V, R^t] = L ⋄ R^J, R_c += FFN, R_s ·= σ(e^R_3D)              (8)
    2 layers over [J], then 4 interactive layers over [J | V | t] under a Fig. 8 policy mask.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from handrecon.models.handos.attention import MultiScaleDeformableAttention, policy_mask

SIDE_NETWORKS = ("tuned", "pyramid", "scratch", "crop", "none")


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """log(x / (1 - x)) in float32 (in bf16, 1 - 1e-5 rounds to 1 and the log overflows)."""
    x = x.float().clamp(eps, 1 - eps)
    return torch.log(x / (1 - x))


def mlp(d_in: int, d_hidden: int, d_out: int, layers: int = 2, zero_last: bool = False) -> nn.Sequential:
    """Linear-GELU stack; `zero_last` starts the output at (nearly) 0: a zero bias and a last
    weight of std 1e-3 — not exactly 0, so the layers below get gradients from the first step.
    GELU, not ReLU: with ReLU the heads' hidden units all died within the first few hundred steps
    of the CPU recipe (the joint outputs became constants and no gradient reached the decoder)."""
    dims = [d_in] + [d_hidden] * (layers - 1) + [d_out]
    mods: list[nn.Module] = []
    for i in range(layers):
        mods.append(nn.Linear(dims[i], dims[i + 1]))
        if i < layers - 1:
            mods.append(nn.GELU())
    if zero_last:
        nn.init.normal_(mods[-1].weight, std=1e-3)
        nn.init.zeros_(mods[-1].bias)
    return nn.Sequential(*mods)


def sine_box_embedding(boxes: torch.Tensor, dims_per_coord: int, temperature: float = 10000.0) -> torch.Tensor:
    """(..., 4) boxes in [0, 1] -> (..., 4 · dims_per_coord) sine/cosine embedding (DAB/ED-Pose)."""
    half = dims_per_coord // 2
    freq = temperature ** (2 * torch.arange(half, device=boxes.device, dtype=boxes.dtype) / dims_per_coord)
    x = boxes[..., None] * (2 * math.pi) / freq  # (..., 4, half)
    return torch.cat([x.sin(), x.cos()], -1).flatten(-2)


# --------------------------------------------------------------------------- side networks


def conv_block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.GroupNorm(8, c_out), nn.ReLU(inplace=True))


class SideTuning(nn.Module):
    """Suppl. §VI.1: 3 convolutions per scale map the detector's shallow backbone maps (strides
    4/8/16/32) to d channels: F^s, 4 extra memory levels. Per scale: 3×3 to `width` (None: d),
    3×3, then 1×1 to d (a narrow `width` keeps the stride-4 scale cheap on a CPU)."""

    def __init__(self, in_channels: tuple[int, ...], d_model: int, width: int | None = None) -> None:
        super().__init__()
        w = width or d_model
        self.scales = nn.ModuleList(
            nn.Sequential(conv_block(c, w), conv_block(w, w), nn.Conv2d(w, d_model, 1)) for c in in_channels)

    def forward(self, maps: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        return [scale(m) for scale, m in zip(self.scales, maps)]


class PyramidSideTuning(nn.Module):
    """Side tuning with a top-down path (FPN, not the paper): each backbone map goes to `width`
    channels by a 1×1 lateral, each scale adds the merged map of the next coarser scale up-sampled
    (nearest), then 2 convolutions and a 1×1 to d per scale. The stride-4 and stride-8 levels then carry
    the deeper stages' semantics; with the paper's per-scale side tuning the stride-4 level sees
    only the detector's stem (24 channels for `handrecon-hand-detector`)."""

    def __init__(self, in_channels: tuple[int, ...], d_model: int, width: int | None = None) -> None:
        super().__init__()
        w = width or d_model
        self.lateral = nn.ModuleList(nn.Conv2d(c, w, 1) for c in in_channels)
        self.scales = nn.ModuleList(
            nn.Sequential(conv_block(w, w), conv_block(w, w), nn.Conv2d(w, d_model, 1)) for _ in in_channels)

    def forward(self, maps: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        merged = [self.lateral[-1](maps[-1])]
        for lateral, m in zip(reversed(self.lateral[:-1]), reversed(maps[:-1])):
            merged.insert(0, lateral(m) + F.interpolate(merged[0], size=m.shape[-2:], mode="nearest"))
        return [scale(m) for scale, m in zip(self.scales, merged)]


class ScratchSideNetwork(nn.Module):
    """The Table 6 alternative: a side network trained from scratch on the image (the paper's is
    a Swin-T; here a plain conv pyramid of the same 4 strides), no detector features."""

    def __init__(self, d_model: int, width: int = 32) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(conv_block(3, w, 2), conv_block(w, w, 2))  # stride 4
        self.stages = nn.ModuleList([conv_block(w, w), conv_block(w, 2 * w, 2), conv_block(2 * w, 4 * w, 2),
                                     conv_block(4 * w, 8 * w, 2)])
        self.out = nn.ModuleList(nn.Conv2d(c, d_model, 1) for c in (w, 2 * w, 4 * w, 8 * w))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x, maps = self.stem(image), []
        for stage, out in zip(self.stages, self.out):
            x = stage(x)
            maps.append(out(x))
        return maps


# --------------------------------------------------------------------------- decoding layers


class DecoderLayer(nn.Module):
    """Self-attention (under a mask) → multi-scale deformable cross-attention → FFN, each with a
    residual and LayerNorm (Fig. 3). The same layer is a 2D layer over [J] or an interactive
    layer over [J | V | t]; the mask makes the difference."""

    def __init__(self, d_model: int, heads: int, levels: int, points: int, ffn_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(d_model)
        self.cross_attn = MultiScaleDeformableAttention(d_model, heads, levels, points)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, ffn_dim), nn.ReLU(inplace=True), nn.Linear(ffn_dim, d_model))
        self.norm3 = nn.LayerNorm(d_model)

    def forward(self, query: torch.Tensor, pos: torch.Tensor, reference: torch.Tensor, memory: dict,
                blocked: torch.Tensor | None = None) -> torch.Tensor:
        x = query + pos
        query = self.norm1(query + self.self_attn(x, x, query, attn_mask=blocked, need_weights=False)[0])
        query = self.norm2(query + self.cross_attn(query + pos, reference, **memory))
        return self.norm3(query + self.ffn(query))


def lifting_init(weights: np.ndarray, keypoint_joints: np.ndarray, parents: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The initial lifting matrix L ((V' + 1) × 21): each of the vertices `rows` combines the 21
    joint queries with its skinning weights (skeleton joints mapped to their OP21 keypoints; a
    joint without one, such as a metacarpal, to its nearest ancestor that has one; a finger's
    distal bone shared half and half by its last joint and its tip); the camera row is uniform."""
    W = np.asarray(weights, np.float64)[rows]
    kj = np.asarray(keypoint_joints)
    joint_kp = np.full(W.shape[1], -1)
    joint_kp[kj[kj >= 0]] = np.flatnonzero(kj >= 0)
    for j in range(len(joint_kp)):  # parents[j] < j: ancestors are mapped first
        if joint_kp[j] < 0:
            p = j
            while joint_kp[p] < 0 and parents[p] >= 0:
                p = parents[p]
            joint_kp[j] = max(joint_kp[p], 0)
    L = np.zeros((len(rows) + 1, len(kj)))
    np.add.at(L[:-1].T, joint_kp, W.T)
    for tip in np.flatnonzero(kj < 0):  # the tip keypoint follows the distal joint (keypoint tip - 1)
        L[:-1, tip] = 0.5 * L[:-1, tip - 1]
        L[:-1, tip - 1] *= 0.5
    L[:-1] /= L[:-1].sum(1, keepdims=True)
    L[-1] = 1.0 / len(kj)
    return L.astype(np.float32)


# How the vertex and camera tokens' refined references pass to the next layer. "detached", like the
# joints' (ED-Pose): then no gradient reaches `ref_heads`, since no loss reads those references, and
# the tokens keep sampling around their lifted references. "attached": the next layers' sampling
# trains `ref_heads`. The paper does not say; an experiment.
REF_3D_MODES = ("detached", "attached")


class InteractiveDecoder(nn.Module):
    """Expansion, lifting, `num_2d_layers` 2D layers and `num_layers - num_2d_layers` interactive
    layers, with per-layer heads (see the module docstring).

    forward(instance_queries (N, d), boxes (N, 4) cxcywh, memory) -> list of per-layer dicts:
    ``joints_2d`` (N, J, 2) in [0, 1] of the input (with ``refine_2d`` False: the joint
    references' start, unchanged by every layer; a CPU deviation); interactive layers also ``vertices`` (N, V', 3)
    root-relative in `vertex_unit` metres (before up-sampling) and ``camera`` (N, 3): the root's
    (u, v) in [0, 1] and its log depth correction (see `HandOS.camera_translation`).
    """

    def __init__(self, d_model: int, lifting: np.ndarray, template: np.ndarray, levels: int, num_layers: int = 6,
                 num_2d_layers: int = 2, heads: int = 8, points: int = 4, ffn_dim: int = 1024,
                 policy: str = "hierarchical", num_joints: int = 21, joint_layout: np.ndarray | None = None,
                 ref_3d: str = "detached", refine_2d: bool = True) -> None:
        super().__init__()
        if not 0 <= num_2d_layers <= num_layers:
            raise ValueError(f"num_2d_layers {num_2d_layers} must lie in 0..num_layers ({num_layers})")
        if ref_3d not in REF_3D_MODES:
            raise ValueError(f"ref_3d must be one of {REF_3D_MODES}, got {ref_3d!r}")
        self.ref_3d = ref_3d
        self.refine_2d = bool(refine_2d)
        self.J, self.V = num_joints, lifting.shape[0] - 1
        self.num_layers, self.num_2d_layers = num_layers, num_2d_layers
        self.joint_embed = nn.Parameter(torch.randn(num_joints, d_model))  # e^Q, N(0, 1) as nn.Embedding: distinct joints from the start
        self.joint_size = nn.Parameter(torch.zeros(num_joints, 2))  # e^R_2D: σ(0) = half the box
        self.joint_offset = mlp(d_model, d_model, 2, zero_last=True)
        self.lift = nn.Parameter(torch.as_tensor(lifting))  # L, (V' + 1) × J
        self.lift_size = nn.Parameter(torch.zeros(self.V + 1, 2))  # e^R_3D
        self.lift_offset = mlp(d_model, d_model, 2, zero_last=True)
        self.pos_mlp = mlp(2 * d_model, d_model, d_model)
        self.layers = nn.ModuleList(DecoderLayer(d_model, heads, levels, points, ffn_dim) for _ in range(num_layers))
        n3d = num_layers - num_2d_layers
        self.joint_heads = nn.ModuleList(mlp(d_model, d_model, 2, 3, zero_last=True) for _ in range(num_layers))
        self.ref_heads = nn.ModuleList(mlp(d_model, d_model, 2, 2, zero_last=True) for _ in range(n3d))  # V, t refs
        self.vertex_heads = nn.ModuleList(mlp(d_model, d_model, 3, 3, zero_last=True) for _ in range(n3d))
        self.camera_heads = nn.ModuleList(mlp(d_model, d_model, 3, 3, zero_last=True) for _ in range(n3d))
        self.register_buffer("template", torch.as_tensor(template, dtype=torch.float32), persistent=False)
        layout = np.zeros((num_joints, 2)) if joint_layout is None else np.asarray(joint_layout)
        self.register_buffer("joint_layout", torch.as_tensor(layout, dtype=torch.float32), persistent=False)
        self.register_buffer("blocked", ~policy_mask(policy, num_joints, self.V), persistent=False)
        self.policy = policy

    def position(self, reference: torch.Tensor) -> torch.Tensor:
        return self.pos_mlp(sine_box_embedding(reference, self.pos_mlp[0].in_features // 4))

    def expand(self, instance_queries: torch.Tensor, boxes: torch.Tensor, joint_start: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 6-7: joint queries (N, J, d) and reference boxes (N, J, 4). The centres start from
        `joint_layout` ((J, 2) offsets in box sizes: the rest hand's joints, so the 21 tokens read
        different places from the first layer; zeros: the box centre, as eq. 7), or from
        `joint_start` (N, J, 2) in [0, 1] where given (`HandOS` heatmap "init"); without
        `refine_2d` the centres stay at that start (no offset)."""
        q = instance_queries[:, None] + self.joint_embed
        start = boxes[:, None, :2] + self.joint_layout * boxes[:, None, 2:]  # each joint starts at its place
        if joint_start is not None:
            start = joint_start.to(start.dtype).clamp(1e-4, 1 - 1e-4)
        centre = (inverse_sigmoid(start) + self.joint_offset(q)).sigmoid() if self.refine_2d else start
        size = boxes[:, None, 2:] * self.joint_size.sigmoid()
        return q, torch.cat([centre, size], -1)

    def lift_queries(self, q: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 8: (N, J, d), (N, J, 4) -> vertex and camera queries (N, V' + 1, d) and references."""
        q3 = torch.einsum("vj,njd->nvd", self.lift, q)
        with torch.autocast(ref.device.type, enabled=False):  # reference boxes stay float32
            r3 = torch.einsum("vj,njc->nvc", self.lift.float(), ref.float())
        centre = (inverse_sigmoid(r3[..., :2]) + self.lift_offset(q3)).sigmoid()
        size = r3[..., 2:] * self.lift_size.sigmoid() * 2.0  # σ(0)·2 = 1: the lifted size at first
        return q3, torch.cat([centre, size], -1)

    def forward(self, instance_queries: torch.Tensor, boxes: torch.Tensor, memory: dict,
                joint_start: torch.Tensor | None = None, vertex_start: torch.Tensor | None = None
                ) -> list[dict[str, torch.Tensor]]:
        """joint_start (N, J, 2) in [0, 1]: where the joint references start (`expand`);
        vertex_start (N, V', 3) in vertex units: what the vertex heads' outputs add to (default
        the rest template)."""
        base = self.template if vertex_start is None else vertex_start.to(self.template.dtype)
        q, ref = self.expand(instance_queries, boxes, joint_start)
        J = self.J
        outputs = []
        for i, layer in enumerate(self.layers):
            interactive = i >= self.num_2d_layers
            if interactive and q.shape[1] == J:  # the lifted references are new: their FFN learns in this layer
                q3, r3 = self.lift_queries(q, ref)
                q, ref = torch.cat([q, q3], 1), torch.cat([ref, r3], 1)
            q = layer(q, self.position(ref), ref, memory, self.blocked if interactive else None)
            joints = (inverse_sigmoid(ref[:, :J, :2]) + self.joint_heads[i](q[:, :J])).sigmoid() if self.refine_2d \
                else ref[:, :J, :2]  # without `refine_2d` the 2D joints stay at their start
            out = {"joints_2d": joints}
            if interactive:
                k = i - self.num_2d_layers
                centres = (inverse_sigmoid(ref[:, J:, :2]) + self.ref_heads[k](q[:, J:])).sigmoid()
                out["vertices"] = base + self.vertex_heads[k](q[:, J:-1])
                out["camera"] = self.camera_heads[k](q[:, -1])
                out["camera_reference"] = ref[:, -1]
                ref = torch.cat([torch.cat([joints, ref[:, :J, 2:]], -1), torch.cat([centres, ref[:, J:, 2:]], -1)], 1)
            else:
                ref = torch.cat([joints, ref[:, :, 2:]], -1)
            if interactive and self.ref_3d == "attached":  # the joints' alone: no loss reads the V, t references
                ref = torch.cat([ref[:, :J].detach(), ref[:, J:]], 1)
            else:
                ref = ref.detach()  # refined references are detached between layers (ED-Pose, Deformable DETR)
            outputs.append(out)
        return outputs


def upsample_vertices(vertices: torch.Tensor, up_index: list[torch.Tensor], up_weight: list[torch.Tensor]) -> torch.Tensor:
    """(N, V_k, 3) at a coarse hierarchy level -> (N, V_0, 3) through the COMA up-sampling
    matrices, coarsest step first (`up_index[k]` (V_k, 3) into level k + 1, weights alike)."""
    for idx, w in zip(reversed(up_index), reversed(up_weight)):
        vertices = (vertices[:, idx] * w[None, :, :, None]).sum(2)
    return vertices


__all__ = ["REF_3D_MODES", "InteractiveDecoder", "DecoderLayer", "SideTuning", "PyramidSideTuning", "ScratchSideNetwork", "SIDE_NETWORKS", "lifting_init",
           "inverse_sigmoid", "sine_box_embedding", "upsample_vertices"]
