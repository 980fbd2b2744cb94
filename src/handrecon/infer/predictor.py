"""Inference with a crop model (M3DHMR): `handrecon.load(name_or_path).predict(image, box, side, K)`.

One hand per call, in four stages shared by the torch and the onnxruntime backends:

1. `prepare`: the training pipeline's crop, deterministic: `data.transforms.crop_hand` around the
   box with the centre of `HandCrop`'s scale range (without a box the whole image is the crop,
   scale 1), resized to the network's S×S input, then `flip_left`: the network only ever sees
   right hands. Every view has a camera: K' (crop pixels) and R (original camera frame → view
   frame, the mirror included) with project(R X, K') = affine(project(X, K)).
2. the network: ImageNet-normalised (B, 3, S, S) → `uv_px` (B, 21, 2) view pixels, `verts`
   (B, V, 3) and `joints` (B, 21, 3) root-relative, metres, view camera frame.
3. `root_translation`: t with project(joints + t, K') ≈ uv (closed form + robust refinement,
   `geometry.root`), in the view frame.
4. `to_results`: X = Rᵀ (X' + t) and uv = affine⁻¹(uv'): the crop rotation and the left-hand
   mirror are undone, so a left hand's vertices are its true camera-space positions (faces:
   `ImageResult.faces_for("left")`).

Frames and units follow DESIGN.md: OpenCV camera (x right, y down, z forward), metres, pixels
with pixel centres at integers, boxes x1, y1, x2, y2.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from handrecon.infer.results import HandResult, ImageResult
from handrecon.utils.image import check_image

log = logging.getLogger(__name__)

DEFAULT_INPUT_SIZE = 128  # M3DHMR's input crop (paper §4.2)
SIDES = ("left", "right")

# A network maps ImageNet-normalised float32 crops (B, 3, S, S) to {"uv_px", "verts", "joints"}.
Network = Callable[[np.ndarray], dict[str, np.ndarray]]


# ----------------------------------------------------------------------------- input checks
def check_input_image(image: Any) -> np.ndarray:
    """RGB uint8 (H, W, 3) of at least 2 x 2 pixels, or a ValueError saying what is wrong."""
    image = check_image(image)
    if min(image.shape[:2]) < 2:
        raise ValueError(f"image is too small: {image.shape[1]} x {image.shape[0]} pixels")
    return image


def check_box(box: Any, width: int, height: int) -> np.ndarray:
    """(4,) float64 x1, y1, x2, y2 px, finite, positive size and overlapping the image."""
    b = np.asarray(box, np.float64)
    if b.shape != (4,) or not np.isfinite(b).all():
        raise ValueError(f"box must be 4 finite numbers x1, y1, x2, y2 in pixels, got {box!r}")
    if b[2] <= b[0] or b[3] <= b[1]:
        raise ValueError(f"box must have x2 > x1 and y2 > y1, got {b.tolist()}")
    if b[2] <= -0.5 or b[3] <= -0.5 or b[0] >= width - 0.5 or b[1] >= height - 0.5:
        raise ValueError(f"box {b.tolist()} lies outside the image ({width} x {height} pixels)")
    return b


def check_side(side: Any) -> str:
    if side is None:
        return "right"
    if side not in SIDES:
        raise ValueError(f"side must be 'left', 'right' or None (= right), got {side!r}")
    return side


def check_intrinsics(K: Any, width: int, height: int) -> np.ndarray:
    """(3, 3) float64 intrinsics; None gives `default_intrinsics` of the image."""
    from handrecon.geometry.camera import default_intrinsics

    if K is None:
        return default_intrinsics((width, height))
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all():
        raise ValueError(f"K must be a finite 3 x 3 intrinsics matrix, got shape {K.shape}")
    if not (K[0, 0] > 0 and K[1, 1] > 0) or not np.allclose(K[2], (0.0, 0.0, 1.0)) or K[1, 0] != 0:
        raise ValueError(f"K must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0 (pixels), got {K.tolist()}")
    return K


# ----------------------------------------------------------------------------- crops
@dataclass
class CropBatch:
    """What the network sees and how to map its outputs back.

    images: (B, S, S, 3) uint8 views (left hands mirrored). K_view: (B, 3, 3) view intrinsics.
    affine: (B, 2, 3) image px → view px. R: (B, 3, 3) camera frame → view frame (det -1 when
    mirrored). boxes: (B, 4) the crop boxes in image px. sides, K (B, 3, 3) image intrinsics,
    image_sizes [(H, W)].
    """

    images: np.ndarray
    K_view: np.ndarray
    affine: np.ndarray
    R: np.ndarray
    boxes: np.ndarray
    sides: list[str]
    K: np.ndarray
    image_sizes: list[tuple[int, int]]

    def normalised(self) -> np.ndarray:
        """(B, 3, S, S) float32 ImageNet-normalised network input (as `data.transforms.to_tensors`)."""
        from handrecon.data.transforms import IMAGENET_MEAN, IMAGENET_STD

        x = self.images.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        mean = np.asarray(IMAGENET_MEAN, np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(IMAGENET_STD, np.float32).reshape(1, 3, 1, 1)
        return np.ascontiguousarray((x - mean) / std)


def default_crop_scale() -> float:
    """Crop side / longest box side of the training crop's deterministic centre (`HandCrop`)."""
    from handrecon.data.transforms import HandCrop

    return float(np.mean(HandCrop().scale))


def prepare_crops(
    images: Sequence[np.ndarray],
    boxes: Sequence[Any],
    sides: Sequence[Any],
    Ks: Sequence[Any],
    size: int,
    crop_scale: float,
) -> CropBatch:
    """Validate inputs and cut the network views (see the module docstring, stage 1)."""
    from handrecon.data.schema import HandAnnotation, Sample
    from handrecon.data.transforms import crop_hand, flip_left

    out: dict[str, list] = {k: [] for k in ("images", "K_view", "affine", "R", "boxes", "sides", "K", "image_sizes")}
    for i, (image, box, side, K) in enumerate(zip(images, boxes, sides, Ks)):
        try:
            image = check_input_image(image)
            H, W = image.shape[:2]
            side = check_side(side)
            K = check_intrinsics(K, W, H)
            if box is None:  # the image is the crop: its pixel extent, no expansion
                box, scale = np.array([-0.5, -0.5, W - 0.5, H - 0.5]), 1.0
            else:
                box, scale = check_box(box, W, H), crop_scale
        except ValueError as e:
            if len(images) == 1:
                raise
            raise ValueError(f"item {i}: {e}") from None
        hand = HandAnnotation(side=side, box=box, keypoints_2d=np.zeros((21, 2)), visibility=np.zeros(21))
        view = flip_left(crop_hand(Sample.from_image(image, [hand], K=K), size, scale=scale))
        for key, value in (("images", view.image), ("K_view", view.K), ("affine", view.meta["crop_affine"]),
                           ("R", view.meta["crop_R"]), ("boxes", box), ("sides", side), ("K", K),
                           ("image_sizes", (H, W))):
            out[key].append(value)
    arrays = {k: np.stack(out[k]).astype(np.float64) for k in ("K_view", "affine", "R", "boxes", "K")}
    return CropBatch(images=np.stack(out["images"]), sides=out["sides"], image_sizes=out["image_sizes"], **arrays)


# ----------------------------------------------------------------------------- root and results
def root_translation(raw: dict[str, np.ndarray], K_view: np.ndarray, refine: bool = True) -> np.ndarray:
    """(B, 3) float64 t placing the root-relative joints in the view camera (metres)."""
    from handrecon.geometry.root import solve_root_translation

    joints = torch.as_tensor(raw["joints"], dtype=torch.float64)
    uv = torch.as_tensor(raw["uv_px"], dtype=torch.float64)
    return solve_root_translation(joints, uv, torch.as_tensor(K_view, dtype=torch.float64), refine).numpy()


def to_results(
    crops: CropBatch, raw: dict[str, np.ndarray], t: np.ndarray, faces_right: np.ndarray, faces_left: np.ndarray
) -> list[ImageResult]:
    """Back from the view frames to each image's camera (stage 4): one ImageResult per item."""
    from handrecon.geometry.crop import invert_affine, transform_points

    R = crops.R  # X_view = R @ X  =>  X = R^T @ X_view, i.e. rows X_view @ R
    joints = np.einsum("bni,bij->bnj", raw["joints"].astype(np.float64) + t[:, None], R)
    verts = np.einsum("bni,bij->bnj", raw["verts"].astype(np.float64) + t[:, None], R)
    uv = transform_points(raw["uv_px"].astype(np.float64), invert_affine(crops.affine))
    results = []
    for i, side in enumerate(crops.sides):
        hand = HandResult(
            box=crops.boxes[i].astype(np.float32), side=side, keypoints_2d=uv[i].astype(np.float32),
            keypoints_3d=joints[i].astype(np.float32), vertices=verts[i].astype(np.float32),
            cam_t=joints[i, 0].astype(np.float32), score=1.0,
        )
        results.append(ImageResult(K=crops.K[i], image_size=crops.image_sizes[i], hands=[hand],
                                   faces_right=faces_right, faces_left=faces_left))
    return results


# ----------------------------------------------------------------------------- the reconstructor
class Reconstructor:
    """A crop model behind `predict`. Build it with `handrecon.load`.

    network: normalised crops (B, 3, S, S) → {"uv_px", "verts", "joints"} (see module docstring).
    input_size: S. crop_scale: crop side / longest box side (training crop centre).
    faces_right / faces_left: (F, 3) outward winding per side. refine_root: robust root refinement.
    """

    def __init__(
        self,
        network: Network,
        input_size: int,
        faces_right: np.ndarray,
        faces_left: np.ndarray,
        crop_scale: float | None = None,
        refine_root: bool = True,
        card: dict | None = None,
        source: str = "",
    ) -> None:
        self.network = network
        self.input_size = int(input_size)
        self.crop_scale = default_crop_scale() if crop_scale is None else float(crop_scale)
        self.faces_right, self.faces_left = np.asarray(faces_right), np.asarray(faces_left)
        self.refine_root = refine_root
        self.card = card or {}
        self.source = source

    @property
    def hand_model(self) -> str | None:
        """Name of the hand model whose topology the vertices use ("openhand", "mano"), from the card."""
        return self.card.get("hand_model") or (self.card.get("kwargs") or {}).get("hand_model")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.source or 'unnamed'}, input {self.input_size}px, "
                f"crop scale {self.crop_scale:.3g}, {len(self.faces_right)} faces)")

    def predict(self, image: np.ndarray, box: Any = None, side: str | None = None, K: Any = None) -> ImageResult:
        """Reconstruct the hand in `box` (None: the whole image is a hand crop) of an RGB uint8
        (H, W, 3) image. side: "left" | "right" (None: right; M3DHMR has no side classifier).
        K: (3, 3) intrinsics of the image (None: `default_intrinsics`, principal point at the
        centre, focal 1.2 × the larger side). Returns one ImageResult with one HandResult.
        """
        return self.predict_batch([image], [box], [side], [K])[0]

    def predict_batch(
        self,
        images: Sequence[np.ndarray],
        boxes: Sequence[Any] | None = None,
        sides: Sequence[Any] | None = None,
        Ks: Sequence[Any] | None = None,
        batch_size: int = 32,
    ) -> list[ImageResult]:
        """`predict` over many images (one hand each), running the network `batch_size` at a time."""
        n = len(images)
        boxes, sides, Ks = ([None] * n if x is None else list(x) for x in (boxes, sides, Ks))
        if not len(boxes) == len(sides) == len(Ks) == n:
            raise ValueError(f"got {n} images but {len(boxes)} boxes, {len(sides)} sides and {len(Ks)} K; pass one each")
        results: list[ImageResult] = []
        for s in range(0, n, batch_size):
            crops = self.prepare(images[s:s + batch_size], boxes[s:s + batch_size], sides[s:s + batch_size],
                                 Ks[s:s + batch_size])
            raw = self.network(crops.normalised())
            t = root_translation(raw, crops.K_view, self.refine_root)
            results += to_results(crops, raw, t, self.faces_right, self.faces_left)
        return results

    def prepare(self, images, boxes, sides, Ks) -> CropBatch:
        """Stage 1: validated inputs → network views."""
        return prepare_crops(images, boxes, sides, Ks, self.input_size, self.crop_scale)


# ----------------------------------------------------------------------------- torch backend
class TorchNetwork:
    """The torch model as a `Network` (M3DHMR's export wrapper, `M3DHMRInference`)."""

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu") -> None:
        from handrecon.models.m3dhmr import M3DHMRInference

        self.device = torch.device(device)
        self.model = model
        self.module = M3DHMRInference(model).to(self.device).eval()

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        uv, verts, joints = self.module(torch.from_numpy(images).to(self.device))
        return {"uv_px": uv.float().cpu().numpy(), "verts": verts.float().cpu().numpy(),
                "joints": joints.float().cpu().numpy()}


def inference_settings(card: dict) -> tuple[int, float | None]:
    """(input size S, crop scale or None = `default_crop_scale`) from a checkpoint card.

    Read from ``card["inference"]`` ({"input_size", "crop_scale"}, what `tools/package_model.py`
    writes); else from the training dataset's kwargs in the card's config (``input_size``, and the
    centre of its ``scale`` range); else M3DHMR's 128 px.
    """
    inf = card.get("inference") or {}
    kwargs = (((card.get("config") or {}).get("data") or {}).get("train") or {}).get("kwargs") or {}
    size = inf.get("input_size", kwargs.get("input_size"))
    if size is None:
        log.warning("checkpoint card gives no input size (card['inference']['input_size']); using %d px",
                    DEFAULT_INPUT_SIZE)
        size = DEFAULT_INPUT_SIZE
    scale = inf.get("crop_scale")
    if scale is None and "scale" in kwargs:
        scale = float(np.mean(kwargs["scale"]))
    return int(size), scale


def hand_faces(hand_model: str) -> tuple[np.ndarray, np.ndarray]:
    """(faces_right, faces_left) (F, 3) of a hand model ("openhand" or a MANO pickle path)."""
    from handrecon.hand.model import HandModel
    from handrecon.models.m3dhmr.model import load_hand_model_data

    data = load_hand_model_data(hand_model)
    return HandModel(data, "right").faces.numpy(), HandModel(data, "left").faces.numpy()


def load_torch(path: str | Path, device: str | torch.device = "cpu", refine_root: bool | None = None) -> Reconstructor:
    """A Reconstructor from a checkpoint directory or run directory (`train.checkpoint.load_model`)."""
    from handrecon.train.checkpoint import load_model

    model, card = load_model(path, device=device)
    if card.get("architecture") != "m3dhmr":
        raise ValueError(f"{path}: a {card.get('architecture')!r} checkpoint; handrecon.load supports m3dhmr crop models")
    size, crop_scale = inference_settings(card)
    faces_right, faces_left = hand_faces(card.get("kwargs", {}).get("hand_model", "openhand"))
    refine = getattr(model, "refine_root", True) if refine_root is None else refine_root
    return Reconstructor(TorchNetwork(model, device), size, faces_right, faces_left, crop_scale, refine, card, str(path))


def load(name_or_path: str | Path, device: str = "cpu", threads: int | None = None,
         refine_root: bool | None = None) -> Reconstructor:
    """Load a model for inference: a shipped model name (`infer.registry`), a checkpoint or run
    directory (torch, on `device`), or an exported ``.onnx`` file (onnxruntime, CPU, `threads`
    intra-op threads). Returns a `Reconstructor` (``.predict``, ``.predict_batch``)."""
    from handrecon.infer.registry import resolve_model

    path = resolve_model(name_or_path)
    if path.suffix.lower() == ".onnx":
        from handrecon.infer.onnx import load_onnx

        return load_onnx(path, threads=threads, refine_root=refine_root)
    if threads is not None:
        torch.set_num_threads(threads)
    rec = load_torch(path, device, refine_root)
    rec.source = str(name_or_path)
    return rec


def random_checkpoint(path: str | Path, kwargs: dict | None = None, input_size: int = DEFAULT_INPUT_SIZE,
                      seed: int = 0) -> Path:
    """Write an M3DHMR checkpoint with random (initial) weights, through the same builder and
    checkpoint format as a trained one (tests, benchmarks without a trained model). At
    initialisation the decoder outputs about the hand model's rest mesh."""
    from handrecon.train.checkpoint import save_checkpoint
    from handrecon.train.config import MODELS

    kwargs = dict(kwargs or {})
    torch.manual_seed(seed)
    model = MODELS.build("m3dhmr", **kwargs)
    card = {"architecture": "m3dhmr", "kwargs": kwargs, "hand_model": model.hand_model_name,
            "inference": {"input_size": int(input_size), "crop_scale": default_crop_scale()},
            "note": f"random initial weights (seed {seed}), not trained"}
    return save_checkpoint(path, model, {}, card)
