"""Validation of a model over a split, and of the trivial predictors the score measures against.

``python -m mtan.evaluate --checkpoint RUN_DIR/checkpoint.pt`` evaluates a trained run's checkpoint on
its validation split (every metric of its tasks, both conventions: a single-task run's checkpoint rebuilds
the One Task network and has its task's metrics, no score) and, with ``--figures OUT.png``, draws its
predictions on a few fixed validation images (`mtan.figures`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mtan.checkpoint import load_checkpoint
from mtan.cli import command_parser
from mtan.config import DEVICES, TrainConfig, config_from_flat
from mtan.data import Batch, DataBundle, Split, iterate_batches, load_data
from mtan.device import resolve_device
from mtan.errors import UserError, run_cli
from mtan.metrics import metric, metric_text, multitask_score
from mtan.model import make_model
from mtan.tasks import TASKS, metric_accumulators, task_targets

Predictor = Callable[[Batch], dict[str, torch.Tensor]]


def evaluate_predictor(
    predict: Predictor,
    split: Split,
    num_classes: int,
    batch_size: int,
    device: torch.device,
    tasks: Collection[str] = TASKS,
) -> dict[str, float]:
    """The metrics of `tasks` of `predict` (batch -> {task: output}, at least those tasks) over `split`,
    evaluated in batches of `batch_size` (the batch of the per-batch means)."""
    accumulators = {task: a for task, a in metric_accumulators(num_classes).items() if task in tasks}
    with torch.inference_mode():
        for batch in iterate_batches(split, batch_size, device):
            outputs, targets = predict(batch), task_targets(batch)
            for task, accumulator in accumulators.items():
                accumulator.update(outputs[task], targets[task])
    metrics: dict[str, float] = {}
    for accumulator in accumulators.values():
        metrics.update(accumulator.compute())
    return metrics


def evaluate_model(
    model: nn.Module, split: Split, num_classes: int, batch_size: int, device: torch.device
) -> dict[str, float]:
    """The metrics of the model's tasks (``model.tasks``: every task for MTAN, one for the single-task
    network), in eval mode, over `split`."""
    model.eval()
    return evaluate_predictor(
        lambda batch: model(batch.images), split, num_classes, batch_size, device, tuple(model.tasks)
    )


# Images per chunk of the statistics below: they run on the (possibly shared, read-only) training set
# without a full-size temporary (an int64 copy of CityScapes' labels alone would be 780 MB).
CHUNK = 64


def majority_class(labels: np.ndarray, num_classes: int) -> int:
    """The most frequent class of `labels` (N,H,W), void (-1) excluded; ties go to the lower class."""
    counts = np.zeros(num_classes, np.int64)
    for start in range(0, len(labels), CHUNK):
        chunk = labels[start : start + CHUNK].ravel()
        counts += np.bincount(chunk[chunk >= 0], minlength=num_classes)
    return int(counts.argmax())


def mean_valid_depth(depth: np.ndarray) -> float:
    """The mean of `depth` over its valid pixels (> 0), summed in float64."""
    total, count = 0.0, 0
    for start in range(0, len(depth), CHUNK):
        chunk = depth[start : start + CHUNK]
        valid = chunk[chunk > 0]
        total += float(valid.sum(dtype=np.float64))
        count += valid.size
    return total / count


def trivial_predictor_metrics(
    data: DataBundle,
    batch_size: int,
    device: torch.device | None = None,
    tasks: Collection[str] = TASKS,
) -> dict[str, float]:
    """Metrics of `tasks` on the validation split of the trivial predictors, the reference of the score
    (`mtan.metrics.multitask_score`): the training set's majority class everywhere, and its mean valid
    depth everywhere."""
    device = device or torch.device("cpu")
    majority = majority_class(data.train.labels, data.num_classes)
    mean_depth = mean_valid_depth(data.train.depth)

    def predict(batch: Batch) -> dict[str, torch.Tensor]:
        n, h, w = batch.labels.shape
        logits = torch.zeros(n, data.num_classes, h, w, device=batch.images.device)
        logits[:, majority] = 1.0
        return {
            "segmentation": logits,
            "depth": torch.full((n, 1, h, w), mean_depth, device=batch.images.device),
        }

    return evaluate_predictor(predict, data.val, data.num_classes, batch_size, device, tasks)


@dataclass(frozen=True)
class TrainedRun:
    """A run read back from its checkpoint: the config it trained with, its model and its last epoch."""

    config: TrainConfig
    model: nn.Module
    epoch: int


def load_trained_run(checkpoint: Path, num_classes: int | None = None) -> TrainedRun:
    """The model of a `mtan.train` checkpoint, on the CPU, built from the config the checkpoint carries
    (the same as the run's config.json, up to the fields a resume may change); `UserError` naming the
    file when it is missing, unreadable or not a checkpoint of `mtan.train`."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise UserError(f"--checkpoint {checkpoint}: no such file")
    try:
        state = load_checkpoint(checkpoint)
    except Exception as error:  # torch raises many kinds (pickle, zip, EOF, runtime) for a bad file
        raise UserError(
            f"--checkpoint {checkpoint}: not a readable checkpoint ({type(error).__name__})"
        ) from None
    if not isinstance(state, dict) or not {"config", "model", "epoch"} <= set(state):
        raise UserError(
            f"--checkpoint {checkpoint}: not a checkpoint of mtan.train (no config, model, epoch)"
        )
    config = config_from_flat(state["config"])
    model = make_model(config, num_classes or config.labels)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise UserError(f"--checkpoint {checkpoint}: its weights do not fit its config ({first})") from None
    return TrainedRun(config, model, int(state["epoch"]))


# `evaluation_text`'s block of each task: its heading with the two columns' names, then its rows by
# convention with the metric key of each column (None: no such metric in that convention).
EVALUATION_BLOCKS: dict[str, tuple[tuple[str, str, str], tuple[tuple[str, str, str | None], ...]]] = {
    "segmentation": (
        ("segmentation", "mIoU", "pix acc"),
        (
            ("  accumulated", "miou", "pixel_acc"),
            ("  paper 2019", "miou_2019", "pixel_acc_2019"),
            ("  void masked 2020", "miou_2020", None),
        ),
    ),
    "depth": (
        ("depth", "abs err", "rel err"),
        (
            ("  per-pixel mean", "abs_err", "rel_err"),
            ("  per-batch mean", "abs_err_batch_mean", "rel_err_batch_mean"),
        ),
    ),
}


def model_text(config: TrainConfig) -> str:
    """`MTAN (segmentation, depth)` or `single-task depth (One Task network)`: what the run trained."""
    if config.single_task is not None:
        return f"single-task {config.single_task} (One Task network)"
    return f"MTAN ({', '.join(TASKS)})"


def evaluation_text(metrics: dict[str, float]) -> str:
    """The metrics of the tasks `metrics` holds, in every convention, as a small table in the report's
    units (percent for mIoU and pixel accuracy), and the score when there is one (a run of every task)."""

    def line(name: str, cells: Sequence[str]) -> str:
        return f"{name:<20}" + "".join(f"{cell:>10}" for cell in cells)

    tasks = {metric(key).task for key in metrics}
    lines = []
    for task, ((heading, *columns), rows) in EVALUATION_BLOCKS.items():
        if task not in tasks:
            continue
        lines.append(line(heading, columns))
        for name, *keys in rows:
            lines.append(line(name, ["" if key is None else metric_text(key, metrics[key]) for key in keys]))
    if "score" in metrics:
        lines.append(
            f"score {metric_text('score', metrics['score'])} (0 = the trivial predictors, 1 = perfect)"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "mtan.evaluate",
        "Evaluate a trained run's checkpoint on its validation split (every metric of its tasks, all "
        "conventions) and optionally draw its predictions on a few fixed validation images.",
    )
    parser.add_argument(
        "--checkpoint", type=Path, required=True, help="a run's checkpoint.pt (RUN_DIR/checkpoint.pt)"
    )
    parser.add_argument(
        "--data-root",
        help="the data set, if it moved since training (default: the run's own data_root, or synthetic)",
    )
    parser.add_argument("--device", choices=DEVICES, default="auto", help="where to evaluate (default: auto)")
    parser.add_argument(
        "--figures", type=Path, metavar="OUT.png", help="also draw the predictions into this PNG"
    )
    parser.add_argument(
        "--images", type=int, default=4, help="how many fixed validation images the figure shows (default: 4)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.images < 1:
        raise UserError(f"--images must be >= 1, got {args.images}")
    run = load_trained_run(args.checkpoint)
    config = (
        run.config
        if args.data_root is None
        else config_from_flat({**run.config.to_flat(), "data_root": args.data_root})
    )
    device = resolve_device(args.device)
    data = load_data(config)
    model = run.model.to(device)
    metrics = evaluate_model(model, data.val, data.num_classes, config.batch_size, device)
    if config.single_task is None:  # the score needs every task
        trivial = trivial_predictor_metrics(data, config.batch_size, device)
        metrics["score"] = multitask_score(metrics, trivial)
    print(
        f"{args.checkpoint}: epoch {run.epoch} of {config.epochs}, {config.preset} preset, "
        f"{model_text(config)}, "
        f"data {data.source}, {len(data.val)} validation images at {config.image_height}x{config.image_width}"
    )
    print(evaluation_text(metrics))
    if args.figures is not None:
        # matplotlib takes seconds to import: only when --figures asks for it, never in a training process
        from mtan.figures import fixed_indices, prediction_figure

        indices = fixed_indices(len(data.val), args.images)
        title = f"{args.checkpoint} (epoch {run.epoch}), validation images {indices}"
        figure = prediction_figure(model, data, indices, device=device, title=title)
        args.figures.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(args.figures, dpi=100)
        print(f"figure: {args.figures}")
    return 0


if __name__ == "__main__":
    run_cli(main)
