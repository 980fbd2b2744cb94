"""The one sample schema every data source returns, and the one image reader everything uses.

A `Sample` is an image (RGB uint8 H×W×3, loaded lazily from `image_path` on first access of
`sample.image` and then cached, or given eagerly), its intrinsics K and a list of
`HandAnnotation`. Conventions (DESIGN.md): metres, OpenCV camera frame, pixels with pixel (r, c)
centred at (c, r), boxes x1,y1,x2,y2, OP21 keypoints, axis-angle poses, float32.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from handrecon.hand.keypoints import NUM_KEYPOINTS
from handrecon.utils.image import check_image

SIDES = ("left", "right")
# A hand showing fewer keypoints than this (hidden behind an occluder, outside the image) is no
# detection target: detectors are not trained to find it, and detection metrics ignore it.
MIN_VISIBLE_KEYPOINTS = 4


class DatasetError(ValueError):
    """A dataset on disk is missing, unreadable or inconsistent. The message names the file."""


IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
MAX_IMAGE_PIXELS = 150_000_000  # larger files are refused (docs/security.md); PIL itself refuses > 179 MP
WORK_PIXELS = 40_000_000  # `read_image(reduce=True)` decodes larger images reduced below this


ANIMATABLE_SUFFIXES = (".gif", ".webp", ".png")  # image formats that may hold several frames (GIF, WebP, APNG)


def is_video(path: str | os.PathLike) -> bool:
    """Whether a file is a video: by its suffix (`VIDEO_SUFFIXES`; any container ffmpeg reads), or
    an animated image (`is_animated_image`), which `handrecon reconstruct` reads frame by frame."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES or is_animated_image(path)


def is_animated_image(path: str | os.PathLike) -> bool:
    """Whether a GIF, WebP or PNG file holds more than one frame (an animation); False for a still
    image or a file PIL cannot open (`read_image` reports that)."""
    suffix = Path(path).suffix.lower()
    if suffix not in ANIMATABLE_SUFFIXES:
        return False
    if suffix == ".png":  # an APNG names its frame count (acTL) before the first image data (IDAT)
        try:
            with open(path, "rb") as f:
                head = f.read(1 << 16)
        except OSError:
            return False
        if b"acTL" not in head.split(b"IDAT", 1)[0]:
            return False
    from PIL import Image, UnidentifiedImageError  # PIL is slow to import; only readers need it

    try:
        with warnings.catch_warnings(), Image.open(path) as im:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return getattr(im, "n_frames", 1) > 1
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return False


@dataclass(frozen=True)
class LoadedImage:
    """An image read by `read_image`: RGB uint8 (h, w, 3), possibly reduced from the file's
    (H, W) = `size` (after EXIF orientation). `scale` = (w / W, h / H): pixel (u, v) of the file
    is (sx·(u + 0.5) − 0.5, sy·(v + 0.5) − 0.5) here (`geometry.camera.scale_intrinsics`)."""

    image: np.ndarray
    scale: tuple[float, float]
    size: tuple[int, int]

    @property
    def reduced(self) -> bool:
        return self.image.shape[:2] != tuple(self.size)


def error_detail(error: BaseException, path: str | os.PathLike) -> str:
    """A reader library's message about `path` without the path it repeats (PIL and PyAV name the
    file in their messages; ours name it once, in front)."""
    return str(error).replace(f": '{path}'", "").replace(f" '{path}'", "").replace(str(path), "the file")


def _to_rgb8(im) -> np.ndarray:
    """Any PIL mode → RGB uint8 (H, W, 3): 16-bit and 32-bit integer images are scaled from their
    full range (not clipped at 255), float images from [0, 1], palette/alpha/CMYK via PIL."""
    if im.mode.startswith("I;16") or im.mode == "I":
        a = np.asarray(im).astype(np.int64)
        full = 65535 if im.mode.startswith("I;16") or a.max() > 255 else 255
        a = np.clip(np.rint(a * (255.0 / full)), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=-1)
    if im.mode == "F":
        a = np.asarray(im, np.float64)
        if not np.isfinite(a).all():
            raise ValueError("float image holds NaN or infinite values")
        a = a * 255.0 if a.max() <= 1.0 else a
        return np.repeat(np.clip(np.rint(a), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
    return np.array(im if im.mode == "RGB" else im.convert("RGB"), dtype=np.uint8)


def _reduced(im, factor: int):
    """`im.reduce(factor)`, freeing the full-size pixels at once (memory: one full copy at most)."""
    small = im.reduce(factor)
    im.close()
    return small


def read_image(path: str | os.PathLike, reduce: bool = False) -> LoadedImage:
    """Read an image file as RGB uint8 with its EXIF orientation applied.

    Files over `MAX_IMAGE_PIXELS` are refused; animated images (several frames) are refused (take a
    frame out, or use video input). With `reduce`, an image over `WORK_PIXELS` is decoded at a
    reduced size (JPEG: in the decoder, so memory stays bounded; others: PIL's `reduce`) with the
    scale returned. Raises DatasetError naming the file and what to do."""
    from PIL import Image, ImageOps, UnidentifiedImageError  # PIL is slow to import; only readers need it

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: image file not found")
    try:
        with warnings.catch_warnings(), Image.open(path) as im:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies instead
            W, H = im.size
            H0, W0 = (W, H) if im.getexif().get(0x0112, 1) in (5, 6, 7, 8) else (H, W)  # EXIF 90° turns
            if W * H > MAX_IMAGE_PIXELS:
                raise DatasetError(f"{path}: {W} x {H} = {W * H / 1e6:.0f} megapixels is over handrecon's limit of "
                                   f"{MAX_IMAGE_PIXELS / 1e6:.0f} MP; downscale the image first")
            if getattr(im, "n_frames", 1) > 1:
                raise DatasetError(f"{path}: an animated image with {im.n_frames} frames; `handrecon reconstruct` "
                                   "reads it as a video, or save the frame you want as a still image (PNG/JPEG)")
            factor = 1
            if reduce and W * H > WORK_PIXELS:
                factor = int(np.ceil(np.sqrt(W * H / WORK_PIXELS)))
                if im.format == "JPEG":
                    im.draft("RGB", (W // factor, H // factor))  # decodes at 1/2, 1/4 or 1/8
                    factor = 1 if im.size == (W, H) else W / im.size[0]
                    if W * H / factor**2 > WORK_PIXELS:  # draft could not reduce enough
                        im = _reduced(im, int(np.ceil(np.sqrt(W * H / factor**2 / WORK_PIXELS))))
                else:
                    im = _reduced(im, factor)
            image = _to_rgb8(ImageOps.exif_transpose(im))
    except DatasetError:
        raise
    except Image.DecompressionBombError:
        raise DatasetError(f"{path}: over handrecon's limit of {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels; downscale the "
                           "image first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise DatasetError(f"{path}: cannot read image ({error_detail(e, path)}); the file is corrupt or not an "
                           "image") from None
    return LoadedImage(image, (image.shape[1] / W0, image.shape[0] / H0), (H0, W0))


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3), full size, EXIF orientation applied (`read_image`)."""
    return read_image(path).image


def box_from_keypoints(points: np.ndarray, valid: np.ndarray | None = None, pad: float = 0.0) -> np.ndarray:
    """Tight x1,y1,x2,y2 box (4,) float32 around (N, 2) pixel points, optionally only the `valid`
    ones and enlarged by `pad` × its size on every side. All-NaN box if no point is usable."""
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    ok = np.isfinite(pts).all(1)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool).reshape(-1)
    if not ok.any():
        return np.full(4, np.nan, dtype=np.float32)
    lo, hi = pts[ok].min(0), pts[ok].max(0)
    margin = (hi - lo) * pad
    return np.concatenate([lo - margin, hi + margin]).astype(np.float32)


def _array(x: Any, shape: tuple, name: str, dtype=np.float32, optional: bool = False) -> np.ndarray | None:
    """Coerce `x` to an array of `dtype`; check its shape (None entries match any size)."""
    if x is None:
        if optional:
            return None
        raise ValueError(f"{name} is required")
    a = np.asarray(x, dtype=dtype)
    if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
        want = str(tuple("N" if s is None else s for s in shape)).replace("'", "")
        raise ValueError(f"{name} must have shape {want}, got {a.shape}")
    return a


@dataclass
class HandAnnotation:
    """One hand. Shapes and units:

    side: "left", "right", or None when the source does not say (OneHand10K).
    box: (4,) float32 x1,y1,x2,y2 px. Loaders take the tight box around the projected mesh
        when vertices are known, else the dataset's own box, else around the valid 2D keypoints.
    keypoints_2d: (21, 2) float32 px, OP21.
    keypoints_valid: (21,) bool, the 2D keypoint is annotated (its position can be trusted);
        defaults to visibility > 0 when not given.
    visibility: (21,) float32 in [0, 1], 1 = annotated and not occluded. Sources without
        occlusion labels set it equal to keypoints_valid.
    keypoints_3d: (21, 3) float32 m, OpenCV camera frame, OP21, or None.
    vertices: (V, 3) float32 m, camera frame (a left hand's true positions), or None.
    pose: (J, 3) float32 axis-angle of the hand model's joints (J=16 for MANO), root first, the
        actual joint rotations (any model mean pose already included), camera frame; or None.
    shape: (S,) float32 shape coefficients, or None.
    transl: (3,) float32 m, translation parameter of the hand model, or None.
    hand_model: name of the model `pose`/`shape`/`transl` belong to ("mano", "openhand"), or None.
    meta: source-specific extras (raw parameters, documented per loader in docs/data_format.md).
    """

    side: str | None
    box: np.ndarray
    keypoints_2d: np.ndarray
    visibility: np.ndarray
    keypoints_valid: np.ndarray | None = None
    keypoints_3d: np.ndarray | None = None
    vertices: np.ndarray | None = None
    pose: np.ndarray | None = None
    shape: np.ndarray | None = None
    transl: np.ndarray | None = None
    hand_model: str | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.side not in SIDES and self.side is not None:
            raise ValueError(f"side must be 'left', 'right' or None, got {self.side!r}")
        n = NUM_KEYPOINTS
        self.box = _array(self.box, (4,), "box")
        self.keypoints_2d = _array(self.keypoints_2d, (n, 2), "keypoints_2d")
        self.visibility = _array(self.visibility, (n,), "visibility")
        if self.keypoints_valid is None:
            self.keypoints_valid = self.visibility > 0
        self.keypoints_valid = _array(self.keypoints_valid, (n,), "keypoints_valid", dtype=bool)
        self.keypoints_3d = _array(self.keypoints_3d, (n, 3), "keypoints_3d", optional=True)
        self.vertices = _array(self.vertices, (None, 3), "vertices", optional=True)
        self.pose = _array(self.pose, (None, 3), "pose", optional=True)
        self.shape = _array(self.shape, (None,), "shape", optional=True)
        self.transl = _array(self.transl, (3,), "transl", optional=True)

    @property
    def detectable(self) -> bool:
        """Whether a detector should find this hand: at least `MIN_VISIBLE_KEYPOINTS` of its
        keypoints visible (a hand hidden behind an occluder or outside the image is no detection
        target, and detection metrics ignore it), or no keypoint annotated (a box-only source)."""
        return int((self.visibility > 0).sum()) >= MIN_VISIBLE_KEYPOINTS or not self.keypoints_valid.any()

    def validate(self) -> "HandAnnotation":
        """Check value ranges (shapes are checked on construction); raise ValueError naming the problem."""
        valid = self.keypoints_valid
        if np.any(~np.isfinite(self.keypoints_2d[valid])):
            raise ValueError("keypoints_2d has non-finite values at valid keypoints")
        if np.all(np.isfinite(self.box)) and (self.box[2] < self.box[0] or self.box[3] < self.box[1]):
            raise ValueError(f"box must be x1,y1,x2,y2 with x2>=x1 and y2>=y1, got {self.box.tolist()}")
        if np.any((self.visibility < 0) | (self.visibility > 1)):
            raise ValueError("visibility must lie in [0, 1]")
        if np.any((self.visibility > 0) & ~valid):
            raise ValueError("a keypoint cannot be visible without being valid (annotated)")
        for name in ("keypoints_3d", "vertices", "pose", "shape", "transl"):
            a = getattr(self, name)
            if a is not None and not np.all(np.isfinite(a)):
                raise ValueError(f"{name} has non-finite values")
        if self.keypoints_3d is not None and np.any(self.keypoints_3d[:, 2] <= 0):
            raise ValueError("keypoints_3d must lie in front of the camera (z > 0, OpenCV frame)")
        return self


@dataclass
class Sample:
    """One image and its hands.

    image_path: file the image is read from (lazily, via `load_image`), or None if given eagerly.
    hands: the annotated hands (may be empty, e.g. a DexYCB frame without a hand).
    K: (3, 3) float32 intrinsics, or None when unknown (2D-only datasets).
    source: dataset name ("freihand", "ho3d", ...).
    sample_id: identifier unique within the dataset (official index/name where one exists).
    meta: source-specific extras (mask/depth paths, official index, ...).
    """

    image_path: Path | None
    hands: list[HandAnnotation]
    K: np.ndarray | None = None
    source: str = ""
    sample_id: str = ""
    meta: dict = field(default_factory=dict)
    _image: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.image_path is not None:
            self.image_path = Path(self.image_path)
        if self.image_path is None and self._image is None:
            raise ValueError("a Sample needs an image_path or an image")
        self.K = _array(self.K, (3, 3), "K", optional=True)

    @classmethod
    def from_image(cls, image: np.ndarray, hands: list[HandAnnotation], **kw: Any) -> "Sample":
        """A sample holding an in-memory RGB uint8 (H, W, 3) image."""
        return cls(image_path=None, hands=hands, _image=check_image(np.asarray(image)), **kw)

    @property
    def image(self) -> np.ndarray:
        """RGB uint8 (H, W, 3); read from `image_path` on first access, then cached."""
        if self._image is None:
            self._image = load_image(self.image_path)
        return self._image

    def validate(self) -> "Sample":
        """Check every hand and K; raise ValueError naming the sample and the problem."""
        try:
            if self.K is not None and not (np.all(np.isfinite(self.K)) and self.K[0, 0] > 0 and self.K[1, 1] > 0):
                raise ValueError(f"K must be finite with positive focal lengths, got {self.K.tolist()}")
            for i, h in enumerate(self.hands):
                try:
                    h.validate()
                except ValueError as e:
                    raise ValueError(f"hand {i}: {e}") from None
            if self._image is not None:
                check_image(np.asarray(self._image))
        except ValueError as e:
            raise ValueError(f"{self.source} sample {self.sample_id!r}: {e}") from None
        return self
