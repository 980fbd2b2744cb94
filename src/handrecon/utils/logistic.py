"""The logistic function, its inverse and the log of a heatmap peak on numpy arrays (float64), for
the probabilities and log-odds the served heads and the two-stage pipeline combine."""

from __future__ import annotations

from typing import Any

import numpy as np


def sigmoid(z: Any) -> np.ndarray:
    """1 / (1 + e^-z), elementwise, float64."""
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


def logit(p: Any, eps: float = 1e-6) -> np.ndarray:
    """log(p / (1 - p)), elementwise, float64, with p clipped to [eps, 1 - eps] (a probability of
    exactly 0 or 1 has no finite log-odds)."""
    p = np.clip(np.asarray(p, np.float64), eps, 1 - eps)
    return np.log(p / (1 - p))


def log_peak(peak: Any, floor: float = 1e-12) -> np.ndarray:
    """log of heatmap peaks (probabilities of a softmax-normalised heatmap's largest cell), elementwise,
    float64, with peaks clipped below at `floor` (a peak of 0 has no finite log)."""
    return np.log(np.clip(np.asarray(peak, np.float64), floor, None))
