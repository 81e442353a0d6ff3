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
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from mtan.checkpoint import load_checkpoint, save_checkpoint
from mtan.config import PRESETS, TrainConfig, config_from_flat, make_config
from mtan.data import Batch, DataBundle, iterate_batches, load_data
from mtan.errors import ConfigError, run_cli
from mtan.evaluate import evaluate_model, trivial_baselines
from mtan.files import (
    BASELINES_FILE,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    atomic_write_json,
    atomic_write_text,
    json_line,
)
from mtan.losses import TASK_LOSSES
from mtan.metrics import METRIC_KEYS, TAIL_EPOCHS, multitask_score, tail_mean
from mtan.model import BACKBONES, MTAN
from mtan.tasks import task_channels, task_targets
from mtan.weighting import WEIGHTINGS, Weighting, hyperparameters, make_weighting

EpochCallback = Callable[[dict[str, float], Path], None]
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
    """The rows of `out_dir/metrics.jsonl`, one per finished epoch (empty if there is none)."""
    path = Path(out_dir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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


class Run:
    """The state of one run: model, weighting, optimizer, scheduler and the shuffling generator.

    `network` is what the training step calls: the model itself, or its `torch.compile` with
    ``config.compile``. On a GPU, cuDNN picks its fastest algorithms (`cudnn.benchmark`).
    """

    def __init__(self, config: TrainConfig, num_classes: int, device: torch.device) -> None:
        torch.manual_seed(config.seed)
        self.tasks = task_channels(num_classes)
        self.model = MTAN(self.tasks, config.backbone, config.width, config.init).to(device)
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
        """One training step: forward, weighted loss, backward, optimizer; returns the unweighted losses."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            losses = task_losses(self.network(batch.images), batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.weighting.combine(losses).backward()
        self.optimizer.step()
        return {task: loss.detach() for task, loss in losses.items()}

    def train_epoch(self, data: DataBundle, batch_size: int, epoch: int, progress: bool) -> dict[str, float]:
        """One pass over the training split; returns each task's mean unweighted loss."""
        self.model.train()
        sums = {task: torch.zeros((), device=self.device) for task in self.tasks}
        steps = 0
        batches = iterate_batches(data.train, batch_size, self.device, self.shuffle)
        total_steps = -(-len(data.train) // batch_size)
        for batch in tqdm(
            batches, total=total_steps, desc=f"epoch {epoch}", leave=False, disable=None if progress else True
        ):
            for task, loss in self.step(batch).items():
                sums[task] += loss
            steps += 1
        means = {task: float(total) / steps for task, total in sums.items()}
        for task, value in means.items():
            if not torch.isfinite(torch.tensor(value)):
                raise TrainingDiverged(f"{task} loss became {value} in epoch {epoch}")
        return means


def train(
    config: TrainConfig,
    out_dir: Path,
    *,
    resume: bool = False,
    on_epoch: EpochCallback | None = None,
    data: DataBundle | None = None,
    progress: bool = True,
    checkpoint_every: int = 1,
    final_checkpoint: bool = True,
) -> list[dict[str, float]]:
    """Train `config` into `out_dir`; return the metrics rows of all epochs (resumed ones included).

    A checkpoint is saved after every `checkpoint_every`-th epoch and, with `final_checkpoint`, after the
    last one; a resumed run continues after its checkpoint's epoch (later rows of ``metrics.jsonl`` are
    trained again).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / CHECKPOINT_FILE
    if not resume and (checkpoint_path.exists() or (out_dir / METRICS_FILE).exists()):
        raise ConfigError(
            f"{out_dir} already holds a run; pass --resume to continue it or choose another --out"
        )
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = resolve_device(config.device)
    data = data if data is not None else load_data(config)
    run = Run(config, data.num_classes, device)

    done = 0
    rows: list[dict[str, float]] = []
    if resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path)
        check_resumable(state["config"], config)
        done = run.restore(state)
        rows = [row for row in read_metrics(out_dir) if row["epoch"] <= done]
    atomic_write_json(out_dir / CONFIG_FILE, config.to_flat())
    baselines = trivial_baselines(data, config.batch_size, device)
    atomic_write_json(out_dir / BASELINES_FILE, baselines)

    for epoch in range(done + 1, config.epochs + 1):
        start = time.perf_counter()
        lr = run.optimizer.param_groups[0]["lr"]
        weights = run.weighting.weights()
        losses = run.train_epoch(data, config.batch_size, epoch, progress)
        run.weighting.end_epoch(losses)
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
            tqdm.write(
                f"epoch {epoch}/{config.epochs}  mIoU {row['miou']:.3f}  pix acc {row['pixel_acc']:.3f}  "
                f"abs err {row['abs_err']:.4f}  rel err {row['rel_err']:.3f}  score {row['score']:.3f}  "
                f"({row['seconds']:.1f} s)"
            )
        if on_epoch is not None:
            on_epoch(row, out_dir)
    return rows


def parse_size(text: str) -> tuple[int, int]:
    """`128x256` -> (128, 256)."""
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 128x256, got {text!r}") from None
    return height, width


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mtan.train",
        description="Train MTAN (segmentation + depth) once. A preset sets every value; flags override it. "
        "Without --data-root the run uses the synthetic default set (generated and cached on first use).",
    )
    parser.add_argument(
        "--preset",
        choices=list(PRESETS),
        default="cpu",
        help="paper: Liu et al. 2019 (128x256, 200 epochs); report: the seed report "
        "(segnet-basic, 100 epochs); cpu (default): small and fast on a laptop CPU",
    )
    parser.add_argument("--data-root", help="MTAN-layout data set (root/{train,val}/{image,label_7,...})")
    parser.add_argument("--labels", type=int, choices=(7, 19), help="7 categories or 19 classes")
    parser.add_argument("--size", type=parse_size, help="image size HxW the data is resized to, e.g. 128x256")
    parser.add_argument("--backbone", choices=list(BACKBONES))
    parser.add_argument("--width", type=float, help="channel width multiplier (1.0 = the paper's network)")
    parser.add_argument("--init", choices=("xavier", "kaiming"))
    parser.add_argument("--weighting", choices=list(WEIGHTINGS))
    for hyperparameter in hyperparameters().values():
        parser.add_argument(
            f"--{hyperparameter.name.replace('_', '-')}",
            type=float,
            help=f"{hyperparameter.label} (> {hyperparameter.above:g})",
        )
    parser.add_argument("--lr", type=float, help="Adam learning rate")
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--step-size", type=int, help="StepLR step size in epochs")
    parser.add_argument("--gamma", type=float, help="StepLR decay factor")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, dest="num_threads", help="torch CPU threads")
    parser.add_argument(
        "--amp", action="store_true", default=None, help="bf16 autocast (for GPUs; changes the numerics)"
    )
    parser.add_argument(
        "--compile", action="store_true", default=None, help="torch.compile the network (for GPUs)"
    )
    parser.add_argument("--max-train-images", type=int, help="use only the first N training images")
    parser.add_argument("--max-val-images", type=int, help="use only the first N validation images")
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
        return config_from_flat({**json.loads(saved.read_text()), **overrides})
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
    config = config_from_args(args)
    out = args.out or new_run_folder(Path("runs"), f"{config.preset}-{datetime.now():%Y%m%d-%H%M%S}")
    print(f"training into {out} ({config.preset} preset, data: {config.data_root or 'synthetic'})")
    rows = train(config, out, resume=args.resume, progress=not args.quiet)
    if rows:
        last, tail = rows[-1], tail_mean(rows)
        summary = f"mIoU {last['miou']:.4f}, abs err {last['abs_err']:.4f}"
        tail_text = f"mIoU {tail['miou']:.4f}, abs err {tail['abs_err']:.4f}"
        print(
            f"done: epoch {int(last['epoch'])}, {summary}; mean of the last {min(TAIL_EPOCHS, len(rows))} "
            f"epochs: {tail_text}; results in {out}"
        )
    return 0


if __name__ == "__main__":
    run_cli(main)
