"""The image convention at every interface: RGB, uint8, (H, W, 3)."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_image(image: Any) -> np.ndarray:
    """Return `image` if it is an RGB uint8 (H, W, 3) numpy array, else a ValueError saying what is wrong."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array (RGB uint8, H x W x 3), got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be RGB uint8 of shape (H, W, 3), got shape {image.shape}; "
                         "convert grayscale/RGBA images to RGB first")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be RGB uint8 (0-255), got {image.dtype}; "
                         "for a float image in [0, 1] pass (image * 255).round().astype(np.uint8)")
    return image
