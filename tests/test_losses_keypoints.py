"""Keypoint losses: CenterNet's focal heatmap loss against a literal per-cell loop of its formula."""

from __future__ import annotations

import math

import pytest
import torch

from handrecon.losses import focal_heatmap_loss


def literal_focal_loss(logits, target, positive) -> float:
    """CenterNet's `_neg_loss`, one cell at a time: -(Σ_pos log p (1-p)² + Σ_neg log(1-p) p² (1-y)⁴) / max(#pos, 1)."""
    total, count = 0.0, 0
    for x, y, pos in zip(logits.flatten().tolist(), target.flatten().tolist(), positive.flatten().tolist()):
        p = 1.0 / (1.0 + math.exp(-x))
        if pos:
            total += math.log(p) * (1 - p) ** 2
            count += 1
        else:
            total += math.log(1 - p) * p ** 2 * (1 - y) ** 4
    return -total / max(count, 1)


def test_focal_heatmap_loss_is_centernets_formula():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, 6, generator=g) * 2
    target = torch.rand(2, 3, 5, 6, generator=g)
    positive = torch.zeros(2, 3, 5, 6, dtype=torch.bool)
    positive[0, 0, 1, 2] = positive[1, 2, 4, 5] = positive[1, 1, 0, 0] = True
    target[positive] = 1.0
    got = focal_heatmap_loss(logits, target, positive)
    assert got.item() == pytest.approx(literal_focal_loss(logits, target, positive), rel=1e-5)
    none = torch.zeros_like(positive)  # no keypoint in view: the negatives' sum, divided by 1 (not 0)
    assert focal_heatmap_loss(logits, target, none).item() == pytest.approx(literal_focal_loss(logits, target, none),
                                                                            rel=1e-5)


def test_focal_heatmap_loss_is_finite_at_saturated_logits():
    """log σ(x) is taken as logsigmoid: a confident wrong cell gives a large finite loss and
    gradient, never inf or NaN (log(sigmoid(x)) underflows to -inf at x = -120)."""
    logits = torch.tensor([[[[-120.0, 120.0]]]], requires_grad=True)
    target = torch.tensor([[[[1.0, 0.0]]]])
    positive = torch.tensor([[[[True, False]]]])
    loss = focal_heatmap_loss(logits, target, positive)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 200  # both cells confidently wrong: ~120 each
    assert torch.isfinite(logits.grad).all() and (logits.grad[0, 0, 0, 0] < 0) and (logits.grad[0, 0, 0, 1] > 0)
