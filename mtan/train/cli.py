"""``python -m mtan.train``: one training run from the command line.

The base of the run's config is a preset (``--preset``), a config file (``--config``: a run's config.json
or a study's best_config.json) or, with ``--resume``, the run's own config.json; every other flag
overrides one value. There is a flag per `TrainConfig` field, made from the field's metadata
(`mtan.config`) or, for a weighting method's hyperparameter, from its declaration (`mtan.weighting`).

A module apart from the run (`mtan.train`), and run through the package's ``__main__``: the command
line imports the library once, under its own name.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from mtan.cli import command_parser, flag_type, preset_defaults
from mtan.config import PRESETS, TrainConfig, config_from_flat, make_config, parse_size
from mtan.errors import ConfigError, UserError
from mtan.evaluate import model_text
from mtan.files import read_json
from mtan.metrics import TAIL_EPOCHS, metrics_text, tail_mean
from mtan.run_folder import CHECKPOINT_FILE, CONFIG_FILE, check_config, read_config
from mtan.train import train
from mtan.weighting import hyperparameters

# The fields whose flags are written here, not derived: the preset is the base the other flags override,
# and ``--size HxW`` sets both image fields.
NOT_DERIVED = ("preset", "image_height", "image_width")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """A flag per `TrainConfig` field but `NOT_DERIVED`, default None (not given): ``--weight-decay`` for
    `weight_decay` (or the field's own flag name), the field's help and choices, each preset's value."""
    weighting_hyperparameters = hyperparameters()
    for config_field in dataclasses.fields(TrainConfig):
        if config_field.name in NOT_DERIVED:
            continue
        meta = config_field.metadata
        if config_field.name in weighting_hyperparameters:
            hyperparameter = weighting_hyperparameters[config_field.name]
            text = f"{hyperparameter.label} ({hyperparameter.valid})"
        else:
            text = meta.get("help", "")
        if meta.get("shown", True):
            text = f"{text} {preset_defaults(config_field.name)}"
        flag = "--" + (meta.get("flag") or config_field.name).replace("_", "-")
        kind = flag_type(TrainConfig, config_field.name)
        if kind is bool:
            parser.add_argument(flag, dest=config_field.name, action="store_true", default=None, help=text)
        else:
            choices = meta.get("choices")
            parser.add_argument(flag, dest=config_field.name, type=kind, choices=choices, help=text)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "mtan.train",
        "Train MTAN (segmentation + depth) once, or with --single-task TASK the paper's One Task network "
        "on that task alone. A preset (or --config FILE) sets every value; flags "
        "override it (each flag's help lists the presets' values). Without --data-root the run uses the "
        "synthetic default set (generated and cached on first use).",
    )
    parser.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="paper: Liu et al. 2019 (128x256, 200 epochs); report: the seed report "
        f"(segnet-basic, 100 epochs); {TrainConfig.preset} (default): small and fast on a laptop CPU",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="start from this config instead of a preset: a run's config.json or a study's "
        "best_config.json (its `config`); the other flags override its values",
    )
    parser.add_argument(
        "--size",
        type=parse_size,
        help="image size HxW the data is resized to, e.g. 128x256 "
        + preset_defaults(lambda c: f"{c.image_height}x{c.image_width}"),
    )
    add_config_flags(parser)
    parser.add_argument("--out", type=Path, help="output folder (default: runs/<preset>-<time>)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out after its checkpoint's epoch (from the start when it stopped "
        "before its first checkpoint); its config.json is the base",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    return parser


def read_config_file(path: Path) -> dict[str, Any]:
    """The flat config in `path`: a run's config.json, or the ``config`` of a study's best_config.json;
    `UserError` naming ``--config`` and the file when it is neither."""
    try:
        value = read_json(path)
        if isinstance(value, dict) and isinstance(value.get("config"), dict):
            value = value["config"]
        return check_config(value, path)
    except UserError as error:
        raise type(error)(f"--config {error}") from None


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The config of the command line: its base (``--config``, with ``--resume`` the run's config.json,
    else the preset) with the values of the flags given."""
    flags = (f.name for f in dataclasses.fields(TrainConfig) if f.name not in NOT_DERIVED)
    overrides = {name: getattr(args, name) for name in flags if getattr(args, name) is not None}
    if args.size is not None:
        overrides["image_height"], overrides["image_width"] = args.size
    if args.config is not None:
        if args.preset is not None:
            raise ConfigError("--config and --preset: the file is the base; give flags to change its values")
        return config_from_flat({**read_config_file(args.config), **overrides})
    if args.resume and args.out is not None and (args.out / CONFIG_FILE).exists():
        return config_from_flat({**read_config(args.out), **overrides})
    return make_config(args.preset or TrainConfig.preset, **overrides)


def new_run_folder(parent: Path, name: str) -> Path:
    """Create and return ``parent/name``, or ``name-2``, ``name-3``, ... when taken: each call gets a folder
    no other run (another process started in the same second included) was given."""
    parent.mkdir(parents=True, exist_ok=True)
    attempt = 1
    while True:
        folder = parent / (name if attempt == 1 else f"{name}-{attempt}")
        try:
            folder.mkdir()
        except FileExistsError:
            attempt += 1
            continue
        return folder


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.config is not None and args.resume:
        raise ConfigError("--config and --resume: a resumed run keeps its own config.json")
    if args.resume and args.out is None:
        raise ConfigError("--resume needs --out, the folder of the run to continue")
    if args.resume and not (args.out / CONFIG_FILE).exists() and not (args.out / CHECKPOINT_FILE).exists():
        raise ConfigError(f"--resume: {args.out} holds no run to continue (no {CONFIG_FILE})")
    config = config_from_args(args)
    out = args.out or new_run_folder(Path("runs"), f"{config.preset}-{datetime.now():%Y%m%d-%H%M%S}")
    data = config.data_root or "synthetic"
    print(f"training {model_text(config)} into {out} ({config.preset} preset, data: {data})")
    rows = train(config, out, resume=args.resume, progress=not args.quiet)
    if rows:
        last, tail = rows[-1], tail_mean(rows)
        keys = [key for key in ("miou", "abs_err", "score") if key in last]  # a single task's alone
        print(
            f"done: epoch {int(last['epoch'])}  {metrics_text(last, keys)}; mean of the last "
            f"{min(TAIL_EPOCHS, len(rows))} epochs: {metrics_text(tail, keys)}; results in {out}"
        )
    return 0
