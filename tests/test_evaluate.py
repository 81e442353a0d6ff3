"""The trivial predictors: their chunked statistics against whole-array ones, and a hand-worked set."""

import numpy as np
import pytest
import torch

from mtan.data import DataBundle, Split
from mtan.evaluate import CHUNK, majority_class, mean_valid_depth, trivial_predictor_metrics


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


def split(labels, depth):
    labels, depth = np.array([labels], np.int8), np.array([depth], np.float32)
    return Split(np.zeros((1, 3, *labels.shape[1:]), np.uint8), labels, depth)


def test_the_trivial_predictors_predict_the_majority_class_and_the_mean_depth():
    train = split([[0, 1, 1, -1]], [[0.2, 0.4, 0.0, 0.0]])  # majority class 1, mean valid depth 0.3
    val = split([[1, 1, 0, -1]], [[0.3, 0.6, 0.0, 0.1]])
    result = trivial_predictor_metrics(
        DataBundle(train, val, 2, "hand"), batch_size=1, device=torch.device("cpu")
    )
    assert result["pixel_acc"] == pytest.approx(2 / 3)
    assert result["miou"] == pytest.approx((0 + 2 / 3) / 2)  # class 0: IoU 0/1, class 1: 2/3
    assert result["abs_err"] == pytest.approx((0.0 + 0.3 + 0.2) / 3)
    assert result["rel_err"] == pytest.approx((0.0 + 0.3 / 0.6 + 0.2 / 0.1) / 3)


# ---------------------------------------------------------------- python -m mtan.evaluate


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run of one epoch on the tiny set; its folder."""
    from mtan.train import train
    from tests.tiny_data import tiny_config, write_tiny_set

    root = write_tiny_set(tmp_path_factory.mktemp("tiny"))
    out = tmp_path_factory.mktemp("run")
    train(tiny_config(root, epochs=1), out, progress=False)
    return out


def test_evaluating_a_checkpoint_gives_the_metrics_its_run_recorded(trained_run, capsys, tmp_path):
    from mtan.evaluate import main
    from mtan.run_folder import read_metrics

    recorded = read_metrics(trained_run)[-1]
    figure = tmp_path / "panel.png"
    assert (
        main(
            ["--checkpoint", str(trained_run / "checkpoint.pt"), "--device", "cpu", "--figures", str(figure)]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "epoch 1 of 1" in out
    # the training loop's own numbers, shown in the report's units: percent for mIoU and pixel accuracy
    for value in (f"{100 * recorded['miou']:.2f} %", f"{100 * recorded['pixel_acc_2019']:.2f} %"):
        assert value in out
    for value in (
        f"{recorded['abs_err_batch_mean']:.4f}",
        f"{recorded['rel_err']:.3f}",
        f"{recorded['score']:.3f}",
    ):
        assert value in out
    assert figure.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"not a checkpoint at all", "not a readable checkpoint"),
        ("tensor", "not a checkpoint of mtan.train"),
    ],
)
def test_a_missing_or_corrupt_checkpoint_is_one_clear_line(tmp_path, content, message):
    import subprocess
    import sys

    path = tmp_path / "checkpoint.pt"
    if content == "tensor":
        torch.save({"weights": torch.zeros(2)}, path)
    elif content is not None:
        path.write_bytes(content)
    result = subprocess.run(
        [sys.executable, "-m", "mtan.evaluate", "--checkpoint", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [result.stderr.strip()]  # one line, no traceback
    assert result.stderr.startswith(f"error: --checkpoint {path}: {message}")
