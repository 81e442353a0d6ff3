"""What every command line shares: `--version`, the type a field's flag parses, and help texts that show each
preset's default."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Optional

import pytest

from mtan.cli import flag_type, installed_version, preset_defaults
from mtan.config import PRESETS, TrainConfig, make_config
from mtan.weighting import hyperparameters

# `python -m COMMAND` -> the module whose `main` it runs (a package's `__main__` calls its `cli`).
COMMANDS = {
    "mtan.train": "mtan.train.cli",
    "mtan.evaluate": "mtan.evaluate",
    "mtan.bench": "mtan.bench",
    "mtan.data.prepare": "mtan.data.prepare",
    "mtan.data.verify": "mtan.data.verify",
    "study.run": "study.run",
    "study.reproduce": "study.reproduce.cli",
    "devtools.study_bench": "devtools.study_bench",
    "analysis.report": "analysis.report",
}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_prints_its_version_and_exits(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        importlib.import_module(COMMANDS[command]).main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"python -m {command} {installed_version()}\n"


def test_preset_defaults_list_every_preset_or_one_value_where_they_agree():
    assert preset_defaults("epochs") == "(default: cpu 8, paper 200, report 100)"
    assert preset_defaults("labels") == "(default: 7)"
    assert (
        preset_defaults("max_val_images")
        == f"(default: cpu {PRESETS['cpu'].max_val_images}, paper all, report all)"
    )


def test_the_train_help_shows_each_preset_default(capsys):
    from mtan.train.cli import build_parser

    text = " ".join(build_parser().format_help().split())
    assert "epochs to train (default: cpu 8, paper 200, report 100)" in text
    assert "(default: cpu 64x128, paper 128x256, report 128x256)" in text
    options = [a for a in build_parser()._actions if a.option_strings and a.dest != "help"]
    assert [a.option_strings[0] for a in options if not a.help] == []


# The flags of `python -m mtan.train` before they were made from TrainConfig's fields, --config, and the
# single-task network's and linear scalarization's fields.
TRAIN_FLAGS = {
    "--preset", "--config", "--data-root", "--labels", "--size", "--single-task", "--backbone", "--width",
    "--init", "--weighting", "--temperature", "--depth-share", "--lr", "--weight-decay", "--step-size",
    "--gamma", "--epochs", "--batch-size", "--seed", "--device", "--threads", "--amp", "--compile",
    "--max-train-images", "--max-val-images", "--out", "--resume", "--quiet", "--version",
}  # fmt: skip


def test_the_train_flags_are_made_from_the_config_fields_with_the_help_beside_each():
    from mtan.train.cli import NOT_DERIVED, build_parser

    actions = {a.dest: a for a in build_parser()._actions if a.option_strings and a.dest != "help"}
    assert {a.option_strings[0] for a in actions.values()} == TRAIN_FLAGS
    for field in dataclasses.fields(TrainConfig):
        if field.name in NOT_DERIVED:
            continue
        help_text = (
            hyperparameters()[field.name].label if field.name in hyperparameters() else field.metadata["help"]
        )
        assert actions[field.name].help.startswith(help_text)


def test_the_train_flags_set_the_fields_they_name():
    from mtan.train.cli import build_parser, config_from_args

    argv = ["--threads", "2", "--amp", "--labels", "19", "--temperature", "3", "--max-val-images", "5"]
    argv += ["--data-root", "/data", "--size", "96x160", "--backbone", "segnet-basic", "--preset", "report"]
    expected = make_config(
        "report",
        num_threads=2,
        amp=True,
        labels=19,
        temperature=3.0,
        max_val_images=5,
        data_root="/data",
        image_height=96,
        image_width=160,
        backbone="segnet-basic",
    )
    assert config_from_args(build_parser().parse_args(argv)) == expected
    assert config_from_args(build_parser().parse_args([])) == make_config("cpu")


@dataclasses.dataclass
class _Fields:
    count: int = 1
    limit: int | None = None
    share: Optional[float] = None  # noqa: UP045 - the older spelling of float | None
    on: bool = False
    name: str | None = None
    names: tuple[str, ...] = ()


def test_a_flag_parses_the_fields_type_and_an_optional_ones_other_type():
    expected = {"count": int, "limit": int, "share": float, "on": bool, "name": str, "names": tuple[str, ...]}
    assert {name: flag_type(_Fields, name) for name in expected} == expected
    assert flag_type(TrainConfig, "num_threads") is int and flag_type(TrainConfig, "data_root") is str
