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


class OneByOne:
    """Mixin for test predictors that define `predict`: `predict_batch` calls it per image."""

    def predict_batch(self, images, Ks=None, boxes=None, sides=None, batch_size=32):
        n = len(images)
        Ks, boxes, sides = ([None] * n if x is None else x for x in (Ks, boxes, sides))
        return [self.predict(i, K=K, boxes=b, sides=s) for i, K, b, s in zip(images, Ks, boxes, sides)]


def load_script(relative: str):
    """Import a script of the repository (tools/, benchmarks/) by path, as a module."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
