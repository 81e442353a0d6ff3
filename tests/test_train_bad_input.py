"""`python -m mtan.train` on bad input: one line naming the file or flag, exit 2, nothing written changed."""

import errno
import json
import shutil

import numpy as np
import pytest
import torch

import mtan.checkpoint
import mtan.files
from mtan.config import make_config
from mtan.errors import ConfigError
from mtan.run_folder import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    TRIVIAL_FILE,
    read_metrics,
)
from mtan.train.cli import main
from tests.bad_input import refused, snapshot
from tests.tiny_data import write_tiny_set

TINY_RUN = ["--size", "32x64", "--width", "0.0625", "--batch-size", "4", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return write_tiny_set(tmp_path_factory.mktemp("tiny"), train=4, val=2)


@pytest.fixture(scope="module")
def finished_run(tiny_root, tmp_path_factory):
    """A run of three epochs: its checkpoint is at epoch 3, so epoch 2 is a middle one."""
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["--data-root", str(tiny_root), *TINY_RUN, "--epochs", "3", "--out", str(out)]) == 0
    return out


def _truncate(path, size):
    path.write_bytes(path.read_bytes()[:size])


class NotATensor:
    pass


def _rewrite_checkpoint(change):
    def edit(run):
        state = torch.load(run / CHECKPOINT_FILE, weights_only=True)
        change(state)
        torch.save(state, run / CHECKPOINT_FILE)

    return edit


def _drop_metrics_line(index):
    def edit(run):
        lines = (run / METRICS_FILE).read_text().splitlines(keepends=True)
        (run / METRICS_FILE).write_text("".join(lines[:index] + lines[index + 1 :]))

    return edit


@pytest.mark.parametrize(
    ("damage", "line"),
    [
        (
            lambda run: _truncate(run / CHECKPOINT_FILE, 1000),
            "checkpoint.pt: not a checkpoint of mtan.train (empty, truncated or another format)",
        ),
        (lambda run: _truncate(run / CHECKPOINT_FILE, 0), "checkpoint.pt: not a checkpoint of mtan.train"),
        (
            lambda run: (run / CHECKPOINT_FILE).write_bytes(b"garbage\n" * 10),
            "checkpoint.pt: not a checkpoint of mtan.train",
        ),
        (  # a pickled object: torch's refusal advises weights_only=False, which would run its code
            lambda run: torch.save({"epoch": 1, "model": NotATensor()}, run / CHECKPOINT_FILE),
            "checkpoint.pt: not a checkpoint of mtan.train",
        ),
        (
            _rewrite_checkpoint(lambda state: state.pop("optimizer")),
            "checkpoint.pt: not a complete checkpoint (missing optimizer)",
        ),
        (
            _rewrite_checkpoint(lambda state: state["model"].popitem()),
            "checkpoint.pt: does not fit this run's network (",
        ),
        (
            lambda run: _truncate(run / METRICS_FILE, len((run / METRICS_FILE).read_bytes()) - 20),
            "metrics.jsonl: line 3 is not valid JSON (",
        ),
        (
            _drop_metrics_line(1),
            "metrics.jsonl: epoch(s) 2 missing, but the checkpoint is at epoch 3",
        ),
        (
            lambda run: (run / CONFIG_FILE).write_text('{"lr": 0.'),
            "config.json: not valid JSON (Expecting ',' delimiter, line 1)",
        ),
        (
            lambda run: (run / CONFIG_FILE).write_text("[1, 2]"),
            "config.json: expected a JSON object of config fields, got list",
        ),
        (
            lambda run: (run / CONFIG_FILE).write_text(
                json.dumps({**json.loads((run / CONFIG_FILE).read_text()), "lr": "fast"})
            ),
            "config.json: lr must be a number, got 'fast'",
        ),
    ],
)
def test_a_damaged_run_is_refused_on_resume_and_left_as_it_was(finished_run, tmp_path, capsys, damage, line):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    damage(run)
    before = snapshot(run)
    code, error = refused(main, ["--out", str(run), "--resume", "--epochs", "4", "--quiet"], capsys)
    assert code == 2
    assert error.startswith(f"error: {run}/") and line in error
    assert "weights_only" not in error
    assert snapshot(run) == before


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (
            ["--size", "32x0"],
            "error: --size must be HEIGHTxWIDTH with positive integers, e.g. 128x256; got '32x0'",
        ),
        (["--lr", "inf"], "error: lr must be a finite number, got inf"),
        (["--lr", "nan"], "error: lr must be a finite number, got nan"),
        (["--weight-decay", "inf"], "error: weight_decay must be a finite number, got inf"),
        (["--width", "inf"], "error: width must be a finite number, got inf"),
        (["--width", "1e9"], "error: width must be in (0, 4], got 1000000000.0"),
        (["--temperature=-inf"], "error: temperature must be a finite number, got -inf"),
        (
            ["--single-task", "depth", "--weighting", "dwa"],
            "error: single task depth: weighting must be equal (one task has one loss), got dwa",
        ),
    ],
)
def test_a_bad_flag_is_one_line_before_anything_is_written(tmp_path, capsys, flags, line):
    code, error = refused(main, [*flags, "--out", str(tmp_path / "run")], capsys)
    assert (code, error) == (2, line)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        ({"lr": "fast"}, "lr must be a number, got 'fast'"),
        ({"batch_size": 1.5}, "batch_size must be an integer, got 1.5"),
        ({"epochs": True}, "epochs must be an integer, got True"),
        ({"amp": 1}, "amp must be true or false, got 1"),
        ({"max_train_images": "all"}, "max_train_images must be an integer or null, got 'all'"),
        ({"gamma": float("nan")}, "gamma must be a finite number, got nan"),
    ],
)
def test_every_field_is_type_checked_in_the_config(fields, line):
    with pytest.raises(ConfigError) as refused_config:
        make_config("cpu", **fields)
    assert str(refused_config.value) == line


def test_integral_values_are_accepted_for_float_fields():
    assert make_config("cpu", lr=1, width=1).lr == 1


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("not a folder")
    code, error = refused(main, ["--out", str(out), *TINY_RUN], capsys)
    assert (code, error) == (2, f"error: {out} is a file, not a folder")
    assert out.read_text() == "not a folder"


def test_out_on_a_read_only_disk_is_refused(tmp_path, capsys, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(mtan.files.tempfile, "mkstemp", read_only)
    code, error = refused(main, ["--out", str(tmp_path / "run"), *TINY_RUN], capsys)
    assert (code, error) == (2, f"error: cannot write into {tmp_path / 'run'}: Read-only file system")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (None, "cannot read (No such file or directory)"),
        ('{"config": {"lr": 0.', "not valid JSON (Expecting ',' delimiter, line 1)"),
        ('{"trial": 3, "config": {"lr": "fast"}}', "lr must be a number, got 'fast'"),
        ('{"trial": 3, "config": [1]}', "unknown config key(s): config, trial"),
        ('["cpu"]', "expected a JSON object of config fields, got list"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_it_before_anything_is_written(tmp_path, capsys, text, line):
    path = tmp_path / "best_config.json"
    if text is not None:
        path.write_text(text)
    code, error = refused(main, ["--config", str(path), "--out", str(tmp_path / "run"), *TINY_RUN], capsys)
    assert (code, error) == (2, f"error: --config {path}: {line}")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (
            ["--preset", "paper"],
            "error: --config and --preset: the file is the base; give flags to change its values",
        ),
        (["--resume"], "error: --config and --resume: a resumed run keeps its own config.json"),
    ],
)
def test_a_config_file_is_the_only_base(tmp_path, capsys, flags, line):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"preset": "cpu"}))
    code, error = refused(
        main, ["--config", str(path), *flags, "--out", str(tmp_path / "run"), *TINY_RUN], capsys
    )
    assert (code, error) == (2, line)
    assert not (tmp_path / "run").exists()


def test_resume_of_a_folder_without_a_run_is_refused(tmp_path, capsys):
    code, error = refused(main, ["--out", str(tmp_path / "nothing"), "--resume", "--quiet"], capsys)
    assert (code, error) == (
        2,
        f"error: --resume: {tmp_path / 'nothing'} holds no run to continue (no config.json)",
    )
    assert not (tmp_path / "nothing").exists()


def test_a_full_disk_while_checkpointing_keeps_the_last_checkpoint(tiny_root, tmp_path, capsys, monkeypatch):
    saves = []
    real_save = torch.save

    def save_until_the_disk_is_full(state, file):
        saves.append(state["epoch"])
        if len(saves) == 2:
            file.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(state, file)

    monkeypatch.setattr(mtan.checkpoint.torch, "save", save_until_the_disk_is_full)
    out = tmp_path / "run"
    argv = ["--data-root", str(tiny_root), *TINY_RUN, "--out", str(out)]
    code, error = refused(main, [*argv, "--epochs", "3"], capsys)
    assert (code, error) == (2, f"error: cannot write {out / CHECKPOINT_FILE}: No space left on device")
    assert saves == [1, 2]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [TRIVIAL_FILE, CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, SUMMARY_FILE]
    )
    assert torch.load(out / CHECKPOINT_FILE, weights_only=True)["epoch"] == 1
    monkeypatch.undo()
    assert main(["--out", str(out), "--resume", "--epochs", "3", "--quiet"]) == 0
    assert [row["epoch"] for row in read_metrics(out)] == [1, 2, 3]


def _every_depth_zero(root):
    for path in root.glob("*/depth/*.npy"):
        np.save(path, np.zeros_like(np.load(path)))


def _npz_named_npy(root):
    path = root / "train" / "image" / "1.npy"
    image = np.load(path)
    with path.open("wb") as file:
        np.savez(file, image)


@pytest.mark.parametrize(
    ("damage", "line"),
    [
        (
            lambda root: np.save(root / "train" / "image" / "0.npy", np.zeros((0, 256, 3), np.float32)),
            "train/image/0.npy: image shape (0, 256, 3) is empty",
        ),
        (_every_depth_zero, "train/depth: every depth pixel is 0 (invalid); no depth to learn from"),
        (_npz_named_npy, "train/image/1.npy: an .npz archive, not a .npy array"),
    ],
)
def test_a_bad_data_set_is_one_line(tiny_root, tmp_path, capsys, damage, line):
    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    damage(root)
    before = snapshot(root)
    code, error = refused(main, ["--data-root", str(root), *TINY_RUN, "--out", str(tmp_path / "run")], capsys)
    assert (code, error) == (2, f"error: {root}/{line}")
    assert snapshot(root) == before
    assert not (tmp_path / "run").exists()  # no run folder: the data is checked before it is made
