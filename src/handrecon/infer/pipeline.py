"""The two-stage full-image pipeline: a hand detector finds every hand, a crop model reconstructs each.

``handrecon.load("handrecon-hand-detector+m3dhmr-openhand")`` (any ``DETECTOR+MODEL``: a detector
name or ``KIND:DIR`` from `handrecon.registry.DETECTORS`, and a crop model that `load` opens, e.g. an
exported ``.onnx``). Every hand comes back with the detector's score, or with ``hand_presence``
(`--thorough`) a hand score: the detector's score re-read with the crop model's keypoint sharpness
on the box (`presence_scores`; the crop model reads every candidate that could reach the threshold,
`candidate_floor`), which finds more hands at the same precision than the detector's score alone,
for 2-4x the time: the box verifier reads the weaker candidates too (docs/inference.md, "Hand
presence"). Its side is read by
the crop model from the crop and its mirror (`models.m3dhmr.inference`), with the detector's side
head (handrecon's own detector has one: a network on each box's crop that reads the hand's
chirality and whether its palm faces the camera, `models.handos.side_head`) as a prior: its logit
weighted by `SIDE_HEAD_PRIOR_WEIGHT` adds to the crop model's log-odds; ``side_score`` is the
combined probability of the reported side. Boxes given by the caller replace the detections (the
crop model alone runs on them); a side the caller gives is kept. Test-time augmentation covers both stages: a crop model loaded with
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
from handrecon.utils.logistic import log_peak, logit, sigmoid

PIPELINE_SEPARATOR = "+"
# The weight of the detector's side-head logit beside the crop model's two-view reading (log-odds of
# "left" = SIDE_EVIDENCE_SCALE · log peak ratio + this · side-head logit): a logistic fit, without
# intercept (mirror symmetry), of the shipped crop model and side head on the ground-truth boxes of
# 806 hands of our own scenes (seed 7000) and 390 foreign ones (seed 8), neither a training nor a
# test set (docs/inference.md, "Left or right").
SIDE_HEAD_PRIOR_WEIGHT = 0.309
# Hand presence: a detection's score is re-read with the crop model's keypoint sharpness on its box
# (`HandResult.heatmap_peak`): logit(hand score) = a · logit(detector score) + b · log(peak) + c.
# A logistic fit (a match at IoU 0.5 against the rest) of the shipped detector's candidates (score
# >= 0.01 after NMS) with the shipped crop model's peaks on dev scenes of both renderers and hand-free
# scenes (seeds 7000, 8, 7100: 3813 candidates), c shifted by logit(0.63) so that the served threshold
# 0.5 is the operating point the served rule picked on those dev sets (own scenes' precision >= 0.92,
# at most 4 % of hand-free scenes with a hand). docs/inference.md, "Hand presence".
PRESENCE_WEIGHTS = (1.5241, 1.8396, 6.0024)
# The largest peak counted on when choosing which candidates the crop model reads (the candidate
# floor): above it a candidate under the floor could still pass. The largest on the dev candidates:
# 0.15 with the stage-12 crop model, 0.149 with stage 14, 0.148 with stages 16 and 17, 0.1531 with the
# O12-O14 average served since 2026-12-06 (tools/fit_side_and_presence.py prints it; 0.15 until 2026-12-07).
PEAK_BOUND = 0.16


class TwoStagePredictor:
    """detector (a `Detector` with ``detect``) + crop (a crop-model `Predictor`) behind `Predictor`'s
    ``predict`` / ``predict_batch``. score_threshold: the hands' minimum score; nms_iou: the
    detector's NMS; max_hands: at most this many candidates are read and hands kept per image;
    hand_presence: score each hand with the crop model's heatmap peak on its box (module doc);
    False: the detector's scores alone."""

    detects_hands = True

    def __init__(self, detector: Any, crop: Predictor, score_threshold: float = DEFAULT_SCORE_THRESHOLD,
                 nms_iou: float = DEFAULT_NMS_IOU, source: str = "", max_hands: int = DEFAULT_MAX_HANDS,
                 hand_presence: bool = False) -> None:
        if crop.detects_hands:
            raise ValueError(f"{crop.source}: a two-stage pipeline needs a crop model; this model finds hands itself, "
                             "load it on its own")
        if not 0.0 <= score_threshold <= 1.0 or not 0.0 < nms_iou <= 1.0:
            raise ValueError(f"score threshold must be in [0, 1] and NMS IoU in (0, 1], got {score_threshold}, {nms_iou}")
        self.detector, self.crop = detector, crop
        if len(crop.test_time_rotations) > 1 and hasattr(detector, "test_time_flip"):
            detector.test_time_flip = True  # --tta: both stages (module doc)
        self.score_threshold, self.nms_iou, self.source, self.max_hands = score_threshold, nms_iou, source, max_hands
        self.hand_presence = hand_presence
        head = "the detector's side head" if getattr(detector, "side_head", None) is not None else ""
        self.side_source = f"crop model (crop and mirror){' + ' + head if head else ''}"

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
    def second_look(self) -> bool:
        """True when the crop model looks again at unsure hands (`Predictor.second_look`)."""
        return self.crop.second_look

    @property
    def settings(self) -> dict[str, Any]:
        """`Predictor.settings` plus the detector's operating point (score threshold, NMS IoU), how
        it reads each image (test-time flip, tiles) and whether hand presence is scored (`--thorough`)."""
        return {**self.crop.settings, "model": self.source, "score_threshold": self.score_threshold,
                "nms_iou": self.nms_iou, "test_time_flip": bool(getattr(self.detector, "test_time_flip", False)),
                "tiles": int(getattr(self.detector, "tiles", 1)), "hand_presence": self.hand_presence}

    @property
    def faces_right(self) -> np.ndarray:
        return self.crop.faces_right

    @property
    def faces_left(self) -> np.ndarray:
        return self.crop.faces_left

    def at_threshold(self, score_threshold: float, max_hands: int | None = None,
                     hand_presence: bool | None = None) -> "TwoStagePredictor":
        """This pipeline keeping hands that score at least `score_threshold`, at most `max_hands` per
        image, scoring hand presence or not (None: as now; the same detector and crop model, shared)."""
        return TwoStagePredictor(self.detector, self.crop, score_threshold, self.nms_iou, self.source,
                                 self.max_hands if max_hands is None else max_hands,
                                 self.hand_presence if hand_presence is None else hand_presence)

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
        priors: list[np.ndarray | None] = [None] * n
        todo = [i for i in range(n) if boxes[i] is None]
        self._prompted_side_priors(images, boxes, sides, priors)
        floor = candidate_floor(self.score_threshold) if self.hand_presence else self.score_threshold
        for s in range(0, len(todo), batch_size):
            chunk = todo[s: s + batch_size]
            found = self.detector.detect([images[i] for i in chunk], score_threshold=floor,
                                         nms_iou=self.nms_iou, max_hands=self.max_hands)
            for i, det in zip(chunk, found):
                boxes[i], scores[i], sides[i] = det.boxes, det.scores, [None] * len(det.boxes)
                priors[i] = side_head_prior(det.p_left)
        results = self.crop.predict_batch(images, Ks, boxes, sides, batch_size=batch_size, side_priors=priors)
        for result, image_scores in zip(results, scores):
            if image_scores is not None:  # detected: scored, thresholded, best first, at most max_hands
                peaks = [hand.heatmap_peak if self.hand_presence else None for hand in result.hands]
                hand_scores = presence_scores(image_scores, peaks)
                keep = [j for j in np.argsort(-hand_scores, kind="stable") if hand_scores[j] >= self.score_threshold]
                result.hands = [result.hands[j] for j in keep[: self.max_hands]]
                for hand, j in zip(result.hands, keep):
                    hand.score = float(hand_scores[j])
        return results

    def _prompted_side_priors(self, images: Sequence[np.ndarray], boxes: list, sides: list, priors: list) -> None:
        """Prompted boxes given without a side (``--boxes`` entries, ``predict(boxes=...)``) get the
        detector's side head's reading as their prior (the crop model reads the side); a side the
        caller gave stays. In place; without a side head nothing changes."""
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
            sides[i], priors[i] = given, side_head_prior(read.p_left)


def presence_scores(detector_scores: np.ndarray, peaks: Sequence[float | None],
                    weights: tuple[float, float, float] = PRESENCE_WEIGHTS) -> np.ndarray:
    """(N,) detector scores and the crop model's heatmap peaks on those boxes → (N,) hand scores
    (`weights` (a, b, c), the shipped `PRESENCE_WEIGHTS`); the detector's scores as they are where a
    peak is missing (a crop model exported before `heatmap_peak`, or one without heatmaps)."""
    s = np.asarray(detector_scores, np.float64)
    if not len(s) or any(p is None for p in peaks):
        return s
    a, b, c = weights
    return sigmoid(a * logit(s) + b * log_peak(peaks) + c)


def candidate_floor(threshold: float) -> float:
    """The detector score below which no candidate can reach hand score `threshold` with a heatmap
    peak up to `PEAK_BOUND`: the crop model reads every candidate above it."""
    if threshold <= 0.0 or threshold >= 1.0:
        return float(threshold)
    a, b, c = PRESENCE_WEIGHTS
    return float(min(threshold, sigmoid((logit(threshold) - c - b * np.log(PEAK_BOUND)) / a)))


def side_head_prior(p_left: np.ndarray | None) -> np.ndarray | None:
    """A side head's p_left (N,) → the prior log-odds of "left" the crop model's reading adds to
    (`SIDE_HEAD_PRIOR_WEIGHT` · logit); None without a side head."""
    return None if p_left is None else SIDE_HEAD_PRIOR_WEIGHT * logit(p_left)


def is_pipeline(name: str) -> bool:
    """True for a ``DETECTOR+MODEL`` name."""
    return PIPELINE_SEPARATOR in str(name)


def with_detector(predictor: Any, detector: str, score_threshold: float = DEFAULT_SCORE_THRESHOLD,
                  threads: int | None = None, hand_presence: bool = False) -> Any:
    """`predictor` for full images: `detector` (a name or ``KIND:DIR``, `infer.detect.build_detector`,
    on `threads` CPU threads) in front of a crop model, scoring hand presence if `hand_presence`
    (`--thorough`); a two-stage pipeline already built (``A+B``) at `score_threshold` and that
    scoring; a model that finds hands itself as it is."""
    if isinstance(predictor, TwoStagePredictor):
        return predictor.at_threshold(score_threshold, hand_presence=hand_presence)
    if predictor.detects_hands:
        return predictor
    return TwoStagePredictor(build_detector(detector, threads), predictor, score_threshold=score_threshold,
                             source=f"{detector}{PIPELINE_SEPARATOR}{predictor.source}", hand_presence=hand_presence)
