"""Augmentation of `Sample`s with exact geometry, and collation to training tensors.

Every random transform takes a numpy Generator and is deterministic given its state. All
geometric transforms keep images, K and annotations consistent:

- `crop_hand` / `HandCrop`: square crop around a hand (its deterministic case without a `Sample`,
  the view a crop model sees at inference, is `geometry.crop.crop_view`) with scale / shift / rotation; K becomes
  the crop's virtual camera K' and 3D keypoints, vertices, the root rotation and transl are
  rotated by the crop's R (geometry.crop), so ``project(X', K') == crop-transformed 2D``.
- `flip`: horizontal mirror; a left hand becomes a right hand (the mirror of the scene: x -> -x
  in 3D, cx -> W-1-cx); recorded in ``sample.meta["flipped"]`` and ``hand.meta["flipped"]``.
- `letterbox`: resize into (H, W) keeping the aspect ratio, padding the rest; updates K and boxes.
- `two_views`: two augmentations of one sample plus the transform from view 1 to view 2.
- `color_jitter`: brightness / contrast / saturation / white balance.
- `to_tensors`: a cropped sample -> the dict of tensors the M3DHMR crop model trains on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from handrecon.data.schema import HandAnnotation, Sample
from handrecon.geometry.boxes import clip_to_image
from handrecon.geometry.camera import inside_image, scale_intrinsics
from handrecon.geometry.crop import (
    crop_transform, invert_affine, mirror_intrinsics, mirror_maps, transform_points, warp_image,
)
from handrecon.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from handrecon.hand.model import mirror_axis_angle
from handrecon.utils.image import IMAGENET_MEAN, IMAGENET_STD, normalize_images

DEFAULT_CROP_SCALE = 1.3  # crop side / longest box side when none is given
_MIRROR_X = np.array([-1.0, 1.0, 1.0], np.float32)  # x -> -x


# ----------------------------------------------------------------------------- helpers
def _replace(h: HandAnnotation, **changes) -> HandAnnotation:
    return dataclasses.replace(h, meta={**h.meta, **changes.pop("meta", {})}, **changes)


# ----------------------------------------------------------------------------- crop
def _crop_hand_annotation(h: HandAnnotation, affine: np.ndarray, R: np.ndarray, K_crop: np.ndarray | None, size: int) -> HandAnnotation:
    kp2d = transform_points(h.keypoints_2d.astype(np.float64), affine)
    rot = lambda x: None if x is None else (x.astype(np.float64) @ R.T).astype(np.float32)  # noqa: E731
    visible = kp2d[(h.visibility * inside_image(kp2d, size, size)) > 0]
    if h.vertices is not None and K_crop is not None:  # the mesh and every visible keypoint, as in the synth engine
        uv = rot(h.vertices).astype(np.float64) @ K_crop.T
        uv = np.concatenate([uv[:, :2] / uv[:, 2:], visible])
        box = np.r_[uv.min(0), uv.max(0)]
    else:
        x1, y1, x2, y2 = h.box
        corners = transform_points(np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float64), affine)
        box = np.r_[corners.min(0), corners.max(0)]
    pose, transl = h.pose, h.transl
    if pose is not None:
        root = axis_angle_to_matrix(torch.as_tensor(pose[0], dtype=torch.float64))
        pose = pose.copy()
        pose[0] = matrix_to_axis_angle(torch.as_tensor(R) @ root).numpy()
    if transl is not None:
        # the model rotates about its wrist joint j0 = wrist - transl, so R applied to the posed
        # hand changes transl to R·wrist - j0
        transl = None if h.keypoints_3d is None else (R @ h.keypoints_3d[0] - h.keypoints_3d[0] + transl).astype(np.float32)
    return _replace(
        h, box=clip_to_image(box, size, size).astype(np.float32), keypoints_2d=kp2d.astype(np.float32),
        visibility=h.visibility * inside_image(kp2d, size, size), keypoints_3d=rot(h.keypoints_3d),
        vertices=rot(h.vertices), pose=pose, transl=transl,
    )


def crop_hand(sample: Sample, size: int = 224, hand_index: int = 0, scale: float = DEFAULT_CROP_SCALE,
              shift: tuple[float, float] = (0.0, 0.0), rotation_deg: float = 0.0) -> Sample:
    """Square `size` crop around hand `hand_index`'s box (side = longest box side * scale, centre
    moved by shift * side, content rotated by rotation_deg counter-clockwise on screen).

    Returns a Sample holding the crop, K' (None if K is None) and all hands transformed, the
    cropped hand first. meta["crop_affine"] (2, 3) image px -> crop px, meta["crop_R"] (3, 3)
    original camera -> crop camera (`flip` composes its mirror into both).
    """
    if not 0 <= hand_index < len(sample.hands):
        raise IndexError(f"hand_index {hand_index} out of range: the sample has {len(sample.hands)} hand(s)")
    ct = crop_transform(sample.hands[hand_index].box, size, sample.K, scale, shift, rotation_deg)
    image = warp_image(sample.image, ct.affine, size)
    order = [hand_index] + [i for i in range(len(sample.hands)) if i != hand_index]
    hands = [_crop_hand_annotation(sample.hands[i], ct.affine, ct.R, ct.K, size) for i in order]
    meta = {**sample.meta, "crop_affine": ct.affine, "crop_R": ct.R, "crop_of": sample.sample_id}
    return Sample.from_image(image, hands, K=None if ct.K is None else ct.K.astype(np.float32),
                             source=sample.source, sample_id=sample.sample_id, meta=meta)


@dataclass
class HandCrop:
    """Random hand-centred crop. scale: range of the crop side over the longest box side;
    shift: max centre offset (fraction of the side, uniform per axis); rotation_deg: max
    absolute in-plane rotation; hand_index: the hand to crop (None: a random one)."""

    size: int = 224
    scale: tuple[float, float] = (DEFAULT_CROP_SCALE, DEFAULT_CROP_SCALE)
    shift: float = 0.08
    rotation_deg: float = 45.0
    hand_index: int | None = 0

    def params(self, sample: Sample, rng: np.random.Generator) -> dict:
        hand = int(rng.integers(len(sample.hands))) if self.hand_index is None else self.hand_index
        return {"hand_index": hand, "scale": float(rng.uniform(*self.scale)),
                "shift": tuple(float(x) for x in rng.uniform(-self.shift, self.shift, 2)),
                "rotation_deg": float(rng.uniform(-self.rotation_deg, self.rotation_deg))}

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return crop_hand(sample, self.size, **self.params(sample, rng))


# ----------------------------------------------------------------------------- flip
def flip(sample: Sample) -> Sample:
    """Mirror the sample horizontally: image columns reversed, u -> W-1-u, K's cx -> W-1-cx and
    skew negated, 3D x negated (vertices, keypoints, transl), poses mirrored, sides swapped.

    The result is the exact image of the mirrored scene, so a left hand becomes a right hand
    whose (right-topology) vertices are the mirrored positions. Toggles meta["flipped"].
    """
    image = np.ascontiguousarray(sample.image[:, ::-1])
    H, W = image.shape[:2]
    K = None if sample.K is None else mirror_intrinsics(sample.K, W)
    hands = []
    for h in sample.hands:
        kp2d = h.keypoints_2d.copy()
        kp2d[:, 0] = W - 1 - kp2d[:, 0]
        x1, y1, x2, y2 = h.box
        mirror = lambda x: None if x is None else (x * _MIRROR_X).astype(np.float32)  # noqa: E731
        pose = None if h.pose is None else mirror_axis_angle(torch.as_tensor(h.pose)).numpy()
        side = {"left": "right", "right": "left"}.get(h.side) if h.side else None
        hands.append(_replace(
            h, side=side, box=np.array([W - 1 - x2, y1, W - 1 - x1, y2], np.float32), keypoints_2d=kp2d,
            keypoints_3d=mirror(h.keypoints_3d), vertices=mirror(h.vertices), pose=pose, transl=mirror(h.transl),
            meta={"flipped": not h.meta.get("flipped", False)},
        ))
    meta = {**sample.meta, "flipped": not sample.meta.get("flipped", False)}
    if "crop_affine" in meta:  # keep "original image/camera -> this view" maps exact (now with a mirror)
        meta["crop_affine"], meta["crop_R"] = mirror_maps(meta["crop_affine"], meta["crop_R"], W)
    return Sample.from_image(image, hands, K=K, source=sample.source, sample_id=sample.sample_id, meta=meta)


def flip_left(sample: Sample, hand_index: int = 0) -> Sample:
    """`flip` the sample if hand `hand_index` is a left hand, so the model always sees a right hand."""
    return flip(sample) if sample.hands and sample.hands[hand_index].side == "left" else sample


# ----------------------------------------------------------------------------- letterbox
def letterbox(sample: Sample, size: tuple[int, int], fill: int = 0) -> Sample:
    """Resize the sample into `size` = (H, W) keeping its aspect ratio, centred, padded with `fill`.

    A point moves as u -> sx·(u + 0.5) - 0.5 + pad_x (likewise v), with sx = new width / old width;
    K, keypoints and boxes follow; 3D is unchanged. meta["letterbox"] = {"scale": [sx, sy],
    "pad": [pad_x, pad_y]} undoes it.
    """
    H, W = size
    h, w = sample.image.shape[:2]
    s = min(H / h, W / w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    sx, sy = nw / w, nh / h
    px, py = (W - nw) // 2, (H - nh) // 2
    canvas = np.full((H, W, 3), fill, np.uint8)
    canvas[py:py + nh, px:px + nw] = np.asarray(Image.fromarray(sample.image).resize((nw, nh), Image.Resampling.BILINEAR))
    A = np.array([[sx, 0.0, 0.5 * sx - 0.5 + px], [0.0, sy, 0.5 * sy - 0.5 + py]])
    K = None
    if sample.K is not None:
        K = scale_intrinsics(sample.K, sx, sy)
        K[:2, 2] += (px, py)
    hands = []
    for hd in sample.hands:
        kp2d = transform_points(hd.keypoints_2d.astype(np.float64), A).astype(np.float32)
        box = transform_points(hd.box.reshape(2, 2).astype(np.float64), A).reshape(4).astype(np.float32)
        hands.append(_replace(hd, keypoints_2d=kp2d, box=box))
    meta = {**sample.meta, "letterbox": {"scale": [sx, sy], "pad": [px, py]}}
    return Sample.from_image(canvas, hands, K=K, source=sample.source, sample_id=sample.sample_id, meta=meta)


# ----------------------------------------------------------------------------- colour
def color_jitter(image: np.ndarray, rng: np.random.Generator, brightness: float = 0.3, contrast: float = 0.3,
                 saturation: float = 0.3, white_balance: float = 0.08) -> np.ndarray:
    """RGB uint8 image with random brightness, contrast, saturation (factors in 1 ± value) and per-channel gains."""
    x = image.astype(np.float32)
    x = x * rng.uniform(1 - brightness, 1 + brightness) * rng.uniform(1 - white_balance, 1 + white_balance, 3)
    gray = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = gray.mean() + (x - gray.mean()) * rng.uniform(1 - contrast, 1 + contrast)
    gray = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    x = gray + (x - gray) * rng.uniform(1 - saturation, 1 + saturation)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def appearance_shift(image: np.ndarray, rng: np.random.Generator, max_blur: float = 1.5) -> np.ndarray:
    """RGB uint8 (H, W, 3) with its colours taken away — grey (1/2) or the channels permuted (1/2)
    — then a Gaussian blur of σ ~ U(0, max_blur) px: what a model reads from it is shape, not the
    training renderer's skin tone, nails or fine texture."""
    x = image.astype(np.float32)
    if rng.random() < 0.5:
        x = np.repeat(x @ np.array([0.299, 0.587, 0.114], np.float32)[:, None], 3, axis=-1)
    else:
        x = x[..., rng.permutation(3)]
    sigma = rng.uniform(0.0, max_blur)
    if sigma > 0.3:
        x = ndimage.gaussian_filter(x, (sigma, sigma, 0))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


@dataclass
class CropAugment:
    """The crop-model training augmentation: random hand crop, left -> right flip, colour jitter."""

    crop: HandCrop = dataclasses.field(default_factory=HandCrop)
    flip_left: bool = True
    jitter: float = 0.3

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        out = self.crop(sample, rng)
        if self.flip_left:
            out = flip_left(out)
        if self.jitter > 0:
            out = dataclasses.replace(out, _image=color_jitter(out.image, rng, self.jitter, self.jitter, self.jitter))
        return out


# ----------------------------------------------------------------------------- two views
@dataclass
class TwoViews:
    """Two augmentations of one sample. R_12 (3, 3) maps view-1 camera-frame 3D to view 2
    (X2 = R_12 X1); affine_12 (2, 3) maps view-1 crop pixels to view-2 crop pixels; both
    undo/redo the crops' rotations (and flips) exactly. flipped_12: one view is mirrored with
    respect to the other (then det R_12 = -1)."""

    view1: Sample
    view2: Sample
    R_12: np.ndarray
    affine_12: np.ndarray
    flipped_12: bool


def two_views(sample: Sample, rng: np.random.Generator, augment: CropAugment | None = None) -> TwoViews:
    """Two independent `CropAugment` draws of `sample` and the relative transform between them.
    Flips apply to both or neither (they depend only on the hand's side), so flipped_12 is False
    for the default augmentation."""
    augment = augment or CropAugment()
    v1, v2 = augment(sample, rng), augment(sample, rng)
    A1, A2 = v1.meta["crop_affine"], v2.meta["crop_affine"]
    inv1 = invert_affine(A1)
    affine_12 = np.concatenate([A2[:, :2] @ inv1[:, :2], (A2[:, :2] @ inv1[:, 2] + A2[:, 2])[:, None]], 1)
    R_12 = v2.meta["crop_R"] @ v1.meta["crop_R"].T
    flipped_12 = bool(v1.meta.get("flipped", False)) != bool(v2.meta.get("flipped", False))
    return TwoViews(v1, v2, R_12, affine_12, flipped_12)


# ----------------------------------------------------------------------------- tensors
def to_tensors(sample: Sample, hand_index: int = 0, num_vertices: int = 778,
               mean: tuple[float, float, float] = IMAGENET_MEAN, std: tuple[float, float, float] = IMAGENET_STD) -> dict[str, torch.Tensor]:
    """Training tensors of one (cropped, square) sample for the M3DHMR crop model.

    image (3, S, S) float32 (`utils.image.normalize_images` with mean/std); keypoints_2d (21, 2) crop px;
    visibility, keypoints_valid (21,); joints_3d (21, 3) and vertices (num_vertices, 3) metres
    relative to the wrist (zeros when unknown, see has_3d / has_vertices); root (3,) wrist in the
    camera frame; K (3, 3) (identity with has_K = 0 when unknown); is_left, flipped (scalars).
    """
    image = sample.image
    S = image.shape[0]
    if image.shape[1] != S:
        raise ValueError(f"to_tensors expects a square crop, got image {image.shape}; apply crop_hand/HandCrop first")
    h = sample.hands[hand_index]
    img = torch.from_numpy(normalize_images(image, mean, std))
    kp2d = torch.from_numpy(h.keypoints_2d.astype(np.float32))
    has_3d = h.keypoints_3d is not None
    root = h.keypoints_3d[0] if has_3d else np.zeros(3, np.float32)
    joints = (h.keypoints_3d - root) if has_3d else np.zeros((21, 3), np.float32)
    has_v = h.vertices is not None and len(h.vertices) == num_vertices
    verts = (h.vertices - root) if has_v and has_3d else np.zeros((num_vertices, 3), np.float32)
    return {
        "image": img,
        "keypoints_2d": kp2d,
        "visibility": torch.from_numpy(h.visibility.astype(np.float32)),
        "keypoints_valid": torch.from_numpy(h.keypoints_valid.astype(np.float32)),
        "joints_3d": torch.from_numpy(np.asarray(joints, np.float32)),
        "vertices": torch.from_numpy(np.asarray(verts, np.float32)),
        "root": torch.from_numpy(np.asarray(root, np.float32)),
        "K": torch.from_numpy((sample.K if sample.K is not None else np.eye(3)).astype(np.float32)),
        "has_K": torch.tensor(float(sample.K is not None)),
        "has_3d": torch.tensor(float(has_3d)),
        "has_vertices": torch.tensor(float(has_v and has_3d)),
        "is_left": torch.tensor(float(h.side == "left")),
        "flipped": torch.tensor(float(bool(sample.meta.get("flipped", False)))),
    }
