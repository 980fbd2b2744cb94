"""M3DHMR training loss (§3.4, eq. 7): L_total = L_mesh + L_pose2D + L_norm + L_edge + L_con3D + L_con2D.

- L_mesh   = ||V − V*||_1                 root-relative vertices
- L_pose2D = ||L^p − L^p,*||_1             2D landmarks, normalised crop coords [0, 1]
- L_norm   = mean |unit(V_i − V_j) · n*_c|  over the 3 edges of every face (`handrecon.losses.mesh`)
- L_edge   = mean | |V_i − V_j| − |V*_i − V*_j| |
- L_con3D  = ||R·V_view1 − V_view2||_1      view 1's vertices rotated into view 2's camera frame
- L_con2D  = ||A(L^p_view1) − L^p_view2||_1  view 1's landmarks mapped into view 2's crop

- L_heatmap = KL(G* || softmax(H)) per stack: the "guidance of heatmaps" under which §3.1 trains
  the encoder's stacks; G* is a normalised Gaussian (std `heatmap_sigma` cells) at the GT landmark,
  H the heatmap logits whose soft-argmax gives L^p. Off by default (weight 0); zero at G*.
- L_mirror = KL(U || softmax(H)) per stack on the mirror images of some training crops (a right
  hand mirrored is a left hand, which this right-hand model should not read confidently; the
  model's `mirror_negatives`; not the paper): zero when their heatmaps are flat. A hand's side is
  read from which of its crop and the crop's mirror gives sharper heatmaps, which this term
  teaches the encoder to make decisive.

Every ||·||_1 is a mean over elements (as MobRecon's F.l1_loss); the paper's sums over faces are
means here too (see docs/mesh.md). 3D lengths are measured in units of 0.2 m (`VERTEX_SCALE_M`, the
decoder's output unit, MobRecon), so an L1 of 0.05 is 1 cm; 2D in crop fractions. Weights are
per term, the paper's are all 1 (`DEFAULT_WEIGHTS`); `stacks` (L1 on the landmarks of the encoder's
earlier stacks, intermediate supervision of the stacked encoder) is off by default.
Supervised terms average over both views when two are given. The consistency terms compare two
augmentations of one image after undoing the crop's in-plane rotation (3D: R) and the crop
itself (2D: A), as in MobRecon (REFERENCE §4).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from handrecon.losses.mesh import edge_loss, normal_loss
from handrecon.models.heads import gaussian_heatmaps

VERTEX_SCALE_M = 0.2
DEFAULT_WEIGHTS = {"mesh": 1.0, "pose2d": 1.0, "norm": 1.0, "edge": 1.0, "con3d": 1.0, "con2d": 1.0, "stacks": 0.0,
                   "heatmap": 0.0, "mirror": 1.0}
HEATMAP_SIGMA = 1.0  # target std in heatmap cells (stride 4: 4 px of a 128 px crop)


def apply_affine(points: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """(B, N, 2) points through (B, 2, 3) affine maps."""
    return points @ affine[:, :, :2].transpose(1, 2) + affine[:, None, :, 2]


class M3DHMRLoss(nn.Module):
    """Weighted sum of the M3DHMR loss terms; returns (total, {term: value}).

    faces: (F, 3) mesh faces. weights: overrides of `DEFAULT_WEIGHTS` (unknown names are an error).
    """

    def __init__(self, faces, weights: dict[str, float] | None = None, vertex_scale: float = VERTEX_SCALE_M) -> None:
        super().__init__()
        unknown = set(weights or {}) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown M3DHMR loss term(s) {sorted(unknown)}; known: {', '.join(DEFAULT_WEIGHTS)}")
        self.weights = {**DEFAULT_WEIGHTS, **(weights or {})}
        self.vertex_scale = vertex_scale
        self.register_buffer("faces", torch.as_tensor(faces).long(), persistent=False)

    def supervised(self, verts: torch.Tensor, uv: torch.Tensor, gt_verts: torch.Tensor,
                   gt_uv: torch.Tensor, uv_stacks: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """verts, gt_verts: (B, V, 3) metres; uv, gt_uv: (B, J, 2) normalised; uv_stacks: (B, S, J, 2)."""
        s, w = self.vertex_scale, self.weights
        verts, uv, gt_verts, gt_uv = verts.float(), uv.float(), gt_verts.float(), gt_uv.float()  # fp32 under autocast
        terms = {
            "mesh": F.l1_loss(verts / s, gt_verts / s),
            "pose2d": F.l1_loss(uv, gt_uv),
            "norm": normal_loss(verts, gt_verts, self.faces),
            "edge": edge_loss(verts / s, gt_verts / s, self.faces),
        }
        if w["stacks"] > 0 and uv_stacks is not None and uv_stacks.shape[1] > 1:
            earlier = uv_stacks[:, :-1].float()
            terms["stacks"] = F.l1_loss(earlier, gt_uv[:, None].expand_as(earlier))
        return terms

    def heatmap(self, logits: torch.Tensor, gt_uv: torch.Tensor, sigma: float = HEATMAP_SIGMA) -> torch.Tensor:
        """KL(target || softmax(logits)) averaged over batch, stacks and joints.

        logits: (B, S, J, h, w) heatmap logits of every stack; gt_uv: (B, J, 2) normalised.
        """
        B, S, J, h, w = logits.shape
        target = gaussian_heatmaps(gt_uv.float(), h, w, sigma).reshape(B, 1, J, h * w)
        target = target / target.sum(-1, keepdim=True).clamp_min(1e-12)
        log_p = torch.log_softmax(logits.float().reshape(B, S, J, h * w), dim=-1)
        kl = (target * (torch.log(target.clamp_min(1e-12)) - log_p)).sum(-1)
        return kl.mean()

    def flat_heatmap(self, logits: torch.Tensor) -> torch.Tensor:
        """KL(U || softmax(logits)) averaged over batch, stacks and joints, U uniform over the map:
        log(h·w) + the mean log-probability's negative; logits (B, S, J, h, w)."""
        B, S, J, h, w = logits.shape
        log_p = torch.log_softmax(logits.float().reshape(B, S, J, h * w), dim=-1)
        return (-torch.log(torch.tensor(float(h * w))) - log_p.mean(-1)).mean()

    def consistency(self, verts1: torch.Tensor, verts2: torch.Tensor, uv1: torch.Tensor, uv2: torch.Tensor,
                    rotation: torch.Tensor, affine: torch.Tensor) -> dict[str, torch.Tensor]:
        """verts1/2: (B, V, 3) metres in each view's camera frame; uv1/2: (B, J, 2) normalised.

        rotation: (B, 3, 3), view-2 camera coords = rotation @ view-1 camera coords.
        affine: (B, 2, 3), view-1 normalised crop coords → view-2 normalised crop coords.
        """
        s = self.vertex_scale
        verts1, verts2, uv1, uv2 = verts1.float(), verts2.float(), uv1.float(), uv2.float()
        rotation, affine = rotation.float(), affine.float()
        return {
            "con3d": F.l1_loss(verts1 @ rotation.transpose(1, 2) / s, verts2 / s),
            "con2d": F.l1_loss(apply_affine(uv1, affine), uv2),
        }

    def total(self, terms: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        total = sum(self.weights[k] * v for k, v in terms.items() if self.weights[k] != 0)
        return total, terms
