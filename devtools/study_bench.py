"""``python -m devtools.study_bench``: what the study costs besides training.

``overhead``: runs the cpu-preset study with its defaults (`study.run`) and splits each trial's time in
its trainable (Ray's ``time_total_s`` at its last report) into the work, the epochs' training and
validation (their ``seconds``), and the overhead: the start (the data from the object store, the model,
the trivial baselines, imports in a fresh worker) and, every epoch, the metrics file, the checkpoint
(every ``--checkpoint-every`` epochs) and the report. The study's wall time against the trials' time gives
what Tune itself adds (scheduling, workers starting); the study folder's size is what it keeps.

``checkpoint``: the size of one checkpoint of a preset's network (model, Adam's state, scheduler, RNG
states) and the bytes a trial writes to the storage path per epoch with a checkpoint every N epochs,
against one every epoch.

``memory``: runs K trials of one configuration at once on this node, all reading one data set from Ray's
object store (`tune.with_parameters`, as the study does), and samples the proportional set size (PSS) of
Ray's processes: shared pages, such as the object store's copy of the data, count once in total. Linux
only (``/proc/<pid>/smaps_rollup``). With ``--nodes N`` it runs on a local multi-node cluster instead
(`ray.cluster_utils.Cluster`: a head with no CPUs, where the driver puts the data, as on the cloud
cluster, and N worker nodes of K CPUs, each with its own object store) and samples each node's processes
(its raylet, which holds the node's object store, and the workers the raylet started): the data set
copies a node holds = (its peak PSS - its PSS before the trials - its trials' private memory) / the data
set's size, which is 1 when the node's trials share one copy.

``driver``: the driver's seconds per trial and peak memory in studies of a trivial trainable of growing
size (`devtools.driver_bench`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from ray import tune

from devtools.driver_bench import driver_figures
from mtan.cli import command_parser
from mtan.config import TrainConfig, make_config, parse_size
from mtan.data import Batch, DataBundle, Split, load_data
from mtan.errors import UserError, run_cli
from mtan.evaluate import trivial_predictor_metrics
from mtan.files import atomic_write_json
from mtan.train import Run
from study.compat import raylet_pid
from study.driver import quiet_tune, run_study
from study.record import RAY_DIR
from study.run import build_parser as study_parser
from study.run import settings_from_args
from study.space import TRIAL_NUMBER, SearchSpace
from study.trainable import DEFAULT_CHECKPOINT_EVERY, run_trial


def trial_times(trial_dir: Path) -> dict[str, float]:
    """A finished trial's times from Ray's ``result.json``: in its trainable, in training and
    validation, before its first epoch began, and between its epochs (metrics, checkpoint, report)."""
    rows = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines() if line]
    if not rows:
        return {}
    total = rows[-1]["time_total_s"]
    work = sum(row["seconds"] for row in rows)
    per_epoch = [row["time_this_iter_s"] - row["seconds"] for row in rows[1:]]
    per_epoch_overhead = float(np.median(per_epoch)) if per_epoch else 0.0
    return {
        "epochs": len(rows),
        "trial_s": total,
        "work_s": work,
        "overhead_s": total - work,
        "start_s": rows[0]["time_this_iter_s"] - rows[0]["seconds"] - per_epoch_overhead,
        "per_epoch_overhead_s": per_epoch_overhead,
        "epoch_s_median": float(np.median([row["seconds"] for row in rows])),
    }


def study_overhead(num_samples: int, storage: Path, extra_args: Sequence[str] = ()) -> dict[str, Any]:
    """Run a cpu-preset study of `num_samples` trials with its defaults; the overhead figures."""
    args = study_parser().parse_args(
        ["--num-samples", str(num_samples), "--storage-path", str(storage), "--name", "bench", *extra_args]
    )
    settings = settings_from_args(args)
    started = time.monotonic()
    outcome = run_study(settings)
    wall = time.monotonic() - started
    trials = [
        trial_times(path) for path in sorted((outcome.location.local_dir / RAY_DIR).glob("run_*/trial_*"))
    ]
    trials = [t for t in trials if t]
    total = sum(t["trial_s"] for t in trials)
    overhead = sum(t["overhead_s"] for t in trials)
    slots = settings.max_concurrent or max(
        1, int(ray.cluster_resources().get("CPU", 1) // settings.cpus_per_trial)
    )
    return {
        "trials": trials,
        "num_trials": len(trials),
        "epochs": sum(t["epochs"] for t in trials),
        "trial_s_total": total,
        "overhead_s_total": overhead,
        "overhead_share": overhead / total,
        "start_s_median": float(np.median([t["start_s"] for t in trials])),
        "per_epoch_overhead_s_median": float(np.median([t["per_epoch_overhead_s"] for t in trials])),
        "epoch_s_median": float(np.median([t["epoch_s_median"] for t in trials])),
        "study_wall_s": wall,
        "slots": slots,
        "tune_share": 1 - total / (slots * wall),  # slot time in no trainable: scheduling, workers starting
        "study_bytes": folder_bytes(outcome.location.local_dir),
        "ray_bytes": folder_bytes(outcome.location.local_dir / RAY_DIR),
        "settings": settings.to_json(),
    }


def folder_bytes(folder: Path) -> int:
    """The bytes of the files under `folder`."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def checkpoint_figures(preset: str, checkpoint_every: int) -> dict[str, Any]:
    """One checkpoint's size at `preset` (after one Adam step, so that Adam's moments exist) and the bytes a
    trial writes to storage per epoch: a checkpoint every `checkpoint_every` epochs against every epoch."""
    config = make_config(preset, device="cpu")
    run = Run(config, num_classes=7, device=torch.device("cpu"))
    height, width = config.image_height, config.image_width
    batch = Batch(
        torch.rand(1, 3, height, width),
        torch.zeros(1, height, width, dtype=torch.long),
        torch.rand(1, 1, height, width),
    )
    run.step(batch)
    buffer = io.BytesIO()
    torch.save(run.state(1, config), buffer)
    checkpoint = buffer.getbuffer().nbytes
    metrics_line = 700  # one row of metrics.jsonl, about
    return {
        "preset": preset,
        "parameters": sum(p.numel() for p in run.model.parameters()),
        "checkpoint_bytes": checkpoint,
        "checkpoint_every": checkpoint_every,
        "before_storage_bytes_per_epoch": checkpoint + metrics_line,  # Ray copied each epoch's checkpoint
        "before_all_bytes_per_epoch": 2 * checkpoint + metrics_line,  # ... after the trial wrote it locally
        "storage_bytes_per_epoch": checkpoint / checkpoint_every + metrics_line,
    }


def tiled(split: Split, count: int) -> Split:
    """`split` repeated to `count` samples (a larger data set of the same kind)."""
    index = np.arange(count) % len(split)
    return Split(split.images[index], split.labels[index], split.depth[index])


def data_bytes(data: DataBundle) -> int:
    """Bytes of a data set's arrays."""
    return sum(a.nbytes for s in (data.train, data.val) for a in (s.images, s.labels, s.depth))


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                ppid = int(Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """The processes started by `pid`, recursively (Ray's processes for the driver that started Ray)."""
    children, found, todo = _children(), [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def memory_kb(pid: int) -> dict[str, int]:
    """Pss, its shared-memory part (Pss_Shmem: e.g. pages of Ray's object store in /dev/shm) and private
    (Private_Clean + Private_Dirty) of a process, in kB (empty if it is gone)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in text.splitlines()[1:] if ":" in line)
    kb = {key: int(value.split()[0]) for key, value in fields.items()}
    private = kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0)
    return {"pss": kb.get("Pss", 0), "shmem": kb.get("Pss_Shmem", 0), "private": private}


def is_trial_worker(pid: int) -> bool:
    """Whether process `pid` is a Ray worker running a Tune trial."""
    try:
        return "ImplicitFunc" in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False


class MemorySampler(threading.Thread):
    """Samples the total PSS of this process's descendants and the private memory of trial workers."""

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.stop = threading.Event()
        self.peak_pss_kb = 0
        self.peak_trial_private_kb: dict[int, int] = {}

    def sample(self) -> int:
        pids = descendants(os.getpid())
        memory = {pid: memory_kb(pid) for pid in pids}
        for pid in pids:
            if memory[pid] and is_trial_worker(pid):
                previous = self.peak_trial_private_kb.get(pid, 0)
                self.peak_trial_private_kb[pid] = max(previous, memory[pid]["private"])
        return sum(m.get("pss", 0) for m in memory.values())

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            self.peak_pss_kb = max(self.peak_pss_kb, self.sample())


def concurrent_trials_memory(
    base: TrainConfig, data: DataBundle, trials: int, seconds: float, storage: Path
) -> dict[str, Any]:
    """Peak memory of Ray's processes while `trials` trials of the paper's configuration run at once
    for `seconds` on the shared `data` (on a Ray instance of this process with one CPU per trial)."""
    ray.init(num_cpus=trials, include_dashboard=False, logging_level="WARNING")
    try:
        sampler = MemorySampler()
        baseline_kb = sampler.sample()
        sampler.start()
        run_trials(base, data, trials, seconds, storage)
        sampler.stop.set()
        sampler.join()
    finally:
        ray.shutdown()
    private = list(sampler.peak_trial_private_kb.values())
    return {
        "trials": trials,
        "baseline_pss_bytes": baseline_kb * 1024,
        "peak_pss_bytes": sampler.peak_pss_kb * 1024,
        "trial_workers_seen": len(private),
        "trial_private_bytes_median": float(np.median(private)) * 1024 if private else None,
    }


def run_trials(base: TrainConfig, data: DataBundle, trials: int, seconds: float, storage: Path) -> None:
    """Run `trials` trials of the paper's configuration at once, one CPU each, for `seconds`, each in its
    own folder (a trial number each), on the Ray instance this process is connected to; Tune as quiet as
    in a study (`study.driver.quiet_tune`: none of its boxes)."""
    point = SearchSpace().published_points()[0]
    baselines = trivial_predictor_metrics(data, base.batch_size)
    trials_uri = str(storage / f"memory-{trials}" / "trials")
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, base=base, data=data, baselines=baselines, trials_uri=trials_uri),
        {"cpu": 1},
    )
    tuner = tune.Tuner(
        trainable,
        param_space={**point, TRIAL_NUMBER: tune.grid_search(list(range(trials)))},
        tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=trials, time_budget_s=seconds),
        run_config=tune.RunConfig(name=f"memory-{trials}", storage_path=str(storage), verbose=0),
    )
    with quiet_tune():
        tuner.fit()


def node_memory_kb(pids: Sequence[int]) -> dict[str, Any]:
    """The shared memory (Pss_Shmem) of a node's processes `pids` (its raylet and the processes that
    touch its object store) and each trial worker's private memory, in kB."""
    memory = {pid: memory_kb(pid) for pid in pids}
    trials = {pid: memory[pid]["private"] for pid in pids if memory[pid] and is_trial_worker(pid)}
    return {"shmem": sum(m.get("shmem", 0) for m in memory.values()), "trial_private": trials}


def multi_node_memory(
    base: TrainConfig, data: DataBundle, nodes: int, trials: int, seconds: float, storage: Path
) -> list[dict[str, Any]]:
    """Per node of a local cluster (a 0-CPU head and `nodes` worker nodes of `trials` CPUs each, every
    node with its own object store), while `trials` trials run on every worker node: the peak shared
    memory of the node's processes (its raylet, which holds the node's object store, and the processes
    it started; on the head also this driver, which put the data set there), the data set copies that
    makes, and the peak private memory of its trials (a trial that copied the data set would show it)."""
    from ray.cluster_utils import Cluster

    store = int(data_bytes(data) * 1.5) + 2**28  # room for the data set once, on every node
    head_args = {"num_cpus": 0, "include_dashboard": False, "object_store_memory": store}
    cluster = Cluster(initialize_head=True, head_node_args=head_args)
    try:
        workers = [cluster.add_node(num_cpus=trials, object_store_memory=store) for _ in range(nodes)]
        cluster.wait_for_nodes()
        names = ["head", *(f"worker node {i + 1}" for i in range(nodes))]
        raylets = [raylet_pid(node) for node in (cluster.head_node, *workers)]
        extra = [[os.getpid()], *([] for _ in workers)]

        def node_pids(index: int) -> list[int]:
            return [raylets[index], *descendants(raylets[index]), *extra[index]]

        ray.init(address=cluster.address, logging_level="WARNING")
        before = [node_memory_kb(node_pids(i))["shmem"] for i in range(len(raylets))]
        peak = list(before)
        private: list[dict[int, int]] = [{} for _ in raylets]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.5):
                for i in range(len(raylets)):
                    now = node_memory_kb(node_pids(i))
                    peak[i] = max(peak[i], now["shmem"])
                    for worker, kb in now["trial_private"].items():
                        private[i][worker] = max(private[i].get(worker, 0), kb)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        run_trials(base, data, nodes * trials, seconds, storage)
        stop.set()
        sampler.join()
    finally:
        ray.shutdown()
        cluster.shutdown()
    return [
        {
            "node": names[i],
            "trials": len(private[i]),
            "shared_before_bytes": before[i] * 1024,
            "shared_peak_bytes": peak[i] * 1024,
            "data_copies": (peak[i] - before[i]) * 1024 / data_bytes(data),
            "trial_private_bytes_median": float(np.median(list(private[i].values()))) * 1024
            if private[i]
            else None,
        }
        for i in range(len(raylets))
    ]


def bench_config(size: tuple[int, int] | None) -> TrainConfig:
    """The cpu-preset study's base training config (at `size` if given), with an epoch budget never
    reached."""
    settings = settings_from_args(study_parser().parse_args([]))
    overrides = dict(settings.overrides)
    if size is not None:
        overrides.update(image_height=size[0], image_width=size[1])
    return replace(settings, max_epochs=1000, overrides=tuple(sorted(overrides.items()))).base_config


def bench_data(config: TrainConfig, train_images: int) -> DataBundle:
    """The config's data set, its training split tiled to `train_images` (CityScapes' 2975 by default)."""
    data = load_data(replace(config, max_train_images=None, max_val_images=None))
    return replace(data, train=tiled(data.train, train_images))


def memory_figures(
    counts: Sequence[int], train_images: int, size: tuple[int, int] | None, seconds: float, storage: Path
) -> dict[str, Any]:
    """Peak memory for each number of concurrent trials, against one trial and the data set."""
    config = bench_config(size)
    data = bench_data(config, train_images)
    runs = [concurrent_trials_memory(config, data, k, seconds, storage) for k in counts]
    result: dict[str, Any] = {"data_bytes": data_bytes(data), "runs": runs, "config": config.to_flat()}
    one = next((r for r in runs if r["trials"] == 1), None)
    if one is not None:
        trial = one["peak_pss_bytes"] - one["baseline_pss_bytes"]
        result["one_trial_bytes"] = trial
        for run in runs:
            # Against the target: memory of the node's trials < 1.5 x one trial's + the data set once
            run["ratio_to_one_trial"] = (run["peak_pss_bytes"] - run["baseline_pss_bytes"]) / trial
    return result


def nodes_figures(
    nodes: int, trials: int, train_images: int, size: tuple[int, int] | None, seconds: float, storage: Path
) -> dict[str, Any]:
    """`multi_node_memory` on the tiled data set, with the data set's size and the config."""
    config = bench_config(size)
    data = bench_data(config, train_images)
    rows = multi_node_memory(config, data, nodes, trials, seconds, storage)
    return {"data_bytes": data_bytes(data), "nodes": rows, "config": config.to_flat()}


def format_nodes(result: dict[str, Any]) -> str:
    """`nodes_figures` as text: one line per node."""
    mib = 2**20
    lines = [f"data set {result['data_bytes'] / mib:.0f} MiB"]
    for row in result["nodes"]:
        private = row["trial_private_bytes_median"]
        trials = f"private memory per trial {private / mib:.0f} MiB" if private is not None else "no trial"
        lines.append(
            f"{row['node']}: {row['trials']} trials; shared memory "
            f"{row['shared_before_bytes'] / mib:.0f} MiB "
            f"before, peak {row['shared_peak_bytes'] / mib:.0f} MiB = {row['data_copies']:.2f} data set "
            f"copies; {trials}"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "devtools.study_bench",
        "What the study costs besides training: the per-trial overhead (start, checkpoint, "
        "report) of the cpu-preset study, or the memory of concurrent trials sharing one data set.",
    )
    sub = parser.add_subparsers(dest="mode", required=True)
    over = sub.add_parser("overhead", help="per-trial overhead in the cpu-preset study")
    over.add_argument("--num-samples", type=int, default=4, help="trials (default 4)")
    over.add_argument("--study-arg", action="append", default=[], help="a further study.run flag")
    ckpt = sub.add_parser("checkpoint", help="a checkpoint's size and the bytes written per trial-epoch")
    ckpt.add_argument("--preset", default="paper", help="the preset (default paper)")
    ckpt.add_argument(
        "--checkpoint-every", type=int, default=DEFAULT_CHECKPOINT_EVERY, help="epochs between them"
    )
    mem = sub.add_parser("memory", help="memory of concurrent trials sharing one data set")
    mem.add_argument("--trials", default="1,4", help="numbers of concurrent trials (default 1,4)")
    mem.add_argument("--train-images", type=int, default=2975, help="data set size (default CityScapes')")
    mem.add_argument("--size", type=parse_size, help="image size HxW (default: the cpu-preset study's)")
    mem.add_argument("--seconds", type=float, default=60, help="how long the trials run (default 60)")
    mem.add_argument(
        "--nodes",
        type=int,
        help="a local cluster of this many worker nodes, each running the largest --trials count at once; "
        "prints each node's memory and the data set copies it holds",
    )
    drv = sub.add_parser("driver", help="the driver's cost per trial in studies of a trivial trainable")
    drv.add_argument("--trials", type=int, nargs="+", default=[100, 300, 1000], help="study sizes")
    drv.add_argument("--concurrent", type=int, default=4, help="trials at once (default 4)")
    for sub_parser in (over, mem, drv):
        sub_parser.add_argument("--storage-path", type=Path, help="where the runs go (default: a temp dir)")
    for sub_parser in (over, mem, ckpt, drv):
        sub_parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.mode == "checkpoint":
        if args.checkpoint_every < 1:
            raise UserError("--checkpoint-every must be at least 1")
        result = checkpoint_figures(args.preset, args.checkpoint_every)
        print(
            f"{args.preset}: {result['parameters'] / 1e6:.1f} M parameters, checkpoint "
            f"{result['checkpoint_bytes'] / 1e6:.1f} MB; written to storage per trial-epoch: "
            f"{result['storage_bytes_per_epoch'] / 1e6:.1f} MB with a checkpoint every "
            f"{args.checkpoint_every} epochs, against "
            f"{result['before_storage_bytes_per_epoch'] / 1e6:.1f} MB every epoch "
            f"({result['before_storage_bytes_per_epoch'] / result['storage_bytes_per_epoch']:.1f}x; "
            f"{result['before_all_bytes_per_epoch'] / result['storage_bytes_per_epoch']:.1f}x counting the "
            "local copy Ray uploaded from)"
        )
        if args.json is not None:
            atomic_write_json(args.json, result)
        return 0
    with tempfile.TemporaryDirectory(prefix="mtan-study-bench-") as scratch:
        storage = (args.storage_path or Path(scratch)).resolve()
        if args.mode == "overhead":
            if args.num_samples < 1:
                raise UserError("--num-samples must be at least 1")
            ray.init(include_dashboard=False, logging_level="WARNING")
            try:
                result = study_overhead(args.num_samples, storage, args.study_arg)
            finally:
                ray.shutdown()
            print(
                f"{result['num_trials']} trials, {result['epochs']} epochs, "
                f"{result['trial_s_total']:.1f} s in trials: overhead {result['overhead_s_total']:.1f} s = "
                f"{result['overhead_share']:.1%} (start {result['start_s_median']:.2f} s, per epoch "
                f"{result['per_epoch_overhead_s_median']:.3f} s against {result['epoch_s_median']:.2f} s of "
                f"work); Tune between trials {result['tune_share']:.1%} of {result['slots']} slots x "
                f"{result['study_wall_s']:.1f} s; study folder {result['study_bytes'] / 1e6:.1f} MB "
                f"(Ray's own {result['ray_bytes'] / 1e6:.1f} MB)"
            )
        elif args.mode == "driver":
            if min(args.trials) < 1 or args.concurrent < 1:
                raise UserError("--trials and --concurrent must be at least 1")
            ray.init(
                address="local", num_cpus=args.concurrent, include_dashboard=False, logging_level="WARNING"
            )
            try:
                result = driver_figures(
                    args.trials, storage, args.concurrent, on_run=lambda line: print(line, flush=True)
                )
            finally:
                ray.shutdown()
        else:
            counts = sorted({int(k) for k in args.trials.split(",")})
            if not counts or counts[0] < 1:
                raise UserError(f"--trials must list positive numbers, got {args.trials!r}")
            if args.nodes is not None:
                if args.nodes < 1:
                    raise UserError(f"--nodes must be at least 1, got {args.nodes}")
                result = nodes_figures(
                    args.nodes, counts[-1], args.train_images, args.size, args.seconds, storage
                )
                print(format_nodes(result))
                if args.json is not None:
                    atomic_write_json(args.json, result)
                return 0
            result = memory_figures(counts, args.train_images, args.size, args.seconds, storage)
            print(f"data set {result['data_bytes'] / 2**20:.0f} MiB")
            for run in result["runs"]:
                private = run["trial_private_bytes_median"]
                print(
                    f"{run['trials']} trials: Ray's processes {run['baseline_pss_bytes'] / 2**20:.0f} MiB "
                    f"before, peak {run['peak_pss_bytes'] / 2**20:.0f} MiB (PSS); private memory per trial "
                    f"{(private or 0) / 2**20:.0f} MiB; trials' memory / one trial's "
                    f"{run.get('ratio_to_one_trial', float('nan')):.2f}"
                )
    if args.json is not None:
        atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    run_cli(main)
