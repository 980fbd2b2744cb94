"""Synthetic data presets: plain dataclass configs, overridable field by field.

    cfg = preset("crop", image_size=(128, 128))   # a copy of the preset with overrides
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import yaml

from handrecon.hand.pose import KINDS


@dataclass(frozen=True)
class SynthConfig:
    """How synthetic images are drawn. Ranges are (min, max), drawn uniformly per image / hand.

    image_size: (H, W) pixels.
    focal: focal length range in pixels (fx = fy), or None to use `fov_deg`.
    fov_deg: field of view range across the larger image side, degrees (used when focal is None).
    principal_jitter: principal point offset from the image centre, as a fraction of (W, H).
    num_hands: range of the number of hands per image (0 allowed for uncentred presets: images
    without a hand, for detectors; their occluders are placed anywhere in view).
    p_extra_hand: probability of one more hand beyond `num_hands` (a distractor in `crop`).
    hand_size: projected extent of a hand (largest side of its vertex box) as a fraction of min(H, W).
    centred: the first hand is centred (`crop`), else every hand is placed anywhere.
    centre_jitter: offset of the centred hand from the image centre, fraction of min(H, W).
    p_overlap: probability that a further hand is placed over an earlier one (mutual occlusion).
    occluders: range of the number of occluder objects; p_occluder: probability of having any.
    p_left: probability that a hand is a left hand.
    pose_kinds: pose sampler kinds drawn uniformly per hand (see handrecon.hand.pose.KINDS).
    shape_scale: standard deviation of the shape coefficients.
    orientation: global hand orientation: "uniform" (every view equally likely), "natural" (how
    hands are usually seen: `handrecon.hand.pose.natural_rotations`) or "mixed" (natural with
    probability `p_natural`, else uniform).
    p_image_background: probability of a photograph as background when a folder is given (procedural ones stay a minority).
    p_photo_occluder: probability that an occluder is textured with a photograph (when a folder is given).
    p_skin_occluder: probability that an occluder is skin-coloured, a distractor (when a folder is given).
    clutter: range of the number of cutouts (images with an alpha channel in the `--backgrounds`
    folders, e.g. `tools/fetch_photos.py --cutouts`) pasted onto each background (`appearance.paste_cutouts`).
    p_recolour: probability that a photograph (background or occluder texture) has its colours
    turned (`appearance.recolour`): the pool's textures in every hue, skin-like ones included.
    p_hand_colour: probability that a hand's base colour is of any hue instead of a skin tone
    (`appearance.random_hand_colour`; its shading structure stays): domain randomisation, so that
    skin colour is not what finds the hand.
    p_truncated: probability that the centred hand (`crop`) is pushed 20-40 % of the image off centre,
    so the image border cuts it.
    p_forearm: probability that a hand has a forearm; p_sleeve: that a forearm wears a sleeve.
    render_subdivisions: Loop subdivision steps of the hand mesh for rendering only (smooth
    silhouettes and shading); ground truth stays on the model's vertices.
    p_blur, p_motion_blur, p_noise, p_jpeg, p_color: camera effects (defocus, motion blur, sensor
    noise, JPEG, white balance + exposure + gamma + vignette; see `appearance.corrupt`).
    supersample: render at this factor and reduce (antialiased edges); 1 = off.
    image_format, jpeg_quality: how images are stored by `handrecon synth`.
    """

    name: str = "crop"
    image_size: tuple[int, int] = (224, 224)
    focal: tuple[float, float] | None = (400.0, 700.0)
    fov_deg: tuple[float, float] = (40.0, 75.0)
    principal_jitter: float = 0.03
    num_hands: tuple[int, int] = (1, 1)
    p_extra_hand: float = 0.1
    hand_size: tuple[float, float] = (0.5, 0.85)
    centred: bool = True
    centre_jitter: float = 0.05
    p_overlap: float = 0.3
    occluders: tuple[int, int] = (1, 1)
    p_occluder: float = 0.2
    p_left: float = 0.5
    pose_kinds: tuple[str, ...] = ("random", "open", "fist", "pinch", "point", "grasp", "relaxed", "peace",
                                   "thumbs_up", "ok")
    shape_scale: float = 1.0
    orientation: str = "uniform"
    p_natural: float = 0.6
    p_image_background: float = 0.8
    p_photo_occluder: float = 0.7
    p_skin_occluder: float = 0.2
    p_recolour: float = 0.0
    p_hand_colour: float = 0.0
    clutter: tuple[int, int] = (0, 0)
    p_truncated: float = 0.1
    p_forearm: float = 0.85
    p_sleeve: float = 0.6
    render_subdivisions: int = 1
    p_blur: float = 0.25
    p_motion_blur: float = 0.15
    p_noise: float = 0.35
    p_jpeg: float = 0.25
    p_color: float = 0.6
    supersample: int = 1
    image_format: str = "jpg"
    jpeg_quality: int = 92

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            problem = _type_problem(getattr(self, f.name), f.default, f.name == "focal")
            if problem and f.name == "image_size":
                problem = "[H, W] in whole pixels"
            if problem:
                raise ValueError(f"synth config {self.name!r}: {f.name} must be {problem}, got {getattr(self, f.name)!r}")
        H, W = self.image_size
        checks = [
            (H > 0 and W > 0, f"image_size must be positive (H, W), got {self.image_size}"),
            (0 <= self.num_hands[0] <= self.num_hands[1] and (self.num_hands[0] >= 1 or not self.centred),
             f"num_hands must be 0 <= min <= max (min >= 1 when the first hand is centred), got {self.num_hands}"),
            (0 < self.hand_size[0] <= self.hand_size[1], f"hand_size must be 0 < min <= max, got {self.hand_size}"),
            (self.orientation in ("uniform", "natural", "mixed"),
             f"orientation must be 'uniform', 'natural' or 'mixed', got {self.orientation!r}"),
            (self.focal is None or 0 < self.focal[0] <= self.focal[1],
             f"focal must be pixels with 0 < min <= max (or null to use fov_deg), got {self.focal}"),
            (0 < self.fov_deg[0] <= self.fov_deg[1] < 180, f"fov_deg must be 0 < min <= max < 180, got {self.fov_deg}"),
            (self.principal_jitter >= 0 and self.centre_jitter >= 0 and self.shape_scale >= 0,
             "principal_jitter, centre_jitter and shape_scale must not be negative, got "
             f"{self.principal_jitter}, {self.centre_jitter}, {self.shape_scale}"),
            (len(self.pose_kinds) > 0 and set(self.pose_kinds) <= set(KINDS) | {"mixed"},
             f"pose_kinds must be a non-empty list of {KINDS + ('mixed',)}, got {list(self.pose_kinds)}"),
            (0.0 <= self.p_photo_occluder and 0.0 <= self.p_skin_occluder
             and self.p_photo_occluder + self.p_skin_occluder <= 1.0,
             f"p_photo_occluder + p_skin_occluder must be probabilities summing to at most 1, got "
             f"{self.p_photo_occluder} + {self.p_skin_occluder}"),
            (0 <= self.clutter[0] <= self.clutter[1], f"clutter must be 0 <= min <= max, got {self.clutter}"),
            (0 <= self.occluders[0] <= self.occluders[1], f"occluders must be 0 <= min <= max, got {self.occluders}"),
            (self.supersample >= 1, f"supersample must be >= 1, got {self.supersample}"),
            (self.render_subdivisions in (0, 1, 2), f"render_subdivisions must be 0, 1 or 2, got {self.render_subdivisions}"),
            (self.image_format in ("jpg", "png"), f"image_format must be 'jpg' or 'png', got {self.image_format!r}"),
            (1 <= self.jpeg_quality <= 100, f"jpeg_quality must be 1-100, got {self.jpeg_quality}"),
        ]
        checks += [(0.0 <= getattr(self, f.name) <= 1.0, f"{f.name} is a probability, in [0, 1]; got {getattr(self, f.name)}")
                   for f in dataclasses.fields(self) if f.name.startswith("p_")]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"synth config {self.name!r}: {msg}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_whole(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _type_problem(value, default, optional: bool) -> str | None:
    """What `value` should be, judged by the field's default (None when it fits)."""
    if value is None and optional:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return None if _is_whole(value) else "a whole number"
    if isinstance(default, float):
        return None if _is_number(value) else "a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a string"
    if isinstance(default, tuple) and all(isinstance(x, str) for x in default):
        return None if isinstance(value, (list, tuple)) and all(isinstance(x, str) for x in value) else "a list of names"
    if isinstance(default, tuple):
        whole = all(isinstance(x, int) for x in default)
        ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(
            _is_whole(x) if whole else _is_number(x) for x in value)
        return None if ok else ("[min, max] of whole numbers" if whole else "[min, max]") + (" or null" if optional else "")
    return None


PRESETS: dict[str, SynthConfig] = {
    # One hand centred in a FreiHAND-like 224x224 crop (M3DHMR); distractors and occluders are rarer.
    "crop": SynthConfig(),
    # Full images with 1-4 hands at varied scales anywhere, overlapping and occluded (HandOS).
    "scene": SynthConfig(
        name="scene", image_size=(384, 512), focal=None, fov_deg=(40.0, 75.0), principal_jitter=0.02,
        num_hands=(1, 4), p_extra_hand=0.0, hand_size=(0.12, 0.5), centred=False, p_overlap=0.35,
        occluders=(0, 3), p_occluder=0.6,
    ),
}


def preset(name: str, **overrides) -> SynthConfig:
    """The preset `name` ("crop" or "scene") with fields replaced by `overrides`."""
    if name not in PRESETS:
        raise ValueError(f"unknown synth preset {name!r}; choose from {sorted(PRESETS)}")
    unknown = set(overrides) - {f.name for f in dataclasses.fields(SynthConfig)}
    if unknown:
        raise ValueError(f"unknown synth config fields {sorted(unknown)}; the fields are "
                         f"{', '.join(f.name for f in dataclasses.fields(SynthConfig))} (docs/synthetic.md)")
    return dataclasses.replace(PRESETS[name], **overrides)


def parse_overrides(items: list[str]) -> dict:
    """{field: value} from ``FIELD=VALUE`` strings (VALUE parsed as YAML; lists become tuples).

    ValueError naming the item when it has no ``=`` or its value is not valid YAML; unknown
    fields are refused by `preset`.
    """
    out = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE, e.g. orientation=mixed")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"--set {item!r}: the value is not valid YAML ({e.__class__.__name__})") from None
        out[name.strip()] = tuple(value) if isinstance(value, list) else value
    return out
