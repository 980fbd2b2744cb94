"""handrecon.hand: hand models (OpenHand, MANO), keypoint orders and pose sampling.

Heavy modules are imported on first use: `from handrecon.hand import HandModel` works without
importing torch at package import time.
"""

from __future__ import annotations

__all__ = ["HandFit", "HandModel", "HandOutput", "HandModelData", "fit_hands", "load_openhand", "sample_poses",
           "sample_shapes"]

_LAZY = {
    "HandFit": "handrecon.hand.fit",
    "fit_hands": "handrecon.hand.fit",
    "HandModel": "handrecon.hand.model",
    "HandOutput": "handrecon.hand.model",
    "HandModelData": "handrecon.hand.model_data",
    "load_openhand": "handrecon.hand.openhand",
    "sample_poses": "handrecon.hand.pose",
    "sample_shapes": "handrecon.hand.pose",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'handrecon.hand' has no attribute {name!r}")
