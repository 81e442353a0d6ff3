"""The trivial baselines on a hand-worked data set."""

import numpy as np
import pytest
import torch

from mtan.data import DataBundle, Split
from mtan.evaluate import trivial_baselines


def split(labels, depth):
    labels, depth = np.array([labels], np.int8), np.array([depth], np.float32)
    return Split(np.zeros((1, 3, *labels.shape[1:]), np.uint8), labels, depth)


def test_trivial_baselines_predict_the_majority_class_and_the_mean_depth():
    train = split([[0, 1, 1, -1]], [[0.2, 0.4, 0.0, 0.0]])  # majority class 1, mean valid depth 0.3
    val = split([[1, 1, 0, -1]], [[0.3, 0.6, 0.0, 0.1]])
    result = trivial_baselines(DataBundle(train, val, 2, "hand"), batch_size=1, device=torch.device("cpu"))
    assert result["pixel_acc"] == pytest.approx(2 / 3)
    assert result["miou"] == pytest.approx((0 + 2 / 3) / 2)  # class 0: IoU 0/1, class 1: 2/3
    assert result["abs_err"] == pytest.approx((0.0 + 0.3 + 0.2) / 3)
    assert result["rel_err"] == pytest.approx((0.0 + 0.3 / 0.6 + 0.2 / 0.1) / 3)
