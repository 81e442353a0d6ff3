"""One training run of MTAN: Adam, StepLR stepped per epoch, validation and a checkpoint every epoch.

`train` is the library entry point (the study calls it with an epoch callback); ``python -m mtan.train``
is the command line. `mtan` never imports Ray: a run reports through `on_epoch(row, out_dir)`, called
after the epoch's row is in ``metrics.jsonl`` and its checkpoint is on disk.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from mtan.checkpoint import load_checkpoint, save_checkpoint
from mtan.cli import command_parser, preset_defaults
from mtan.config import PRESETS, TrainConfig, config_from_flat, make_config, parse_size
from mtan.data import Batch, DataBundle, iterate_batches, load_data
from mtan.errors import ConfigError, UserError, run_cli
from mtan.evaluate import evaluate_model, trivial_baselines
from mtan.files import (
    BASELINES_FILE,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    atomic_write_json,
    atomic_write_text,
    check_writable_folder,
    json_line,
)
from mtan.losses import TASK_LOSSES
from mtan.metrics import METRIC_KEYS, TAIL_EPOCHS, metrics_text, multitask_score, tail_mean
from mtan.model import BACKBONES, MTAN, SingleTaskSegNet
from mtan.tasks import task_channels, task_targets
from mtan.weighting import WEIGHTINGS, Weighting, hyperparameters, make_weighting

EpochCallback = Callable[[dict[str, float], Path], None]
# The key of the weighted total loss among a training epoch's losses (the others are the tasks).
TOTAL_LOSS = "total"
# Steps between updates of the progress bar's loss (each reads the running sums back from the device).
POSTFIX_EVERY = 10
# Fields that may change when a run is resumed: they do not change what is computed. (Not `num_threads`:
# the number of CPU threads changes how torch splits its reductions, so the numbers of the resumed epochs.)
RESUMABLE_CHANGES = {"epochs", "device", "compile"}


class TrainingDiverged(Exception):
    """A task's training loss became NaN or infinite."""


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA when a GPU is visible, else the CPU; `cuda` without a GPU is a `ConfigError`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda given, but no CUDA GPU is visible")
    return torch.device(name)


def read_metrics(out_dir: Path) -> list[dict[str, float]]:
    """The rows of `out_dir/metrics.jsonl`, one per finished epoch (empty if there is none); `UserError`
    names the line that is not a JSON object with an integer epoch (e.g. a truncated last line)."""
    path = Path(out_dir) / METRICS_FILE
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict) or not isinstance(row.get("epoch"), int):
            raise UserError(f"{path}: line {number} is not an epoch's row (truncated or edited?)")
        rows.append(row)
    return rows


def read_text(path: Path) -> str:
    """A text file's contents; `UserError` when it cannot be read or is not UTF-8 text."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None


def read_saved_config(path: Path) -> dict[str, Any]:
    """A run's `config.json` as a flat dict, checked like any config; `UserError` names the file."""
    try:
        flat = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(flat, dict):
        raise UserError(f"{path}: expected a JSON object of config fields")
    try:
        config_from_flat(flat)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    return flat


def write_metrics(out_dir: Path, rows: Sequence[dict[str, float]]) -> None:
    """Rewrite `metrics.jsonl` atomically with `rows`."""
    atomic_write_text(Path(out_dir) / METRICS_FILE, "".join(json_line(row) for row in rows))


def run_summary(rows: Sequence[dict[str, float]]) -> dict[str, Any]:
    """summary.json: the epochs trained, the last epoch's metrics and each metric's mean over the last
    `TAIL_EPOCHS` epochs (all when fewer), the paper's protocol."""
    last = rows[-1] if rows else {}
    return {
        "epochs": len(rows),
        "tail_epochs": min(TAIL_EPOCHS, len(rows)),
        "last": {key: last[key] for key in METRIC_KEYS if key in last},
        "tail_mean": tail_mean(rows),
    }


def check_resumable(saved: dict[str, Any], config: TrainConfig) -> None:
    """A resumed run must compute the same thing: only `RESUMABLE_CHANGES` may differ."""
    current = config.to_flat()
    changed = sorted(k for k in current if k not in RESUMABLE_CHANGES and saved.get(k) != current[k])
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)
        raise ConfigError(f"cannot resume with a different config ({details})")


def make_adam(parameters: list[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam with its fused kernel (the same update in one pass over each parameter), or the default
    implementation where this torch build has no fused kernel for the parameters' device."""
    try:
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay, fused=True)
    except RuntimeError:
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)


def task_losses(outputs: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
    """Each task's unweighted training loss on `batch`."""
    return {task: TASK_LOSSES[task](outputs[task], target) for task, target in task_targets(batch).items()}


def make_model(config: TrainConfig, num_classes: int) -> MTAN | SingleTaskSegNet:
    """The network of `config`: MTAN with one head per task of `mtan.tasks` (segmentation into
    `num_classes`), or with ``config.single_task`` the single-task network of that task alone."""
    channels = task_channels(num_classes)
    if config.single_task is not None:
        task = config.single_task
        return SingleTaskSegNet(task, channels[task], config.backbone, config.width, config.init)
    return MTAN(channels, config.backbone, config.width, config.init)


class Run:
    """The state of one run: model, weighting, optimizer, scheduler and the shuffling generator.

    `network` is what the training step calls: the model itself, or its `torch.compile` with
    ``config.compile``. On a GPU, cuDNN picks its fastest algorithms (`cudnn.benchmark`).
    """

    def __init__(self, config: TrainConfig, num_classes: int, device: torch.device) -> None:
        torch.manual_seed(config.seed)
        self.model = make_model(config, num_classes).to(device)
        self.tasks = dict(self.model.tasks)
        self.network: Callable[[torch.Tensor], dict[str, torch.Tensor]] = (
            torch.compile(self.model) if config.compile else self.model
        )
        self.amp = config.amp
        self.weighting: Weighting = make_weighting(config.weighting, list(self.tasks), config.to_flat()).to(
            device
        )
        parameters = [*self.model.parameters(), *self.weighting.parameters()]
        torch.backends.cudnn.benchmark = device.type == "cuda"
        self.optimizer = make_adam(parameters, config.lr, config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, config.step_size, config.gamma)
        self.shuffle = torch.Generator().manual_seed(config.seed)
        self.device = device

    def state(self, epoch: int, config: TrainConfig) -> dict[str, Any]:
        """Everything needed to continue after `epoch` exactly as if never stopped."""
        rng = {"torch": torch.get_rng_state(), "shuffle": self.shuffle.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "epoch": epoch,
            "config": config.to_flat(),
            "model": self.model.state_dict(),
            "weighting": self.weighting.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng,
        }

    def restore(self, state: dict[str, Any]) -> int:
        """Load a checkpoint's state; return its epoch."""
        self.model.load_state_dict(state["model"])
        self.weighting.load_state_dict(state["weighting"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        self.shuffle.set_state(state["rng"]["shuffle"])
        if self.device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        return int(state["epoch"])

    def step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One training step: forward, weighted loss, backward, optimizer; returns the unweighted losses
        per task and, as `TOTAL_LOSS`, the weighted loss the optimizer minimised."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            losses = task_losses(self.network(batch.images), batch)
        self.optimizer.zero_grad(set_to_none=True)
        total = self.weighting.combine(losses)
        total.backward()
        self.optimizer.step()
        return {**{task: loss.detach() for task, loss in losses.items()}, TOTAL_LOSS: total.detach()}

    def train_epoch(self, data: DataBundle, batch_size: int, epoch: int, progress: bool) -> dict[str, float]:
        """One pass over the training split; returns each task's mean unweighted loss and the mean
        weighted total (`TOTAL_LOSS`). The progress bar shows the running means and the learning rate."""
        self.model.train()
        sums = {name: torch.zeros((), device=self.device) for name in (*self.tasks, TOTAL_LOSS)}
        steps = 0
        batches = iterate_batches(data.train, batch_size, self.device, self.shuffle)
        total_steps = -(-len(data.train) // batch_size)
        lr = self.optimizer.param_groups[0]["lr"]
        bar = tqdm(
            batches, total=total_steps, desc=f"epoch {epoch}", leave=False, disable=None if progress else True
        )
        for batch in bar:
            for name, loss in self.step(batch).items():
                sums[name] += loss
            steps += 1
            if not bar.disable and ((steps - 1) % POSTFIX_EVERY == 0 or steps == total_steps):
                bar.set_postfix_str(
                    f"{loss_text({n: float(s) / steps for n, s in sums.items()})}  lr {lr:.2g}"
                )
        means = {name: float(total) / steps for name, total in sums.items()}
        for name, value in means.items():
            if not torch.isfinite(torch.tensor(value)):
                raise TrainingDiverged(f"{name} loss became {value} in epoch {epoch}")
        return means


def restore_checkpoint(run: Run, out_dir: Path, config: TrainConfig) -> tuple[int, list[dict[str, float]]]:
    """Continue `run` from `out_dir`'s checkpoint: its epoch and the metrics rows up to it.

    `UserError` names the file for a checkpoint that cannot be loaded, lacks part of a run's state,
    holds another config (`check_resumable`) or does not fit the network, and for a metrics.jsonl
    missing an epoch the checkpoint has passed. Nothing is written.
    """
    path = Path(out_dir) / CHECKPOINT_FILE
    state = load_checkpoint(path)
    missing = [key for key in run.state(0, config) if key not in state]
    if missing:
        raise UserError(f"{path}: not a complete checkpoint (missing {', '.join(missing)})")
    if not isinstance(state["config"], dict) or not isinstance(state["epoch"], int) or state["epoch"] < 0:
        raise UserError(f"{path}: not a checkpoint written by mtan.train (bad config or epoch)")
    check_resumable(state["config"], config)
    try:
        done = run.restore(state)
    except (KeyError, RuntimeError, TypeError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path}: does not fit this run's network ({first_line})") from None
    rows = [row for row in read_metrics(out_dir) if row["epoch"] <= done]
    gaps = sorted(set(range(1, done + 1)) - {row["epoch"] for row in rows})
    if gaps or len(rows) != done:
        detail = f"epoch(s) {', '.join(map(str, gaps))} missing" if gaps else "an epoch repeated"
        raise UserError(f"{out_dir / METRICS_FILE}: {detail}, but the checkpoint is at epoch {done}")
    return done, rows


def train(
    config: TrainConfig,
    out_dir: Path,
    *,
    resume: bool = False,
    on_epoch: EpochCallback | None = None,
    data: DataBundle | None = None,
    baselines: Mapping[str, float] | None = None,
    progress: bool = True,
    checkpoint_every: int = 1,
    final_checkpoint: bool = True,
) -> list[dict[str, float]]:
    """Train `config` into `out_dir`; return the metrics rows of all epochs (resumed ones included).

    `baselines`: the trivial predictors' metrics on `data` (`mtan.evaluate.trivial_baselines`), when the
    caller has them (a study computes them once for all its trials); computed here otherwise.
    A checkpoint is saved after every `checkpoint_every`-th epoch and, with `final_checkpoint`, after the
    last one; a resumed run continues after its checkpoint's epoch (later rows of ``metrics.jsonl`` are
    trained again).
    """
    out_dir = Path(out_dir)
    checkpoint_path = out_dir / CHECKPOINT_FILE
    if not resume and (checkpoint_path.exists() or (out_dir / METRICS_FILE).exists()):
        raise ConfigError(
            f"{out_dir} already holds a run; pass --resume to continue it or choose another --out"
        )
    check_writable_folder(out_dir)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = resolve_device(config.device)
    data = data if data is not None else load_data(config)
    run = Run(config, data.num_classes, device)

    done = 0
    rows: list[dict[str, float]] = []
    if resume and checkpoint_path.exists():
        done, rows = restore_checkpoint(run, out_dir, config)
    atomic_write_json(out_dir / CONFIG_FILE, config.to_flat())
    if baselines is None:
        baselines = trivial_baselines(data, config.batch_size, device)
    atomic_write_json(out_dir / BASELINES_FILE, baselines)

    for epoch in range(done + 1, config.epochs + 1):
        start = time.perf_counter()
        lr = run.optimizer.param_groups[0]["lr"]
        weights = run.weighting.weights()
        losses = run.train_epoch(data, config.batch_size, epoch, progress)
        run.weighting.end_epoch({task: losses[task] for task in run.tasks})
        run.scheduler.step()
        metrics = evaluate_model(run.model, data.val, data.num_classes, config.batch_size, device)
        row: dict[str, float] = {"epoch": epoch, "lr": lr}
        row.update({f"loss/{task}": value for task, value in losses.items()})
        row.update({f"weight/{task}": value for task, value in weights.items()})
        row.update(metrics)
        row["score"] = multitask_score(metrics, baselines)
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
        write_metrics(out_dir, rows)
        atomic_write_json(out_dir / SUMMARY_FILE, run_summary(rows))
        if epoch % checkpoint_every == 0 or (final_checkpoint and epoch == config.epochs):
            save_checkpoint(checkpoint_path, run.state(epoch, config))
        if progress:
            tqdm.write(f"epoch {epoch}/{config.epochs}  {epoch_text(row)}")
        if on_epoch is not None:
            on_epoch(row, out_dir)
    return rows


def loss_text(losses: dict[str, float]) -> str:
    """`loss 1.23 (segmentation 1.10, depth 0.13)`: the weighted total, then each task's unweighted loss."""
    tasks = ", ".join(f"{name} {value:.3g}" for name, value in losses.items() if name != TOTAL_LOSS)
    return f"loss {losses[TOTAL_LOSS]:.3g} ({tasks})"


def epoch_text(row: dict[str, float]) -> str:
    """An epoch's row as one line: training loss and learning rate, then the validation metrics in the
    units of the report (mIoU and pixel accuracy in percent; the row itself keeps fractions)."""
    losses = {key.removeprefix("loss/"): value for key, value in row.items() if key.startswith("loss/")}
    metrics = metrics_text(row, ("miou", "pixel_acc", "abs_err", "rel_err", "score"))
    return f"{loss_text(losses)}  lr {row['lr']:.2g}  |  val {metrics}  ({row['seconds']:.1f} s)"


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "mtan.train",
        "Train MTAN (segmentation + depth) once. A preset sets every value; flags override it "
        "(each flag's help lists the presets' values). Without --data-root the run uses the synthetic "
        "default set (generated and cached on first use).",
    )
    parser.add_argument(
        "--preset",
        choices=list(PRESETS),
        default="cpu",
        help="paper: Liu et al. 2019 (128x256, 200 epochs); report: the seed report "
        "(segnet-basic, 100 epochs); cpu (default): small and fast on a laptop CPU",
    )
    parser.add_argument(
        "--data-root",
        help="MTAN-layout data set (root/{train,val}/{image,label_7,...}) (default: the synthetic set)",
    )
    parser.add_argument(
        "--labels", type=int, choices=(7, 19), help=f"7 categories or 19 classes {preset_defaults('labels')}"
    )
    parser.add_argument(
        "--size",
        type=parse_size,
        help="image size HxW the data is resized to, e.g. 128x256 "
        + preset_defaults(lambda c: f"{c.image_height}x{c.image_width}"),
    )
    parser.add_argument(
        "--backbone",
        choices=list(BACKBONES),
        help="segnet: the paper's SegNet; segnet-basic: the seed report's reduced one "
        + preset_defaults("backbone"),
    )
    parser.add_argument(
        "--width",
        type=float,
        help=f"channel width multiplier, 1.0 = the paper's network {preset_defaults('width')}",
    )
    parser.add_argument(
        "--init", choices=("xavier", "kaiming"), help=f"convolution weight init {preset_defaults('init')}"
    )
    parser.add_argument(
        "--weighting", choices=list(WEIGHTINGS), help=f"task loss weighting {preset_defaults('weighting')}"
    )
    for hyperparameter in hyperparameters().values():
        parser.add_argument(
            f"--{hyperparameter.name.replace('_', '-')}",
            type=float,
            help=f"{hyperparameter.label} ({hyperparameter.valid}) " + preset_defaults(hyperparameter.name),
        )
    parser.add_argument("--lr", type=float, help=f"Adam learning rate {preset_defaults('lr')}")
    parser.add_argument(
        "--weight-decay", type=float, help=f"Adam weight decay, 0 = none {preset_defaults('weight_decay')}"
    )
    parser.add_argument(
        "--step-size", type=int, help=f"StepLR step size in epochs {preset_defaults('step_size')}"
    )
    parser.add_argument("--gamma", type=float, help=f"StepLR decay factor {preset_defaults('gamma')}")
    parser.add_argument("--epochs", type=int, help=f"epochs to train {preset_defaults('epochs')}")
    parser.add_argument("--batch-size", type=int, help=f"images per step {preset_defaults('batch_size')}")
    parser.add_argument(
        "--seed", type=int, help=f"seed of the weights' init and the shuffling {preset_defaults('seed')}"
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        help=f"auto = CUDA when a GPU is visible, else the CPU {preset_defaults('device')}",
    )
    parser.add_argument(
        "--threads", type=int, dest="num_threads", help="torch CPU threads (default: torch's own choice)"
    )
    parser.add_argument(
        "--amp",
        action="store_true",
        default=None,
        help="bf16 autocast (for GPUs; changes the numerics; default off)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="torch.compile the network (for GPUs; default off)",
    )
    parser.add_argument(
        "--max-train-images",
        type=int,
        help=f"use only the first N training images {preset_defaults('max_train_images')}",
    )
    parser.add_argument(
        "--max-val-images",
        type=int,
        help=f"use only the first N validation images {preset_defaults('max_val_images')}",
    )
    parser.add_argument("--out", type=Path, help="output folder (default: runs/<preset>-<time>)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint; its config.json is the base",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The config of the command line: the preset (or, with --resume, the run's config.json) plus flags."""
    overrides = {
        key: value
        for key, value in vars(args).items()
        if value is not None and key not in {"preset", "size", "out", "resume", "quiet"}
    }
    if args.size is not None:
        overrides["image_height"], overrides["image_width"] = args.size
    saved = args.out / CONFIG_FILE if args.out is not None else None
    if args.resume and saved is not None and saved.exists():
        return config_from_flat({**read_saved_config(saved), **overrides})
    return make_config(args.preset, **overrides)


def new_run_folder(parent: Path, name: str) -> Path:
    """Create and return ``parent/name``, or ``name-2``, ``name-3``, ... when taken: each call gets a folder
    no other run (another process started in the same second included) was given."""
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in itertools.count(1):
        folder = parent / (name if attempt == 1 else f"{name}-{attempt}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise AssertionError("unreachable")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.resume and args.out is None:
        raise ConfigError("--resume needs --out, the folder of the run to continue")
    if args.resume and not (args.out / CONFIG_FILE).exists() and not (args.out / CHECKPOINT_FILE).exists():
        raise ConfigError(f"--resume: {args.out} holds no run to continue (no {CONFIG_FILE})")
    config = config_from_args(args)
    out = args.out or new_run_folder(Path("runs"), f"{config.preset}-{datetime.now():%Y%m%d-%H%M%S}")
    print(f"training into {out} ({config.preset} preset, data: {config.data_root or 'synthetic'})")
    rows = train(config, out, resume=args.resume, progress=not args.quiet)
    if rows:
        last, tail = rows[-1], tail_mean(rows)
        keys = ("miou", "abs_err", "score")
        print(
            f"done: epoch {int(last['epoch'])}  {metrics_text(last, keys)}; mean of the last "
            f"{min(TAIL_EPOCHS, len(rows))} epochs: {metrics_text(tail, keys)}; results in {out}"
        )
    return 0


if __name__ == "__main__":
    run_cli(main)
