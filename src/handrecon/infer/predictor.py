"""The one inference protocol: `Predictor.predict(image, K=None, boxes=None, sides=None)`.

Every trained model, of any family and on either backend (torch, onnxruntime), is served by a
`Predictor` (built by `handrecon.load`, `infer.load`). The predictor owns what is the same for
every model: input checks, the default camera (`geometry.camera.default_intrinsics`), batching,
the hand model's faces and the typed results (`infer.results`). The family's inference adapter
(`models.adapter.InferenceAdapter`, found by the card's architecture) owns pre-processing and the
way back to the image camera; the backend (`infer.torch_backend.TorchNetwork` or
`infer.onnx.OnnxNetwork`) runs the network between them. Nothing here imports torch: a model
exported to ONNX is served on onnxruntime alone.

boxes are prompts: a crop model (M3DHMR) reconstructs one hand per box (without boxes, the whole
image is one hand crop); a full-image model finds its own hands. sides: one per box ("left" |
"right"); a crop model without a side classifier takes None as "right".
Frames and units follow DESIGN.md: OpenCV camera (x right, y down, z forward), metres, pixels with
pixel centres at integers, boxes x1, y1, x2, y2.
"""

from __future__ import annotations

import pickle
from typing import Any, Callable, Sequence

import numpy as np

from handrecon.geometry.boxes import check_box
from handrecon.geometry.camera import default_intrinsics
from handrecon.hand.load import load_hand_model_data, side_faces, topology_sha256
from handrecon.infer.results import HandResult, ImageResult
from handrecon.models.adapter import Hands, InferenceAdapter, Prepared
from handrecon.registry import ADAPTERS, ConfigError
from handrecon.utils.checks import check_each
from handrecon.utils.image import check_image

SIDES = ("left", "right")
FOCAL_RANGE = (0.1, 20.0)  # fx, fy as multiples of the image's longer side: fields of view 157° to 2.9°
# A staged network's second stage runs on at most this many rows per call: the mesh decoder's spiral
# gathers are memory-bound, and 8 rows keep their tensors in the cores' caches; onnxruntime's arenas
# also grow to the largest batch they see. Decoder on 32 rows at one thread (2026-12-06, Intel Xeon):
# float32 178 -> 120 ms, int8 179 -> 128, bf16 138 -> 117 (32 -> 8 rows per call); 300 crops,
# `reconstruct --crop` with the exported model: 0.915x the wall time, peak memory 729 -> 489 MiB.
SECOND_STAGE_ROWS = 8

# A network maps the adapter's input array (B, 3, S, S) float32 (and the named extra inputs of
# `Prepared.extra`, if any) to {output name: array}. One whose `staged` is true also runs in the
# adapter's two stages (`InferenceAdapter.second_stage_outputs`): ``first_stage(inputs)`` → the
# other outputs, ``second_stage({link name: rows})`` → the second-stage outputs of those rows.
Network = Callable[..., dict[str, np.ndarray]]


# ----------------------------------------------------------------------------- input checks
def check_input_image(image: Any) -> np.ndarray:
    """RGB uint8 (H, W, 3) of at least 2 x 2 pixels, or a ValueError saying what is wrong."""
    image = check_image(image)
    if min(image.shape[:2]) < 2:
        raise ValueError(f"image is too small: {image.shape[1]} x {image.shape[0]} pixels (at least 2 x 2 are needed)")
    return image


def check_input_images(images: Sequence[Any]) -> list[np.ndarray]:
    """`check_input_image` on each; a bad one is a ValueError, an `ItemError` in a batch of several."""
    return check_each(images, check_input_image)


def check_boxes(boxes: Any, width: int, height: int) -> np.ndarray | None:
    """None, or (N, 4) float64 boxes each passing `check_box` (one box may be given flat)."""
    if boxes is None:
        return None
    if np.ndim(boxes) == 1 and len(boxes) == 4:
        boxes = [boxes]
    return np.stack([check_box(b, width, height) for b in boxes]) if len(boxes) else np.zeros((0, 4))


def check_sides(sides: Any, count: int | None) -> list[str | None] | None:
    """None, or a list of "left" | "right" | None (None: not given, the model reads it), one per box
    when `count` is given."""
    if sides is None:
        return None
    if isinstance(sides, str):
        sides = [sides]
    sides = list(sides)
    for s in sides:
        if s is not None and s not in SIDES:
            raise ValueError(f"side must be 'left', 'right' or None (the model reads it), got {s!r}")
    if count is not None and len(sides) != count:
        raise ValueError(f"got {count} boxes but {len(sides)} sides; pass one side per box")
    return sides


def check_side_priors(priors: Any, count: int) -> np.ndarray | None:
    """None, or (count,) finite float64 log-odds of "left", one per box."""
    if priors is None:
        return None
    try:
        out = np.asarray(priors, np.float64).reshape(-1)
    except (TypeError, ValueError):
        out = np.zeros(0)
    if len(out) != count or not np.isfinite(out).all():
        raise ValueError(f"side priors: give {count} finite log-odds (one per box), got {priors!r}")
    return out


def check_intrinsics(K: Any, width: int, height: int) -> np.ndarray:
    """(3, 3) float64 intrinsics; None gives `default_intrinsics` of the image."""
    if K is None:
        return default_intrinsics((width, height))
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all():
        raise ValueError(f"K must be a finite 3 x 3 intrinsics matrix, got shape {K.shape}")
    if not (K[0, 0] > 0 and K[1, 1] > 0) or not np.allclose(K[2], (0.0, 0.0, 1.0)) or K[1, 0] != 0:
        raise ValueError(f"K must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0 (pixels), got {K.tolist()}")
    lo, hi = (r * max(width, height) for r in FOCAL_RANGE)
    if not (lo <= K[0, 0] <= hi and lo <= K[1, 1] <= hi):
        raise ValueError(f"focal length fx={K[0, 0]:.4g}, fy={K[1, 1]:.4g} px is outside {lo:.4g}-{hi:.4g} px "
                         f"({FOCAL_RANGE[0]:g}-{FOCAL_RANGE[1]:g} x the image's longer side, fields of view 157 to "
                         "2.9 degrees); give it in this image's pixels")
    if abs(K[0, 1]) > K[0, 0] or not (-width <= K[0, 2] <= 2 * width and -height <= K[1, 2] <= 2 * height):
        raise ValueError(f"K's skew or principal point is implausible for a {width} x {height} image: {K.tolist()}")
    return K


# ----------------------------------------------------------------------------- building blocks
def build_adapter(card: dict, where: str) -> InferenceAdapter:
    """The inference adapter of a card's family, configured by the card's inference spec."""
    spec = card.get("inference")
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: the card has no inference spec ('inference'); re-save the checkpoint with "
                         "this handrecon version")
    try:
        return ADAPTERS.get(str(card.get("architecture")))(spec)
    except ConfigError as e:
        raise ValueError(f"{where}: {e}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{where}: the card's inference spec is incomplete or invalid ({e!r})") from None


def check_threads(threads: int | None) -> None:
    """ValueError unless `threads` is None or a positive integer."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive number of CPU threads, got {threads!r}")


# ----------------------------------------------------------------------------- the predictor
class Predictor:
    """A model behind `predict` (see the module docstring). Build it with `handrecon.load`.

    adapter: the family's inference adapter (its spec says input size, normalisation, crop rule
    and hand model). network: the backend. refine_root: robust root refinement. model: the torch
    module (torch backend only; what `export_onnx` exports). card: the checkpoint card.
    """

    def __init__(self, adapter: InferenceAdapter, network: Network, refine_root: bool = True,
                 card: dict | None = None, source: str = "", model: Any = None) -> None:
        self.adapter, self.network, self.refine_root, self.model = adapter, network, refine_root, model
        self.card, self.source = card or {}, source
        try:
            data = load_hand_model_data(adapter.spec["hand_model"])
        except (OSError, ValueError, pickle.UnpicklingError) as e:  # a missing, refused or broken hand model file
            raise ValueError(f"{source or 'model'}: cannot load its hand model {adapter.spec['hand_model']!r}: {e}") from None
        if topology_sha256(data) != adapter.spec["topology_sha256"]:
            raise ValueError(f"{source or 'model'}: the hand model {adapter.spec['hand_model']!r} here has another mesh "
                             "topology than the one the model was trained with; give it the same hand model files")
        self.hand_model = data.name
        self.faces_right, self.faces_left = side_faces(data)

    @property
    def spec(self) -> dict[str, Any]:
        """The model's inference spec (input size, normalisation, crop rule, hand model, topology)."""
        return self.adapter.spec

    @property
    def test_time_rotations(self) -> tuple[float, ...]:
        """In-plane rotations (degrees) each hand is seen at, averaged (weighted by heatmap sharpness); (0,): one plain view."""
        return self.adapter.test_time_rotations

    @property
    def second_look(self) -> bool:
        """True when a crop model looks again at the hands its first look is unsure of."""
        return self.adapter.looks_twice

    @property
    def precision(self) -> str:
        """The network's ``precision`` ("float32" where it has none): "int8" where it runs int8
        convolutions (an int8 export, onnxruntime), "bfloat16" under bf16 autocast (torch)."""
        return getattr(self.network, "precision", "float32")

    @property
    def settings(self) -> dict[str, Any]:
        """What produced a result, as written beside it (per-image JSON, a video's resume check):
        the model's name or path, its test-time rotations (degrees), whether it looks twice and
        its precision."""
        return {"model": self.source, "test_time_rotations": [float(a) for a in self.test_time_rotations],
                "second_look": self.second_look, "precision": self.precision}

    @property
    def detects_hands(self) -> bool:
        """True for a full-image model that finds its own hands; False for a crop model."""
        return self.adapter.detects_hands

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.source or 'unnamed'}, {self.card.get('architecture', '?')}, "
                f"input {self.adapter.input_size}px, {self.hand_model} hand model)")

    def predict(self, image: np.ndarray, K: Any = None, boxes: Any = None, sides: Any = None,
                side_priors: Any = None) -> ImageResult:
        """Reconstruct the hands of an RGB uint8 (H, W, 3) image.

        K: (3, 3) intrinsics (None: `default_intrinsics`, principal point at the centre, focal
        1.2 × the larger side). boxes: (N, 4) px x1, y1, x2, y2 prompts (None: the model's own
        detections, or for a crop model the whole image as one hand). sides: one per box (or one
        for the whole image), "left" | "right" | None; a crop model reads a side not given from
        the crop and its mirror (`models.m3dhmr.inference`), adding `side_priors` ((N,) log-odds
        of "left" from another reader) where given. Returns an ImageResult with every hand.
        """
        return self.predict_batch([image], [K], [boxes], [sides], side_priors=[side_priors])[0]

    def predict_batch(self, images: Sequence[np.ndarray], Ks: Sequence[Any] | None = None,
                      boxes: Sequence[Any] | None = None, sides: Sequence[Any] | None = None,
                      batch_size: int = 32, side_priors: Sequence[Any] | None = None) -> list[ImageResult]:
        """`predict` over many images (per-image K, boxes, sides and side priors), `batch_size` images
        per network call."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        n = len(images)
        Ks, boxes, sides, priors = ([None] * n if x is None else list(x) for x in (Ks, boxes, sides, side_priors))
        if len(priors) != n:
            raise ValueError(f"got {n} images but {len(priors)} side-prior lists; pass one per image (or None)")
        if not len(Ks) == len(boxes) == len(sides) == n:
            raise ValueError(f"got {n} images but {len(Ks)} K, {len(boxes)} box lists and {len(sides)} side lists; "
                             "pass one of each per image (or None)")
        results: list[ImageResult] = []
        for s in range(0, n, batch_size):
            chunk = slice(s, s + batch_size)
            prepared = self.prepare(images[chunk], Ks[chunk], boxes[chunk], sides[chunk], priors[chunk])
            prepared, outputs = self.run_network(prepared)
            results += self.results(prepared, self.adapter.postprocess(prepared, outputs, self.refine_root)
                                    if outputs else [_no_hands() for _ in prepared.image_sizes])
        return results

    def run_network(self, prepared: Prepared) -> tuple[Prepared, dict[str, np.ndarray]]:
        """The network's outputs for a prepared batch ({} for no input), with the batch they belong
        to: the adapter's second look (`InferenceAdapter.second_look`) may append rows after the
        first pass, round after round until it returns None. A staged network computes its
        second-stage outputs for the rows the adapter keeps only (`InferenceAdapter.rows_to_finish`),
        `SECOND_STAGE_ROWS` at a time; their other rows are NaN, which postprocessing never reads."""
        if not len(prepared.inputs):
            return prepared, {}
        staged = not prepared.extra and getattr(self.network, "staged", False)

        def first_pass(inputs: np.ndarray) -> dict[str, np.ndarray]:
            return self.network.first_stage(inputs) if staged else self.network(inputs, **prepared.extra)

        outputs = first_pass(prepared.inputs)
        while not prepared.extra and (more := self.adapter.second_look(prepared, outputs)) is not None:
            added = first_pass(more.inputs[len(prepared.inputs):])
            outputs = {name: np.concatenate([rows, added[name]]) for name, rows in outputs.items()}
            prepared = more
        if not staged:
            return prepared, outputs
        rows = self.adapter.rows_to_finish(prepared, outputs)
        parts = [self.network.second_stage({name: outputs[name][chunk] for name in self.adapter.stage_link})
                 for chunk in np.array_split(rows, max(1, -(-len(rows) // SECOND_STAGE_ROWS)))]
        second = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        for name, rows_out in second.items():
            full = np.full((len(prepared.inputs), *rows_out.shape[1:]), np.nan, rows_out.dtype)
            full[rows] = rows_out
            outputs[name] = full
        return prepared, outputs

    def prepare(self, images: Sequence[np.ndarray], Ks: Sequence[Any], boxes: Sequence[Any],
                sides: Sequence[Any], side_priors: Sequence[Any] | None = None) -> Prepared:
        """Checked inputs → the adapter's network batch. A bad item is a ValueError naming its index."""
        side_priors = [None] * len(images) if side_priors is None else list(side_priors)

        def check_item(item: tuple) -> tuple:
            image, K, image_boxes, image_sides, priors = item
            image = check_input_image(image)
            H, W = image.shape[:2]
            image_boxes = check_boxes(image_boxes, W, H)
            image_sides = check_sides(image_sides, None if image_boxes is None else len(image_boxes))
            if image_boxes is None and image_sides is not None and len(image_sides) != 1:
                raise ValueError(f"without boxes give one side (the whole image as one hand), got {len(image_sides)}")
            return image, check_intrinsics(K, W, H), image_boxes, image_sides, \
                check_side_priors(priors, 1 if image_boxes is None else len(image_boxes))

        checked = check_each(list(zip(images, Ks, boxes, sides, side_priors)), check_item)
        images, Ks, boxes, sides, side_priors = (list(column) for column in zip(*checked)) if checked else ([],) * 5
        return self.adapter.preprocess(images, Ks, boxes, sides, side_priors)

    def results(self, prepared: Prepared, hands: list[Hands]) -> list[ImageResult]:
        """The adapter's stacked arrays → typed `ImageResult`s (float32 arrays, image camera)."""
        out = []
        for K, size, h in zip(prepared.Ks, prepared.image_sizes, hands):
            f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
            out.append(ImageResult(K=K, image_size=tuple(size), faces_right=self.faces_right, faces_left=self.faces_left,
                                   hands=[HandResult(box=f32(h.boxes[i]), side=h.sides[i], keypoints_2d=f32(h.keypoints_2d[i]),
                                                     keypoints_3d=f32(h.keypoints_3d[i]), vertices=f32(h.vertices[i]),
                                                     cam_t=f32(h.cam_t[i]),
                                                     score=None if np.isnan(h.scores[i]) else float(h.scores[i]),
                                                     side_score=_value_at(h.side_scores, i),
                                                     heatmap_peak=_value_at(h.heatmap_peaks, i))
                                          for i in range(len(h))]))
        return out


def _value_at(values: np.ndarray | None, i: int) -> float | None:
    """Entry i of an optional per-hand array (`Hands.side_scores`, `Hands.heatmap_peaks`) as a float,
    None where the array is absent or the entry NaN (the model did not give it)."""
    if values is None or np.isnan(values[i]):
        return None
    return float(values[i])


def _no_hands() -> Hands:
    empty = np.zeros((0, 0, 3))
    return Hands(np.zeros((0, 4)), np.zeros(0), [], np.zeros((0, 21, 2)), np.zeros((0, 21, 3)), empty, np.zeros((0, 3)))

