"""An exponential moving average of a model's weights (``train.ema_decay``).

After every optimizer step the average moves towards the live weights::

    avg <- d_n * avg + (1 - d_n) * w,    d_n = decay * (1 - exp(-n / warmup_steps))

with n the number of updates so far (RT-DETR's ModelEMA: decay 0.9999, 2000 warm-up updates; without a
warm-up, d_n = decay). Every floating-point tensor of the state_dict is averaged, normalisation
statistics included; integer ones (BatchNorm's batch counter) follow the live model. A run with an
average validates and saves the average as its weights (`handrecon.train.engine`); its checkpoints'
training state keeps the live weights under `STATE_KEY` (`WeightEMA.saved_state`, `WeightEMA.resume`), and
`checkpoint_weights` reads either for packaging (`live_weights_card` marks a packaged card that holds them).
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Iterator

import torch

from handrecon import checkpoint as ckpt

STATE_KEY = "ema"  # a weight-averaged run's entry in its checkpoints' training state (`WeightEMA.saved_state`)
LIVE_WEIGHTS = "live: the training weights of a run with a weight average (train.ema_decay), not the average"


class WeightEMA:
    """The moving average of ``model``'s state_dict, starting at its current weights."""

    def __init__(self, model: torch.nn.Module, decay: float, warmup_steps: int = 0):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie strictly between 0 and 1, got {decay!r}")
        if warmup_steps < 0:
            raise ValueError(f"EMA warm-up must be >= 0 steps, got {warmup_steps!r}")
        self.decay, self.warmup_steps, self.updates = decay, warmup_steps, 0
        self.tensors = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self._averaged = [k for k, v in self.tensors.items() if v.is_floating_point()]
        self._copied = [k for k, v in self.tensors.items() if not v.is_floating_point()]

    def decay_at(self, updates: int) -> float:
        """d_n: how much of the average the ``updates``-th update keeps."""
        if self.warmup_steps == 0:
            return self.decay
        return self.decay * (1.0 - math.exp(-updates / self.warmup_steps))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """One step of the average towards ``model``'s current weights."""
        self.updates += 1
        weight = 1.0 - self.decay_at(self.updates)
        live = model.state_dict()
        torch._foreach_lerp_([self.tensors[k] for k in self._averaged], [live[k].detach() for k in self._averaged], weight)
        for k in self._copied:
            self.tensors[k].copy_(live[k])

    @contextlib.contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """``model`` holding the average inside the block; its live weights back afterwards."""
        live = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.tensors)
        try:
            yield model
        finally:
            model.load_state_dict(live)

    def restore(self, tensors: dict[str, torch.Tensor], updates: int) -> None:
        """Continue from a saved average (``tensors``, the same names) after ``updates`` updates."""
        if tensors.keys() != self.tensors.keys():
            raise ValueError("the saved average does not hold the model's tensors")
        with torch.no_grad():
            for k, v in tensors.items():
                self.tensors[k].copy_(v)
        self.updates = updates

    def saved_state(self, live: dict[str, torch.Tensor]) -> dict:
        """What a checkpoint's training state keeps of the run under `STATE_KEY` (its weights file holds the
        average): the number of updates and the ``live`` weights, which resume the run."""
        return {"updates": self.updates, "live_weights": live}

    def resume(self, model: torch.nn.Module, saved: dict) -> None:
        """Continue a run from a checkpoint: ``model`` holds its weights file (the average), ``saved`` its
        `saved_state`; afterwards the average is restored and ``model`` holds the live weights."""
        self.restore(model.state_dict(), saved["updates"])
        model.load_state_dict(saved["live_weights"])

    def card(self) -> dict[str, float | int]:
        return {"decay": self.decay, "warmup_steps": self.warmup_steps, "updates": self.updates}


def live_weights_card(card: dict) -> dict:
    """A packaged model's card when it holds a weight-averaged run's live weights: the run's ``ema`` entry
    (which describes the average) dropped, ``weights`` saying what it holds instead."""
    return {**{k: v for k, v in card.items() if k != "ema"}, "weights": LIVE_WEIGHTS}


def checkpoint_weights(src: Path, live: bool = False) -> dict[str, torch.Tensor]:
    """A checkpoint directory's weights: its ``model.safetensors`` (a weight-averaged run's average), or with
    ``live`` the live weights that run's training state keeps (CheckpointError for a run without an average)."""
    if not live:
        return ckpt.load_tensors(src / ckpt.MODEL_FILE)
    saved = ckpt.load_state(src).get(STATE_KEY)
    if saved is None:
        raise ckpt.CheckpointError(f"{src}: --live-weights needs a checkpoint of a run with a weight average "
                                   "(train.ema_decay); this one's weights are already its live weights")
    return saved["live_weights"]
