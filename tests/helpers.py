"""Helpers shared by the tests (not part of the package)."""

from __future__ import annotations

from pathlib import Path

import torch

from handrecon.checkpoint import save_checkpoint
from handrecon.registry import MODELS


def random_checkpoint(path: str | Path, kwargs: dict | None = None, input_size: int = 128, seed: int = 0) -> Path:
    """An M3DHMR checkpoint with random (initial) weights, written through the same builder and
    checkpoint format as a trained one, its card carrying the model's inference spec as the
    trainer writes it. At initialisation the decoder outputs about the hand model's rest mesh."""
    kwargs = {**(kwargs or {}), "input_size": int(input_size)}
    torch.manual_seed(seed)
    model = MODELS.build("m3dhmr", **kwargs)
    card = {"architecture": "m3dhmr", "kwargs": kwargs, "inference": model.inference_spec(),
            "note": f"random initial weights (seed {seed}), not trained"}
    return save_checkpoint(path, model, {}, card)
