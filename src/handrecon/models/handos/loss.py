"""The HandOS loss (paper eq. 9-11 and suppl. eq. XII), applied to every decoder layer's outputs
and summed: 2D terms on every layer, 3D and weak terms on the interactive layers.

    L = 10 L^J2D + 4 L^2D_OKS + 10 L^V + 10 L^J3D + 5 L^normal + 10 L^edge
        + 10 L^Jproj + 4 L^proj_OKS + 0.5 L^nc

Units: 2D keypoints in [0, 1] of the detector input (u_norm = (u_px + 0.5) / S), OKS areas in
the same units squared; 3D in `vertex_unit` metres (default 1: metres, so that 2D and 3D errors
are of one size, a few 10⁻², and the paper's equal weights balance them), vertices and joints
relative to the wrist. The 2D keypoint terms (J2D, Jproj) are ED-Pose's criterion, which HandOS
builds on: the L1 norm of eq. 9 summed over a hand's keypoint coordinates, averaged over hands
(with a per-coordinate mean the OKS terms outweighed them ~40-fold). The 3D terms are
per-element means (the paper does not say). 3D terms (V, J3D, normal, edge) need 3D labels
(`has_3d`); the weak terms (Jproj, OKS proj, nc) need only 2D labels, so 2D-only data trains the
mesh too.
"""

from __future__ import annotations

import torch
from torch import nn

from handrecon.losses import edge_loss, normal_consistency_loss, normal_loss, oks_loss

PAPER_WEIGHTS = {"joints_2d": 10.0, "oks_2d": 4.0, "vertices": 10.0, "joints_3d": 10.0, "normal": 5.0, "edge": 10.0,
                 "joints_proj": 10.0, "oks_proj": 4.0, "normal_consistency": 0.5}
AUX_WEIGHTS = {"heatmap": 1.0}  # not the paper: `HandOS`'s heatmap switch (off by default, then unused)
TERMS_3D = ("vertices", "joints_3d", "normal", "edge")


def keypoint_l1(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """ED-Pose's keypoint L1: Σ |pred - gt| over the valid (N, K) points' coordinates of (N, K, C)
    arrays, divided by the number of instances N (0 when N = 0)."""
    w = valid.to(pred.dtype)[..., None]
    return ((pred - gt).abs() * w).sum() / max(pred.shape[0], 1)


class HandOSLoss(nn.Module):
    """Weighted sum of the terms above (`weights` override `PAPER_WEIGHTS` by name). A module, so
    that the mesh's faces and face pairs follow the model to its device (buffers, not saved)."""

    def __init__(self, faces, face_pairs, weights: dict[str, float] | None = None) -> None:
        super().__init__()
        known = {**PAPER_WEIGHTS, **AUX_WEIGHTS}
        unknown = set(weights or {}) - set(known)
        if unknown:
            raise ValueError(f"unknown HandOS loss terms {sorted(unknown)}; the terms are {', '.join(known)}")
        self.weights = {**known, **(weights or {})}
        self.register_buffer("faces", torch.as_tensor(faces).long(), persistent=False)
        self.register_buffer("face_pairs", torch.as_tensor(face_pairs).long(), persistent=False)

    def layer_terms(self, pred: dict[str, torch.Tensor], gt: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One layer's unweighted terms. pred: joints_2d (N, 21, 2); for interactive layers also
        vertices (N, V, 3), joints_3d (N, 21, 3), joints_proj (N, 21, 2). gt: joints_2d, valid
        (N, 21), area (N,), vertices, joints_3d, has_3d (N,)."""
        valid = gt["valid"]
        terms = {"joints_2d": keypoint_l1(pred["joints_2d"], gt["joints_2d"], valid),
                 "oks_2d": oks_loss(pred["joints_2d"], gt["joints_2d"], valid, gt["area"]).mean()}
        if "vertices" not in pred:
            return terms
        terms["joints_proj"] = keypoint_l1(pred["joints_proj"], gt["joints_2d"], valid)
        terms["oks_proj"] = oks_loss(pred["joints_proj"], gt["joints_2d"], valid, gt["area"]).mean()
        terms["normal_consistency"] = normal_consistency_loss(pred["vertices"], self.faces, self.face_pairs)
        has = gt["has_3d"]
        if has.any():
            v, vg = pred["vertices"][has], gt["vertices"][has]
            terms["vertices"] = (v - vg).abs().mean()
            terms["joints_3d"] = (pred["joints_3d"][has] - gt["joints_3d"][has]).abs().mean()
            terms["normal"] = normal_loss(v, vg, self.faces)
            terms["edge"] = edge_loss(v, vg, self.faces)
        return terms

    def forward(self, layers: list[dict[str, torch.Tensor]], gt: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Sum over layers of the weighted terms -> (total, the last layer's terms detached)."""
        total, last = None, {}
        for pred in layers:
            last = self.layer_terms(pred, gt)
            s = sum(self.weights[k] * v for k, v in last.items() if self.weights[k] > 0)
            total = s if total is None else total + s
        return total, {k: v.detach() for k, v in last.items()}


__all__ = ["AUX_WEIGHTS", "HandOSLoss", "PAPER_WEIGHTS", "keypoint_l1"]
