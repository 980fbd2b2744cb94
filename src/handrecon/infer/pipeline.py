"""The two-stage full-image pipeline: a hand detector finds every hand, a crop model reconstructs each.

``handrecon.load("handrecon-hand-detector+m3dhmr-openhand")`` (any ``DETECTOR+MODEL``: a detector
name or ``KIND:DIR`` from `handrecon.registry.DETECTORS`, and a crop model that `load` opens, e.g. an
exported ``.onnx``). Every hand comes back with the detector's score. Its side comes from the
detector's side head when it has one (handrecon's own detector does: a network on each box's crop
that reads the hand's chirality and whether its palm faces the camera, `models.handos.side_head`),
with its probability as ``side_score``; a detector without one gives every hand the side "right"
and says so in `side_source`. Boxes given by the caller replace the detections (the crop model
alone runs on them). Test-time augmentation covers both stages: a crop model loaded with
test-time rotations (``--tta``) puts its detector in test-time flip (the network also reads each
image's mirror image and the candidates are pooled before NMS and the box verifier).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from handrecon.eval.operating_point import DEFAULT_MAX_HANDS, DEFAULT_NMS_IOU, DEFAULT_SCORE_THRESHOLD
from handrecon.infer.detect import build_detector
from handrecon.infer.predictor import Predictor, check_input_images
from handrecon.infer.results import ImageResult

PIPELINE_SEPARATOR = "+"


class TwoStagePredictor:
    """detector (a `Detector` with ``detect``) + crop (a crop-model `Predictor`) behind `Predictor`'s
    ``predict`` / ``predict_batch``. score_threshold, nms_iou: the detector's operating point."""

    detects_hands = True

    def __init__(self, detector: Any, crop: Predictor, score_threshold: float = DEFAULT_SCORE_THRESHOLD,
                 nms_iou: float = DEFAULT_NMS_IOU, source: str = "", max_hands: int = DEFAULT_MAX_HANDS) -> None:
        if crop.detects_hands:
            raise ValueError(f"{crop.source}: a two-stage pipeline needs a crop model; this model finds hands itself, "
                             "load it on its own")
        if not 0.0 <= score_threshold <= 1.0 or not 0.0 < nms_iou <= 1.0:
            raise ValueError(f"score threshold must be in [0, 1] and NMS IoU in (0, 1], got {score_threshold}, {nms_iou}")
        self.detector, self.crop = detector, crop
        if len(crop.test_time_rotations) > 1 and hasattr(detector, "test_time_flip"):
            detector.test_time_flip = True  # --tta: both stages (module doc)
        self.score_threshold, self.nms_iou, self.source, self.max_hands = score_threshold, nms_iou, source, max_hands
        self.side_source = "detector side head" if getattr(detector, "side_head", None) is not None else \
            "none (every hand 'right': the detector has no side head)"

    @property
    def spec(self) -> dict[str, Any]:
        return self.crop.spec

    @property
    def card(self) -> dict[str, Any]:
        return {**self.crop.card, "pipeline": {"detector": self.detector.describe(), "crop_model": self.crop.source,
                                               "score_threshold": self.score_threshold, "nms_iou": self.nms_iou,
                                               "side_source": self.side_source}}

    @property
    def test_time_rotations(self) -> tuple[float, ...]:
        """The crop model's test-time rotations (degrees; (0,): one plain view per hand)."""
        return self.crop.test_time_rotations

    @property
    def settings(self) -> dict[str, Any]:
        """`Predictor.settings` plus the detector's operating point (score threshold, NMS IoU)."""
        return {**self.crop.settings, "model": self.source, "score_threshold": self.score_threshold,
                "nms_iou": self.nms_iou, "test_time_flip": bool(getattr(self.detector, "test_time_flip", False))}

    @property
    def faces_right(self) -> np.ndarray:
        return self.crop.faces_right

    @property
    def faces_left(self) -> np.ndarray:
        return self.crop.faces_left

    def at_threshold(self, score_threshold: float, max_hands: int | None = None) -> "TwoStagePredictor":
        """This pipeline keeping hands that score at least `score_threshold`, at most `max_hands` per
        image (None: as now; the same detector and crop model, shared)."""
        return TwoStagePredictor(self.detector, self.crop, score_threshold, self.nms_iou, self.source,
                                 self.max_hands if max_hands is None else max_hands)

    def __repr__(self) -> str:
        return f"TwoStagePredictor({self.source or 'unnamed'}: {self.detector.kind} + {self.crop!r})"

    def predict(self, image: np.ndarray, K: Any = None, boxes: Any = None, sides: Any = None) -> ImageResult:
        """Every hand of an RGB uint8 (H, W, 3) image (see `Predictor.predict`); boxes: prompts that
        replace the detections."""
        return self.predict_batch([image], [K], [boxes], [sides])[0]

    def predict_batch(self, images: Sequence[np.ndarray], Ks: Sequence[Any] | None = None,
                      boxes: Sequence[Any] | None = None, sides: Sequence[Any] | None = None,
                      batch_size: int = 32) -> list[ImageResult]:
        """Detect (where no boxes are given), then reconstruct every hand in batches of `batch_size` crops."""
        images = check_input_images(images)  # before the detector sees them
        n = len(images)
        boxes = [None] * n if boxes is None else list(boxes)
        sides = [None] * n if sides is None else list(sides)
        scores: list[np.ndarray | None] = [None] * n
        side_scores: list[np.ndarray | None] = [None] * n
        todo = [i for i in range(n) if boxes[i] is None]
        self._read_missing_sides(images, boxes, sides, side_scores)
        for s in range(0, len(todo), batch_size):
            chunk = todo[s: s + batch_size]
            found = self.detector.detect([images[i] for i in chunk], score_threshold=self.score_threshold,
                                         nms_iou=self.nms_iou, max_hands=self.max_hands)
            for i, det in zip(chunk, found):
                boxes[i], scores[i], side_scores[i] = det.boxes, det.scores, det.side_scores
                sides[i] = det.sides if det.sides is not None else ["right"] * len(det.boxes)
        results = self.crop.predict_batch(images, Ks, boxes, sides, batch_size=batch_size)
        for result, image_scores, image_side_scores in zip(results, scores, side_scores):
            if image_scores is not None:
                for hand, score in zip(result.hands, image_scores):
                    hand.score = float(score)
            if image_side_scores is not None:
                for hand, side_score in zip(result.hands, image_side_scores):
                    hand.side_score = None if side_score is None else float(side_score)
        return results

    def _read_missing_sides(self, images: Sequence[np.ndarray], boxes: list, sides: list, side_scores: list) -> None:
        """Prompted boxes given without a side (``--boxes`` entries, ``predict(boxes=...)``) take
        the detector's side head's reading, with its probability as ``side_score``; a side the
        caller gave stays, with no score. In place; without a side head nothing changes (the crop
        model takes a missing side as "right")."""
        reader = getattr(self.detector, "read_sides", None)  # a user's detector may not have it
        if reader is None:
            return
        for i, image_boxes in enumerate(boxes):
            if image_boxes is None or not len(image_boxes) or isinstance(sides[i], str):
                continue
            given = [None] * len(image_boxes) if sides[i] is None else list(sides[i])
            if len(given) != len(image_boxes) or all(s is not None for s in given):
                continue  # a count the crop model will refuse, or every side given
            read = reader(images[i], image_boxes)
            if read is None:  # no side head
                return
            sides[i] = [g if g is not None else r for g, r in zip(given, read.sides)]
            side_scores[i] = [None if g is not None else float(p) for g, p in zip(given, read.side_scores)]


def is_pipeline(name: str) -> bool:
    """True for a ``DETECTOR+MODEL`` name."""
    return PIPELINE_SEPARATOR in str(name)


def with_detector(predictor: Any, detector: str, score_threshold: float = DEFAULT_SCORE_THRESHOLD,
                  threads: int | None = None) -> Any:
    """`predictor` for full images: `detector` (a name or ``KIND:DIR``, `infer.detect.build_detector`,
    on `threads` CPU threads) in front of a crop model; a two-stage pipeline already built (``A+B``)
    at `score_threshold`; a model that finds hands itself as it is."""
    if isinstance(predictor, TwoStagePredictor):
        return predictor.at_threshold(score_threshold)
    if predictor.detects_hands:
        return predictor
    return TwoStagePredictor(build_detector(detector, threads), predictor, score_threshold=score_threshold,
                             source=f"{detector}{PIPELINE_SEPARATOR}{predictor.source}")
