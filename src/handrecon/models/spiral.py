"""Spiral mesh layers: SpiralConv (SpiralNet++), depth-separable spiral conv (MobRecon), resampling.

Everything is a gather (`index_select` over the vertex axis) followed by dense ops, so the layers
run on any device, need no torch_scatter and export to ONNX. Features are (B, V, C).
`spiral_gather` is the shared neighbourhood read; Dynamic Spiral Convolution reuses it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _index_buffer(indices, name: str, ndim: int) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(indices) if not torch.is_tensor(indices) else indices).long()
    if t.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dims, got shape {tuple(t.shape)}")
    if t.numel() and t.min() < 0:
        raise ValueError(f"{name} has negative indices")
    return t.contiguous()


def spiral_gather(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """(B,V_in,C) features, (V,L) spiral indices -> (B,V,L,C) features of each spiral."""
    v, length = indices.shape
    return x.index_select(1, indices.reshape(-1)).reshape(x.shape[0], v, length, x.shape[2])


class SpiralConv(nn.Module):
    """SpiralNet++ convolution: concatenate the L spiral neighbours' features, then one Linear.

    indices: (V,L) spiral indices (e.g. from `handrecon.mesh.get_spirals`). Input (B,V,C_in),
    output (B,V,C_out).
    """

    def __init__(self, in_channels: int, out_channels: int, indices, bias: bool = True):
        super().__init__()
        self.register_buffer("indices", _index_buffer(indices, "spiral indices", 2), persistent=False)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.seq_length = self.indices.shape[1]
        self.layer = nn.Linear(in_channels * self.seq_length, out_channels, bias=bias)
        nn.init.xavier_uniform_(self.layer.weight)
        if bias:
            nn.init.zeros_(self.layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = spiral_gather(x, self.indices)
        return self.layer(s.reshape(s.shape[0], s.shape[1], -1))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, seq_length={self.seq_length}"


class DepthSeparableSpiralConv(nn.Module):
    """MobRecon's DSConv: a per-channel weighted sum over the spiral (depthwise, (C_in, L)
    weights), then a pointwise Linear C_in -> C_out. Both without bias by default, as in MobRecon.
    """

    def __init__(self, in_channels: int, out_channels: int, indices, bias: bool = False):
        super().__init__()
        self.register_buffer("indices", _index_buffer(indices, "spiral indices", 2), persistent=False)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.seq_length = self.indices.shape[1]
        self.depthwise = nn.Parameter(torch.empty(self.seq_length, in_channels))
        self.pointwise = nn.Linear(in_channels, out_channels, bias=bias)
        nn.init.kaiming_uniform_(self.depthwise.T, a=5 ** 0.5)  # as a Conv1d(groups=C_in, kernel L) would
        nn.init.xavier_uniform_(self.pointwise.weight)
        if bias:
            nn.init.zeros_(self.pointwise.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = spiral_gather(x, self.indices)  # (B,V,L,C)
        return self.pointwise((s * self.depthwise).sum(2))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, seq_length={self.seq_length}"


def resample(x: torch.Tensor, index: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """(B,V_in,C) -> (B,V_out,C): out[:,i] = sum_k weight[i,k] * x[:, index[i,k]].

    index: (V_out,K) long, weight: (V_out,K) or None for a plain selection (index (V_out,)).
    """
    if weight is None:
        return x.index_select(1, index)
    g = spiral_gather(x, index)  # (B,V_out,K,C)
    return (g * weight[None, :, :, None]).sum(2)


class MeshResample(nn.Module):
    """Sparse mesh pooling by gather + weighted sum (no dense V×V matrix).

    Down-sampling (COMA D, a selection): `MeshResample(hierarchy.down[k])`.
    Up-sampling (COMA U, 3 coefficients per row): `MeshResample(up_index[k], up_weight[k])`.
    """

    def __init__(self, index, weight=None):
        super().__init__()
        self.register_buffer("index", _index_buffer(index, "resample index", 1 if weight is None else 2),
                             persistent=False)
        if weight is None:
            self.weight = None
        else:
            w = torch.as_tensor(np.asarray(weight) if not torch.is_tensor(weight) else weight, dtype=torch.float32)
            if w.shape != self.index.shape:
                raise ValueError(f"resample weight shape {tuple(w.shape)} != index shape {tuple(self.index.shape)}")
            self.register_buffer("weight", w, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = None if self.weight is None else self.weight.to(x.dtype)
        return resample(x, self.index, w)

    def extra_repr(self) -> str:
        return f"out_vertices={self.index.shape[0]}, k={1 if self.index.ndim == 1 else self.index.shape[1]}"


def down_pool(hierarchy, level: int) -> MeshResample:
    """Module taking level `level` features to level `level + 1` (selection)."""
    return MeshResample(hierarchy.down[level])


def up_pool(hierarchy, level: int) -> MeshResample:
    """Module taking level `level + 1` features to level `level` (3-coefficient rows)."""
    return MeshResample(hierarchy.up_index[level], hierarchy.up_weight[level])
