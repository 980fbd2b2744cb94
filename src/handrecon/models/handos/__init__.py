"""HandOS (../shared/papers/handos.txt), the model family "handos": one-stage multi-hand 3D
reconstruction on a frozen DETR-like detector. Part 1, the detector layer:

- `detector.py`: the `Detector` interface (everything HandOS reads from a frozen detector) and
  its adapters for transformers' Grounding DINO, MM-Grounding-DINO, Deformable DETR, RT-DETR and
  RT-DETRv2; local-only loading.
- `hand_detector.py`: handrecon's own small RT-DETR hand detector (model ``hand_detector``).
- `data.py`: training data: ``scene_boxes`` (the detector) and ``handos_scenes`` (HandOS).
- `detections.py`: preparing detector inputs and reading detections, numpy only;
  `onnx_detector.py` / `onnx_export.py`: finding hands on onnxruntime without torch.
- `side_head.py`: the detector's side head (model ``hand_side``, data ``hand_side_crops``): left or
  right for each detected box, for the two-stage pipeline's crop model.
- `box_verifier.py`: the detector's box verifier (models ``hand_box_verifier`` and
  ``hand_box_verifier_ensemble``, data ``hand_box_candidates``): a second stage that re-scores the
  detector's candidates from RoI crops.

Part 2, HandOS itself (model ``handos``):

- `attention.py`: pure-PyTorch multi-scale deformable attention and the Fig. 8 attention policies.
- `decoder.py`: side tuning, instance-to-joint expansion, 2D-to-3D lifting, 2D and interactive
  layers, heads.
- `assign.py`: SimOTA (training) and score threshold + NMS (inference).
- `loss.py`: the paper's loss and weights; `model.py`: the model, validation, side from normals.
- `inference.py`: the inference adapter (whole images in, every hand out).

`family.py` registers the models, datasets and detectors (`handrecon.registry`; the
``handrecon.families`` entry point); the names below are imported on first use, so that the
onnxruntime detector (``handrecon.detectors`` entry point) loads without torch.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "simota_assign": "assign", "select_instances": "detections", "POLICIES": "attention",
    "MultiScaleDeformableAttention": "attention", "policy_mask": "attention", "HandOSScenes": "data",
    "SceneBoxes": "data", "InteractiveDecoder": "decoder", "SideTuning": "decoder", "PyramidSideTuning": "decoder",
    "lifting_init": "decoder",
    "DETECTOR_KINDS": "detector", "Detections": "detections", "Detector": "detector", "DetectorConfig": "detections",
    "DetectorError": "detections", "DetectorOutput": "detector", "load_detector": "detector",
    "save_detector": "detector", "wrap_detector": "detector", "HAND_DETECTOR_NAME": "onnx_detector",
    "HandDetector": "hand_detector", "hand_detector_for_boxes": "onnx_detector",
    "load_hand_detector": "hand_detector", "OnnxDetector": "onnx_detector", "export_detector_onnx": "onnx_export",
    "HandOSAdapter": "inference", "HandOSNetwork": "inference", "PAPER_WEIGHTS": "loss", "HandOSLoss": "loss",
    "HandOS": "model", "sides_from_normals": "model", "HandSideCrops": "side_head", "SideClassifier": "side_head",
    "SideHead": "side_head", "load_side_head": "side_head", "BoxVerifier": "box_verifier",
    "BoxVerifierHead": "box_verifier", "HandBoxCandidates": "box_verifier", "load_box_verifier": "box_verifier", "hand_detector": "family", "handos": "family",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"handrecon.models.handos.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'handrecon.models.handos' has no attribute {name!r}")
