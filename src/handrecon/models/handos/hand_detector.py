"""handrecon's own hand detector: a small RT-DETR (transformers, built from a config: a basic
ResNet backbone, a hybrid encoder over strides 8/16/32, a deformable decoder with per-layer
boxes), trained on synthetic full-image scenes, then frozen under HandOS through
`detector.RTDetrDetector`.

Config: ``model: {name: hand_detector, kwargs: {width: 32, d_model: 128, ...}}``; data:
``scene_boxes`` (`handos.data`). The engine trains it with RT-DETR's own loss (varifocal + L1 +
GIoU, auxiliary losses per decoder layer, denoising queries) and validates it with COCO box AP.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from handrecon.eval.detection import detection_metrics
from handrecon.geometry.boxes import cxcywh_to_xyxy
from handrecon.models.handos.detector import DetectorConfig, RTDetrDetector, load_detector
from handrecon.models.handos.onnx_detector import ASSET_DIR, HAND_DETECTOR_NAME, hand_detector_for_boxes, packaged_folder

LOGGED_TERMS = ("loss_vfl", "loss_bbox", "loss_giou")


def rtdetr_config(width: int = 32, d_model: int = 128, num_queries: int = 60, decoder_layers: int = 3,
                  depths: tuple[int, ...] = (2, 2, 2, 2), num_denoising: int = 50, freeze_backbone_norms: bool = True):
    """The transformers RTDetrConfig of the hand detector: one class ("hand"); backbone widths
    width x (1, 2, 4, 8), basic blocks of `depths`. freeze_backbone_norms: RT-DETR's default,
    the backbone's batch norms frozen (made for ImageNet weights; from random weights they stay
    the identity); False trains them as ordinary batch norms."""
    import transformers as hf

    widths = [width * m for m in (1, 2, 4, 8)]
    backbone = hf.RTDetrResNetConfig(embedding_size=width, hidden_sizes=widths, depths=list(depths), layer_type="basic",
                                     out_features=["stage2", "stage3", "stage4"])
    return hf.RTDetrConfig(
        backbone_config=backbone, d_model=d_model, encoder_hidden_dim=d_model, encoder_in_channels=widths[1:],
        decoder_in_channels=[d_model] * 3, encoder_ffn_dim=2 * d_model, decoder_ffn_dim=4 * d_model,
        encoder_attention_heads=4, decoder_attention_heads=4, decoder_layers=decoder_layers, num_queries=num_queries,
        num_labels=1, id2label={0: "hand"}, label2id={"hand": 0}, num_denoising=num_denoising,
        freeze_backbone_batch_norms=freeze_backbone_norms,
    )


class HandDetector(nn.Module):
    """The trainable detector (the engine's model). batch: ``pixel_values`` (B, 3, H, W) as
    `Detector.prepare` makes them, ``labels`` (RT-DETR targets: per image ``class_labels`` (N,)
    and ``boxes`` (N, 4) cxcywh normalised), ``gt_boxes`` per image (N, 4) input px and
    ``gt_ignore`` (N,) the hands that are no target (`SceneBoxes`). freeze_backbone_norms: see
    `rtdetr_config` (the shipped detector was trained with them frozen). zero_init_residual: every
    basic block's last batch norm starts at scale 0, so each block starts as the identity (Goyal et
    al. 2017); blocks then copied from a trained detector (``train.init_partial``) keep their
    weights, and the added ones leave its output unchanged: a deeper detector from a shallower
    one's weights."""

    def __init__(self, width: int = 32, d_model: int = 128, num_queries: int = 60, decoder_layers: int = 3,
                 depths: tuple[int, ...] = (2, 2, 2, 2), num_denoising: int = 50, input_size: int = 384,
                 freeze_backbone_norms: bool = True, zero_init_residual: bool = False) -> None:
        super().__init__()
        import transformers as hf

        self.detr = hf.RTDetrForObjectDetection(rtdetr_config(width, d_model, num_queries, decoder_layers,
                                                              tuple(depths), num_denoising, freeze_backbone_norms))
        self.input_size = int(input_size)
        if zero_init_residual:
            for stage in self.detr.model.backbone.model.encoder.stages:
                for block in stage.layers:
                    nn.init.zeros_(block.layer[-1].normalization.weight)

    def forward(self, batch: dict[str, Any]):
        labels = batch["labels"] if self.training else None
        return self.detr(pixel_values=batch["pixel_values"], labels=labels)

    def loss(self, outputs, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = {k: outputs.loss_dict[k].detach() for k in LOGGED_TERMS if k in outputs.loss_dict}
        return outputs.loss, terms

    @torch.no_grad()
    def validate(self, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        gts, ignores, boxes, scores = [], [], [], []
        for batch in batches:
            out = self.detr(pixel_values=batch["pixel_values"])
            H, W = batch["pixel_values"].shape[-2:]
            for i, gt in enumerate(batch["gt_boxes"]):
                gts.append(gt.cpu().numpy())
                ignores.append(batch["gt_ignore"][i].cpu().numpy() if "gt_ignore" in batch else np.zeros(len(gt), bool))
                boxes.append(cxcywh_to_xyxy(out.pred_boxes[i].float().cpu().numpy()) * [W, H, W, H])
                scores.append(out.logits[i, :, 0].float().sigmoid().cpu().numpy())
        return detection_metrics(gts, boxes, scores, gt_ignore=ignores)

    def inference_spec(self) -> dict[str, Any]:
        return {"kind": "rt-detr", "input_size": self.input_size, "square": True, "normalization": "imagenet"}

    def frozen(self) -> RTDetrDetector:
        """This detector frozen behind the `Detector` interface (shares the weights)."""
        return RTDetrDetector(self.detr, DetectorConfig(input_size=self.input_size, square=True))


def load_hand_detector(path: str | None = None) -> RTDetrDetector:
    """The shipped hand detector (`path` None), or one saved by `tools/package_detector.py` at
    `path`, as the frozen torch `Detector` HandOS reads."""
    return load_detector(str(packaged_folder(path)))


__all__ = ["ASSET_DIR", "HAND_DETECTOR_NAME", "HandDetector", "hand_detector_for_boxes", "load_hand_detector", "rtdetr_config"]
