"""One training run of MTAN: Adam, StepLR stepped per epoch, validation every epoch and a checkpoint
every `checkpoint_every` epochs. With ``config.single_task`` the run trains the paper's One Task network
on that task's loss alone and evaluates that task's metrics only: the other task's keys and the score
(which needs both tasks) are absent from its rows, not NaN, since NaN in a row means a value computed and
undefined (docs/results.md).

`train` is the library entry point (the study calls it with an epoch callback); ``python -m mtan.train``
is its command line (`mtan.train.cli`). `mtan` never imports Ray: a run reports through
`on_epoch(row, out_dir)`, called after the epoch's row is in ``metrics.jsonl`` and, when one is due, its
checkpoint is on disk.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from mtan.checkpoint import load_checkpoint, save_checkpoint
from mtan.config import TrainConfig
from mtan.data import Batch, DataBundle, iterate_batches, load_data
from mtan.device import resolve_device
from mtan.errors import ConfigError, UserError
from mtan.evaluate import evaluate_model, trivial_predictor_metrics
from mtan.files import check_writable_folder
from mtan.losses import TASK_LOSSES
from mtan.metrics import metric, metrics_text, multitask_score
from mtan.model import make_model
from mtan.run_folder import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    Row,
    read_metrics,
    write_config,
    write_metrics,
    write_summary,
    write_trivial_metrics,
)
from mtan.tasks import task_targets
from mtan.weighting import Weighting, make_weighting

EpochCallback = Callable[[Row, Path], None]
# The key of the weighted total loss among a training epoch's losses (the others are the tasks).
TOTAL_LOSS = "total"
# Steps between updates of the progress bar's loss (each reads the running sums back from the device).
POSTFIX_EVERY = 10
# Fields that may change when a run is resumed: they do not change what is computed. (Not `num_threads`:
# the number of CPU threads changes how torch splits its reductions, so the numbers of the resumed epochs.)
RESUMABLE_CHANGES = {"epochs", "device", "compile"}


class TrainingDiverged(Exception):
    """A task's training loss became NaN or infinite."""


def check_resumable(saved: dict[str, Any], config: TrainConfig) -> None:
    """A resumed run must compute the same thing: only `RESUMABLE_CHANGES` may differ. A field the saved
    config lacks (written before the field existed) has its default, which computes what that run did."""
    saved = {**TrainConfig().to_flat(), **saved}
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
    """The unweighted training loss on `batch` of each task the network outputs (every task for MTAN,
    its one task for the single-task network)."""
    targets = task_targets(batch)
    return {task: TASK_LOSSES[task](output, targets[task]) for task, output in outputs.items()}


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


def restore_checkpoint(run: Run, out_dir: Path, config: TrainConfig) -> tuple[int, list[Row]]:
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
    trivial_metrics: Mapping[str, float] | None = None,
    progress: bool = True,
    checkpoint_every: int = 1,
    final_checkpoint: bool = True,
) -> list[Row]:
    """Train `config` into `out_dir`; return the metrics rows of all epochs (resumed ones included).

    `trivial_metrics`: the trivial predictors' metrics on `data` (`mtan.evaluate.trivial_predictor_metrics`),
    the reference of the score, when the caller has them (a study computes them once for all its trials);
    computed here otherwise.
    A checkpoint is saved after every `checkpoint_every`-th epoch and, with `final_checkpoint`, after the
    last one. One rule for `resume`: the run continues after its checkpoint's epoch, and the rows of
    ``metrics.jsonl`` after it are trained again; a folder without a checkpoint (a run stopped before its
    first, or an empty folder) is at epoch 0, so all its rows are trained again. Without `resume` a
    folder that holds a run (a checkpoint or metrics rows) is refused.
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
    rows: list[Row] = []
    if resume and checkpoint_path.exists():
        done, rows = restore_checkpoint(run, out_dir, config)
    write_config(out_dir, config)
    if trivial_metrics is None:
        trivial_metrics = trivial_predictor_metrics(data, config.batch_size, device, tuple(run.tasks))
    trivial_metrics = {key: value for key, value in trivial_metrics.items() if metric(key).task in run.tasks}
    write_trivial_metrics(out_dir, trivial_metrics)

    for epoch in range(done + 1, config.epochs + 1):
        start = time.perf_counter()
        lr = run.optimizer.param_groups[0]["lr"]
        weights = run.weighting.weights()
        losses = run.train_epoch(data, config.batch_size, epoch, progress)
        run.weighting.end_epoch({task: losses[task] for task in run.tasks})
        run.scheduler.step()
        metrics = evaluate_model(run.model, data.val, data.num_classes, config.batch_size, device)
        row: Row = {"epoch": epoch, "lr": lr}
        row.update({f"loss/{task}": value for task, value in losses.items()})
        row.update({f"weight/{task}": value for task, value in weights.items()})
        row.update(metrics)
        if config.single_task is None:
            row["score"] = multitask_score(metrics, trivial_metrics)
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
        write_metrics(out_dir, rows)
        write_summary(out_dir, rows)
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


def epoch_text(row: Row) -> str:
    """An epoch's row as one line: training loss and learning rate, then the validation metrics in the
    units of the report (mIoU and pixel accuracy in percent; the row itself keeps fractions)."""
    losses = {key.removeprefix("loss/"): value for key, value in row.items() if key.startswith("loss/")}
    metrics = metrics_text(row, [k for k in ("miou", "pixel_acc", "abs_err", "rel_err", "score") if k in row])
    return f"{loss_text(losses)}  lr {row['lr']:.2g}  |  val {metrics}  ({row['seconds']:.1f} s)"
