"""HandOS (../shared/papers/handos.txt), the model family "handos": one-stage multi-hand 3D
reconstruction on a frozen DETR-like detector. Part 1, the detector layer:

- `detector.py`: the `Detector` interface (everything HandOS reads from a frozen detector) and
  its adapters for transformers' Grounding DINO, MM-Grounding-DINO, Deformable DETR, RT-DETR and
  RT-DETRv2; local-only loading.
- `hand_detector.py`: handrecon's own small RT-DETR hand detector (model ``hand_detector``).
- `data.py`: its training data (dataset ``scene_boxes``).

Importing this package registers the model and the dataset (`handrecon.registry`).
"""

from handrecon.models.handos.data import SceneBoxes
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
from handrecon.models.handos.hand_detector import HAND_DETECTOR_NAME, HandDetector, load_hand_detector
from handrecon.registry import register_detector, register_model


@register_model("hand_detector")
def hand_detector(**kwargs) -> HandDetector:
    """Build the hand detector from config kwargs (see `HandDetector`)."""
    return HandDetector(**kwargs)


register_detector(HAND_DETECTOR_NAME)(load_hand_detector)
for _kind in DETECTOR_KINDS:  # --detector KIND:DIR
    register_detector(_kind)(lambda path, kind=_kind: load_detector(f"{kind}:{path}"))

__all__ = ["DETECTOR_KINDS", "Detections", "Detector", "DetectorConfig", "DetectorError", "DetectorOutput",
           "HandDetector", "SceneBoxes", "hand_detector", "load_detector", "save_detector", "wrap_detector"]
