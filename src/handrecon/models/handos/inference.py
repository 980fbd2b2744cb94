"""HandOS behind `handrecon.load`: a full-image model that finds its own hands.

1. `preprocess`: each image letterboxed to the detector's square input (`detector.letterbox`);
   K is carried to input pixels (`geometry.camera.scale_intrinsics`).
2. `network` (`HandOSNetwork`): the frozen detector, the inference filtering (score threshold,
   NMS, at most ``max_hands``; spec values) and the decoder on the kept instances; outputs padded
   to the batch's largest hand count (``scores`` -1 on padding): ``scores`` (B, K), ``boxes`` (B,
   K, 4) input px, ``joints_2d`` (B, K, 21, 2) input px, ``vertices`` (B, K, V, 3) and ``joints_3d``
   (B, K, 21, 3) wrist-relative m, ``camera`` (B, K, 3): the wrist pixel and z for a focal of S px.
3. `postprocess`: the camera translation from each image's own K, the hands back in image pixels
   and the image camera, and each hand's side from its mesh normals (paper §3.5).

ONNX: `export_decoder` writes the decoder (side tuning, memory projection, expansion, lifting,
the 6 layers, heads, up-sampling) as an ONNX graph for a fixed number of hands, which
onnxruntime runs to within 1e-5 of torch. The frozen detector exports on its own
(benchmarks/bench_detector.py); the filtering between them (threshold, NMS: a data-dependent
number of hands) stays in numpy, so there is no single end-to-end graph.

Boxes are prompts (the paper's evaluation with ground-truth boxes, its Table X; `handrecon
evaluate --gt-boxes`): each box takes the detector query that overlaps it most, and is decoded
with the box itself as the reference box, one hand per box in the given order, with no threshold
or NMS. Prompts need the torch backend.

A model with ``instances: detections`` (a CPU deviation, `model.INSTANCE_SOURCES`) decodes the
frozen detector's served detections instead of its filtered queries: `preprocess` runs
`Detector.detect` on the full-resolution images (its box verifier's scores and moved boxes, at the
card's score threshold, NMS and hand count) and gives them as box prompts with their scores.
With ``crop_input_size`` (side "crop") `preprocess` also letterboxes each image to that size, the
image the crop model's hand crops are read from (``crop_image``). With ``translation: fit`` the
camera translation is the one that projects each hand's 3D joints onto its 2D joints
(`geometry.root.solve_root_translation`, in the image camera) instead of the camera head's.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from handrecon.geometry.camera import scale_intrinsics, scale_points
from handrecon.geometry.root import solve_root_translation
from handrecon.hand.load import load_hand_model_data
from handrecon.models.adapter import Hands, InferenceAdapter, Prepared
from handrecon.models.handos.attention import instance_slots
from handrecon.models.handos.detections import Detections, letterbox
from handrecon.models.handos.detector import DetectorOutput
from handrecon.models.heads import normalized_to_pixels
from handrecon.models.handos.model import HandOS, camera_translation, sides_from_normals
from handrecon.registry import register_adapter
from handrecon.utils.image import normalize_images


class HandOSNetwork(nn.Module):
    """image (B, 3, S, S) normalised → the padded per-hand outputs of the module docstring."""

    def __init__(self, model: HandOS) -> None:
        super().__init__()
        self.model = model
        self.eval()

    def forward(self, image: torch.Tensor, prompt_image: torch.Tensor | None = None,
                prompt_boxes: torch.Tensor | None = None, prompt_scores: torch.Tensor | None = None,
                crop_image: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """prompt_image (N,) and prompt_boxes (N, 4) x1, y1, x2, y2 input px: box prompts (one hand
        each, in this order) instead of the detector's filtered hands; prompt_scores (N,): their
        scores (default: those of the queries they take). crop_image (B, 3, S', S'): the same
        letterbox at another size, which side "crop" reads its hand crops from."""
        m = self.model
        batch = {"pixel_values": image}
        if crop_image is not None:
            batch["side_pixel_values"] = crop_image
        if prompt_boxes is not None:
            batch["prompts"] = (prompt_image.long(), prompt_boxes)
        out = m(batch)
        B, S = image.shape[0], image.shape[-1]
        slot, K = instance_slots(out["image_index"], B)
        K = max(K, 1)
        idx = (out["image_index"], slot)
        V = m.kp_regressor.shape[1]
        scores = image.new_full((B, K), -1.0)
        boxes, j2 = image.new_zeros(B, K, 4), image.new_zeros(B, K, 21, 2)
        verts, j3, cam = image.new_zeros(B, K, V, 3), image.new_zeros(B, K, 21, 3), image.new_zeros(B, K, 3)
        if out["layers"]:
            last = out["layers"][-1]
            scores[idx] = (out["scores"] if prompt_scores is None else prompt_scores).float()
            b = out["boxes"]
            boxes[idx] = torch.cat([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], -1) * S
            j2[idx] = normalized_to_pixels(last["joints_2d"], S, S)
            if "vertices" in last:
                verts[idx], j3[idx] = m.wrist_relative(last["vertices"], last["joints_3d"])
                cam[idx] = last["camera"]
        return scores, boxes, j2, verts, j3, cam


class DecoderGraph(nn.Module):
    """The decoder for the hands of one image as a traceable module: (Q_0 (N, d_q), Q_L (N, d_q),
    boxes (N, 4) cxcywh, memory (1, ΣHW, d_det), backbone maps at strides 4-32) -> joints_2d
    (N, 21, 2) in [0, 1], vertices (N, V, 3) wrist-relative in vertex units, camera (N, 3)."""

    def __init__(self, model: HandOS, spatial_shapes: torch.Tensor, level_start_index: torch.Tensor,
                 valid_ratios: torch.Tensor, input_size: int) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("spatial_shapes", spatial_shapes, persistent=False)
        self.register_buffer("level_start_index", level_start_index, persistent=False)
        self.register_buffer("valid_ratios", valid_ratios, persistent=False)
        self.input_size = input_size

    def forward(self, q0: torch.Tensor, q_last: torch.Tensor, boxes: torch.Tensor, memory: torch.Tensor,
                *backbone_maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        m, n = self.model, q0.shape[0]
        det = DetectorOutput(boxes=boxes[None], scores=boxes.new_ones(1, n), queries=torch.stack([q0, q_last])[None],
                             reference_boxes=boxes[None, None], memory={m.memory_layer: memory},
                             spatial_shapes=self.spatial_shapes, level_start_index=self.level_start_index,
                             valid_ratios=self.valid_ratios, backbone_maps=tuple(backbone_maps),
                             input_size=(self.input_size, self.input_size))
        index = torch.arange(n)
        image_index = torch.zeros(n, dtype=torch.long)
        layers, _ = m.decode(det, None, image_index, index)
        out = m.decode_layer(layers[-1], self.input_size, None)
        return out["joints_2d"], out["vertices"], out["camera"]


def export_decoder(model: HandOS, image: np.ndarray, path: str, num_hands: int = 4) -> tuple[DecoderGraph, tuple]:
    """Write the decoder of `model` for `num_hands` hands of an image like `image` (RGB uint8) to
    `path` (ONNX, opset 17); returns the traced module and its example inputs (the detector's top
    `num_hands` queries on `image`)."""
    if model.side in ("scratch", "crop"):
        raise ValueError(f"exporting the decoder of a side {model.side!r} model is not supported: its side network "
                         "reads the image, which the exported decoder does not take; use the torch model")
    model.eval()
    canvas, _ = letterbox(image, model.input_size)
    with torch.no_grad():
        det = model.detector(torch.from_numpy(normalize_images(canvas[None])))
    top = det.scores[0].argsort(descending=True)[:num_hands]
    args = (det.queries[0, 0, top], det.queries[0, -1, top], det.boxes[0, top].float(), det.memory_at(model.memory_layer),
            *det.backbone_maps)
    graph = DecoderGraph(model, det.spatial_shapes, det.level_start_index, det.valid_ratios, model.input_size).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, args, path, dynamo=False, opset_version=17,
                          input_names=["q0", "q_last", "boxes", "memory"] + [f"map{s}" for s in (4, 8, 16, 32)],
                          output_names=["joints_2d", "vertices", "camera"])
    return graph, args


@register_adapter("handos")
class HandOSAdapter(InferenceAdapter):
    """Whole images → HandOS → every hand in the image camera (module docstring)."""

    detects_hands = True
    output_names = ("scores", "boxes", "joints_2d", "vertices", "joints_3d", "camera")

    def __init__(self, spec: dict) -> None:
        super().__init__(spec)
        if not spec.get("is_3d", True):
            raise ValueError("this HandOS checkpoint is a stage-1 2D model (no mesh); serve a full HandOS model")
        self.faces = torch.as_tensor(np.asarray(load_hand_model_data(spec["hand_model"]).faces, np.int64))
        self.instances = spec.get("instances", "queries")
        self.translation = spec.get("translation", "head")
        self.detector: Any = None  # the frozen detector whose served detections are the instances (`network`)

    def network(self, model: torch.nn.Module) -> torch.nn.Module:
        """The network, once the detector found under the card's name is the one it was trained on."""
        want = self.spec.get("detector_sha256")
        if want != model.detector_sha256:
            raise ValueError(f"this HandOS model was trained on the detector {self.spec.get('detector')!r} with weights "
                             f"{str(want)[:12]}…, but that detector now has weights {model.detector_sha256[:12]}…; serve "
                             "it with the detector it was trained on (or retrain HandOS on this one)")
        crop_want = self.spec.get("crop_encoder_sha256")
        if crop_want is not None and crop_want != model.crop_encoder_sha256:
            raise ValueError(f"this HandOS model was trained on the crop encoder of {self.spec.get('crop_encoder')!r} with "
                             f"weights {crop_want[:12]}…, but that model now has weights {model.crop_encoder_sha256[:12]}…; "
                             "serve it with the crop model it was trained on (or retrain HandOS on this one)")
        if self.instances == "detections":
            self.detector = model.detector
        return HandOSNetwork(model)

    def detections(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Each image's served detections (boxes in image px, verified scores), the instances of a
        model with ``instances: detections``."""
        if self.detector is None:
            raise ValueError("this HandOS model decodes its detector's served detections (instances: detections), "
                             "which needs the torch backend; load it without backend='onnx'")
        spec = self.spec
        return self.detector.detect(list(images), float(spec["score_threshold"]), float(spec["nms_iou"]),
                                    int(spec["max_hands"]))

    def preprocess(self, images: Sequence[np.ndarray], Ks: Sequence[np.ndarray],
                   boxes: Sequence[np.ndarray | None], sides: Sequence[list[str | None] | None],
                   side_priors: Sequence[np.ndarray | None] | None = None) -> Prepared:
        """Letterboxed images (and box prompts); sides and side priors are not read: HandOS reads
        each hand's side from its mesh normals."""
        prompted = [b is not None for b in boxes]
        if any(prompted) and not all(prompted):
            raise ValueError("give box prompts for every image of a batch or for none (an empty list: no hand)")
        scores = None
        if not any(prompted) and self.instances == "detections":
            found = self.detections(images)
            boxes, scores = [d.boxes for d in found], [d.scores for d in found]
            prompted = [True] * len(images)
        views, canvases = [], []
        for image in images:
            canvas, s = letterbox(image, self.input_size)
            canvases.append(canvas)
            views.append(s)
        inputs = normalize_images(np.stack(canvases), self.mean, self.std)
        extra = {}
        if any(prompted):  # letterboxing scales by s and pads at the bottom and right: a box scales by s
            extra = {"prompt_image": np.concatenate([np.full(len(b), i, np.int64) for i, b in enumerate(boxes)]),
                     "prompt_boxes": np.concatenate([np.asarray(b, np.float32).reshape(-1, 4) * s
                                                     for b, s in zip(boxes, views)])}
            if scores is not None:
                extra["prompt_scores"] = np.concatenate(scores).astype(np.float32)
        crop_size = self.spec.get("crop_input_size")
        if crop_size:  # letterboxes of any size share the input's [0, 1] frame: the boxes carry over
            extra["crop_image"] = normalize_images(np.stack([letterbox(im, int(crop_size))[0] for im in images]),
                                                   self.mean, self.std)
        return Prepared(inputs, views, list(Ks), [im.shape[:2] for im in images], extra)

    def postprocess(self, prepared: Prepared, outputs: dict[str, np.ndarray], refine_root: bool = True) -> list[Hands]:
        S = self.input_size
        results = []
        for i, (s, K) in enumerate(zip(prepared.views, prepared.Ks)):
            keep = outputs["scores"][i] >= 0
            n = int(keep.sum())
            joints_rel = outputs["joints_3d"][i][keep].astype(np.float64)
            uv = scale_points(outputs["joints_2d"][i][keep], 1 / s)
            if not n:
                t = np.zeros((0, 3))
            elif self.translation == "fit":
                t = solve_root_translation(joints_rel, uv.astype(np.float64), np.asarray(K, np.float64), refine_root)
            else:
                K_in = torch.as_tensor(scale_intrinsics(K, s)).expand(n, 3, 3)
                t = camera_translation(torch.as_tensor(outputs["camera"][i][keep], dtype=torch.float64), K_in, S).numpy()
            verts = outputs["vertices"][i][keep].astype(np.float64) + t[:, None]
            joints = joints_rel + t[:, None]
            boxes = outputs["boxes"][i][keep].astype(np.float64) / s  # continuous coordinates: a plain scale
            results.append(Hands(boxes=boxes, scores=outputs["scores"][i][keep].astype(np.float64),
                                 sides=sides_from_normals(torch.as_tensor(verts), self.faces),
                                 keypoints_2d=uv,
                                 keypoints_3d=joints, vertices=verts, cam_t=joints[:, 0] if n else np.zeros((0, 3))))
        return results


__all__ = ["DecoderGraph", "HandOSAdapter", "HandOSNetwork", "export_decoder"]
