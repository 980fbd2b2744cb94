"""The hand detector on onnxruntime, for finding hands (`handrecon detect`, the two-stage pipeline).

HandOS reads the frozen detector's queries, memory and backbone maps, so it keeps the torch
`Detector`. Finding boxes needs only scores and boxes, and importing transformers to build the
detector costs about 6 s before the first image on 2 cores. An RT-DETR with square inputs
(handrecon's own) is therefore exported once to ONNX (`onnx_export.export_detector_onnx`:
``pixel_values`` (B, 3, S, S) normalised -> ``scores`` (B, Q), ``boxes`` (B, Q, 4) cxcywh
normalised), and so are its side head (`onnx_export.export_side_head_onnx`) and box verifier
(`onnx_export.export_box_verifier_onnx`), and all are served here, sharing the torch detector's
preparation (`detections.prepare_arrays`), reading of the outputs (`detections.find_hands`: selection,
verification, sides) and crops (`detections.box_crops`, `detections.roi_crops`), so
both return the same detections. This module needs neither torch nor transformers: with the exports in the cache, the
two-stage pipeline starts without importing them.

`detector_for_boxes(folder)` keeps the exports in ``$HANDRECON_CACHE/detectors/`` under the
SHA-256 of the folder's weights and detector.json (the side head and the verifier: of their own files): a changed
detector gets a new export, a damaged file is re-exported, and a machine without onnxruntime and
onnx (or a detector that does not export) gets the torch detector, loaded once.

Importing this module registers the shipped detector's name (`HAND_DETECTOR_NAME`) for
``--detector`` (the ``handrecon.detectors`` entry point names this module).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from handrecon.eval.operating_point import DEFAULT_MAX_HANDS, DEFAULT_NMS_IOU, DEFAULT_SCORE_THRESHOLD
from handrecon.models.handos.detections import (
    DELTAS_OUTPUT_NAME, INPUT_NAME, MAX_VIEWS_PER_RUN, METADATA_FORMAT, METADATA_KEY, OUTPUT_NAMES, SIDE_HEAD_DIR,
    SIDE_INPUT_NAME, SIDE_OUTPUT_NAME, VERIFIER_DIR, VERIFIER_SETTINGS, Detections, DetectorConfig, DetectorError,
    VerifierSettings, find_hands, head_sources, network_views, prepare_arrays, read_box_crops, read_box_sides,
    read_roi_crops, read_verifier_settings,
)
from handrecon.registry import register_detector
from handrecon.utils.onnx import cached_export, onnx_export_available, ort_session

HAND_DETECTOR_NAME = "handrecon-hand-detector"
ASSET_DIR = Path(__file__).resolve().parents[2] / "assets" / "models" / HAND_DETECTOR_NAME
log = logging.getLogger(__name__)


def _read_metadata(session: Any, path: str | Path, key: str) -> dict:
    """The ``key`` entry of an export's handrecon metadata; ValueError saying what to do otherwise."""
    raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    try:
        meta = json.loads(raw) if raw is not None else None
        value = meta[key]
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"{path}: not a handrecon detector export (metadata {METADATA_KEY!r}: {e or 'missing'}); "
                         "export it with handrecon.models.handos.onnx_export") from None
    if meta.get("format") != METADATA_FORMAT:
        raise ValueError(f"{path}: detector export format {meta.get('format')!r}, this handrecon reads "
                         f"{METADATA_FORMAT}; export it again")
    return value


class OnnxSideHead:
    """A side head exported by `onnx_export.export_side_head_onnx`: ``sides(image, boxes)`` ->
    (["left" | "right"], p_left (N,)), as `side_head.SideHead.sides`."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.session = ort_session(path, threads)
        info = _read_metadata(self.session, path, "side_head")
        self.input_size, self.box_scale, self.source = int(info["input_size"]), float(info["box_scale"]), info["source"]

    def sides(self, image: np.ndarray, boxes: np.ndarray) -> tuple[list[str], np.ndarray]:
        return read_box_crops(self._logits, image, boxes, self.input_size, self.box_scale)

    def _logits(self, crops: np.ndarray) -> np.ndarray:
        return self.session.run([SIDE_OUTPUT_NAME], {SIDE_INPUT_NAME: crops})[0]


class OnnxBoxVerifier:
    """A box verifier exported by `onnx_export.export_box_verifier_onnx`: ``verify(image, boxes)``
    -> p_hand (N,) and the moved boxes (N, 4), and ``settings``, as `box_verifier.BoxVerifierHead`."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.session = ort_session(path, threads)
        info = _read_metadata(self.session, path, "box_verifier")
        try:
            self.settings = VerifierSettings(**info["settings"])
            self.input_size, self.context, self.source = int(info["input_size"]), float(info["context"]), info["source"]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: not a handrecon box-verifier export ({e}); export it again") from None
        self.outputs = [o.name for o in self.session.get_outputs()]

    def verify(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return read_roi_crops(self._outputs, image, boxes, self.input_size, self.context)

    def _outputs(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        out = dict(zip(self.outputs, self.session.run(self.outputs, {SIDE_INPUT_NAME: crops})))
        return out[SIDE_OUTPUT_NAME], out.get(DELTAS_OUTPUT_NAME)


class OnnxDetector:
    """A detector exported by `onnx_export.export_detector_onnx`, on onnxruntime (CPU, `threads`
    intra-op threads): ``detect`` as `Detector.detect`. side_head: an `OnnxSideHead`, a torch
    `side_head.SideHead` or None; verifier: an `OnnxBoxVerifier`, a torch
    `box_verifier.BoxVerifierHead` or None."""

    kind, backend = "rt-detr", "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None, side_head: Any = None, verifier: Any = None) -> None:
        self.session = ort_session(path, threads)
        config = _read_metadata(self.session, path, "config")
        try:
            self.config = DetectorConfig(**config)
        except TypeError as e:
            raise ValueError(f"{path}: not a handrecon detector export (config {config!r}: {e}); export it again") from None
        self.path, self.side_head, self.verifier = Path(path), side_head, verifier
        self.test_time_flip = False  # `Detector.test_time_flip`
        self.tiles = 1  # `Detector.tiles`

    def detect(self, images: list[np.ndarray], score_threshold: float = DEFAULT_SCORE_THRESHOLD,
               nms_iou: float = DEFAULT_NMS_IOU, max_hands: int = DEFAULT_MAX_HANDS) -> list[Detections]:
        """Hands in each RGB uint8 image, as `Detector.detect`."""
        if not images:
            return []
        inputs, views = network_views(images, self.test_time_flip, self.tiles)
        runs = []
        for start in range(0, len(inputs), MAX_VIEWS_PER_RUN):  # square inputs: every chunk the same size
            pixels, _, scale = prepare_arrays(inputs[start:start + MAX_VIEWS_PER_RUN], self.config)
            runs.append((*self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: pixels}), scale))
        scores, boxes, scale = (np.concatenate(parts) for parts in zip(*runs))
        return find_hands(images, boxes, scores, tuple(pixels.shape[-2:]), scale, score_threshold, nms_iou, max_hands,
                          self.verifier, self.side_head, views)

    def read_sides(self, image: np.ndarray, boxes: np.ndarray) -> Detections | None:
        """The side head's reading of given boxes (`detections.read_box_sides`); None without one."""
        return read_box_sides(self.side_head, image, boxes)

    def describe(self) -> dict:
        return {"kind": self.kind, "backend": self.backend, "onnx": str(self.path), **asdict(self.config),
                **head_sources(self.side_head, self.verifier), "test_time_flip": self.test_time_flip, "tiles": self.tiles}


def folder_fingerprint(folder: Path, names: tuple[str, ...] = ("model.safetensors", "detector.json", "config.json")) -> str:
    """SHA-256 of a saved detector folder's weights and detector.json (the export's cache key), or
    of the given files in it."""
    h = hashlib.sha256()
    for name in names:
        h.update(name.encode())
        h.update((folder / name).read_bytes())
    h.update(f"format {METADATA_FORMAT}".encode())
    return h.hexdigest()


def detector_for_boxes(folder: str | Path, threads: int | None = None) -> Any:
    """The saved detector in `folder` (`detector.save_detector`) for finding boxes: on onnxruntime
    (`OnnxDetector`, with its side head on onnxruntime too), exported on first use into
    ``$HANDRECON_CACHE/detectors/`` (`utils.onnx.cached_export`: a damaged export is replaced);
    the torch `Detector`, loaded once, without onnx/onnxruntime, for a detector that does not
    export, or when the export fails (with a warning). torch is imported only to export or for
    the torch detector."""
    folder = Path(folder)
    loaded: list[Any] = []

    def torch_detector() -> Any:
        if not loaded:
            from handrecon.models.handos import detector  # deferred: torch and transformers (see the docstring)

            loaded.append(detector.load_detector(str(folder)))
        return loaded[0]

    if onnx_export_available() and _exportable(folder):
        side_head = _head_for_boxes(folder, "side_head", threads, torch_detector)
        verifier = _head_for_boxes(folder, "verifier", threads, torch_detector)
        found = cached_export("detectors", folder_fingerprint(folder),
                              lambda path: _export().export_detector_onnx(torch_detector(), path),
                              lambda path: OnnxDetector(path, threads, side_head, verifier))
        if found is not None:
            return found
    return torch_detector()


def hand_detector_for_boxes(path: str | None = None, threads: int | None = None) -> Any:
    """handrecon's shipped hand detector (`path` None) or one packaged by
    `tools/package_detector.py` at `path`, for finding boxes (`detector_for_boxes`)."""
    return detector_for_boxes(packaged_folder(path), threads)


register_detector(HAND_DETECTOR_NAME)(hand_detector_for_boxes)


def packaged_folder(path: str | None) -> Path:
    """The packaged detector folder at `path` (None: the shipped one); DetectorError if there is none."""
    folder = Path(path) if path else ASSET_DIR
    if not (folder / "detector.json").is_file():
        raise DetectorError(f"{HAND_DETECTOR_NAME}: no packaged detector at {folder} (train one with "
                            "tools/train_detector.sh, or give --detector KIND:DIR for a transformers checkpoint)")
    return folder


def _head_for_boxes(folder: Path, name: str, threads: int | None, torch_detector: Any) -> Any:
    """The folder's crop head `name` ("side_head" or "verifier", in ``SIDE_HEAD_DIR`` /
    ``VERIFIER_DIR``) on onnxruntime (exported into the cache on first use, keyed on its own files),
    the torch one if that export fails, or None when the folder has none."""
    directory, files, export, onnx_head = {
        "side_head": (SIDE_HEAD_DIR, ("model.safetensors", "card.json"), "export_side_head_onnx", OnnxSideHead),
        "verifier": (VERIFIER_DIR, ("model.safetensors", "card.json", VERIFIER_SETTINGS), "export_box_verifier_onnx",
                     OnnxBoxVerifier),
    }[name]
    head_dir = folder / directory
    if not (head_dir / "card.json").is_file():
        return None
    if name == "verifier":
        read_verifier_settings(head_dir)  # uncalibrated or damaged: the torch detector's clear error, not a traceback
    found = cached_export("detectors", folder_fingerprint(head_dir, files),
                          lambda path: getattr(_export(), export)(getattr(torch_detector(), name), path),
                          lambda path: onnx_head(path, threads))
    return found if found is not None else getattr(torch_detector(), name)


def _export() -> Any:
    from handrecon.models.handos import onnx_export  # deferred: exporting needs torch and onnx

    return onnx_export


def _exportable(folder: Path) -> bool:
    """Whether a saved detector folder holds a square-input RT-DETR (per its detector.json; an
    unreadable file is left to `load_detector` to report)."""
    try:
        info = json.loads((folder / "detector.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("kind") == "rt-detr" and bool(info.get("square"))


__all__ = ["ASSET_DIR", "HAND_DETECTOR_NAME", "OnnxBoxVerifier", "OnnxDetector", "OnnxSideHead", "detector_for_boxes", "folder_fingerprint",
           "hand_detector_for_boxes", "packaged_folder"]
