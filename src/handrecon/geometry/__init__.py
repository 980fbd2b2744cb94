"""handrecon.geometry: camera maths shared by data, models and evaluation.

- `camera`: intrinsics, projection and back-projection (OpenCV frame, pixel centres at integers).
- `crop`: square crops with scale / shift / rotation, the crop camera (K', R), image warping.
- `root`: camera-space root translation from root-relative 3D joints + 2D joints + K.
- `rotations`: axis-angle, matrices, quaternions, 6D.
- `procrustes`: similarity alignment (the FreiHAND evaluation variant and a det-fixed one).

The names below are re-exported lazily, so numpy-only users (e.g. `procrustes` in the metrics)
do not pay for importing torch.
"""

from importlib import import_module

_EXPORTS = {
    "backproject": "camera",
    "default_intrinsics": "camera",
    "intrinsics": "camera",
    "project": "camera",
    "scale_intrinsics": "camera",
    "CropTransform": "crop",
    "crop_transform": "crop",
    "invert_affine": "crop",
    "transform_points": "crop",
    "warp_image": "crop",
    "RootFit": "root",
    "recover_root_translation": "root",
    "refine_root_translation": "root",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"handrecon.geometry.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'handrecon.geometry' has no attribute {name!r}")
