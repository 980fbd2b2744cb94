"""Dynamic Spiral Convolution (M3DHMR §3.2, eq. 4-6) and its temperature schedule.

A DSC layer holds K depth-separable spiral kernels of the same size and in/out widths. For every
vertex v an attention over the kernels is computed, the kernels are mixed by it and applied to
v's spiral:

    π(v)   = softmax(f2(ReLU(f1(x_v))) / τ)                       eq. 4, Σ_k π_k = 1
    Ŵ1(v)  = Σ_k π_k W1_k,  b̂1(v) = Σ_k π_k b1_k,  same for Ŵ2, b̂2   eq. 5
    DSC(v) = Ŵ2 (Ŵ1 f(k-disk(v)) + b̂1) + b̂2                         eq. 6

Readings of the paper where it leaves a choice (documented, switchable where it matters):

- **W1, W2.** The abstract says DSC "extracts the vertex features in both spatial and channel
  dimensions" and eq. 6 has two stacked weights with no non-linearity between them: W1 is a
  depthwise spiral kernel (per channel, one weight per spiral position: (L, C_in), spatial) and W2
  a pointwise C_in → C_out map (channel), i.e. a dynamic version of MobRecon's DSConv
  (`handrecon.models.spiral.DepthSeparableSpiralConv`), the paper's baseline decoder layer.
- **x of the attention.** "Adapt the weights based on the vertex positions": x is the vertex's
  *spiral-gathered* features f(k-disk(v)) (the same L·C_in numbers the kernel sees), so the
  attention knows where on the mesh v sits; f1 is a spiral convolution L·C_in → C_in/2 ("reduces
  the dimension to half"), f2 a per-vertex linear C_in/2 → K. `attention_input="vertex"` uses the
  centre vertex's own C_in features instead (a 1×1 f1), cheaper.
- **τ** (REFERENCE §4, from dynamic convolution): annealed from ~30 to 1 early in training so all
  kernels receive gradient; `temperature_at` gives the linear schedule, the M3DHMR model drives it.

Initialisation (ours; the paper is silent). Mixing K independently initialised kernels with
near-uniform attention averages them: the mixed depthwise and pointwise weights each have 1/K of
one kernel's variance, so with K = 8 every layer shrank its input's scale ~8× and a four-level
decoder's output ~4000×. Measured: the decoder then did not fit even 64 fixed training crops
(L_mesh 0.21 → 0.20 in 160 steps, while SpiralConv++ reached 0.08). Each kernel is therefore drawn
with K× the usual variance, which restores the single-kernel scale at the start (tested in
tests/test_m3dhmr_layers.py) and reached L_mesh 0.08 in the same 160 steps.

Computation (exact, because eq. 6 is linear in the mixed weights): the depthwise kernels are mixed
per vertex (a (B·V, K) × (K, L·C_in) matmul, then a multiply-and-sum over the spiral) and the
pointwise stage computes all K branch outputs with one (B·V, C_in) × (C_in, K·C_out) matmul and
mixes them by π. Mixing the pointwise weights instead would materialise a C_in × C_out matrix per
vertex. Timings of the alternatives: benchmarks/bench_m3dhmr.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from handrecon.models.spiral import _index_buffer, spiral_gather


def temperature_at(step: int, start: float = 30.0, anneal_steps: int = 0, end: float = 1.0) -> float:
    """Attention temperature after `step` training steps: linear from `start` to `end` over
    `anneal_steps` steps, `end` afterwards (and always when anneal_steps <= 0)."""
    if anneal_steps <= 0 or step >= anneal_steps:
        return end
    return start + (end - start) * step / anneal_steps


class DynamicSpiralConv(nn.Module):
    """K depth-separable spiral kernels mixed per vertex by softmax attention.

    indices: (V, L) spiral indices. Input (B, V_in, C_in), output (B, V, C_out).
    `tau` (float attribute) is the softmax temperature, set by the owner's schedule.
    """

    def __init__(self, in_channels: int, out_channels: int, indices, num_kernels: int = 8,
                 attention_input: str = "spiral", tau: float = 1.0) -> None:
        super().__init__()
        if num_kernels < 1:
            raise ValueError(f"num_kernels must be >= 1, got {num_kernels}")
        if attention_input not in ("spiral", "vertex"):
            raise ValueError(f"attention_input must be 'spiral' or 'vertex', got {attention_input!r}")
        self.register_buffer("indices", _index_buffer(indices, "spiral indices", 2), persistent=False)
        self.in_channels, self.out_channels, self.num_kernels = in_channels, out_channels, num_kernels
        self.seq_length = L = self.indices.shape[1]
        self.attention_input, self.tau = attention_input, tau
        hidden = max(in_channels // 2, 1)
        self.f1 = nn.Linear(in_channels * (L if attention_input == "spiral" else 1), hidden)
        self.f2 = nn.Linear(hidden, num_kernels)
        self.depthwise = nn.Parameter(torch.empty(num_kernels, L, in_channels))
        self.depthwise_bias = nn.Parameter(torch.zeros(num_kernels, in_channels))
        self.pointwise = nn.Parameter(torch.empty(in_channels, num_kernels, out_channels))  # W2_k = [:, k]
        self.pointwise_bias = nn.Parameter(torch.zeros(num_kernels, out_channels))
        # Independent kernels, each with K times the variance of a single DSConv kernel, so that
        # the uniform mixture at the start (high τ: π ≈ 1/K) has a single kernel's variance in
        # both stages (see "Initialisation" above).
        gain = math.sqrt(num_kernels)
        bound = gain / math.sqrt(L)  # kaiming_uniform(a=√5) of a depthwise Conv1d, fan_in = L
        nn.init.uniform_(self.depthwise, -bound, bound)
        a = gain * math.sqrt(6.0 / (in_channels + out_channels))  # xavier_uniform per kernel
        nn.init.uniform_(self.pointwise, -a, a)

    def attention(self, s: torch.Tensor) -> torch.Tensor:
        """(B, V, L, C_in) spiral features → (B, V, K) kernel weights, each row sums to 1."""
        x = s.flatten(2) if self.attention_input == "spiral" else s[:, :, 0]
        return torch.softmax(self.f2(F.relu(self.f1(x))) / self.tau, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = spiral_gather(x, self.indices)  # (B, V, L, C)
        B, V, L, C = s.shape
        K = self.num_kernels
        pi = self.attention(s)  # (B, V, K)
        w1 = (pi @ self.depthwise.reshape(K, L * C)).reshape(B, V, L, C)
        h = (s * w1).sum(2) + pi @ self.depthwise_bias  # (B, V, C_in)
        z = (h @ self.pointwise.reshape(C, K * self.out_channels)).reshape(B, V, K, -1)
        return (pi.unsqueeze(-1) * z).sum(2) + pi @ self.pointwise_bias

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, seq_length={self.seq_length}, "
                f"num_kernels={self.num_kernels}, attention_input={self.attention_input}")
