"""What finding hands needs, without torch: the detector's input preparation (`DetectorConfig`,
`letterbox`, `prepare_arrays`) and the views it reads (`network_views`: the image, its tiles, their
mirror images), reading its outputs (`select_instances`, `select_detections` into `Detections`), a
box verifier's re-scoring (`VerifierSettings`, `verify_detections`), and the side head's box crops
and the verifier's RoI crops. The torch `Detector` (`detector.py`) and the
onnxruntime one (`onnx_detector.py`) share them, so both return the same detections."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from handrecon.geometry.boxes import apply_box_deltas, cxcywh_to_xyxy, nms
from handrecon.geometry.crop import crop_transform, warp_image
from handrecon.utils.checks import check_each
from handrecon.utils.logistic import sigmoid
from handrecon.utils.image import check_image, normalize_images

SIDE_HEAD_DIR = "side_head"  # a detector folder's side head (model.safetensors + card.json)
VERIFIER_DIR = "box_verifier"  # a detector folder's box verifier (model.safetensors + card.json + serving.json)
VERIFIER_SETTINGS = "serving.json"

# The ONNX interface of an exported detector and side head (`onnx_export` writes, `onnx_detector` reads).
INPUT_NAME, OUTPUT_NAMES = "pixel_values", ("scores", "boxes")
SIDE_INPUT_NAME, SIDE_OUTPUT_NAME, DELTAS_OUTPUT_NAME = "crops", "logits", "deltas"
METADATA_KEY, METADATA_FORMAT = "handrecon-detector", 1
OPSET = 17
# Network inputs per detector call (torch or onnxruntime): memory grows with the largest batch
# (onnxruntime's arenas keep it; 16 tiled images are 160 views: peak 2070 -> 897 MiB at 32).
MAX_VIEWS_PER_RUN = 32
TILE_OVERLAP = 0.25  # neighbouring tiles of `tile_boxes` share a quarter of a tile (chosen on dev wide scenes)


class DetectorError(ValueError):
    """A detector that cannot be loaded or used, with what to do about it."""


@dataclass(frozen=True)
class DetectorConfig:
    """How images are prepared for a detector and how its outputs are read.

    input_size: long side of the network input in px. pad_multiple: the padded input's sides are
    multiples of this. square: pad every image to input_size x input_size (detectors without a
    pixel mask trained that way, such as handrecon's own). hand_label: the class index that means
    "hand" (closed-set detectors); Grounding DINO scores the prompt's "hand" token instead.
    """

    input_size: int = 640
    pad_multiple: int = 32
    square: bool = False
    hand_label: int = 0

    @property
    def square_side(self) -> int:
        """The side in px of a square input: input_size rounded up to a multiple of pad_multiple."""
        return -(-self.input_size // self.pad_multiple) * self.pad_multiple


@dataclass
class Detections:
    """Hands found in one image: boxes (N, 4) x1, y1, x2, y2 in the image's pixels, scores (N,)
    in [0, 1], query (N,) the decoder query each came from; highest score first. sides: N of
    "left" | "right" and p_left (N,) from the detector's side head, None without one."""

    boxes: np.ndarray
    scores: np.ndarray
    query: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sides: list[str] | None = None
    p_left: np.ndarray | None = None

    @property
    def side_scores(self) -> np.ndarray | None:
        """(N,) the side head's probability of each reported side, None without sides."""
        if self.sides is None or self.p_left is None:
            return None
        p_left = np.asarray(self.p_left, np.float64)
        return np.where(np.array(self.sides) == "left", p_left, 1.0 - p_left)


@dataclass(frozen=True)
class VerifierSettings:
    """How a box verifier (`box_verifier.py`) re-scores a detector's candidates: the `top_k`
    best candidates per image scoring >= `candidate_threshold` after NMS are verified, and served
    with score (s_det ** `detector_weight` * p_hand) ** `exponent` (`verified_scores`; a weight
    below 1 trusts the verifier more than the detector's score). passes: how many times a
    refining verifier reads its boxes; from the second on it reads the boxes it moved (a cascade:
    the score and the last move come from the box it last looked at). tiled_exponent: the exponent
    served when the detector also reads tiles (`network_views`; more candidates per image, so more
    chances of a false one: calibrated apart, `tools/calibrate_tiles.py`); None: `exponent`."""

    top_k: int = 20
    candidate_threshold: float = 0.01
    exponent: float = 0.5
    passes: int = 1
    detector_weight: float = 1.0
    tiled_exponent: float | None = None

    def __post_init__(self) -> None:
        if not (self.top_k >= 1 and 0 <= self.candidate_threshold < 1 and self.exponent > 0
                and self.passes >= 1 and 0 < self.detector_weight <= 1
                and (self.tiled_exponent is None or self.tiled_exponent > 0)):
            raise ValueError(f"top_k and passes must be >= 1, candidate_threshold in [0, 1), exponent > 0, "
                             f"detector_weight in (0, 1]; got top_k={self.top_k}, passes={self.passes}, "
                             f"candidate_threshold={self.candidate_threshold}, exponent={self.exponent}, "
                             f"detector_weight={self.detector_weight}, tiled_exponent={self.tiled_exponent}")

    def served(self, tiled: bool) -> "VerifierSettings":
        """The settings that serve a reading with tiles (`tiled`: `tiled_exponent` as the exponent)
        or without."""
        if not tiled or self.tiled_exponent is None:
            return self
        return replace(self, exponent=self.tiled_exponent)


def read_verifier_settings(folder: str | Path) -> VerifierSettings:
    """The `VerifierSettings` in ``folder/serving.json``; ValueError saying what to do otherwise."""
    path = Path(folder) / VERIFIER_SETTINGS
    try:
        raw = json.loads(path.read_text())
        optional = {"passes", "detector_weight", "tiled_exponent"}  # written before they existed: the defaults
        settings = VerifierSettings(**{k: raw[k] for k in VerifierSettings.__dataclass_fields__
                                       if k in raw or k not in optional})
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: unreadable box-verifier settings ({e}); write them with "
                         "tools/calibrate_box_verifier.py") from None
    return settings


def verified_scores(scores: np.ndarray, p_hand: np.ndarray, exponent: float, detector_weight: float = 1.0) -> np.ndarray:
    """Served scores of verified candidates: (s_det ** detector_weight * p_hand) ** exponent, (N,) in [0, 1]."""
    detector = np.asarray(scores, np.float64) ** float(detector_weight)
    return (detector * np.asarray(p_hand, np.float64)) ** float(exponent)


def reachable_floor(score_threshold: float, exponent: float, detector_weight: float = 1.0) -> float:
    """The lowest detector score from which a verified score (`verified_scores`, p_hand <= 1) can
    still reach `score_threshold`: score_threshold ** (1 / (exponent * detector_weight)), less a
    hair for rounding."""
    power = 1.0 / (float(exponent) * float(detector_weight))
    return max(float(score_threshold), 0.0) ** power * (1.0 - 1e-6)


def candidate_selection(verifier: Any, score_threshold: float, max_hands: int, tiled: bool = False) -> tuple[float, int]:
    """The (score threshold, count) at which a detector selects its candidates: the request's
    without a verifier; with one, its candidates (at most top_k, down to its candidate threshold or
    the request's, the lower) that can still be served at `score_threshold` (`reachable_floor`).
    Leaving out the others changes no served detection: their verified scores stay below the
    threshold, and a lower-scored box never suppresses a higher one in either NMS; it spares the
    verifier most of its crops at a served threshold (at 0.5 the shipped verifier's floor is a
    detector score of 0.42). The verifier reads no more than `max_hands` candidates either (the
    highest-scored): its crops are what a low threshold costs (a video's track threshold, 0.2,
    reads 8 per frame: `infer.video`). tiled: the image was read with tiles (`VerifierSettings.served`)."""
    if verifier is None:
        return score_threshold, max_hands
    settings = verifier.settings.served(tiled)
    floor = reachable_floor(score_threshold, settings.exponent, settings.detector_weight)
    return max(min(score_threshold, settings.candidate_threshold), floor), min(settings.top_k, max_hands)


def verified_candidates(verifier: Any, image: np.ndarray, found: Detections, nms_iou: float,
                        tiled: bool = False) -> Detections:
    """One image's candidates `found` as `verifier` serves them, before any threshold: each moved by
    its deltas (a verifier that refines; clipped to the image; `passes` times, each pass reading the
    boxes the last one moved), scored `verified_scores` with the last pass's p_hand, then greedy NMS
    at `nms_iou` on the moved boxes (two boxes moved onto one hand keep the better), highest first;
    scores in float64, as thresholds compare them; `tiled` as `candidate_selection`."""
    settings = verifier.settings.served(tiled)
    moved = found.boxes
    for _ in range(settings.passes):
        p_hand, moved = verifier.verify(image, moved)
        moved = np.clip(moved, 0, [image.shape[1], image.shape[0]] * 2).astype(np.float32)
    scores = verified_scores(found.scores, p_hand, settings.exponent, settings.detector_weight)
    keep = nms(moved, scores, nms_iou)
    return Detections(moved[keep], scores[keep], found.query[keep])


def verify_detections(verifier: Any, images: list[np.ndarray], found: list[Detections], score_threshold: float,
                      nms_iou: float, max_hands: int, tiled: bool = False) -> list[Detections]:
    """`found` (candidates selected by `candidate_selection`) as `verifier` (a
    `box_verifier.BoxVerifierHead` or `onnx_detector.OnnxBoxVerifier`; None: unchanged) serves them
    (`verified_candidates`), those >= `score_threshold`, at most `max_hands`; `tiled` as
    `candidate_selection`."""
    if verifier is None:
        return found
    verified = []
    for image, det in zip(images, found):
        det = verified_candidates(verifier, image, det, nms_iou, tiled)
        keep = np.flatnonzero(det.scores >= score_threshold)[:max_hands]
        verified.append(Detections(det.boxes[keep], det.scores[keep].astype(np.float32), det.query[keep]))
    return verified


@dataclass(frozen=True)
class View:
    """One network input of `network_views`: the pixels `box` (x0, y0, x1, y1; x1, y1 exclusive) of
    image `index` (the whole image or a tile of it), read as they are or `mirrored`."""

    index: int
    box: tuple[int, int, int, int]
    mirrored: bool = False


def tile_boxes(height: int, width: int, grid: int, overlap: float = TILE_OVERLAP) -> np.ndarray:
    """The `grid` x `grid` tiles of a `height` x `width` image, each 1 / (grid - (grid - 1) *
    overlap) of its height and width, neighbours sharing `overlap` of a tile, the outer ones on the
    image's edges: (grid ** 2, 4) int x0, y0, x1, y1 px (x1, y1 exclusive), row by row."""
    frac = 1.0 / (grid - (grid - 1) * overlap)
    th, tw = max(1, round(height * frac)), max(1, round(width * frac))
    y0, x0 = np.meshgrid(np.linspace(0, height - th, grid).round().astype(int),
                         np.linspace(0, width - tw, grid).round().astype(int), indexing="ij")
    return np.stack([x0.ravel(), y0.ravel(), x0.ravel() + tw, y0.ravel() + th], 1)


def network_views(images: list[np.ndarray], test_time_flip: bool = False, tiles: int = 1) -> tuple[list[np.ndarray], list[View]]:
    """What a detector's network reads for `images` and where each input comes from: every image
    whole and (tiles > 1) its `tile_boxes` grid of `tiles` x `tiles`, each read at the network's
    input size, so a hand that is small in a large photo is read larger (`handrecon detect
    --tiles`); then (test_time_flip) the mirror image of each of those. Returns the inputs and
    their `View`s; `find_hands` pools each image's views' candidates."""
    if int(tiles) != tiles or tiles < 1:
        raise ValueError(f"tiles must be a whole number >= 1 (1: the whole image only), got {tiles!r}")
    views = []
    for i, image in enumerate(images):
        h, w = image.shape[:2]
        views.append(View(i, (0, 0, w, h)))
        if tiles > 1:
            views += [View(i, tuple(int(v) for v in box)) for box in tile_boxes(h, w, int(tiles))]
    if test_time_flip:
        views += [View(v.index, v.box, mirrored=True) for v in views]
    inputs = []
    for v in views:
        x0, y0, x1, y1 = v.box
        pixels = images[v.index][y0:y1, x0:x1]
        inputs.append(np.ascontiguousarray(pixels[:, ::-1]) if v.mirrored else pixels)
    return inputs, views


def find_hands(images: list[np.ndarray], boxes: np.ndarray, scores: np.ndarray, input_size: tuple[int, int],
               scales: np.ndarray, score_threshold: float, nms_iou: float, max_hands: int, verifier: Any = None,
               side_head: Any = None, views: list[View] | None = None) -> list[Detections]:
    """Every detector's `detect` after its network (torch and onnxruntime alike): boxes (V, Q, 4)
    and scores (V, Q) of the padded inputs of `input_size` (H, W), scales (V,) of the
    `network_views` `views` (None: one input per image, the image itself) -> per image
    `select_detections` over its views' queries (a verifier's candidates when there is one,
    `candidate_selection`), `verify_detections`, `attach_sides`; a reading with tiles is served
    with its own calibration (`VerifierSettings.served`)."""
    views = views if views is not None else network_views(images)[1]
    tiled = any(v.box != (0, 0, images[v.index].shape[1], images[v.index].shape[0]) for v in views)
    threshold, count = candidate_selection(verifier, score_threshold, max_hands, tiled)
    found = []
    for i in range(len(images)):
        own = [k for k, v in enumerate(views) if v.index == i]
        found.append(select_detections(boxes[own], scores[own], input_size, scales[own], [views[k] for k in own],
                                       threshold, nms_iou, count))
    return attach_sides(side_head, images, verify_detections(verifier, images, found, score_threshold, nms_iou, max_hands,
                                                             tiled))


def head_sources(side_head: Any, verifier: Any) -> dict:
    """A detector's `describe` entries for its side head and box verifier (their folders), when it has them."""
    heads = {"side_head": side_head, "box_verifier": verifier}
    return {key: head.source for key, head in heads.items() if head is not None}


def sides_from_p_left(p_left: np.ndarray) -> list[str]:
    """A side head's reading: "left" where p_left > 0.5, else "right"."""
    return ["left" if p > 0.5 else "right" for p in p_left]


def select_instances(scores: np.ndarray, boxes_xyxy: np.ndarray, score_threshold: float, nms_iou: float,
                     max_hands: int) -> np.ndarray:
    """Inference filtering: indices of the queries scoring at least `score_threshold` that
    survive greedy NMS at `nms_iou`, highest score first, at most `max_hands`."""
    keep = np.flatnonzero(np.asarray(scores) >= score_threshold)
    return keep[nms(boxes_xyxy[keep], scores[keep], nms_iou)][:max_hands]


def resize_long_side(image: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """RGB uint8 (H, W, 3) resized (bilinear) so that its long side is `size` px, and the scale
    (network px per image px). The one resize of detector inputs, in training and inference."""
    h, w = image.shape[:2]
    s = size / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    if (nh, nw) == (h, w):
        return image, 1.0
    return np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.BILINEAR)), s


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """RGB uint8 (H, W, 3) -> (size, size, 3): the long side resized to `size` (`resize_long_side`),
    padded black at the bottom and right; and the scale (network px per image px). How the
    square-input detectors (handrecon's own) and HandOS see an image, in training and inference."""
    resized, s = resize_long_side(image, size)
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    return canvas, s


def prepare_arrays(images: list[np.ndarray], config: DetectorConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The detector input of `config` for RGB uint8 images (H, W, 3): pixels (B, 3, H', W') float32
    normalised, pixel_mask (B, H', W') int64 1 on real pixels, scale (B,) network px per image px.
    Square inputs are padded black before normalising (as `letterbox` and the training data are);
    masked ones with zeros after normalising, as transformers' image processors pad. A bad image is
    a ValueError saying which and what is wrong."""
    check_each(images, check_image, label="image")
    resized = [resize_long_side(img, config.input_size) for img in images]
    if config.square:
        H = W = config.square_side
    else:
        H = -(-max(r.shape[0] for r, _ in resized) // config.pad_multiple) * config.pad_multiple
        W = -(-max(r.shape[1] for r, _ in resized) // config.pad_multiple) * config.pad_multiple
    batch = np.zeros((len(images), H, W, 3), np.uint8)
    mask = np.zeros((len(images), H, W), np.int64)
    for i, (r, _) in enumerate(resized):
        batch[i, : r.shape[0], : r.shape[1]] = r
        mask[i, : r.shape[0], : r.shape[1]] = 1
    pixels = normalize_images(batch)
    if not config.square:
        pixels = pixels * mask[:, None].astype(np.float32)
    return pixels, mask, np.asarray([s for _, s in resized])


def query_boxes(boxes: np.ndarray, input_size: tuple[int, int], scale: float, view: View) -> np.ndarray:
    """Queries' boxes (Q, 4) cxcywh normalised to the padded input of `input_size` (H, W), read on
    `view` at `scale` (network px per image px) -> (Q, 4) x1, y1, x2, y2 in the image's pixels,
    clipped to the view (a mirrored view's boxes flipped back)."""
    H, W = input_size
    x0, y0, x1, y1 = view.box
    xyxy = cxcywh_to_xyxy(np.asarray(boxes, np.float32)) * [W, H, W, H] / scale
    xyxy = np.clip(xyxy, 0, [x1 - x0, y1 - y0] * 2)
    if view.mirrored:
        xyxy[:, [0, 2]] = (x1 - x0) - xyxy[:, [2, 0]]
    return xyxy + np.array([x0, y0, x0, y0], np.float32)


def select_detections(boxes: np.ndarray, scores: np.ndarray, input_size: tuple[int, int], scales: np.ndarray,
                      views: list[View], score_threshold: float, nms_iou: float, max_hands: int) -> Detections:
    """One image's detections from the queries of its network `views`: boxes (V, Q, 4) cxcywh
    normalised to the padded input of `input_size` (H, W), scores (V, Q), scales (V,); every
    view's boxes in the image's pixels (`query_boxes`), then `select_instances` over them all
    (query: the index into the V * Q pooled queries)."""
    xyxy = np.concatenate([query_boxes(b, input_size, s, v) for b, s, v in zip(boxes, scales, views)])
    s = np.asarray(scores, np.float32).reshape(-1)
    keep = select_instances(s, xyxy, score_threshold, nms_iou, max_hands)
    return Detections(xyxy[keep], s[keep], keep)


def attach_sides(side_head: Any, images: list[np.ndarray], found: list[Detections]) -> list[Detections]:
    """`found` with sides and p_left from `side_head` (a `side_head.SideHead` or an
    `onnx_detector.OnnxSideHead`; None: unchanged)."""
    if side_head is not None:
        for image, det in zip(images, found):
            det.sides, det.p_left = side_head.sides(image, det.boxes)
    return found


def read_box_sides(side_head: Any, image: np.ndarray, boxes: np.ndarray) -> Detections | None:
    """Given boxes (N, 4) x1, y1, x2, y2 px of an RGB image as `Detections` (score 1) with
    `side_head`'s sides and p_left; None without a side head."""
    if side_head is None:
        return None
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    sides, p_left = side_head.sides(image, boxes)
    return Detections(boxes, np.ones(len(boxes)), sides=sides, p_left=p_left)


def read_box_crops(network: Callable[[np.ndarray], np.ndarray], image: np.ndarray, boxes: np.ndarray, size: int,
                   box_scale: float) -> tuple[list[str], np.ndarray]:
    """A side head's reading of boxes (N, 4) x1, y1, x2, y2 px of an RGB image, torch and onnxruntime
    alike: `box_crops` of `size` px, ImageNet-normalised, through `network` ((N, 3, S, S) float32 ->
    (N,) logits of "left") -> (sides, p_left (N,) float64)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not len(boxes):
        return [], np.zeros(0)
    logits = network(normalize_images(box_crops(image, boxes, size, box_scale)))
    p_left = sigmoid(logits)
    return sides_from_p_left(p_left), p_left


def read_roi_crops(network: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]], image: np.ndarray,
                   boxes: np.ndarray, size: int, context: float) -> tuple[np.ndarray, np.ndarray]:
    """A box verifier's reading of boxes (N, 4) x1, y1, x2, y2 px of an RGB image, torch and
    onnxruntime alike: `roi_crops`, ImageNet-normalised, through `network` ((N, 3, S, S) float32 ->
    (N,) logits of "a hand", and (N, 4) Fast R-CNN deltas or None) -> p_hand (N,) float64 and the
    boxes moved by the deltas (`geometry.boxes.apply_box_deltas`; unmoved without)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not len(boxes):
        return np.zeros(0), boxes
    logits, deltas = network(normalize_images(roi_crops(image, boxes, size, context)))
    moved = boxes if deltas is None else apply_box_deltas(boxes, deltas)
    return sigmoid(logits), moved


def box_crops(image: np.ndarray, boxes: np.ndarray, size: int, scale: float | np.ndarray,
              shifts: np.ndarray | None = None) -> np.ndarray:
    """(N, size, size, 3) uint8 square crops of an RGB image around boxes (N, 4) x1, y1, x2, y2 px
    (`geometry.crop.crop_transform`): side = scale (one, or (N,)) x the box's long side (at least
    1 px), centred on the box plus shifts (N, 2) (fractions of the side)."""
    return warp_crops(image, box_crop_affines(boxes, size, scale, shifts), size)


def box_crop_affines(boxes: np.ndarray, size: int, scale: float | np.ndarray,
                     shifts: np.ndarray | None = None) -> np.ndarray:
    """(N, 2, 3) image px -> crop px of `box_crops`'s crops (same arguments)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1.0)  # a box clipped to nothing still gets a crop
    scales = np.broadcast_to(np.asarray(scale, np.float64), (len(boxes),))
    shifts = np.zeros((len(boxes), 2)) if shifts is None else shifts
    return np.array([crop_transform(box, size, scale=s, shift=shift).affine
                     for box, s, shift in zip(boxes, scales, shifts)]).reshape(-1, 2, 3)


def roi_crop_affines(boxes: np.ndarray, size: int, context: float) -> np.ndarray:
    """(N, 2, 3) image px -> crop px of `roi_crops`: each box (N, 4) x1, y1, x2, y2 px (at least
    1 px a side), centred, stretched per axis so that `context` x its width and height fill the crop."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    w = np.maximum(boxes[:, 2] - boxes[:, 0], 1.0)
    h = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
    sx, sy = size / (w * context), size / (h * context)
    affines = np.zeros((len(boxes), 2, 3))
    affines[:, 0, 0], affines[:, 1, 1] = sx, sy
    affines[:, 0, 2] = (size - 1) / 2 - sx * (boxes[:, 0] + boxes[:, 2]) / 2
    affines[:, 1, 2] = (size - 1) / 2 - sy * (boxes[:, 1] + boxes[:, 3]) / 2
    return affines


def roi_crops(image: np.ndarray, boxes: np.ndarray, size: int, context: float) -> np.ndarray:
    """(N, size, size, 3) uint8 RoI crops of an RGB image around boxes (N, 4) x1, y1, x2, y2 px, as
    RoIAlign pools a box: stretched per axis (`roi_crop_affines`), zeros outside the image. The box
    verifier's input."""
    return warp_crops(image, roi_crop_affines(boxes, size, context), size)


def warp_crops(image: np.ndarray, affines: np.ndarray, size: int) -> np.ndarray:
    """(N, size, size, 3) uint8 crops of an RGB image through (N, 2, 3) affines (`geometry.crop.warp_image`)."""
    crops = np.zeros((len(affines), size, size, 3), np.uint8)
    for i, affine in enumerate(affines):
        crops[i] = warp_image(image, affine, size)
    return crops
