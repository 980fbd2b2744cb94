"""The frozen DETR-like detector under HandOS (paper §3.1-3.2): one interface, several adapters.

    det = load_detector("rt-detr:/models/my-rtdetr")            # or "handrecon-hand-detector"
    hands = det.detect([image])      # boxes (N, 4) px, scores (N,) at the served score 0.5, NMS 0.5
    out = det(pixel_values, pixel_mask)                          # everything HandOS reads

A `Detector` wraps a `transformers` object detector and never trains it: its parameters have
``requires_grad=False``, it stays in ``eval()`` when its owner is put in training mode, and its
forward runs under ``torch.no_grad()``. One forward returns a `DetectorOutput` with what the
detector computed anyway, recovered by hooks at no extra compute (REFERENCE.md §5): the encoder
memory of every encoder layer, the level geometry (spatial shapes, level start index, valid
ratios), the decoder queries Q_0 … Q_L and reference boxes of every layer, the final boxes and
hand scores, and the backbone's maps at strides 4/8/16/32 (for HandOS's side tuning). A frozen
detector gives the same output for the same input, so the last output is kept and given again to
a call with the same pixels (and mask, where the detector reads one): a HandOS model that decodes
the served detections (`detect`) reads the memory of the very same pass.

Adapters (`DETECTOR_KINDS`): ``grounding-dino`` / ``mm-grounding-dino`` (prompted with "hand."
by its bert-base-uncased token ids, no tokenizer needed), ``deformable-detr`` (two-stage with box
refinement), ``rt-detr`` / ``rt-detr-v2``. Pretrained weights load from a local directory only
(``local_files_only``, safetensors only): nothing is ever downloaded.

Preprocessing belongs to the detector (`DetectorConfig`): the long side is resized to
``input_size`` px, images are normalised with the ImageNet statistics and padded at the bottom
and right to a common size (a multiple of 32); the pixel mask marks the real pixels. Square-input
detectors without a mask (handrecon's own) are padded black before normalising, exactly as
`detections.letterbox` and their training data do; masked ones with zeros after normalising.
"""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from handrecon.checkpoint import CheckpointError
from handrecon.eval.operating_point import DEFAULT_MAX_HANDS, DEFAULT_NMS_IOU, DEFAULT_SCORE_THRESHOLD
from handrecon.models.handos.detections import (
    MAX_VIEWS_PER_RUN, SIDE_HEAD_DIR, VERIFIER_DIR, DetectorConfig, DetectorError, Detections, find_hands, head_sources,
    network_views, prepare_arrays, read_box_sides,
)
from handrecon.models.handos.box_verifier import load_box_verifier
from handrecon.models.handos.side_head import load_side_head

# What the hooks of the detector forward running on this thread record (threads may run several
# detectors, or one detector several times, at once: `infer.batch.run_batches`).
_RECORDING = threading.local()

# "hand." for Grounding DINO's text branch: bert-base-uncased ids [CLS] hand . [SEP]
HAND_PROMPT_IDS = (101, 2192, 1012, 102)
BACKBONE_STRIDES = (4, 8, 16, 32)


@dataclass
class DetectorOutput:
    """The frozen detector's outputs for a batch of B images (Q queries, L decoder layers).

    boxes: (B, Q, 4) final boxes, cxcywh normalised to the padded input. scores: (B, Q) hand
    probability. queries: (B, L + 1, Q, d): Q_0 (the decoder's input) then each layer's output.
    reference_boxes: (B, L + 1, Q, 4) cxcywh in [0, 1]: the initial references, then each
    layer's refined boxes. memory: {encoder layer (1-based): (B, ΣHW, d)}, every layer the
    detector has (a hybrid encoder such as RT-DETR's has one memory, stored as its last layer).
    spatial_shapes: (levels, 2) (H, W) of each memory level; level_start_index: (levels,);
    valid_ratios: (B, levels, 2) (w, h) fraction of each level that is real image.
    backbone_maps: the backbone's feature maps at strides 4, 8, 16, 32, (B, C_s, H/s, W/s).
    input_size: (H, W) of the padded input.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    queries: torch.Tensor
    reference_boxes: torch.Tensor
    memory: dict[int, torch.Tensor]
    spatial_shapes: torch.Tensor
    level_start_index: torch.Tensor
    valid_ratios: torch.Tensor
    backbone_maps: tuple[torch.Tensor, ...]
    input_size: tuple[int, int]

    def memory_at(self, layer: int) -> torch.Tensor:
        """(B, ΣHW, d) the memory after encoder layer `layer` (1-based; -1 = the last)."""
        layers = sorted(self.memory)
        key = layers[-1] if layer == -1 else layer
        if key not in self.memory:
            raise DetectorError(f"this detector has encoder memory after layers {layers}, not after layer {layer}")
        return self.memory[key]


@dataclass
class Prepared:
    """A batch ready for the network: pixel_values (B, 3, H, W) normalised, pixel_mask (B, H, W)
    1 on real pixels, scale (B,) network px per image px."""

    pixel_values: torch.Tensor
    pixel_mask: torch.Tensor
    scale: np.ndarray


class Detector(nn.Module):
    """A frozen transformers detector behind the interface HandOS reads (see the module doc).

    Subclasses say how to call the model (`_call`), read hand scores (`_scores`) and the initial
    reference boxes (`_initial_references`).
    """

    kind = "detector"
    reads_pixel_mask = True  # False: the model takes no mask (RT-DETR), so the kept output ignores it
    decoder_path = "model.decoder"
    memory_key = "encoder_hidden_states"  # the decoder's keyword for the flattened memory

    def __init__(self, model: nn.Module, config: DetectorConfig = DetectorConfig()) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.model.requires_grad_(False)
        self.model.eval()
        self.side_head: Any = None  # `side_head.SideHead`: left / right per detected box (`detect`)
        self.verifier: Any = None  # `box_verifier.BoxVerifierHead`: re-scores the candidates (`detect`)
        self.test_time_flip = False  # `detect` also reads each image's mirror image and pools the candidates
        self.tiles = 1  # > 1: `detect` also reads each image as a tiles x tiles grid (`detections.network_views`)
        self._last: tuple[torch.Tensor, torch.Tensor, DetectorOutput] | None = None  # (pixels, mask, output)
        self.model.get_submodule(self.decoder_path).register_forward_pre_hook(self._capture_decoder_inputs, with_kwargs=True)
        for stage in self._backbone_stages():
            stage.register_forward_hook(self._capture_stage_map)

    # ---- frozen
    def train(self, mode: bool = True) -> "Detector":
        """The wrapper follows `mode`; the detector itself stays in eval mode (frozen batch statistics)."""
        super().train(mode)
        self.model.eval()
        return self

    # ---- hooks: they record into the `forward` running on their thread (`_RECORDING`), and do
    # nothing for any other call of the model (e.g. training the detector, exporting it)
    @staticmethod
    def _capture_decoder_inputs(module, args, kwargs) -> None:
        record = getattr(_RECORDING, "record", None)
        if record is not None:
            record["captured"] = dict(kwargs)

    @staticmethod
    def _capture_stage_map(module, args, output) -> None:
        record = getattr(_RECORDING, "record", None)
        if record is not None:
            record["stage_maps"].append(output)

    def _backbone_stages(self) -> list[nn.Module]:
        for name, module in self.model.named_modules():
            if name.endswith("encoder.stages") and "backbone" in name and isinstance(module, nn.ModuleList):
                return list(module)
        raise DetectorError(f"{self.kind}: found no backbone stages (encoder.stages) to read the stride 4-32 maps "
                            "from; handrecon supports ResNet-style backbones (ResNet, RT-DETR ResNet, HGNetV2)")

    # ---- per detector
    def _call(self, pixel_values: torch.Tensor, pixel_mask: torch.Tensor):
        return self.model(pixel_values=pixel_values, pixel_mask=pixel_mask, output_hidden_states=True)

    def _scores(self, out) -> torch.Tensor:
        return out.logits[..., self.config.hand_label].sigmoid()

    def _initial_references(self, out) -> torch.Tensor:
        return out.init_reference_points

    def _memory(self, out, captured: dict) -> dict[int, torch.Tensor]:
        states = out.encoder_hidden_states  # input, then every encoder layer
        return {i: s for i, s in enumerate(states) if i > 0}

    # ---- the interface
    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor, pixel_mask: torch.Tensor | None = None) -> DetectorOutput:
        """pixel_values (B, 3, H, W) normalised, pixel_mask (B, H, W) (None: all real) -> DetectorOutput."""
        if pixel_mask is None:
            pixel_mask = torch.ones(pixel_values.shape[0], *pixel_values.shape[-2:], dtype=torch.long,
                                    device=pixel_values.device)
        last = self._last  # one read: another thread may replace it
        if last is not None and self._same_input(last, pixel_values, pixel_mask):
            return last[2]
        out = self._forward(pixel_values, pixel_mask)
        self._last = (pixel_values.clone(), pixel_mask.clone(), out)  # copies: a caller may reuse its buffers
        return out

    def forget(self) -> None:
        """Drop the kept output: the next call runs the network (a benchmark timing fresh passes)."""
        self._last = None

    def _same_input(self, last: tuple[torch.Tensor, torch.Tensor, DetectorOutput], pixel_values: torch.Tensor,
                    pixel_mask: torch.Tensor) -> bool:
        pixels, mask, _ = last
        return (pixels.shape == pixel_values.shape and pixels.dtype == pixel_values.dtype
                and pixels.device == pixel_values.device and torch.equal(pixels, pixel_values)
                and (not self.reads_pixel_mask or (mask.shape == pixel_mask.shape and torch.equal(mask, pixel_mask))))

    def _forward(self, pixel_values: torch.Tensor, pixel_mask: torch.Tensor) -> DetectorOutput:
        _RECORDING.record = record = {"captured": {}, "stage_maps": []}
        try:
            out = self._call(pixel_values, pixel_mask)
        finally:
            _RECORDING.record = None
        cap = record["captured"]
        H, W = pixel_values.shape[-2:]
        maps = tuple(record["stage_maps"])
        strides = tuple(H // m.shape[-2] for m in maps)
        if strides[-4:] != BACKBONE_STRIDES:
            raise DetectorError(f"{self.kind}: backbone stages have strides {strides}, expected {BACKBONE_STRIDES}")
        shapes = cap["spatial_shapes"]
        valid = cap.get("valid_ratios")
        if valid is None:  # no pixel mask in this detector: every position is input
            valid = torch.ones(pixel_values.shape[0], len(shapes), 2, device=pixel_values.device)
        return DetectorOutput(
            boxes=out.pred_boxes, scores=self._scores(out),
            queries=torch.cat([cap["inputs_embeds"][:, None], out.intermediate_hidden_states], 1),
            reference_boxes=torch.cat([self._initial_references(out)[:, None], out.intermediate_reference_points], 1),
            memory=self._memory(out, cap), spatial_shapes=shapes, level_start_index=cap["level_start_index"],
            valid_ratios=valid, backbone_maps=maps[-4:], input_size=(int(H), int(W)),
        )

    def prepare(self, images: list[np.ndarray]) -> Prepared:
        """RGB uint8 images (H, W, 3) -> a padded, normalised batch (long side = input_size)."""
        pixels, mask, scale = prepare_arrays(images, self.config)
        return Prepared(torch.from_numpy(pixels), torch.from_numpy(mask), scale)

    def detect(self, images: list[np.ndarray], score_threshold: float = DEFAULT_SCORE_THRESHOLD,
               nms_iou: float = DEFAULT_NMS_IOU, max_hands: int = DEFAULT_MAX_HANDS) -> list[Detections]:
        """Hands in each RGB uint8 image: queries scoring at least `score_threshold`, then greedy
        NMS at `nms_iou` (>= 1: none), at most `max_hands`, boxes in the image's pixels; the
        defaults are the served operating point (`eval.operating_point`), as `handrecon detect`'s.
        With a box verifier the scores are the verified ones (`detections.verify_detections`)."""
        if not images:
            return []
        inputs, views = network_views(images, self.test_time_flip, self.tiles)
        prep = self.prepare(inputs)  # one padded size for every view: the chunks' boxes share it
        runs = [self(prep.pixel_values[s:s + MAX_VIEWS_PER_RUN], prep.pixel_mask[s:s + MAX_VIEWS_PER_RUN])
                for s in range(0, len(inputs), MAX_VIEWS_PER_RUN)]
        boxes, scores = (np.concatenate([getattr(out, name).float().cpu().numpy() for out in runs])
                         for name in ("boxes", "scores"))
        return find_hands(images, boxes, scores, runs[0].input_size, prep.scale, score_threshold, nms_iou, max_hands,
                          self.verifier, self.side_head, views)

    def read_sides(self, image: np.ndarray, boxes: np.ndarray) -> Detections | None:
        """The side head's reading of given boxes (`detections.read_box_sides`); None without one."""
        return read_box_sides(self.side_head, image, boxes)

    def describe(self) -> dict:
        return {"kind": self.kind, **self.config.__dict__, **head_sources(self.side_head, self.verifier),
                "test_time_flip": self.test_time_flip, "tiles": self.tiles}


class DeformableDetrDetector(Detector):
    kind = "deformable-detr"


class RTDetrDetector(Detector):
    kind = "rt-detr"
    reads_pixel_mask = False

    def _call(self, pixel_values, pixel_mask):
        return self.model(pixel_values=pixel_values, output_hidden_states=True)  # RT-DETR takes no pixel mask

    def _initial_references(self, out):
        return out.init_reference_points.sigmoid()  # RT-DETR keeps them as logits

    def _memory(self, out, captured):
        # the hybrid encoder's output, flattened over its levels, is the decoder's memory
        return {1: captured["encoder_hidden_states"]}


class RTDetrV2Detector(RTDetrDetector):
    kind = "rt-detr-v2"


class GroundingDinoDetector(Detector):
    kind = "grounding-dino"

    def _call(self, pixel_values, pixel_mask):
        ids = torch.tensor([HAND_PROMPT_IDS] * pixel_values.shape[0])
        return self.model(pixel_values=pixel_values, pixel_mask=pixel_mask, input_ids=ids,
                          attention_mask=torch.ones_like(ids), output_hidden_states=True)

    def _scores(self, out):
        return out.logits[..., 1].sigmoid()  # token 1 of the prompt is "hand"

    def _memory(self, out, captured):
        return {i: s for i, s in enumerate(out.encoder_vision_hidden_states) if i > 0}


class MMGroundingDinoDetector(GroundingDinoDetector):
    kind = "mm-grounding-dino"


# kind -> (adapter, the name of its transformers model class): a class is imported only when its kind is used
# (transformers imports each architecture on first access; Grounding DINO's alone takes ~1.8 s)
HF_DETECTORS: dict[str, tuple[type[Detector], str]] = {
    "grounding-dino": (GroundingDinoDetector, "GroundingDinoForObjectDetection"),
    "mm-grounding-dino": (MMGroundingDinoDetector, "MMGroundingDinoForObjectDetection"),
    "deformable-detr": (DeformableDetrDetector, "DeformableDetrForObjectDetection"),
    "rt-detr": (RTDetrDetector, "RTDetrForObjectDetection"),
    "rt-detr-v2": (RTDetrV2Detector, "RTDetrV2ForObjectDetection"),
}


def _hf_class(kind: str) -> tuple[type[Detector], type]:
    """kind -> (adapter, transformers model class); an unknown kind is a DetectorError."""
    if kind not in HF_DETECTORS:
        raise DetectorError(f"unknown detector kind {kind!r}; use one of {', '.join(DETECTOR_KINDS)}")
    import transformers as hf

    adapter, name = HF_DETECTORS[kind]
    return adapter, getattr(hf, name)


DETECTOR_KINDS = tuple(HF_DETECTORS)


def wrap_detector(kind: str, model: nn.Module, config: DetectorConfig = DetectorConfig()) -> Detector:
    """The adapter of `kind` (one of DETECTOR_KINDS) around a transformers detector `model`."""
    adapter, model_class = _hf_class(kind)
    if not isinstance(model, model_class):
        raise DetectorError(f"a {kind} detector must be a transformers {model_class.__name__}, got {type(model).__name__}")
    return adapter(model, config)


def load_detector(spec: str, config: DetectorConfig | None = None) -> Detector:
    """A frozen detector from ``KIND:DIR`` (a transformers checkpoint saved in a local folder:
    config.json + model.safetensors) or from a folder written by `save_detector`.

    Only local files are read (``local_files_only=True``) and only safetensors weights
    (``use_safetensors=True``: no pickle); a missing folder or file is a DetectorError saying
    what to do.
    """
    kind, sep, path = spec.partition(":")
    if not sep or kind not in DETECTOR_KINDS:  # a folder saved by save_detector
        kind, path = None, spec
        if not (Path(spec) / "detector.json").is_file():
            raise DetectorError(
                f"detector {spec!r}: give KIND:DIR with KIND one of {', '.join(DETECTOR_KINDS)} and DIR a local folder "
                "holding a transformers checkpoint (config.json + model.safetensors), or a folder saved by handrecon "
                "(with detector.json)")
    folder = Path(path)
    if not folder.is_dir():
        raise DetectorError(
            f"detector folder {folder} does not exist. handrecon never downloads weights: fetch the checkpoint on a "
            f"machine with internet (e.g. `huggingface-cli download <repo> --local-dir {folder}`) and copy it here")
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise DetectorError(f"detector folder {folder} must hold config.json and model.safetensors "
                            "(pickled pytorch_model.bin weights are not loaded)")
    if (folder / "detector.json").is_file():  # written by save_detector: the kind and the preprocessing
        try:
            info = json.loads((folder / "detector.json").read_text())
        except (OSError, ValueError) as e:
            raise DetectorError(f"{folder}/detector.json is not readable JSON ({e})") from None
        kind = kind or info.get("kind")
        if config is None:
            config = DetectorConfig(**{k: info[k] for k in DetectorConfig.__dataclass_fields__ if k in info})
    if kind not in DETECTOR_KINDS:
        raise DetectorError(f"{folder}/detector.json names unknown detector kind {kind!r}")
    adapter, model_class = _hf_class(kind)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no per-tensor progress bar on the user's terminal
    try:
        model = model_class.from_pretrained(folder, local_files_only=True, use_safetensors=True, dtype=torch.float32)
    except (OSError, ValueError) as e:
        raise DetectorError(f"cannot load the {kind} detector from {folder}: {e}") from None
    detector = adapter(model, config or DetectorConfig())
    try:
        detector.side_head = load_side_head(folder)
    except (CheckpointError, ValueError) as e:
        raise DetectorError(f"cannot load the detector's side head from {folder / SIDE_HEAD_DIR}: {e}") from None
    try:
        detector.verifier = load_box_verifier(folder)
    except (CheckpointError, ValueError) as e:
        raise DetectorError(f"cannot load the detector's box verifier from {folder / VERIFIER_DIR}: {e}") from None
    return detector


def save_detector(detector: Detector, folder: str | Path, float16: bool = False) -> Path:
    """Write `detector` as a folder `load_detector(folder)` reads: the transformers checkpoint
    (config.json, model.safetensors; its floating weights in float16 with ``float16``, half the
    size, loaded back as float32) and detector.json (kind and preprocessing)."""
    folder = Path(folder)
    model = copy.deepcopy(detector.model).half() if float16 else detector.model
    model.save_pretrained(folder, safe_serialization=True)
    info = {k: v for k, v in detector.describe().items() if k not in ("side_head", "box_verifier")}
    (folder / "detector.json").write_text(json.dumps(info, indent=1))
    return folder


__all__ = ["Detector", "DetectorConfig", "DetectorOutput", "Detections", "DetectorError", "DETECTOR_KINDS",
           "HAND_PROMPT_IDS", "load_detector", "save_detector", "wrap_detector"]
