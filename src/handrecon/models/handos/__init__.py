"""HandOS (../shared/papers/handos.txt), the model family "handos": one-stage multi-hand 3D
reconstruction on a frozen DETR-like detector. Part 1, the detector layer:

- `detector.py`: the `Detector` interface (everything HandOS reads from a frozen detector) and
  its adapters for transformers' Grounding DINO, MM-Grounding-DINO, Deformable DETR, RT-DETR and
  RT-DETRv2; local-only loading.
- `hand_detector.py`: handrecon's own small RT-DETR hand detector (model ``hand_detector``).
- `data.py`: training data: ``scene_boxes`` (the detector) and ``handos_scenes`` (HandOS).
- `side_head.py`: the detector's side head (model ``hand_side``, data ``hand_side_crops``): left or
  right for each detected box, for the two-stage pipeline's crop model.

Part 2, HandOS itself (model ``handos``):

- `attention.py`: pure-PyTorch multi-scale deformable attention and the Fig. 8 attention policies.
- `decoder.py`: side tuning, instance-to-joint expansion, 2D-to-3D lifting, 2D and interactive
  layers, heads.
- `assign.py`: SimOTA (training) and score threshold + NMS (inference).
- `loss.py`: the paper's loss and weights; `model.py`: the model, validation, side from normals.
- `inference.py`: the inference adapter (whole images in, every hand out).

Importing this package registers the model and the dataset (`handrecon.registry`).
"""

from handrecon.models.handos.assign import select_instances, simota_assign
from handrecon.models.handos.attention import POLICIES, MultiScaleDeformableAttention, policy_mask
from handrecon.models.handos.data import HandOSScenes, SceneBoxes
from handrecon.models.handos.decoder import InteractiveDecoder, SideTuning, lifting_init
from handrecon.models.handos.detector import (
    DETECTOR_KINDS,
    Detections,
    Detector,
    DetectorConfig,
    DetectorError,
    DetectorOutput,
    load_detector,
    save_detector,
    wrap_detector,
)
from handrecon.models.handos.hand_detector import HAND_DETECTOR_NAME, HandDetector, hand_detector_for_boxes, load_hand_detector
from handrecon.models.handos.onnx_detector import OnnxDetector, export_detector_onnx
from handrecon.models.handos.inference import HandOSAdapter, HandOSNetwork
from handrecon.models.handos.loss import PAPER_WEIGHTS, HandOSLoss
from handrecon.models.handos.model import HandOS, sides_from_normals
from handrecon.models.handos.side_head import HandSideCrops, SideClassifier, SideHead, load_side_head
from handrecon.registry import register_dataset, register_detector, register_model


@register_model("hand_detector")
def hand_detector(**kwargs) -> HandDetector:
    """Build the hand detector from config kwargs (see `HandDetector`)."""
    return HandDetector(**kwargs)


@register_model("handos")
def handos(**kwargs) -> HandOS:
    """Build HandOS from config kwargs (see `HandOS`)."""
    return HandOS(**kwargs)


@register_model("hand_side")
def hand_side(**kwargs) -> SideClassifier:
    """Build the detector's side head from config kwargs (see `SideClassifier`)."""
    return SideClassifier(**kwargs)


register_dataset("hand_side_crops")(HandSideCrops)
register_detector(HAND_DETECTOR_NAME)(hand_detector_for_boxes)
for _kind in DETECTOR_KINDS:  # --detector KIND:DIR
    register_detector(_kind)(lambda path, kind=_kind: load_detector(f"{kind}:{path}"))

__all__ = ["DETECTOR_KINDS", "Detections", "Detector", "DetectorConfig", "DetectorError", "DetectorOutput",
           "HandDetector", "HandOS", "HandOSAdapter", "HandOSLoss", "HandOSNetwork", "HandOSScenes", "InteractiveDecoder",
           "MultiScaleDeformableAttention", "OnnxDetector", "PAPER_WEIGHTS", "POLICIES", "SceneBoxes", "SideClassifier", "SideHead", "SideTuning", "hand_detector",
           "export_detector_onnx", "hand_detector_for_boxes", "handos", "lifting_init", "load_detector", "load_hand_detector", "load_side_head", "policy_mask", "save_detector", "select_instances",
           "sides_from_normals", "simota_assign", "wrap_detector"]
