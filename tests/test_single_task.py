"""A single-task run (`TrainConfig.single_task`): the One Task network trained on its task's loss alone,
checked against the loss, the update and the metrics computed by hand from the network's output; the
multi-task step checked against the same plain loop, bit for bit; its checkpoint evaluated and drawn."""

from __future__ import annotations

import json

import pytest
import torch

from mtan.checkpoint import load_checkpoint
from mtan.data import iterate_batches, load_data
from mtan.evaluate import load_trained_run
from mtan.figures import IMAGE_COLUMN, TASK_COLUMNS, figure_columns, prediction_figure
from mtan.losses import depth_loss, segmentation_loss
from mtan.model import SingleTaskSegNet, make_model
from mtan.run_folder import CHECKPOINT_FILE, TRIVIAL_FILE
from mtan.train import Run, make_adam, train
from tests.tiny_data import tiny_config, write_tiny_set

DEPTH_KEYS = {"abs_err", "rel_err", "abs_err_batch_mean", "rel_err_batch_mean"}
SEGMENTATION_KEYS = {"miou", "pixel_acc", "miou_2019", "pixel_acc_2019", "miou_2020"}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return write_tiny_set(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def depth_run(tiny_root, tmp_path_factory):
    """One epoch of the depth-only network, the 8 training images in one step; (config, folder, row)."""
    config = tiny_config(tiny_root, single_task="depth", epochs=1, batch_size=8)
    out = tmp_path_factory.mktemp("depth")
    (row,) = train(config, out, progress=False)
    return config, out, row


def by_hand_depth_errors(prediction: torch.Tensor, depth: torch.Tensor) -> tuple[float, float]:
    """Mean |d_hat - d| and mean |d_hat - d| / d over the pixels with d > 0, in float64."""
    d_hat, d = prediction[:, 0].double(), depth.double()
    valid = d > 0
    error = (d_hat - d).abs()[valid]
    return float(error.sum() / valid.sum()), float((error / d[valid]).sum() / valid.sum())


def test_a_depth_run_has_the_depth_keys_alone(depth_run):
    _, out, row = depth_run
    # the other task's metrics and the score (which needs both tasks) are absent, not NaN
    assert set(row) == DEPTH_KEYS | {"epoch", "lr", "loss/depth", "loss/total", "weight/depth", "seconds"}
    assert row["loss/total"] == row["loss/depth"] and row["weight/depth"] == 1.0
    assert set(json.loads((out / TRIVIAL_FILE).read_text())) == DEPTH_KEYS
    assert isinstance(load_trained_run(out / CHECKPOINT_FILE).model, SingleTaskSegNet)


def test_the_depth_loss_and_metrics_are_those_of_the_networks_output(depth_run):
    config, out, row = depth_run
    data = load_data(config)
    device = torch.device("cpu")
    # the loss of the one step: the network as initialised, in training mode, on all 8 training images
    torch.manual_seed(config.seed)
    start = make_model(config, data.num_classes)
    (batch,) = iterate_batches(data.train, len(data.train), device)
    abs_err, _ = by_hand_depth_errors(start(batch.images)["depth"].detach(), batch.depth)
    assert row["loss/depth"] == pytest.approx(abs_err, rel=1e-5)  # the same pixels in another order
    # the metrics: the trained weights of the checkpoint, in eval mode, on the validation images
    trained = make_model(config, data.num_classes)
    trained.load_state_dict(load_checkpoint(out / CHECKPOINT_FILE)["model"])
    trained.eval()
    (val,) = iterate_batches(data.val, len(data.val), device)
    with torch.no_grad():
        abs_err, rel_err = by_hand_depth_errors(trained(val.images)["depth"], val.depth)
    assert (row["abs_err"], row["rel_err"]) == pytest.approx((abs_err, rel_err), rel=1e-5)


def plain_steps(config, batches, loss):
    """The network of `config` after Adam steps on `loss(outputs, batch)` over `batches`: the loop the
    paper's code runs, without the run's weighting."""
    torch.manual_seed(config.seed)
    model = make_model(config, 7)  # the 7 CityScapes categories of the tiny set
    optimizer = make_adam(list(model.parameters()), config.lr, config.weight_decay)
    for batch in batches:
        optimizer.zero_grad(set_to_none=True)
        loss(model(batch.images), batch).backward()
        optimizer.step()
    return model


@pytest.mark.parametrize(
    ("single_task", "loss"),
    [
        (
            None,
            lambda out, b: (
                segmentation_loss(out["segmentation"], b.labels) + depth_loss(out["depth"], b.depth)
            ),
        ),
        ("segmentation", lambda out, b: segmentation_loss(out["segmentation"], b.labels)),
        ("depth", lambda out, b: depth_loss(out["depth"], b.depth)),
    ],
)
def test_the_training_step_is_the_plain_loop_bit_for_bit(tiny_root, single_task, loss):
    config = tiny_config(tiny_root, single_task=single_task)
    data = load_data(config)
    batches = list(iterate_batches(data.train, 4, torch.device("cpu"), torch.Generator().manual_seed(1)))
    batches *= 2  # 4 steps
    run = Run(config, data.num_classes, torch.device("cpu"))
    for batch in batches:
        run.step(batch)
    expected = plain_steps(config, batches, loss).state_dict()
    state = run.model.state_dict()
    assert list(state) == list(expected)
    assert all(torch.equal(state[name], expected[name]) for name in state)


def test_a_single_task_figure_draws_its_task_alone(depth_run):
    config, out, _ = depth_run
    assert figure_columns({"depth"}) == (IMAGE_COLUMN, *TASK_COLUMNS["depth"])
    figure = prediction_figure(load_trained_run(out / CHECKPOINT_FILE).model, load_data(config), [0, 3])
    images = [ax for ax in figure.axes if ax.images]
    assert [ax.get_title() for ax in images[:3]] == ["image", "depth: truth", "depth: prediction"]
    assert len(images) == 2 * 3
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["invalid depth"]


def test_evaluating_a_single_task_checkpoint(depth_run, capsys):
    from mtan.evaluate import main

    _, out, row = depth_run
    assert main(["--checkpoint", str(out / CHECKPOINT_FILE), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "single-task depth (One Task network)" in printed
    assert f"{row['abs_err']:.4f}" in printed and f"{row['rel_err_batch_mean']:.3f}" in printed
    assert "segmentation" not in printed.split("\n", 1)[1] and "score" not in printed
