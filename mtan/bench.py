"""``python -m mtan.bench``: the cost of one training step, against the machine's dense matrix product.

It times `Run.step` (forward, weighted loss, backward, Adam) on a fixed batch after a warm-up, counts the
network's training FLOPs with `torch.utils.flop_counter`, and measures a square matrix product's FLOP/s on
the same device and dtype in the same run (before and after the steps; the higher of the two is the peak,
which keeps `mfu` conservative). `mfu` = model FLOP/s / GEMM FLOP/s. It also times the data loader alone.
With ``--compare`` it times the plain per-task reference (`mtan.reference`; by default in the contiguous
memory format, the straightforward implementation) interleaved with the fast network, so both see the
same machine load.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from mtan.cli import command_parser, preset_defaults
from mtan.config import PRESETS, TrainConfig, make_config, parse_size
from mtan.data import Batch, Split, iterate_batches
from mtan.device import resolve_device
from mtan.errors import ConfigError, run_cli
from mtan.files import atomic_write_json
from mtan.model import BACKBONES
from mtan.reference import PerTaskMTAN
from mtan.train import Run, task_losses

GEMM_SIZE = {"cpu": 2048, "cuda": 8192}
FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
FORMATS_BY_VALUE = {value: name for name, value in FORMATS.items()}
# The CPU operators that do the counted FLOPs (convolutions forward and backward, matrix products): the
# profiler gives each its own (self) time, nested calls excluded.
MATRIX_OPS = frozenset(
    {
        "aten::mkldnn_convolution",
        "aten::convolution_backward",
        "aten::_slow_conv2d_forward",
        "aten::_slow_conv2d_backward",
        "aten::mm",
        "aten::addmm",
        "aten::bmm",
        "aten::baddbmm",
    }
)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], Any], device: torch.device, repeats: int) -> tuple[float, list[float]]:
    """Median wall time of `fn` over `repeats` calls (each synchronised), and all the times."""
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def gemm_flops_per_s(
    device: torch.device, dtype: torch.dtype, size: int | None = None, repeats: int = 7
) -> float:
    """FLOP/s of a square dense matrix product (2 n^3 FLOPs) on `device` in `dtype`, median of `repeats`."""
    n = size or GEMM_SIZE[device.type]
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    for _ in range(2):
        torch.mm(a, b, out=out)
    seconds, _ = median_seconds(lambda: torch.mm(a, b, out=out), device, repeats)
    return 2 * n**3 / seconds


def random_batch(config: TrainConfig, batch_size: int, device: torch.device, seed: int = 0) -> Batch:
    """A batch of random images, labels (with some void pixels) and depth (with some invalid pixels)."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch_size, config.image_height, config.image_width)
    images = torch.rand(batch_size, 3, *shape[1:], generator=generator)
    labels = torch.randint(-1, config.labels, shape, generator=generator)
    depth = torch.rand(shape, generator=generator) * (torch.rand(shape, generator=generator) > 0.1)
    return Batch(images.to(device), labels.to(device), depth.to(device))


def random_split(config: TrainConfig, size: int, seed: int = 0) -> Split:
    """An in-memory split of `size` random samples in the loader's storage dtypes."""
    rng = np.random.default_rng(seed)
    h, w = config.image_height, config.image_width
    return Split(
        rng.integers(0, 256, (size, 3, h, w), dtype=np.uint8),
        rng.integers(-1, config.labels, (size, h, w), dtype=np.int8),
        rng.random((size, h, w), dtype=np.float32),
    )


def loader_images_per_s(config: TrainConfig, batch_size: int, device: torch.device, size: int = 256) -> float:
    """Images/s of `iterate_batches` alone: a shuffled pass over an in-memory split onto `device`."""
    split = random_split(config, size)
    generator = torch.Generator().manual_seed(0)

    def one_pass() -> None:
        for _ in iterate_batches(split, batch_size, device, generator):
            pass

    one_pass()
    seconds, _ = median_seconds(one_pass, device, 3)
    return size / seconds


def training_flops(model: nn.Module, batch: Batch) -> int:
    """FLOPs of one forward and backward pass of `model` on `batch` with the training losses (matrix
    products and convolutions), counted by `torch.utils.flop_counter`; the gradients are then dropped."""
    with FlopCounterMode(display=False) as counter:
        sum(task_losses(model(batch.images), batch).values()).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def peak_memory_bytes(device: torch.device) -> int:
    """Peak memory: bytes allocated by torch on a GPU, else the process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def step_breakdown(
    run: Run, batch: Batch, flops: int, gemm: float, steps: int = 2, top: int = 6
) -> dict[str, Any]:
    """Where a CPU training step's time goes: `steps` steps under the profiler, split into the matrix
    operators (`MATRIX_OPS`, which do all of `flops`) and everything else (batch norm, activations,
    pooling, copies, the optimizer, Python). ``mfu_matrix_ops`` is their FLOP/s against `gemm`: the
    ``mfu`` the step would reach if every other operator took no time. The profiler slows small
    operators, so the profiled step is a little longer than the timed one."""
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        start = time.perf_counter()
        for _ in range(steps):
            run.step(batch)
        step = (time.perf_counter() - start) / steps
    self_seconds: dict[str, float] = {}
    for event in profiler.key_averages():
        self_seconds[event.key] = event.self_cpu_time_total / 1e6 / steps
    matrix = sum(seconds for name, seconds in self_seconds.items() if name in MATRIX_OPS)
    others = sorted(
        ((name, seconds) for name, seconds in self_seconds.items() if name not in MATRIX_OPS),
        key=lambda item: -item[1],
    )
    return {
        "profiled_step_s": step,
        "matrix_ops_s": matrix,
        "matrix_ops_share": matrix / step,
        "matrix_ops_flops_per_s": flops / matrix,
        "mfu_matrix_ops": flops / matrix / gemm,
        "top_other_ops_s": dict(others[:top]),
    }


def make_run(
    config: TrainConfig,
    device: torch.device,
    reference: bool,
    reference_format: torch.memory_format = torch.contiguous_format,
) -> Run:
    """A training run of `config`; with `reference` its network runs the plain per-task loop on the same
    parameters, in `reference_format`."""
    run = Run(config, num_classes=config.labels, device=device)
    if reference:
        run.model = PerTaskMTAN(run.model.to(memory_format=reference_format))
        run.network = torch.compile(run.model) if config.compile else run.model
    return run


def benchmark(
    config: TrainConfig,
    steps: int,
    warmup: int,
    compare: bool = False,
    reference: bool = False,
    reference_format: torch.memory_format = torch.contiguous_format,
    breakdown: bool = False,
) -> dict[str, Any]:
    """Time `steps` training steps of `config` after `warmup` ones; return the figures (see module doc),
    with `breakdown` also `step_breakdown` of each network (CPU only)."""
    device = resolve_device(config.device)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    dtype = torch.bfloat16 if config.amp else torch.float32
    load_before = os.getloadavg()
    gemm_before = gemm_flops_per_s(device, dtype)

    runs = {"ours": make_run(config, device, reference, reference_format)}
    if compare:
        runs["reference"] = make_run(config, device, True, reference_format)
    batch = random_batch(config, config.batch_size, device)
    flops = training_flops(runs["ours"].model, batch)
    for run in runs.values():
        for _ in range(warmup):
            run.step(batch)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(steps):  # interleaved, so that a change of machine load hits both alike
        for name, run in runs.items():
            times[name].append(median_seconds(lambda run=run: run.step(batch), device, 1)[0])

    gemm = max(gemm_before, gemm_flops_per_s(device, dtype))
    step = statistics.median(times["ours"])
    result: dict[str, Any] = {
        "step_s_median": step,
        "images_per_s": config.batch_size / step,
        "model_flops_per_image": flops / config.batch_size,
        "model_flops_per_s": flops / step,
        "gemm_flops_per_s": gemm,
        "mfu": flops / step / gemm,
        "peak_mem_bytes": peak_memory_bytes(device),
        "loader_images_per_s": loader_images_per_s(config, config.batch_size, device),
        "step_s_all": times["ours"],
        "network": "reference" if reference else "fast",
        "reference_format": FORMATS_BY_VALUE[reference_format],
    }
    if compare:
        reference_step = statistics.median(times["reference"])
        result.update(
            reference_step_s_median=reference_step,
            reference_mfu=flops / reference_step / gemm,
            speedup=reference_step / step,
            reference_step_s_all=times["reference"],
        )
    if breakdown:
        result["breakdown"] = step_breakdown(runs["ours"], batch, flops, gemm)
        if compare:
            result["reference_breakdown"] = step_breakdown(runs["reference"], batch, flops, gemm)
    result.update(
        config=config.to_flat(),
        device=str(device),
        device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        threads=torch.get_num_threads(),
        dtype=str(dtype).removeprefix("torch."),
        gemm_size=GEMM_SIZE[device.type],
        torch=torch.__version__,
        load_average=[load_before[0], os.getloadavg()[0]],
    )
    return result


def breakdown_line(title: str, figures: dict[str, Any]) -> str:
    """`step_breakdown`'s figures in words."""
    others = ", ".join(
        f"{name.removeprefix('aten::')} {seconds * 1e3:.0f} ms"
        for name, seconds in figures["top_other_ops_s"].items()
    )
    matrix_ms, share = figures["matrix_ops_s"] * 1e3, figures["matrix_ops_share"]
    return (
        f"{title} (profiled step {figures['profiled_step_s'] * 1e3:.0f} ms): "
        f"convolutions and matrix products {matrix_ms:.0f} ms ({share:.0%}) "
        f"at {figures['matrix_ops_flops_per_s'] / 1e9:.0f} GFLOP/s, "
        f"mfu {figures['mfu_matrix_ops']:.2f} if all else took no time; largest other operators: {others}"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "mtan.bench",
        "Time the MTAN training step: images/s, FLOP/s and their share of the GEMM peak.",
    )
    parser.add_argument(
        "--preset", choices=list(PRESETS), default="cpu", help="the network and batch to time (default: cpu)"
    )
    parser.add_argument(
        "--backbone", choices=list(BACKBONES), help=f"the backbone {preset_defaults('backbone')}"
    )
    parser.add_argument("--width", type=float, help=f"channel width multiplier {preset_defaults('width')}")
    parser.add_argument("--batch-size", type=int, help=f"images per step {preset_defaults('batch_size')}")
    parser.add_argument(
        "--size",
        type=parse_size,
        help="image size HxW, e.g. 128x256 " + preset_defaults(lambda c: f"{c.image_height}x{c.image_width}"),
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="cpu",
        help="auto = CUDA when a GPU is visible (default: cpu)",
    )
    parser.add_argument(
        "--threads", type=int, dest="num_threads", help="torch CPU threads (default: torch's own choice)"
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (the GEMM peak is then bf16 too)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    network = parser.add_mutually_exclusive_group()
    network.add_argument(
        "--compare", action="store_true", help="also time the plain per-task reference, interleaved"
    )
    network.add_argument("--reference", action="store_true", help="time the plain per-task reference only")
    parser.add_argument(
        "--reference-format",
        choices=list(FORMATS),
        default="contiguous",
        help="memory format of the reference (default contiguous, as the official code)",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="CPU only: profile 2 more steps and split their time into the convolutions and matrix "
        "products (with their FLOP/s against the GEMM) and the other operators",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        raise ConfigError("--steps must be >= 1 and --warmup >= 0")
    if args.breakdown and args.device != "cpu":
        raise ConfigError("--breakdown profiles CPU operators; use it with --device cpu")
    overrides: dict[str, Any] = {
        key: getattr(args, key)
        for key in ("backbone", "width", "batch_size", "device", "num_threads")
        if getattr(args, key) is not None
    }
    if args.size is not None:
        overrides["image_height"], overrides["image_width"] = args.size
    config = make_config(args.preset, amp=args.amp, compile=args.compile, **overrides)
    result = benchmark(
        config,
        args.steps,
        args.warmup,
        compare=args.compare,
        reference=args.reference,
        reference_format=FORMATS[args.reference_format],
        breakdown=args.breakdown,
    )
    lines = [
        f"{result['network']} network, {config.preset} preset, {config.image_height}x{config.image_width}, "
        f"width {config.width}, batch {config.batch_size}, {result['device']} ({result['threads']} threads), "
        f"{result['dtype']}",
        f"step {result['step_s_median'] * 1e3:.1f} ms (median of {args.steps}), "
        f"{result['images_per_s']:.1f} images/s",
        f"model {result['model_flops_per_image'] / 1e9:.2f} GFLOP/image (training), "
        f"{result['model_flops_per_s'] / 1e9:.1f} GFLOP/s; "
        f"GEMM {result['gemm_flops_per_s'] / 1e9:.1f} GFLOP/s; mfu {result['mfu']:.3f}",
        f"peak memory {result['peak_mem_bytes'] / 2**20:.0f} MiB; "
        f"loader alone {result['loader_images_per_s']:.0f} images/s",
    ]
    if args.compare:
        lines.append(
            f"reference (per-task loop, {args.reference_format}): "
            f"step {result['reference_step_s_median'] * 1e3:.1f} ms, "
            f"mfu {result['reference_mfu']:.3f}; speed-up {result['speedup']:.2f}x"
        )
    for name in ("breakdown", "reference_breakdown"):
        if name in result:
            lines.append(breakdown_line(name.replace("_", " "), result[name]))
    lines.append(
        f"load average {result['load_average'][0]:.2f} before, {result['load_average'][1]:.2f} after"
    )
    print("\n".join(lines))
    if args.json is not None:
        atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    run_cli(main)
