"""HandOS (paper §3, Fig. 2): a frozen DETR-like detector, side tuning and the interactive 2D-3D
decoder; every hand of an image in one forward, its side read from the mesh normals (§3.5).

Batch keys (the ``handos_scenes`` dataset, `handos.data`):

| key            | shape          | meaning                                                          |
|----------------|----------------|------------------------------------------------------------------|
| `pixel_values` | (B, 3, S, S)   | the letterboxed image (`letterbox`), ImageNet-normalised           |
| `K`            | (B, 3, 3)      | intrinsics in input pixels                                        |
| `hands`        | list of B dicts| per image: ``boxes`` (N, 4) input px, ``joints_2d`` (N, 21, 2) px, ``valid`` (N, 21), ``joints_3d`` (N, 21, 3) m, ``vertices`` (N, V, 3) m (camera frame; zeros without 3D), ``has_3d`` (N,), ``sides`` |

`forward` returns per decoder layer ``joints_2d`` (N, 21, 2) in [0, 1]; interactive layers also
``vertices`` (N, V, 3) and ``joints_3d`` (N, 21, 3) wrist-relative in `vertex_unit` m, ``camera``
(N, 3) the wrist's (u, v) input px and its depth for a focal of S px (``z_canonical``, m), and
``joints_proj`` (N, 21, 2) in [0, 1] (when K is known); plus ``image_index``, ``query_index``,
``scores``, ``boxes`` (N, 4 cxcywh) of the N decoded instances (training: SimOTA positives and
``gt_index``; inference: the top ``max_hands`` per image).

Camera translation: the t query's reference box carries the wrist's pixel and a depth prior from
the box size, z_canonical = HAND_SIZE_M / max(w, h) (w, h the box in [0, 1]) times exp(δ); for a
camera of focal f (input px), z = z_canonical · f / S, and t = backproject((u, v), z, K).
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from handrecon.eval.detection import detection_metrics
from handrecon.eval.scoring import HandSet, match_hands, score_hands
from handrecon.geometry.boxes import box_iou, box_targets, cxcywh_to_xyxy
from handrecon.geometry.camera import backproject, project
from handrecon.hand.keypoints import NUM_KEYPOINTS
from handrecon.hand.load import load_hand_model_data, topology_sha256
from handrecon.mesh import get_hierarchy
from handrecon.mesh.ops import face_adjacency
from handrecon.mesh.ops_torch import signed_volume_torch
from handrecon.models.handos.assign import simota_assign
from handrecon.models.handos.crop_features import CROP_ENCODER_NAME, CropEncoderFeatures
from handrecon.models.handos.detections import select_instances
from handrecon.models.handos.decoder import (
    SIDE_NETWORKS, InteractiveDecoder, PyramidSideTuning, ScratchSideNetwork, SideTuning, inverse_sigmoid, lifting_init,
    upsample_vertices,
)
from handrecon.models.handos.detector import Detector, DetectorError, load_detector
from handrecon.models.handos.hand_detector import HAND_DETECTOR_NAME, load_hand_detector
from handrecon.losses import focal_heatmap_loss
from handrecon.models.handos.loss import HandOSLoss
from handrecon.models.heads import cell_centres, gaussian_heatmaps, normalized_to_pixels, pixels_to_normalized
from handrecon.utils.image import IMAGENET_MEAN, IMAGENET_STD

HAND_SIZE_M = 0.2  # the depth prior's hand extent (wrist to middle fingertip is about 0.19 m)
QUERY_KINDS = ("inst", "uni")
HEATMAP_MODES = ("off", "aux", "init")
MESH_STARTS = ("template", "crop")  # where the vertex heads' outputs start: the rest template, or the crop model's mesh
# what the projection terms (J^proj, OKS-proj) train: "all" (the paper: the 3D joints and the camera) or
# "camera" (the camera head alone; the shape learns from the 3D terms only — a CPU deviation, for 3D-labelled data)
PROJECTION_GRADS = ("all", "camera")
# which hands inference decodes: "queries" (the paper's filtering of the detector queries) or "detections" (the frozen
# detector's served, box-verified detections as box prompts — a CPU deviation; `inference.HandOSAdapter`)
INSTANCE_SOURCES = ("queries", "detections")
# where served hands are placed in the camera: "head" (the paper's camera head) or "fit" (the translation that projects
# the decoder's own 3D joints onto its 2D joints, `geometry.root.solve_root_translation`, as the crop models place
# theirs — a CPU deviation; `inference.HandOSAdapter.postprocess`)
TRANSLATIONS = ("head", "fit")
HEATMAP_SIGMA = 1.0  # cells of the stride-4 side map


def build_frozen_detector(spec: str) -> Detector:
    """``handrecon-hand-detector`` (shipped), ``handrecon-hand-detector:DIR``, ``KIND:DIR`` or a
    folder saved by `save_detector`; always frozen."""
    name, sep, path = spec.partition(":")
    if name == HAND_DETECTOR_NAME:
        return load_hand_detector(path if sep else None)
    return load_detector(spec)


FROZEN_PREFIXES = ("detector.", "side_network.crop_model.", "side_network.encoder.")  # frozen networks: named in the card, not in checkpoints


def weights_fingerprint(module: nn.Module) -> str:
    """SHA-256 over a frozen network's parameters and buffers (names, shapes, bytes): a HandOS
    checkpoint records the detector (and crop encoder) it was trained on and refuses another."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class HandOS(nn.Module):
    """HandOS with the paper's switches.

    detector: the frozen detector (`build_frozen_detector`); its weights are not part of the
    HandOS checkpoint (the card names it and its fingerprint). d_model, heads, points, ffn_dim:
    decoder width, attention heads, sampling points per level and head, FFN width. num_layers /
    num_2d_layers: 6 / 2 in the paper; num_2d_layers = num_layers is the stage-1 2D model (no
    lifting, no 3D). lift_level: the mesh hierarchy level the vertex queries live on (0: all V
    vertices, the paper; 2: 195 of OpenHand's 778, the CPU deviation), up-sampled by the COMA
    matrices. policy: Fig. 8 attention policy. queries: "inst" (Q^inst = [Q_0, Q_L] projected) or
    "uni" (one learned query, Table 6). memory_layer: the encoder layer read as F^e (-1: the last,
    F^e_6; 4: F^e_4). side: "tuned" (side tuning on the detector's backbone maps), "pyramid" (the
    same with a top-down path, `decoder.PyramidSideTuning`; not the paper), "scratch" (a
    side network trained from scratch on the image), "crop" (per-hand levels from the frozen
    encoder of the crop model `crop_encoder`, `crop_features.CropEncoderFeatures`; a CPU
    deviation, not the paper) or "none"; side_width: the side tuning's hidden channels (None: d_model). max_positives: cap on SimOTA's
    dynamic k (None: the paper's). score_threshold / nms_iou / max_hands: inference filtering
    (paper T^S = 0.1, T^NMS = 0.9). joint_layout: start each joint's reference at its place in the
    rest hand scaled to the box instead of the box centre (an experiment, not the paper).
    heatmap (not the paper; a CPU experiment): "off"; "aux": a 1×1 head on the stride-4 side map
    predicts the 21 keypoint heatmaps of every hand in the image (`losses.focal_heatmap_loss`,
    weight ``loss_weights["heatmap"]``), a dense target that teaches the side features where
    keypoints are; "init": that, and each instance's joint references start at the heatmap's
    soft-argmax inside its box (`box_soft_argmax`) instead of eq. 7's box centre; with side
    "crop", "init" starts them at the crop encoder's own landmarks (no heatmap head, no "aux").
    mesh_start: "template" (the vertex heads' outputs start at the rest hand, the paper) or
    "crop" (at the crop model's mesh of that hand, side "crop" only; a CPU deviation).
    projection_grad: "all" (the paper) or "camera": the projection terms' gradient reaches the
    camera translation only, not the 3D shape (`PROJECTION_GRADS`; for 3D-labelled data: on
    2D-only data the shape would then learn nothing).
    ref_3d: the vertex and camera tokens' refined references between layers, "detached" (as the
    joints') or "attached" (`decoder.REF_3D_MODES`; an experiment: the paper does not say).
    instances: which hands inference decodes (`INSTANCE_SOURCES`): "queries" (the paper: the
    detector queries passing score_threshold and NMS at nms_iou) or "detections" (a CPU deviation:
    the frozen detector's served detections, `Detector.detect` with its box verifier's scores and
    boxes on the full-resolution image, each decoded as a box prompt; served by the adapter,
    `inference.HandOSAdapter`: training and `validate` always use the queries).
    crop_input_size: with side "crop", the square letterbox (px) the served model reads its hand
    crops from (`batch["side_pixel_values"]`; None: the detector's input, as in training). The crop
    model sees 128 px crops either way; a larger source makes small hands' crops sharper.
    translation: `TRANSLATIONS` ("head": the paper; "fit": solved from the 2D and 3D joints).
    refine_2d: the layers' joint heads move the 2D joints (the paper); False keeps them at their
    start (heatmap "init": the crop model's landmarks) and the layers refine the 3D only (a CPU
    deviation: on 2 cores the trained 2D heads pulled the joints towards the hand's centre, which
    placed hands too far; docs/handos.md).
    """

    def __init__(self, detector: str = HAND_DETECTOR_NAME, d_model: int = 256, heads: int = 8, points: int = 4,
                 ffn_dim: int = 1024, num_layers: int = 6, num_2d_layers: int = 2, lift_level: int = 0,
                 policy: str = "hierarchical", queries: str = "inst", memory_layer: int = -1, side: str = "tuned",
                 side_width: int | None = None, crop_encoder: str = CROP_ENCODER_NAME,
                 hand_model: str = "openhand", vertex_unit: float = 1.0, loss_weights: dict[str, float] | None = None,
                 max_positives: int | None = None, score_threshold: float = 0.1, nms_iou: float = 0.9,
                 max_hands: int = 10, joint_layout: bool = False, heatmap: str = "off", ref_3d: str = "detached",
                 mesh_start: str = "template", projection_grad: str = "all", instances: str = "queries",
                 crop_input_size: int | None = None, translation: str = "head",
                 refine_2d: bool = True) -> None:
        super().__init__()
        if heatmap not in HEATMAP_MODES:
            raise ValueError(f"heatmap must be one of {HEATMAP_MODES}, got {heatmap!r}")
        if heatmap != "off" and side == "none":
            raise ValueError("heatmap needs a side network (side 'tuned' or 'scratch'): the heatmaps are read from its "
                             "stride-4 map")
        if heatmap == "aux" and side == "crop":
            raise ValueError("heatmap 'aux' trains a heatmap head on the side maps; side 'crop' has its frozen crop "
                             "encoder's heatmaps instead: use heatmap 'init' (start at its landmarks) or 'off'")
        if queries not in QUERY_KINDS:
            raise ValueError(f"queries must be one of {QUERY_KINDS}, got {queries!r}")
        if side not in SIDE_NETWORKS:
            raise ValueError(f"side must be one of {SIDE_NETWORKS}, got {side!r}")
        self.detector_spec = detector
        self.detector = build_frozen_detector(detector)
        self.detector_sha256 = weights_fingerprint(self.detector.model)
        probe = self.detector(torch.zeros(1, 3, 64, 64))
        probe.memory_at(memory_layer)  # a DetectorError now if the detector has no such layer
        self.memory_layer, self.queries, self.side = memory_layer, queries, side
        self.input_size = int(self.detector.config.input_size)
        d_det, d_query = probe.memory_at(memory_layer).shape[-1], probe.queries.shape[-1]
        self.memory_proj = nn.Linear(d_det, d_model)
        if side in ("tuned", "pyramid"):
            tuning = SideTuning if side == "tuned" else PyramidSideTuning
            self.side_network: nn.Module | None = tuning(tuple(m.shape[1] for m in probe.backbone_maps), d_model,
                                                           side_width)
        elif side == "scratch":
            self.side_network = ScratchSideNetwork(d_model)
        elif side == "crop":
            self.side_network = CropEncoderFeatures(crop_encoder, d_model)
        else:
            self.side_network = None
        self.crop_encoder = crop_encoder if side == "crop" else None
        self.crop_encoder_sha256 = weights_fingerprint(self.side_network.crop_model) if side == "crop" else None
        if mesh_start not in MESH_STARTS:
            raise ValueError(f"mesh_start must be one of {MESH_STARTS}, got {mesh_start!r}")
        if mesh_start == "crop" and side != "crop":
            raise ValueError("mesh_start 'crop' starts the vertices at the crop model's mesh: it needs side 'crop'")
        self.mesh_start = mesh_start
        if projection_grad not in PROJECTION_GRADS:
            raise ValueError(f"projection_grad must be one of {PROJECTION_GRADS}, got {projection_grad!r}")
        self.projection_grad = projection_grad
        if instances not in INSTANCE_SOURCES:
            raise ValueError(f"instances must be one of {INSTANCE_SOURCES}, got {instances!r}")
        self.instances = instances
        if crop_input_size is not None and side != "crop":
            raise ValueError("crop_input_size sets where side 'crop' reads its hand crops from: it needs side 'crop'")
        self.crop_input_size = None if crop_input_size is None else int(crop_input_size)
        if translation not in TRANSLATIONS:
            raise ValueError(f"translation must be one of {TRANSLATIONS}, got {translation!r}")
        self.translation = translation
        if not refine_2d and heatmap != "init":
            raise ValueError("refine_2d False keeps the 2D joints at their start: it needs heatmap 'init' (a start "
                             "from landmarks), else they would stay at the box centre")
        side_levels = 0 if self.side_network is None else 3 if side == "crop" else 4
        levels = len(probe.spatial_shapes) + side_levels
        self.heatmap = heatmap
        self.heatmap_head: nn.Module | None = None  # dense keypoint heatmaps on the stride-4 side map (not side "crop")
        if heatmap != "off" and side != "crop":
            self.heatmap_head = nn.Conv2d(d_model, NUM_KEYPOINTS, 1)
            nn.init.constant_(self.heatmap_head.bias, -2.19)  # CenterNet's prior: p = 0.1 everywhere at first
        if queries == "inst":
            self.instance_proj = nn.Sequential(nn.Linear(2 * d_query, d_model), nn.LayerNorm(d_model))
        else:
            self.unified_query = nn.Parameter(torch.randn(1, d_model) * 0.02)

        hand = load_hand_model_data(hand_model)
        self.hand_model, self.topology = hand_model, topology_sha256(hand)
        self.vertex_unit = float(vertex_unit)
        if lift_level:  # vertex queries on a coarse level, up-sampled by the COMA matrices
            hierarchy = get_hierarchy(hand.v_template, hand.faces, factors=(2,) * lift_level)
            rows, up_index, up_weight = hierarchy.level_subset(lift_level), hierarchy.up_index, hierarchy.up_weight
        else:  # the paper: one query per vertex
            rows, up_index, up_weight = np.arange(len(hand.v_template)), [], []
        rest = np.asarray(hand.v_template, np.float64)
        rest = rest - np.asarray(hand.kp_regressor, np.float64)[0] @ rest  # wrist at 0
        kp = np.asarray(hand.kp_regressor, np.float64) @ rest  # rest keypoints, wrist at 0
        xy = kp[:, :2] - (kp[:, :2].max(0) + kp[:, :2].min(0)) / 2
        layout = 0.5 * xy / np.abs(xy).max() if joint_layout else None  # inside the box: within ±0.5
        self.decoder = InteractiveDecoder(
            d_model, lifting_init(hand.weights, hand.keypoint_joints, hand.parents, rows),
            (rest[rows] / self.vertex_unit).astype(np.float32), levels, num_layers, num_2d_layers, heads, points,
            ffn_dim, policy, joint_layout=layout, ref_3d=ref_3d, refine_2d=refine_2d)
        self.register_buffer("lift_rows", torch.as_tensor(rows, dtype=torch.long), persistent=False)
        self.up_levels = len(up_index)  # buffers, so that they follow the model to its device
        for k, (i, w) in enumerate(zip(up_index, up_weight)):
            self.register_buffer(f"up_index_{k}", torch.as_tensor(i, dtype=torch.long), persistent=False)
            self.register_buffer(f"up_weight_{k}", torch.as_tensor(w, dtype=torch.float32), persistent=False)
        self.register_buffer("kp_regressor", torch.as_tensor(hand.kp_regressor, dtype=torch.float32), persistent=False)
        self.register_buffer("faces", torch.as_tensor(np.asarray(hand.faces, np.int64)), persistent=False)
        self.criterion = HandOSLoss(self.faces, torch.as_tensor(face_adjacency(np.asarray(hand.faces))), loss_weights)
        self.max_positives = max_positives
        self.score_threshold, self.nms_iou, self.max_hands = float(score_threshold), float(nms_iou), int(max_hands)
        self._register_state_dict_hook(_drop_frozen_keys)
        self.register_load_state_dict_post_hook(_ignore_frozen_keys)

    # ---- the frozen detector stays out of training and of checkpoints
    def train(self, mode: bool = True) -> "HandOS":
        super().train(mode)
        self.detector.train(False)
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("detector.") and p.requires_grad]

    def inference_spec(self) -> dict[str, Any]:
        """A full-image model: the letterboxed input of the detector, its name and fingerprint,
        the inference filtering, the hand model."""
        return {"input_size": self.input_size, "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
                "letterbox": {"square": True, "pad": "black"}, "detector": self.detector_spec,
                "detector_sha256": self.detector_sha256, "score_threshold": self.score_threshold,
                "nms_iou": self.nms_iou, "max_hands": self.max_hands, "instances": self.instances,
                "translation": self.translation, "hand_model": self.hand_model,
                "topology_sha256": self.topology, "is_3d": self.decoder.num_2d_layers < self.decoder.num_layers,
                **({"crop_encoder": str(self.crop_encoder), "crop_encoder_sha256": self.crop_encoder_sha256,
                    "crop_input_size": self.crop_input_size} if self.side == "crop" else {})}

    # ---- features
    def memory(self, det, pixel_values: torch.Tensor | None, image_index: torch.Tensor, boxes: torch.Tensor
               ) -> tuple[dict[str, torch.Tensor], list[torch.Tensor], tuple[torch.Tensor, ...] | None]:
        """F^GD = [F^e, F^s] flattened over levels, with its level geometry and the image each of
        the N instances (boxes (N, 4) cxcywh) reads; the side maps F^s (strides 4-32, (B, d, h, w)
        each; empty without a side network); and with side "crop" the crop model's landmarks
        (N, 21, 2) in [0, 1], mesh (N, V, 3) m, wrist-relative, and reported keypoints (N, 21, 2)
        in [0, 1] (else None). With side "crop"
        the memory is per instance (its image's levels, then its crop's), reached through
        `level_offsets`."""
        values = [self.memory_proj(det.memory_at(self.memory_layer))]
        shapes = [det.spatial_shapes.to(torch.long)]
        ratios = [det.valid_ratios]
        maps: list[torch.Tensor] = []
        starts = offsets = None
        if self.side == "crop":
            levels, crop, landmarks, mesh, keypoints = self.side_network(pixel_values, image_index, boxes)
            starts = (landmarks, mesh, keypoints)
            values = [values[0][image_index]] + [m.flatten(2).transpose(1, 2) for m in levels]
            shapes.append(torch.tensor([m.shape[-2:] for m in levels], dtype=torch.long, device=shapes[0].device))
            # a crop level: loc_crop = (loc - x0) / side, i.e. loc · (1 / side) + (-x0 / side)
            scale = (1.0 / crop[:, None, 2:]).expand(-1, len(levels), -1)
            ratios = [det.valid_ratios[image_index], scale]
            offsets = torch.cat([torch.zeros_like(ratios[0]), -crop[:, None, :2] * scale], 1)
            image_index = torch.arange(len(image_index), device=image_index.device)
        elif self.side_network is not None:
            maps = self.side_network(pixel_values if self.side == "scratch" else det.backbone_maps)
            values += [m.flatten(2).transpose(1, 2) for m in maps]
            shapes.append(torch.tensor([m.shape[-2:] for m in maps], dtype=torch.long, device=shapes[0].device))
            ratios.append(det.valid_ratios[:, :1].expand(-1, len(maps), -1))
        shapes_t = torch.cat(shapes)
        areas = shapes_t.prod(1)
        start = torch.cat([areas.new_zeros(1), areas.cumsum(0)[:-1]])
        memory = {"value": torch.cat(values, 1), "spatial_shapes": shapes_t, "level_start_index": start,
                  "valid_ratios": torch.cat(ratios, 1), "image_index": image_index}
        if offsets is not None:
            memory["level_offsets"] = offsets
        return memory, maps, starts

    def instance_queries(self, det, image_index: torch.Tensor, query_index: torch.Tensor) -> torch.Tensor:
        if self.queries == "uni":
            return self.unified_query.expand(len(image_index), -1)
        q = torch.cat([det.queries[image_index, 0, query_index], det.queries[image_index, -1, query_index]], -1)
        return self.instance_proj(q)

    # ---- forward
    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        pixel_values = batch["pixel_values"]
        S = pixel_values.shape[-1]
        det = self.detector(pixel_values)
        prompts = batch.get("prompts")
        boxes = None
        if self.training:
            image_index, query_index, gt_index = self._assign(det, batch["hands"], S)
        elif prompts is not None:
            image_index, prompt_boxes = prompts
            query_index = self._prompted(det, image_index, prompt_boxes, S)
            boxes, gt_index = torch.as_tensor(box_targets(np.asarray(prompt_boxes, np.float32), (S, S)), device=pixel_values.device), None
        else:
            image_index, query_index = self._select(det, batch.get("max_hands"))
            gt_index = None
        image_index, query_index = image_index.to(pixel_values.device), query_index.to(pixel_values.device)
        if boxes is None:
            boxes = det.boxes[image_index, query_index].float()
        side_input = batch.get("side_pixel_values", pixel_values)  # side "crop": where the hand crops come from
        layers, heat = self.decode(det, side_input, image_index, query_index, boxes)
        K = batch.get("K")
        layers = [self.decode_layer(layer, S, None if K is None else K[image_index]) for layer in layers]
        out = {"layers": layers, "image_index": image_index, "query_index": query_index, "gt_index": gt_index,
               "scores": det.scores[image_index, query_index], "boxes": boxes, "input_size": S}
        if heat is not None and self.training:
            out["heatmap_logits"] = heat
        return out

    def decode(self, det, pixel_values: torch.Tensor | None, image_index: torch.Tensor, query_index: torch.Tensor,
               boxes: torch.Tensor | None = None) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor | None]:
        """The decoder on the instances (image_index, query_index) of the detector output `det`:
        its per-layer raw outputs, and the heatmap logits (B, 21, h, w) (None with heatmap "off").
        pixel_values: the image the side network reads (for side "crop", any square letterbox).
        boxes (N, 4) cxcywh in [0, 1]: the instances' reference boxes (default: the detector's)."""
        if boxes is None:
            boxes = det.boxes[image_index, query_index].float()
        if not len(image_index) and self.side == "crop":
            return [], None
        memory, side_maps, crop_starts = self.memory(det, pixel_values, image_index, boxes)
        heat = None if self.heatmap_head is None else self.heatmap_head(side_maps[0])
        if not len(image_index):
            return [], heat
        start = vertex_start = None
        if self.heatmap == "init":
            start = crop_starts[0] if self.side == "crop" else box_soft_argmax(heat[image_index], boxes)
        if self.mesh_start == "crop":
            vertex_start = crop_starts[1][:, self.lift_rows] / self.vertex_unit
        queries = self.instance_queries(det, image_index, query_index)
        layers = self.decoder(queries, boxes, memory, start, vertex_start)
        if crop_starts is not None and not self.decoder.refine_2d and not self.training:  # refine_2d False: heatmap "init"
            # the 2D joints stayed at the crop model's landmarks (where the layers read); reported are
            # its keypoints read near each heatmap's peak, as the crop model reports them
            layers[-1] = {**layers[-1], "joints_2d": crop_starts[2]}
        return layers, heat

    def _assign(self, det, hands: list[dict[str, torch.Tensor]], S: int):
        out = [[], [], []]
        boxes_all = torch.as_tensor(cxcywh_to_xyxy(det.boxes.detach().float().cpu().numpy()) * S)  # one copy
        scores_all = det.scores.detach().float().cpu()
        gt_all = torch.cat([h["boxes"] for h in hands]).detach().float().cpu().split([len(h["boxes"]) for h in hands])
        for b in range(len(hands)):
            q, g = simota_assign(scores_all[b], boxes_all[b], gt_all[b], self.max_positives)
            out[0].append(torch.full_like(q, b))
            out[1].append(q)
            out[2].append(g)
        return tuple(torch.cat(x) for x in out)

    def _select(self, det, max_hands: int | None = None):
        """Inference: per image the `max_hands` best queries that pass the score threshold and NMS
        (at least one per image while tracing, so that shapes stay fixed)."""
        k = max_hands or self.max_hands
        image_index, query_index = [], []
        scores = det.scores.float().cpu().numpy()  # one copy to the host, as in `_assign`
        boxes = cxcywh_to_xyxy(det.boxes.float().cpu().numpy())
        for b in range(len(scores)):
            keep = select_instances(scores[b], boxes[b], self.score_threshold, self.nms_iou, k)
            image_index.append(torch.full((len(keep),), b, dtype=torch.long))
            query_index.append(torch.as_tensor(keep, dtype=torch.long))
        return torch.cat(image_index), torch.cat(query_index)

    def _prompted(self, det, image_index: torch.Tensor, boxes: torch.Tensor, S: int) -> torch.Tensor:
        """Box prompts (the paper's evaluation with ground-truth boxes, Table X): for each prompt box
        (N, 4) x1, y1, x2, y2 input px of image `image_index` (N,), the detector query whose final
        box overlaps it most (ties: the higher score). Its queries are decoded with the prompt box as
        the reference box: the deformable attention reads inside the given box."""
        det_boxes = cxcywh_to_xyxy(det.boxes.float().cpu().numpy()) * S  # (B, Q, 4) input px
        scores = det.scores.float().cpu().numpy()
        query_index = []
        for b, box in zip(image_index.tolist(), np.asarray(boxes, np.float64).reshape(-1, 4)):
            iou = box_iou(box[None], det_boxes[b])[0]
            query_index.append(int(np.lexsort((-scores[b], -iou))[0]))
        return torch.as_tensor(query_index, dtype=torch.long)

    def decode_layer(self, layer: dict[str, torch.Tensor], S: int, K: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Per-layer raw outputs -> vertices (full mesh), 3D joints, camera, projected joints."""
        if "vertices" not in layer:
            return layer
        verts = upsample_vertices(layer["vertices"], self.up_indices, self.up_weights)
        joints = torch.einsum("jv,nvc->njc", self.kp_regressor, verts)
        ref = layer["camera_reference"]
        uv = (inverse_sigmoid(ref[:, :2]) + layer["camera"][:, :2]).sigmoid()
        z_canonical = HAND_SIZE_M / ref[:, 2:].amax(-1).clamp(min=1e-3) * layer["camera"][:, 2].clamp(-5, 5).exp()
        out = {"joints_2d": layer["joints_2d"], "vertices": verts, "joints_3d": joints,
               "camera": torch.cat([normalized_to_pixels(uv, S, S), z_canonical[:, None]], -1)}
        if K is not None:
            t = camera_translation(out["camera"], K, S)
            shape = joints.detach() if self.projection_grad == "camera" else joints
            cam = self.wrist_relative(verts, shape)[1] + t[:, None]
            out["joints_proj"] = pixels_to_normalized(project(cam, K.to(cam.dtype)), S, S)
        return out

    @property
    def up_indices(self) -> list[torch.Tensor]:
        return [getattr(self, f"up_index_{k}") for k in range(self.up_levels)]

    @property
    def up_weights(self) -> list[torch.Tensor]:
        return [getattr(self, f"up_weight_{k}") for k in range(self.up_levels)]

    def wrist_relative(self, vertices: torch.Tensor, joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoded vertices (N, V, 3) and joints (N, 21, 3) in `vertex_unit` -> both relative to
        the wrist (joint 0), metres: add the camera translation to place them."""
        root = joints[:, :1]
        return (vertices - root) * self.vertex_unit, (joints - root) * self.vertex_unit

    # ---- loss
    def loss(self, outputs: dict[str, Any], batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        layers = outputs["layers"]
        # a zero term keeps every parameter in the graph (DistributedDataParallel expects a gradient for
        # each): the decoder is left out by a batch without a hand, and the vertex/camera reference
        # heads only move detached references. One cat, not two kernels per parameter.
        total = torch.cat([p.reshape(-1) for p in self.trainable_parameters()]).sum() * 0.0
        terms: dict[str, torch.Tensor] = {}
        if "heatmap_logits" in outputs:
            heat = outputs["heatmap_logits"]
            target, positive = heatmap_targets(batch["hands"], heat.shape[-2:], outputs["input_size"])
            terms["heatmap"] = focal_heatmap_loss(heat, target, positive)
            total = total + self.criterion.weights["heatmap"] * terms["heatmap"]
        if layers:  # else no hand in the whole batch: nothing to learn from the decoder
            gt = self.targets(batch["hands"], outputs["image_index"], outputs["gt_index"], outputs["input_size"])
            decoder_total, decoder_terms = self.criterion(layers, gt)
            total, terms = total + decoder_total, {**decoder_terms, **{k: v.detach() for k, v in terms.items()}}
        return total, terms

    def targets(self, hands: list[dict[str, torch.Tensor]], image_index: torch.Tensor, gt_index: torch.Tensor,
                S: int) -> dict[str, torch.Tensor]:
        """The matched ground truth of every decoded instance, in the loss's units."""
        counts = torch.tensor([0] + [len(h["boxes"]) for h in hands]).cumsum(0)
        rows = (counts[image_index.cpu()] + gt_index.cpu()).to(hands[0]["boxes"].device)  # into the batch's hands

        def pick(key: str) -> torch.Tensor:
            return torch.cat([h[key] for h in hands if len(h[key])])[rows]  # hand-free images skipped: (0, 0, 3) vertices

        boxes = pick("boxes").float()
        joints_3d, verts = pick("joints_3d").float(), pick("vertices").float()
        root = joints_3d[:, :1]
        wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1.0) / S
        return {"joints_2d": pixels_to_normalized(pick("joints_2d").float(), S, S), "valid": pick("valid").bool(),
                "area": wh.prod(-1), "joints_3d": (joints_3d - root) / self.vertex_unit,
                "vertices": (verts - root) / self.vertex_unit, "has_3d": pick("has_3d").bool()}

    # ---- predictions in the input camera
    @torch.no_grad()
    def predict_input(self, pixel_values: torch.Tensor, K: torch.Tensor) -> list[dict[str, np.ndarray]]:
        """Every hand of each letterboxed image, in input pixels and the input camera K (B, 3, 3):
        boxes (N, 4) x1, y1, x2, y2, scores, joints_2d, joints_3d / vertices (camera frame, m), sides."""
        out = self({"pixel_values": pixel_values, "K": K})
        S = out["input_size"]
        B = pixel_values.shape[0]
        results = []
        for b in range(B):
            sel = (out["image_index"] == b).nonzero()[:, 0]
            boxes = cxcywh_to_xyxy(out["boxes"][sel].float().cpu().numpy()) * S
            r = {"boxes": boxes, "scores": out["scores"][sel].float().cpu().numpy()}
            if out["layers"]:
                last = out["layers"][-1]
                r["joints_2d"] = normalized_to_pixels(last["joints_2d"][sel], S, S).float().cpu().numpy()
                if "vertices" in last:
                    t = camera_translation(last["camera"][sel], K[b:b + 1].expand(len(sel), -1, -1), S)
                    verts, joints = self.wrist_relative(last["vertices"][sel], last["joints_3d"][sel])
                    r["vertices"] = (verts + t[:, None]).float().cpu().numpy()
                    r["joints_3d"] = (joints + t[:, None]).float().cpu().numpy()
                    r["sides"] = sides_from_normals(torch.as_tensor(r["vertices"]), self.faces.cpu())
            results.append(r)
        return results

    @torch.no_grad()
    def validate(self, batches: Iterable[dict[str, Any]]) -> dict[str, float | None]:
        """AP50 / recall / precision of the boxes (COCO), and for the matched hands (IoU ≥ 0.5)
        2D PCK@0.1 over all ground-truth hands (a missed hand scores 0), side accuracy and
        PA-MPJPE / PA-MPVPE (`eval.scoring.score_hands`), on whole scenes with real detections."""
        preds, gts = [], []
        for batch in batches:
            preds += self.predict_input(batch["pixel_values"], batch["K"])
            gts += [{k: v.cpu() if torch.is_tensor(v) else v for k, v in h.items()} for h in batch["hands"]]
        return scene_metrics(preds, gts)


def camera_translation(camera: torch.Tensor, K: torch.Tensor, S: int) -> torch.Tensor:
    """(N, 3) wrist (u, v) input px and z_canonical -> (N, 3) camera translation of the wrist, m,
    for intrinsics K (N, 3, 3) in input pixels (z = z_canonical · fx / S)."""
    z = camera[:, 2] * K[:, 0, 0].to(camera.dtype) / S
    return backproject(camera[:, None, :2], z[:, None], K.to(camera.dtype))[:, 0]


def sides_from_normals(vertices: torch.Tensor, faces: torch.Tensor) -> list[str]:
    """Paper §3.5: with the right-hand faces, a right hand's normals point outwards (positive
    signed volume of the capped mesh) and a left hand's inwards. vertices (N, V, 3) -> N sides."""
    if len(vertices) == 0:
        return []
    volume = signed_volume_torch(vertices.double(), faces)
    return ["right" if v > 0 else "left" for v in volume.tolist()]


def scene_metrics(preds: list[dict[str, np.ndarray]], gts: list[dict[str, torch.Tensor]]) -> dict[str, float | None]:
    """Detection (COCO AP, AP50, recall) and reconstruction metrics of `HandOS.validate` over
    images: preds as `predict_input` returns them, gts the batches' ``hands``."""
    det = detection_metrics([np.asarray(g["boxes"]) for g in gts], [p["boxes"] for p in preds],
                            [p["scores"] for p in preds])
    rows: dict[str, list] = {k: [] for k in ("p2", "p3", "pv", "g2", "g3", "gv", "box", "ps", "gs", "valid", "found")}
    for p, g in zip(preds, gts):
        gb = np.asarray(g["boxes"], np.float64).reshape(-1, 4)
        if not len(gb):
            continue
        gv = np.asarray(g["vertices"], np.float64)
        n = len(p["boxes"]) if "joints_2d" in p else 0
        m = match_hands(p["boxes"], p["scores"], gb) if n else np.full(len(gb), -1)
        found = m >= 0
        idx = np.where(found, m, 0)

        def take(key: str, shape: tuple[int, ...]) -> np.ndarray:
            return np.asarray(p[key], np.float64)[idx] if n and key in p else np.zeros((len(gb), *shape))

        rows["found"].append(found)
        rows["p2"].append(take("joints_2d", (21, 2)))
        rows["p3"].append(take("joints_3d", (21, 3)))
        rows["pv"].append(take("vertices", gv.shape[1:]))
        rows["ps"] += [p["sides"][i] for i in idx] if n and "sides" in p else ["right"] * len(gb)
        rows["g2"].append(np.asarray(g["joints_2d"], np.float64))
        rows["g3"].append(np.asarray(g["joints_3d"], np.float64))
        rows["gv"].append(gv)
        rows["box"].append(gb)
        rows["gs"] += list(g["sides"])
        rows["valid"].append(np.asarray(g["valid"], bool))
    metrics = {"ap": det["ap"], "ap50": det["ap50"], "recall50": det["recall50"]}
    if not rows["found"]:
        return metrics
    a = {k: (np.concatenate(v) if k not in ("ps", "gs") else v) for k, v in rows.items()}
    all_hands, _, _ = score_hands(HandSet(a["p2"], a["p3"], a["pv"], a["box"], a["ps"]),
                                  HandSet(a["g2"], a["g3"], a["gv"], a["box"], a["gs"], a["valid"]), a["found"])
    metrics.update({"pck2d@0.1": all_hands["pck2d@0.1"], "recall": all_hands["recall"],
                    "side_accuracy": all_hands["side_accuracy"]})
    f = a["found"]
    if f.any():
        matched, _, _ = score_hands(
            HandSet(a["p2"][f], a["p3"][f], a["pv"][f], a["box"][f], [s for s, k in zip(a["ps"], f) if k]),
            HandSet(a["g2"][f], a["g3"][f], a["gv"][f], a["box"][f], [s for s, k in zip(a["gs"], f) if k],
                    a["valid"][f]), np.ones(int(f.sum()), bool))
        metrics.update({"pa_mpjpe_mm": matched["pa_mpjpe_mm"], "pa_mpvpe_mm": matched["pa_mpvpe_mm"],
                        "pck2d@0.1_matched": matched["pck2d@0.1"]})
    return metrics


def _drop_frozen_keys(module, state_dict, prefix, local_metadata) -> None:
    for key in [k for k in state_dict if k.startswith(tuple(prefix + p for p in FROZEN_PREFIXES))]:
        del state_dict[key]


def _ignore_frozen_keys(module, incompatible) -> None:
    """Frozen networks' keys: missing from a checkpoint by design; present in one written before
    they were left out (the crop encoder's, 2026-12-05), ignored."""
    incompatible.missing_keys[:] = [k for k in incompatible.missing_keys if not k.startswith(FROZEN_PREFIXES)]
    incompatible.unexpected_keys[:] = [k for k in incompatible.unexpected_keys if not k.startswith(FROZEN_PREFIXES)]



def box_soft_argmax(logits: torch.Tensor, boxes: torch.Tensor, margin: float = 1.25) -> torch.Tensor:
    """(N, J, h, w) heatmap logits of each instance's image, (N, 4) cxcywh boxes in [0, 1] ->
    (N, J, 2) the softmax-weighted mean cell centre of each joint's map inside the box enlarged
    by `margin` (the whole map for a box that holds no cell centre), in [0, 1]."""
    N, J, h, w = logits.shape
    xs, ys = cell_centres(h, w, boxes)
    half = boxes[:, 2:] * margin / 2
    inside = (((ys[None] - boxes[:, 1:2]).abs() <= half[:, 1:])[:, :, None]
              & ((xs[None] - boxes[:, :1]).abs() <= half[:, :1])[:, None, :])  # (N, h, w)
    inside = inside | ~inside.flatten(1).any(1)[:, None, None]
    prob = logits.float().masked_fill(~inside[:, None], float("-inf")).flatten(2).softmax(-1).view(N, J, h, w)
    return torch.stack([(prob.sum(2) * xs).sum(-1), (prob.sum(3) * ys).sum(-1)], -1)


def heatmap_targets(hands: list[dict[str, torch.Tensor]], size: tuple[int, int], S: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image (B) the (B, 21, h, w) Gaussian targets of every hand's valid keypoints (the
    maximum over hands, `HEATMAP_SIGMA` cells) and the (B, 21, h, w) bool cells holding a keypoint."""
    h, w = int(size[0]), int(size[1])
    device = hands[0]["joints_2d"].device if hands else None
    target = torch.zeros(len(hands), NUM_KEYPOINTS, h, w, device=device)
    positive = torch.zeros(len(hands), NUM_KEYPOINTS, h, w, dtype=torch.bool, device=device)
    for b, hand in enumerate(hands):
        if not len(hand["joints_2d"]):
            continue
        uv = pixels_to_normalized(hand["joints_2d"].float(), S, S)  # (N, 21, 2)
        valid = hand["valid"].bool() & (uv >= 0).all(-1) & (uv < 1).all(-1)
        g = gaussian_heatmaps(uv, h, w, HEATMAP_SIGMA) * valid[..., None, None]
        target[b] = g.amax(0)
        n, j = valid.nonzero(as_tuple=True)
        cols = (uv[n, j, 0] * w).long().clamp(0, w - 1)
        rows = (uv[n, j, 1] * h).long().clamp(0, h - 1)
        positive[b, j, rows, cols] = True
        target[b, j, rows, cols] = 1.0
    return target, positive

__all__ = ["HandOS", "HAND_SIZE_M", "HEATMAP_MODES", "box_soft_argmax", "build_frozen_detector", "camera_translation",
           "weights_fingerprint", "heatmap_targets",
           "scene_metrics", "sides_from_normals", "DetectorError"]
