"""What every command line shares: `--version`, and help texts that show each preset's default."""

import importlib

import pytest

from mtan.cli import installed_version, preset_defaults
from mtan.config import PRESETS

# `python -m COMMAND` -> the module whose `main` it runs (a package's `__main__` calls its `cli`).
COMMANDS = {
    "mtan.train": "mtan.train",
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
    from mtan.train import build_parser

    text = " ".join(build_parser().format_help().split())
    assert "epochs to train (default: cpu 8, paper 200, report 100)" in text
    assert "(default: cpu 64x128, paper 128x256, report 128x256)" in text
    options = [a for a in build_parser()._actions if a.option_strings and a.dest != "help"]
    assert [a.option_strings[0] for a in options if not a.help] == []
