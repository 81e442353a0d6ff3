"""Losses against direct computations over the valid pixels."""

import math

import pytest
import torch

from mtan.losses import depth_loss, segmentation_loss


def test_cross_entropy_ignores_void_pixels():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5)
    labels = torch.randint(-1, 3, (2, 4, 5))
    terms = []
    for n in range(2):
        for y in range(4):
            for x in range(5):
                c = int(labels[n, y, x])
                if c >= 0:
                    row = logits[n, :, y, x]
                    terms.append(-(row[c] - torch.logsumexp(row, 0)).item())
    assert segmentation_loss(logits, labels).item() == pytest.approx(sum(terms) / len(terms), rel=1e-6)


def test_depth_l1_averages_over_valid_pixels_only():
    prediction = torch.tensor([[[[0.5, 0.2], [0.1, 9.0]]]])
    depth = torch.tensor([[[0.25, 0.3], [0.2, 0.0]]])  # the 9.0 sits on an invalid pixel
    assert depth_loss(prediction, depth).item() == pytest.approx((0.25 + 0.1 + 0.1) / 3)


def test_losses_are_zero_without_valid_pixels():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    assert segmentation_loss(logits, torch.full((1, 2, 2), -1)).item() == 0.0
    assert depth_loss(torch.ones(1, 1, 2, 2), torch.zeros(1, 2, 2)).item() == 0.0
    assert not math.isnan(segmentation_loss(logits, torch.full((1, 2, 2), -1)).item())
