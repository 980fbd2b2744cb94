"""M3DHMR (Lin et al.): stacked landmark encoder + Dynamic Spiral Convolution decoder + ROI layer.

Image crop → encoder → 2D landmarks L^p and latent F^e → `MeshDecoder` → root-relative vertices →
3D joints by the hand model's keypoint regressor → camera-space placement by root recovery from
the predicted 2D joints and K (`handrecon.geometry.root`, as CMR/MobRecon).

Batch keys (what `forward`, `loss` and `validate` read; produced by the data pipeline):

| key            | shape            | meaning                                                           |
|----------------|------------------|-------------------------------------------------------------------|
| `image`        | (B, 3, S, S)     | RGB crop, float32 normalised (`utils.image.normalize_images`)     |
| `joints_2d`    | (B, 21, 2)       | GT OP21 keypoints, crop pixels (pixel centres at integers)        |
| `verts_3d`     | (B, V, 3)        | GT vertices relative to the GT wrist (OP21 joint 0), metres, crop camera frame |
| `joints_3d`    | (B, 21, 3)       | GT OP21 joints, same frame and root (validation)                  |
| `K`            | (B, 3, 3)        | intrinsics of the crop camera (crop pixels) (validation, root recovery) |
| `root`         | (B, 3)           | optional: GT camera-space wrist, metres (validation: camera-space metrics) |
| `box`          | (B, 4)           | GT hand box, crop pixels (validation: the 2D PCK normaliser)      |
| `view2`        | dict             | optional, training: the keys above for a second augmentation of the same image |
| `view2_R`      | (B, 3, 3)        | view-2 camera coords = view2_R @ view-1 camera coords             |
| `view2_affine` | (B, 2, 3)        | view-1 crop pixels → view-2 crop pixels                           |

Outputs of `forward` (dict): `uv` (B, 21, 2) landmarks in normalised crop coords (see
`handrecon.models.heads`: u_norm = (u_px + 0.5) / S), `uv_stacks` (B, S_enc, 21, 2) every encoder
stack's landmarks, `verts` (B, V, 3) root-relative vertices in **metres** (the decoder regresses
them in units of 0.2 m, `VERTEX_SCALE_M`), `joints` (B, 21, 3) = kp_regressor @ verts, metres;
in training with a non-zero `heatmap` loss weight also `heatmaps` (B, S_enc, 21, h, w) logits; in
training with `view2` in the batch also `view2`: the same dict for the second view (both views
run through the network as one batch).

The Dynamic Spiral Convolution temperature follows `temperature_at(step, tau_start,
tau_anneal_steps)` where `step` counts training forward passes (a persistent buffer, so it is
checkpointed and resumes exactly); `set_progress(step)` sets it from outside.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn as nn

from handrecon.eval.scoring import HandSet, score_hands
from handrecon.geometry.root import solve_root_translation
from handrecon.hand.load import load_hand_model_data, topology_sha256
from handrecon.mesh import get_hierarchy, get_spirals, hierarchy_spirals
from handrecon.models.backbones import LANDMARK_ENCODERS, build_backbone
from handrecon.models.heads import (
    encoder_output, heatmap_peak, local_soft_argmax_2d, normalized_to_pixels, pixels_to_normalized, sample_features_at,
)
from handrecon.models.m3dhmr.decoder import CONV_TYPES, MeshDecoder
from handrecon.models.m3dhmr.dsc import DynamicSpiralConv, temperature_at
from handrecon.models.m3dhmr.inference import KEYPOINT_WINDOW
from handrecon.models.m3dhmr.loss import VERTEX_SCALE_M, M3DHMRLoss
from handrecon.utils.image import IMAGENET_MEAN, IMAGENET_STD

INPUT_SIZE = 128  # the paper's input crop (§4.2)
CROP_SCALE_RANGE = (1.15, 1.5)  # training crop side / longest box side; inference takes the centre


class M3DHMR(nn.Module):
    """M3DHMR with the paper's ablation switches.

    backbone: one of `LANDMARK_ENCODERS` ("stacked_resnet18" / "stacked_resnet34" (Tab. 4) or
    "hourglass2" (§3.1)); conv: "dsc" | "spiral" (SpiralConv++) | "dsep" (MobRecon DSConv);
    num_kernels: K of DSC; roi: ROI layer on/off (length `roi_length`, dilation `roi_dilation`).
    input_size / crop_scale: the crop the model is trained on and served with (S px; crop side over
    the longest box side, default the centre of `CROP_SCALE_RANGE`), written to the checkpoint card
    by `inference_spec`. mirror_negatives: in training, that fraction of each batch's crops is also
    shown mirrored (a left hand) with a flat heatmap target (`loss.M3DHMRLoss.flat_heatmap`,
    weight ``loss_weights["mirror"]``; not the paper), so that the side read from a crop and its
    mirror is decisive.
    """

    def __init__(
        self,
        backbone: str = "stacked_resnet18",
        backbone_kwargs: dict[str, Any] | None = None,
        conv: str = "dsc",
        num_kernels: int = 8,
        attention_input: str = "spiral",
        roi: bool = True,
        roi_length: int = 12,
        roi_dilation: int = 2,
        channels: Sequence[int] = (32, 64, 128, 256),
        spiral_length: int = 9,
        hand_model: str = "openhand",
        tau_start: float = 30.0,
        tau_anneal_steps: int = 1000,
        loss_weights: dict[str, float] | None = None,
        refine_root: bool = True,
        input_size: int = INPUT_SIZE,
        crop_scale: float | None = None,
        mirror_negatives: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= mirror_negatives <= 1.0:
            raise ValueError(f"mirror_negatives is a fraction of each training batch, in [0, 1]; got {mirror_negatives}")
        self.mirror_negatives = float(mirror_negatives)
        if backbone not in LANDMARK_ENCODERS:
            raise ValueError(f"M3DHMR needs a landmark encoder as backbone; got {backbone!r}, "
                             f"choose one of {', '.join(LANDMARK_ENCODERS)}")
        if conv not in CONV_TYPES:
            raise ValueError(f"unknown decoder conv {conv!r}; choose one of {', '.join(CONV_TYPES)}")
        hand = load_hand_model_data(hand_model)
        self.hand_model_name, self.hand_model, self.topology = hand.name, hand_model, topology_sha256(hand)
        self.input_size = int(input_size)
        self.crop_scale = float(np.mean(CROP_SCALE_RANGE)) if crop_scale is None else float(crop_scale)
        self.tau_start, self.tau_anneal_steps, self.refine_root = tau_start, tau_anneal_steps, refine_root
        self.encoder = build_backbone(backbone, **(backbone_kwargs or {}))
        hierarchy = get_hierarchy(hand.v_template, hand.faces, factors=(2,) * len(channels))
        spirals = hierarchy_spirals(hierarchy, spiral_length)
        region_spirals = (get_spirals(hand.v_template, hand.faces, roi_length, roi_dilation, regions=hand.regions)
                          if roi else None)
        rest = np.asarray(hand.v_template, np.float64)
        template = (rest - np.asarray(hand.kp_regressor, np.float64)[0] @ rest) / VERTEX_SCALE_M  # wrist at 0
        self.decoder = MeshDecoder(hierarchy, spirals, self.encoder.latent_channels, channels, conv,
                                   num_kernels, attention_input, region_spirals, template=template)
        self.register_buffer("kp_regressor", torch.as_tensor(hand.kp_regressor, dtype=torch.float32),
                             persistent=False)
        self.register_buffer("train_step", torch.zeros((), dtype=torch.long))
        self.criterion = M3DHMRLoss(hand.faces, loss_weights)

    def inference_spec(self) -> dict[str, Any]:
        """What serving this model needs (written into the checkpoint card by the trainer; see
        `handrecon.models.adapter`): a right-hand crop of `input_size` px around the box, side =
        longest box side × `crop_scale`, left hands mirrored, ImageNet normalisation."""
        return {"input_size": self.input_size,
                "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
                "crop": {"rule": "box", "scale": self.crop_scale, "mirror_left": True},
                "hand_model": self.hand_model, "topology_sha256": self.topology}

    def inference_network(self) -> "M3DHMRNetwork":
        """The module the inference adapter runs and exports (`M3DHMRNetwork`), in eval mode."""
        return M3DHMRNetwork(self)

    # ---- temperature schedule

    def set_progress(self, step: int) -> None:
        """Set the number of training steps taken (drives the DSC temperature)."""
        self.train_step.fill_(int(step))

    def temperature(self) -> float:
        return temperature_at(int(self.train_step), self.tau_start, self.tau_anneal_steps)

    def _sync_temperature(self) -> None:
        tau = self.temperature()
        for m in self.decoder.modules():
            if isinstance(m, DynamicSpiralConv):
                m.tau = tau

    # ---- forward

    def forward_crops(self, image: torch.Tensor, heatmaps: bool = False, features: bool = False
                      ) -> dict[str, Any]:
        """(B, 3, S, S) normalised crops → dict uv, uv_stacks, verts, joints (see module docstring), and
        the encoder's heatmap logits (B, stacks, 21, S/4, S/4) when `heatmaps` or training with their loss;
        with `features` also the stacked encoder's intermediate maps ("features":
        `StackedResNet.forward_features`, for a model that reads them, as HandOS's side "crop")."""
        if not torch.jit.is_tracing():
            if image.ndim != 4 or image.shape[1] != 3 or not image.is_floating_point():
                raise ValueError(f"M3DHMR expects normalised float image crops (B, 3, S, S), got "
                                 f"{tuple(image.shape)} {image.dtype}")
            self._sync_temperature()
        maps = None
        if features:
            if not hasattr(self.encoder, "forward_features"):
                raise ValueError(f"the {type(self.encoder).__name__} encoder does not give its intermediate maps; "
                                 "a stacked ResNet encoder does")
            maps = self.encoder.forward_features(image)
            enc = encoder_output(maps["logits"], maps["uv"], maps["latent"])
        else:
            enc = self.encoder(image)
        verts, joints = self.mesh_from_landmarks(sample_features_at(enc["latent"], enc["uv"]))
        out = {"uv": enc["uv"], "uv_stacks": enc["uv_stacks"], "verts": verts, "joints": joints}
        if heatmaps or (self.training and self.criterion.weights["heatmap"] > 0):
            out["heatmaps"] = enc["heatmaps"]
        if maps is not None:
            out["features"] = maps
        return out

    def mesh_from_landmarks(self, landmark_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 21, C) the latent sampled at the landmarks → root-relative verts (B, V, 3) and joints
        (B, 21, 3) = kp_regressor @ verts, metres: the mesh decoder and the keypoint regressor."""
        verts = self.decoder.decode_landmarks(landmark_features) * VERTEX_SCALE_M
        return verts, torch.einsum("jv,bvc->bjc", self.kp_regressor, verts)

    def forward(self, batch: dict[str, Any] | torch.Tensor) -> dict[str, Any]:
        if isinstance(batch, torch.Tensor):
            return self.forward_crops(batch)
        image = batch["image"]
        two_views = self.training and "view2" in batch
        if self.training:
            self.train_step += 1
        if not two_views:
            out = self.forward_crops(image)
        else:
            both = self.forward_crops(torch.cat([image, batch["view2"]["image"]], 0))
            out = {k: v[: image.shape[0]] for k, v in both.items()}
            out["view2"] = {k: v[image.shape[0]:] for k, v in both.items()}
        if self.training and self.mirror_negatives > 0:  # the first crops mirrored: left hands (`loss.flat_heatmap`)
            k = max(1, round(self.mirror_negatives * image.shape[0]))
            out["mirror_heatmaps"] = self.encoder(image[:k].flip(-1))["heatmaps"]
        return out

    # ---- loss

    def loss(self, outputs: dict[str, Any], batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        views = [(outputs, batch)] + ([(outputs["view2"], batch["view2"])] if "view2" in outputs else [])
        pred = {k: torch.cat([o[k] for o, _ in views]) for k in ("verts", "uv", "uv_stacks")}
        gt_verts = torch.cat([b["verts_3d"] for _, b in views])
        gt_uv = torch.cat([pixels_to_normalized(b["joints_2d"], *crop_size(b)) for _, b in views])
        terms = self.criterion.supervised(pred["verts"], pred["uv"], gt_verts, gt_uv, pred["uv_stacks"])
        if "heatmaps" in outputs:
            terms["heatmap"] = self.criterion.heatmap(torch.cat([o["heatmaps"] for o, _ in views]), gt_uv)
        if "mirror_heatmaps" in outputs:
            terms["mirror"] = self.criterion.flat_heatmap(outputs["mirror_heatmaps"])
        if "view2" in outputs:
            affine = pixel_affine_to_normalized(batch["view2_affine"].float(), crop_size(batch),
                                                crop_size(batch["view2"]))
            terms.update(self.criterion.consistency(outputs["verts"], outputs["view2"]["verts"], outputs["uv"],
                                                    outputs["view2"]["uv"], batch["view2_R"], affine))
        return self.criterion.total(terms)

    # ---- camera space and validation

    def camera_space(self, outputs: dict[str, torch.Tensor], K: torch.Tensor, image_size: tuple[int, int],
                     refine: bool | None = None) -> dict[str, torch.Tensor]:
        """Place the root-relative prediction in the camera (of K, crop pixels; image_size (W, H)).

        Returns translation (B, 3) (added to the root-relative prediction), verts_cam (B, V, 3),
        joints_cam (B, 21, 3) (its wrist `joints_cam[:, 0]` is the camera-space root), metres.
        Solved in float64: closed form, then the robust refinement unless `refine` is False
        (default: the model's `refine_root`).
        """
        joints = outputs["joints"].detach().double()
        uv_px = normalized_to_pixels(outputs["uv"].detach().double(), *image_size)
        t = solve_root_translation(joints, uv_px, K.double(), self.refine_root if refine is None else refine)
        t = t.to(outputs["verts"].dtype)
        return {"translation": t, "verts_cam": outputs["verts"] + t[:, None],
                "joints_cam": outputs["joints"] + t[:, None]}

    @torch.no_grad()
    def validate(self, batches: Iterable[dict[str, Any]]) -> dict[str, float | None]:
        """The metrics of `handrecon.eval.scoring.score_hands` (the ones `handrecon evaluate`
        prints) over the validation crops: every crop holds one ground-truth hand, given to the
        model (found, with its side). The 2D keypoints are the ones the served model reports
        (`reported_keypoints`); camera-space metrics (MPJPE, root) need `root` in the batches and
        place the model's joints on those keypoints with `camera_space`; the 2D PCK normaliser is
        the batch's `box`."""
        acc: dict[str, list[np.ndarray]] = {k: [] for k in ("pj", "gj", "pv", "gv", "puv", "guv", "box")}
        has_root = True
        for batch in batches:
            if "box" not in batch:
                raise ValueError("validation batches need 'box' (the GT hand box in crop pixels, the 2D PCK "
                                 "normaliser); the m3dhmr_crops datasets provide it")
            out = self.forward_crops(batch["image"], heatmaps=True)
            out["uv"] = reported_keypoints(out["heatmaps"][:, -1])  # what the served model reports and places by
            size = crop_size(batch)
            pj, gj, pv, gv = out["joints"], batch["joints_3d"], out["verts"], batch["verts_3d"]
            has_root = has_root and "root" in batch
            if has_root:  # camera space: the model's placement vs the ground-truth wrist
                t = self.camera_space(out, batch["K"], size)["translation"][:, None]
                root = batch["root"][:, None].to(t.dtype)
                pj, pv, gj, gv = pj + t, pv + t, gj + root, gv + root
            for key, value in (("pj", pj), ("gj", gj), ("pv", pv), ("gv", gv), ("box", batch["box"]),
                               ("puv", normalized_to_pixels(out["uv"], *size)), ("guv", batch["joints_2d"])):
                acc[key].append(value.detach().double().cpu().numpy())
        if not acc["pj"]:
            raise ValueError("validation set yielded no batch")
        a = {k: np.concatenate(v) for k, v in acc.items()}
        n = len(a["pj"])
        sides = ["right"] * n  # the crops show right hands (left ones mirrored)
        metrics, _, _ = score_hands(HandSet(a["puv"], a["pj"], a["pv"], a["box"], sides),
                                    HandSet(a["guv"], a["gj"], a["gv"], a["box"], sides), np.ones(n, bool))
        if not has_root:  # root-relative only: no camera-space numbers
            metrics.update(mpjpe_mm=None, root_error_mm=None, root_depth_error_mm=None)
        return metrics


class M3DHMRNetwork(nn.Module):
    """image (B, 3, S, S) normalised → (uv_px (B, 21, 2) crop pixels, verts (B, V, 3), joints
    (B, 21, 3) root-relative metres, heatmap_peak (B,) the last stack's `heads.heatmap_peak`,
    landmark_features (B, 21, C) the latent sampled at the landmarks, keypoints_px (B, 21, 2) crop
    pixels: the reported keypoints, `first_stage`). Root recovery and the side reading stay outside
    (`M3DHMRAdapter.postprocess`).

    In two stages, which inference uses to decode only the crops it keeps (the winning side's
    reading): `first_stage` (the encoder: uv_px, heatmap_peak, landmark_features, keypoints_px) and
    `second_stage` (the mesh decoder, which sees the image only through landmark_features:
    verts, joints). `forward` is both, the graph ONNX export writes."""

    def __init__(self, model: M3DHMR) -> None:
        super().__init__()
        self.model = model
        self.eval()
        model._sync_temperature()

    def first_stage(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """uv_px: the trained landmarks (the plain soft-argmax), where landmark_features are sampled;
        keypoints_px: the last stack's heatmaps decoded near their peaks (`inference.KEYPOINT_WINDOW`)."""
        enc = self.model.encoder(image)
        logits = enc["heatmaps"][:, -1]
        W, H = image.shape[-1], image.shape[-2]
        return (normalized_to_pixels(enc["uv"], W, H), heatmap_peak(logits), sample_features_at(enc["latent"], enc["uv"]),
                normalized_to_pixels(reported_keypoints(logits), W, H))

    def second_stage(self, landmark_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.mesh_from_landmarks(landmark_features)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        uv_px, peak, landmark_features, keypoints_px = self.first_stage(image)
        verts, joints = self.second_stage(landmark_features)
        return uv_px, verts, joints, peak, landmark_features, keypoints_px


def reported_keypoints(logits: torch.Tensor) -> torch.Tensor:
    """(B, 21, h, w) the last stack's heatmap logits → (B, 21, 2) normalised [0, 1] 2D keypoints: the
    ones a served M3DHMR reports and root recovery fits, each map's soft-argmax within
    ±`inference.KEYPOINT_WINDOW` cells of its peak (the trained landmarks, ``uv``, are the plain one)."""
    return local_soft_argmax_2d(logits, KEYPOINT_WINDOW)


def crop_size(batch: dict[str, Any]) -> tuple[int, int]:
    """(W, H) of the batch's image crops."""
    return batch["image"].shape[-1], batch["image"].shape[-2]


def pixel_affine_to_normalized(affine: torch.Tensor, size1: tuple[int, int], size2: tuple[int, int]) -> torch.Tensor:
    """(B, 2, 3) crop-1 px → crop-2 px maps as maps between normalised coords (u_n = (u + 0.5) / W)."""
    s1 = affine.new_tensor(size1)
    s2 = affine.new_tensor(size2)
    lin = affine[:, :, :2] * s1[None, None, :] / s2[None, :, None]
    offset = (affine[:, :, 2] - 0.5 * affine[:, :, :2].sum(-1) + 0.5) / s2
    return torch.cat([lin, offset[..., None]], -1)
