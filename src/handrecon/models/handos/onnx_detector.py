"""The hand detector on onnxruntime, for finding hands (`handrecon detect`, the two-stage pipeline).

HandOS reads the frozen detector's queries, memory and backbone maps, so it keeps the torch
`Detector`. Finding boxes needs only scores and boxes, and importing transformers to build the
detector costs about 6 s before the first image on 2 cores. An RT-DETR with square inputs
(handrecon's own) is therefore exported once to ONNX (`export_detector_onnx`: ``pixel_values``
(B, 3, S, S) normalised -> ``scores`` (B, Q), ``boxes`` (B, Q, 4) cxcywh normalised) and served by
`OnnxDetector`, which shares the torch detector's preparation (`detector.prepare_arrays`) and
selection (`detector.select_detections`), so both return the same detections.

`detector_for_boxes(folder)` keeps the export in ``$HANDRECON_CACHE/detectors/`` under the
SHA-256 of the folder's weights and detector.json: a changed detector gets a new export, a
damaged file is re-exported, and a machine without onnxruntime and onnx (or a detector that does
not export) gets the torch detector, loaded once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from handrecon.models.handos.detector import (
    Detections,
    Detector,
    DetectorConfig,
    DetectorError,
    RTDetrDetector,
    attach_sides,
    load_detector,
    prepare_arrays,
    select_detections,
)
from handrecon.models.handos.side_head import load_side_head
from handrecon.utils.io import atomic_write_bytes
from handrecon.utils.onnx import cached_export, onnx_export_available, ort_session

INPUT_NAME, OUTPUT_NAMES = "pixel_values", ("scores", "boxes")
METADATA_KEY, METADATA_FORMAT = "handrecon-detector", 1
OPSET = 17
log = logging.getLogger(__name__)


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
    detector._stage_maps, detector._captured = [], {}  # the trace ran the hooks
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps({"format": METADATA_FORMAT, "config": asdict(detector.config)})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, proto.SerializeToString())
    return Path(path)


class OnnxDetector:
    """A detector exported by `export_detector_onnx`, on onnxruntime (CPU, `threads` intra-op
    threads): ``detect`` as `Detector.detect`. side_head: a `side_head.SideHead` or None."""

    kind, backend = "rt-detr", "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None, side_head: Any = None) -> None:
        self.session = ort_session(path, threads)
        raw = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        try:
            meta = json.loads(raw) if raw is not None else None
            self.config = DetectorConfig(**meta["config"])
        except (ValueError, TypeError, KeyError) as e:
            raise ValueError(f"{path}: not a handrecon detector export (metadata {METADATA_KEY!r}: {e or 'missing'}); "
                             "export it with handrecon.models.handos.onnx_detector.export_detector_onnx") from None
        if meta.get("format") != METADATA_FORMAT:
            raise ValueError(f"{path}: detector export format {meta.get('format')!r}, this handrecon reads "
                             f"{METADATA_FORMAT}; export it again")
        self.path, self.side_head = Path(path), side_head

    def detect(self, images: list[np.ndarray], score_threshold: float = 0.3, nms_iou: float = 0.7,
               max_hands: int = 100) -> list[Detections]:
        """Hands in each RGB uint8 image, as `Detector.detect`."""
        pixels, _, scale = prepare_arrays(images, self.config)
        scores, boxes = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: pixels})
        size = tuple(pixels.shape[-2:])
        found = [select_detections(boxes[i], scores[i], size, scale[i], img.shape[:2], score_threshold, nms_iou,
                                   max_hands) for i, img in enumerate(images)]
        return attach_sides(self.side_head, images, found)

    def describe(self) -> dict:
        side = {"side_head": self.side_head.source} if self.side_head is not None else {}
        return {"kind": self.kind, "backend": self.backend, "onnx": str(self.path), **asdict(self.config), **side}


def folder_fingerprint(folder: Path) -> str:
    """SHA-256 of a saved detector folder's weights and detector.json (the export's cache key)."""
    h = hashlib.sha256()
    for name in ("model.safetensors", "detector.json", "config.json"):
        h.update(name.encode())
        h.update((folder / name).read_bytes())
    h.update(f"format {METADATA_FORMAT}".encode())
    return h.hexdigest()


def detector_for_boxes(folder: str | Path, threads: int | None = None) -> OnnxDetector | Detector:
    """The saved detector in `folder` (`detector.save_detector`) for finding boxes: on onnxruntime,
    exported on first use into ``$HANDRECON_CACHE/detectors/`` (`utils.onnx.cached_export`: a
    damaged export is replaced); the torch detector, loaded once, without onnx/onnxruntime, for a
    detector that does not export, or when the export fails (with a warning)."""
    folder = Path(folder)
    loaded: list[Detector] = []

    def torch_detector() -> Detector:
        if not loaded:
            loaded.append(load_detector(str(folder)))
        return loaded[0]

    if onnx_export_available() and _exportable(folder):
        found = cached_export("detectors", folder_fingerprint(folder),
                              lambda path: export_detector_onnx(torch_detector(), path),
                              lambda path: OnnxDetector(path, threads, load_side_head(folder)))
        if found is not None:
            return found
    return torch_detector()


def _exportable(folder: Path) -> bool:
    """Whether a saved detector folder holds a square-input RT-DETR (per its detector.json; an
    unreadable file is left to `load_detector` to report)."""
    try:
        info = json.loads((folder / "detector.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("kind") == "rt-detr" and bool(info.get("square"))


__all__ = ["OnnxDetector", "detector_for_boxes", "export_detector_onnx", "folder_fingerprint"]
