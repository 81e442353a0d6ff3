"""The trivial baselines' statistics, computed in chunks, against the plain whole-array computation."""

import numpy as np
import pytest

from mtan.evaluate import CHUNK, majority_class, mean_valid_depth


def test_chunked_statistics_equal_the_whole_array_ones():
    rng = np.random.default_rng(0)
    n = 2 * CHUNK + 5  # several chunks and a partial one
    labels = rng.choice(
        np.arange(-1, 7, dtype=np.int8), size=(n, 4, 6), p=[0.3, 0.1, 0.1, 0.1, 0.25, 0.05, 0.05, 0.05]
    )
    depth = (rng.random((n, 4, 6)) * (rng.random((n, 4, 6)) > 0.2)).astype(np.float32)
    valid = labels[labels >= 0].astype(np.int64)
    assert majority_class(labels, 7) == np.bincount(valid, minlength=7).argmax() == 3
    assert mean_valid_depth(depth) == pytest.approx(depth[depth > 0].astype(np.float64).mean(), rel=1e-12)


def test_majority_class_ignores_void_even_when_void_is_most_frequent():
    labels = np.full((3, 2, 2), -1, np.int8)
    labels[0, 0, 0] = 5
    assert majority_class(labels, 7) == 5
