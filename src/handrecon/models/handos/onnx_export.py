"""Exports for finding hands on onnxruntime (`onnx_detector`): handrecon's square RT-DETR
(``pixel_values`` (B, 3, S, S) normalised -> ``scores`` (B, Q), ``boxes`` (B, Q, 4) cxcywh
normalised), its side head and its box verifier (each ``crops`` (N, 3, S, S) normalised ->
``logits`` (N,), and ``deltas`` (N, 4) from a verifier that refines boxes). torch and
onnx are needed to export; `onnx_detector` imports this module only on a cache miss."""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from handrecon.models.handos.detector import Detector, DetectorError, RTDetrDetector
from handrecon.models.handos.detections import (
    DELTAS_OUTPUT_NAME, INPUT_NAME, METADATA_FORMAT, METADATA_KEY, OPSET, OUTPUT_NAMES, SIDE_INPUT_NAME, SIDE_OUTPUT_NAME,
)
from handrecon.models.handos.box_verifier import BoxVerifier, BoxVerifierEnsemble, BoxVerifierHead
from handrecon.models.handos.side_head import SideHead
from handrecon.utils.io import atomic_write_bytes


class _ScoresAndBoxes(nn.Module):
    """The exported graph: pixel_values -> (scores (B, Q), boxes (B, Q, 4))."""

    def __init__(self, detector: Detector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.detector.model(pixel_values=pixel_values)
        return self.detector._scores(out), out.pred_boxes


def export_detector_onnx(detector: Detector, path: str | Path, opset: int = OPSET) -> Path:
    """Write `detector` (an RT-DETR with square inputs) to `path` as ONNX with its `DetectorConfig`
    in the metadata (key ``handrecon-detector``); atomic. DetectorError for other detectors."""
    import onnx  # optional dependency (extra "onnx"): imported only when exporting

    if not isinstance(detector, RTDetrDetector) or not detector.config.square:
        raise DetectorError(f"only square-input RT-DETR detectors (handrecon's own) export to ONNX, not a "
                            f"{detector.kind} with square={detector.config.square}")
    S = detector.config.square_side
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(_ScoresAndBoxes(detector).eval(), (torch.zeros(1, 3, S, S),), str(Path(d) / "d.onnx"),
                          dynamo=False, opset_version=opset, input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                          dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)})
        proto = onnx.load(str(Path(d) / "d.onnx"))
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps({"format": METADATA_FORMAT, "config": asdict(detector.config)})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, proto.SerializeToString())
    return Path(path)


class _CropOutputs(nn.Module):
    """The exported graph of a crop network: crops -> logits (side head, box verifier), and deltas
    (a box verifier that refines)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, crops: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.model, (BoxVerifier, BoxVerifierEnsemble)):
            logits, deltas = self.model.outputs(crops)
            return logits if deltas is None else (logits, deltas)
        return self.model.logits(crops)


def _export_crop_classifier(model: nn.Module, size: int, path: str | Path, metadata: dict, opset: int,
                            outputs: tuple[str, ...] = (SIDE_OUTPUT_NAME,)) -> Path:
    """Write `model` (`_CropOutputs`) to `path` as ONNX (crops (N, 3, size, size) -> `outputs`:
    logits (N,) [, deltas (N, 4)], dynamic N) with `metadata` under the key ``handrecon-detector``; atomic."""
    import onnx  # optional dependency (extra "onnx"): imported only when exporting

    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(_CropOutputs(model).eval(), (torch.zeros(1, 3, size, size),), str(Path(d) / "c.onnx"),
                          dynamo=False, opset_version=opset, input_names=[SIDE_INPUT_NAME], output_names=list(outputs),
                          dynamic_axes={name: {0: "crops"} for name in (SIDE_INPUT_NAME, *outputs)})
        proto = onnx.load(str(Path(d) / "c.onnx"))
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps({"format": METADATA_FORMAT, **metadata})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, proto.SerializeToString())
    return Path(path)


def export_side_head_onnx(head: SideHead, path: str | Path, opset: int = OPSET) -> Path:
    """Write a side head's classifier to `path` as ONNX (crops -> logits, dynamic batch) with its
    crop size and box scale in the metadata (key ``handrecon-detector``); atomic."""
    S = head.model.input_size
    return _export_crop_classifier(head.model, S, path, {"side_head": {
        "input_size": S, "box_scale": head.model.box_scale, "source": head.source}}, opset)


def export_box_verifier_onnx(verifier: BoxVerifierHead, path: str | Path, opset: int = OPSET) -> Path:
    """Write a box verifier's network to `path` as ONNX (crops -> logits [and deltas], dynamic batch)
    with its crop size, context and serving settings in the metadata (key ``handrecon-detector``); atomic."""
    S = verifier.model.input_size
    outputs = (SIDE_OUTPUT_NAME, DELTAS_OUTPUT_NAME) if verifier.model.refine else (SIDE_OUTPUT_NAME,)
    return _export_crop_classifier(verifier.model, S, path, {"box_verifier": {
        "input_size": S, "context": verifier.model.context, "settings": asdict(verifier.settings),
        "source": verifier.source}}, opset, outputs)
