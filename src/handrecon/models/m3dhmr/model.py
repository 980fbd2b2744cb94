"""M3DHMR (Lin et al.): stacked landmark encoder + Dynamic Spiral Convolution decoder + ROI layer.

Image crop → encoder → 2D landmarks L^p and latent F^e → `MeshDecoder` → root-relative vertices →
3D joints by the hand model's keypoint regressor → camera-space placement by root recovery from
the predicted 2D joints and K (`handrecon.geometry.root`, as CMR/MobRecon).

Batch keys (what `forward`, `loss` and `validate` read; produced by the data pipeline):

| key            | shape            | meaning                                                           |
|----------------|------------------|-------------------------------------------------------------------|
| `image`        | (B, 3, S, S)     | RGB crop, float32 ImageNet-normalised (uint8 0-255 is normalised here) |
| `joints_2d`    | (B, 21, 2)       | GT OP21 keypoints, crop pixels (pixel centres at integers)        |
| `verts_3d`     | (B, V, 3)        | GT vertices relative to the GT wrist (OP21 joint 0), metres, crop camera frame |
| `joints_3d`    | (B, 21, 3)       | GT OP21 joints, same frame and root (validation)                  |
| `K`            | (B, 3, 3)        | intrinsics of the crop camera (crop pixels) (validation, root recovery) |
| `root`         | (B, 3)           | optional: GT camera-space wrist, metres (validation: `root_mm`)   |
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

import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn as nn

from handrecon.geometry.procrustes import procrustes_align
from handrecon.geometry.root import solve_root_translation
from handrecon.losses.m3dhmr import VERTEX_SCALE_M, M3DHMRLoss
from handrecon.models.backbones import IMAGENET_MEAN, IMAGENET_STD, LANDMARK_ENCODERS, build_backbone
from handrecon.models.heads import normalized_to_pixels, pixels_to_normalized
from handrecon.models.m3dhmr.decoder import CONV_TYPES, MeshDecoder
from handrecon.models.m3dhmr.dsc import DynamicSpiralConv, temperature_at

PCK_2D_THRESHOLD = 0.1  # fraction of the crop side (validation metric "pck2d@0.1")


def load_hand_model_data(hand_model: str):
    """`HandModelData` for "openhand" or a path to an official MANO pickle."""
    if hand_model == "openhand":
        from handrecon.hand.openhand import load_openhand

        return load_openhand()
    if Path(hand_model).suffix == ".pkl":
        from handrecon.hand.mano import load_mano_data

        return load_mano_data(hand_model)
    raise ValueError(f"hand_model must be 'openhand' or a path to MANO_RIGHT.pkl, got {hand_model!r}")


class M3DHMR(nn.Module):
    """M3DHMR with the paper's ablation switches.

    backbone: one of `LANDMARK_ENCODERS` ("stacked_resnet18" / "stacked_resnet34" (Tab. 4) or
    "hourglass2" (§3.1)); conv: "dsc" | "spiral" (SpiralConv++) | "dsep" (MobRecon DSConv);
    num_kernels: K of DSC; roi: ROI layer on/off (length `roi_length`, dilation `roi_dilation`).
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
    ) -> None:
        super().__init__()
        from handrecon.mesh import get_hierarchy, get_spirals, hierarchy_spirals

        if backbone not in LANDMARK_ENCODERS:
            raise ValueError(f"M3DHMR needs a landmark encoder as backbone; got {backbone!r}, "
                             f"choose one of {', '.join(LANDMARK_ENCODERS)}")
        if conv not in CONV_TYPES:
            raise ValueError(f"unknown decoder conv {conv!r}; choose one of {', '.join(CONV_TYPES)}")
        hand = load_hand_model_data(hand_model)
        self.hand_model_name = hand.name
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
        self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("train_step", torch.zeros((), dtype=torch.long))
        self.criterion = M3DHMRLoss(hand.faces, loss_weights)

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

    def prepare_image(self, image: torch.Tensor) -> torch.Tensor:
        if image.dtype == torch.uint8:
            return (image.float() / 255.0 - self.image_mean) / self.image_std
        return image

    def predict(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 3, S, S) crop → dict uv, uv_stacks, verts, joints (see module docstring)."""
        if not torch.jit.is_tracing():
            if image.ndim != 4 or image.shape[1] != 3:
                raise ValueError(f"M3DHMR expects image crops (B, 3, S, S), got {tuple(image.shape)}")
            self._sync_temperature()
        enc = self.encoder(self.prepare_image(image))
        verts = self.decoder(enc["latent"], enc["uv"]) * VERTEX_SCALE_M
        joints = torch.einsum("jv,bvc->bjc", self.kp_regressor, verts)
        out = {"uv": enc["uv"], "uv_stacks": enc["uv_stacks"], "verts": verts, "joints": joints}
        if self.training and self.criterion.weights["heatmap"] > 0:
            out["heatmaps"] = enc["heatmaps"]
        return out

    def forward(self, batch: dict[str, Any] | torch.Tensor) -> dict[str, Any]:
        if isinstance(batch, torch.Tensor):
            return self.predict(batch)
        image = batch["image"]
        two_views = self.training and "view2" in batch
        if self.training:
            self.train_step += 1
        if not two_views:
            return self.predict(image)
        out = self.predict(torch.cat([image, batch["view2"]["image"]], 0))
        first = {k: v[: image.shape[0]] for k, v in out.items()}
        first["view2"] = {k: v[image.shape[0]:] for k, v in out.items()}
        return first

    # ---- loss

    def loss(self, outputs: dict[str, Any], batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        views = [(outputs, batch)] + ([(outputs["view2"], batch["view2"])] if "view2" in outputs else [])
        pred = {k: torch.cat([o[k] for o, _ in views]) for k in ("verts", "uv", "uv_stacks")}
        gt_verts = torch.cat([b["verts_3d"] for _, b in views])
        gt_uv = torch.cat([pixels_to_normalized(b["joints_2d"], *crop_size(b)) for _, b in views])
        terms = self.criterion.supervised(pred["verts"], pred["uv"], gt_verts, gt_uv, pred["uv_stacks"])
        if "heatmaps" in outputs:
            terms["heatmap"] = self.criterion.heatmap(torch.cat([o["heatmaps"] for o, _ in views]), gt_uv)
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
    def validate(self, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        """PA-MPJPE / PA-MPVPE (mm), F@5 / F@15 and AUC (0-50 mm) of the PA-aligned joints, 2D
        PCK@0.1 of the crop side, and the camera-space wrist error (mm, `root_mm`) when batches carry
        `root`; the model's joints are placed by `camera_space`."""
        from handrecon.eval.metrics import f_scores, keypoint_errors, pck_2d, summarize_errors

        acc: dict[str, list[np.ndarray]] = {k: [] for k in ("pj", "gj", "pv", "gv", "puv", "guv", "root")}
        size = None
        for batch in batches:
            out = self(batch["image"])
            size = crop_size(batch)
            for key, value in (("pj", out["joints"]), ("gj", batch["joints_3d"]), ("pv", out["verts"]),
                               ("gv", batch["verts_3d"]), ("puv", normalized_to_pixels(out["uv"], *size)),
                               ("guv", batch["joints_2d"])):
                acc[key].append(value.detach().double().cpu().numpy())
            if "root" in batch:
                wrist = self.camera_space(out, batch["K"], size)["joints_cam"][:, 0]
                acc["root"].append((wrist.double() - batch["root"].double()).norm(dim=-1).cpu().numpy())
        if size is None:
            raise ValueError("validation set yielded no batch")
        a = {k: np.concatenate(v) for k, v in acc.items() if v}
        joints_aligned = procrustes_align(a["pj"], a["gj"])
        verts_aligned = procrustes_align(a["pv"], a["gv"])
        joint_err = keypoint_errors(joints_aligned, a["gj"])
        f = f_scores(verts_aligned, a["gv"]).mean(0)
        crop_box = np.tile([0.0, 0.0, size[0], size[1]], (len(a["puv"]), 1))
        metrics = {
            "pa_mpjpe_mm": 1000.0 * float(joint_err.mean(0).mean()),
            "pa_mpvpe_mm": 1000.0 * float(keypoint_errors(verts_aligned, a["gv"]).mean(0).mean()),
            "f@5": float(f[0]),
            "f@15": float(f[1]),
            "auc": summarize_errors(joint_err).auc,
            "pck2d@0.1": pck_2d(a["puv"], a["guv"], crop_box, PCK_2D_THRESHOLD),
        }
        if "root" in a:
            metrics["root_mm"] = 1000.0 * float(a["root"].mean())
        return metrics


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


class M3DHMRInference(nn.Module):
    """Export wrapper: image (B, 3, S, S) float ImageNet-normalised → (uv_px (B, 21, 2) crop
    pixels, verts (B, V, 3), joints (B, 21, 3), root-relative metres). Root recovery stays outside
    (`M3DHMR.camera_space`). Use `export_onnx` to write the ONNX file."""

    def __init__(self, model: M3DHMR) -> None:
        super().__init__()
        self.model = model
        self.eval()
        model._sync_temperature()

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model.predict(image)
        return normalized_to_pixels(out["uv"], image.shape[-1], image.shape[-2]), out["verts"], out["joints"]


def export_onnx(model: M3DHMR, path: str | Path, image_size: int = 128, opset: int = 17) -> Path:
    """Write the image → (uv_px, verts, joints) graph of `model` to `path` (dynamic batch axis).

    Uses the TorchScript exporter (`dynamo=False`; the dynamo exporter needs onnxscript). The
    exporter traces in eval mode and afterwards restores the exported module's training flag
    recursively, so a wrapper left in training mode would switch `model`'s batch norms to batch
    statistics; the wrapper is built in eval mode and `model`'s own mode is restored here. The
    crop size is fixed in the graph (the landmark pixel scale is traced as a constant).
    """
    was_training = model.training
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            torch.onnx.export(M3DHMRInference(model), (torch.zeros(1, 3, image_size, image_size),), str(path),
                              dynamo=False, opset_version=opset, input_names=["image"],
                              output_names=["uv_px", "verts", "joints"],
                              dynamic_axes={name: {0: "batch"} for name in ("image", "uv_px", "verts", "joints")})
    finally:
        model.train(was_training)
    return path
