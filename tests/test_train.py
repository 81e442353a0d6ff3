"""One training run: outputs, resume, divergence and the command line's handling of bad input."""

import dataclasses
import json
import subprocess
import sys

import pytest
import torch

from mtan.config import make_config
from mtan.errors import ConfigError
from mtan.run_folder import CHECKPOINT_FILE, CONFIG_FILE, read_config, read_metrics
from mtan.train import TrainingDiverged, check_resumable, epoch_text, make_adam, train
from mtan.train.cli import build_parser, config_from_args, main, new_run_folder
from tests.tiny_data import tiny_config, write_tiny_set

# what baselines.json holds, the trivial predictors' metrics: the evaluation metrics
TRIVIAL_KEYS = {
    "miou",
    "pixel_acc",
    "miou_2019",
    "pixel_acc_2019",
    "miou_2020",
    "abs_err",
    "rel_err",
    "abs_err_batch_mean",
    "rel_err_batch_mean",
}
# an epoch's row: those, and the training state
ROW_KEYS = TRIVIAL_KEYS | {
    "epoch",
    "lr",
    "loss/segmentation",
    "loss/depth",
    "loss/total",
    "weight/segmentation",
    "weight/depth",
    "score",
    "seconds",
}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return write_tiny_set(tmp_path_factory.mktemp("tiny"))


def test_a_run_writes_config_metrics_trivial_metrics_summary_and_checkpoint(tiny_root, tmp_path):
    seen = []
    rows = train(
        tiny_config(tiny_root, weighting="dwa", step_size=1, gamma=0.5),
        tmp_path,
        on_epoch=lambda row, out: seen.append((row["epoch"], (out / CHECKPOINT_FILE).exists())),
        progress=False,
    )
    assert seen == [(1, True), (2, True)]
    assert [set(row) for row in rows] == [ROW_KEYS, ROW_KEYS]
    assert [row["lr"] for row in rows] == pytest.approx([2e-3, 1e-3])  # StepLR stepped once per epoch
    # DWA weights both tasks 1 in its first two epochs: the minimised total is the sum of the task losses
    for row in rows:
        assert row["loss/total"] == pytest.approx(row["loss/segmentation"] + row["loss/depth"], rel=1e-5)
    assert read_metrics(tmp_path) == rows
    assert json.loads((tmp_path / "config.json").read_text())["weighting"] == "dwa"
    assert set(json.loads((tmp_path / "baselines.json").read_text())) == TRIVIAL_KEYS
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["epochs"] == summary["tail_epochs"] == 2
    assert summary["last"]["miou"] == rows[-1]["miou"]
    assert summary["tail_mean"]["abs_err"] == pytest.approx((rows[0]["abs_err"] + rows[1]["abs_err"]) / 2)


def test_resume_continues_exactly_where_it_stopped(tiny_root, tmp_path):
    config = tiny_config(tiny_root, weighting="dwa", epochs=3)
    straight = train(config, tmp_path / "straight", progress=False)
    train(tiny_config(tiny_root, weighting="dwa", epochs=2), tmp_path / "resumed", progress=False)
    resumed = train(config, tmp_path / "resumed", resume=True, progress=False)
    assert [row["epoch"] for row in read_metrics(tmp_path / "resumed")] == [1, 2, 3]
    # epoch 3 uses DWA weights from the losses of epochs 1 and 2: the history survived the checkpoint
    assert resumed[2]["weight/depth"] != 1.0
    for key in ("weight/depth", "loss/segmentation", "miou", "abs_err"):
        assert resumed[2][key] == pytest.approx(straight[2][key], rel=1e-4)


def test_resume_refuses_a_different_config(tiny_root, tmp_path):
    train(tiny_config(tiny_root, epochs=1), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="lr: 0.002 -> 0.01"):
        train(tiny_config(tiny_root, epochs=2, lr=0.01), tmp_path, resume=True, progress=False)
    with pytest.raises(ConfigError, match="already holds a run"):
        train(tiny_config(tiny_root, epochs=2), tmp_path, progress=False)


def test_a_sparse_checkpoint_resumes_after_its_epoch_and_trains_the_later_rows_again(tiny_root, tmp_path):
    config = tiny_config(tiny_root, weighting="dwa", epochs=3)
    straight = train(config, tmp_path / "straight", progress=False)
    saved: list[int | None] = []

    def checkpoint_epoch(row: dict, out) -> None:
        path = out / CHECKPOINT_FILE
        saved.append(torch.load(path, weights_only=True)["epoch"] if path.exists() else None)

    sparse = tmp_path / "sparse"
    train(
        config, sparse, on_epoch=checkpoint_epoch, checkpoint_every=2, final_checkpoint=False, progress=False
    )
    assert saved == [None, 2, 2]  # saved after epoch 2 only
    resumed = train(config, sparse, resume=True, on_epoch=checkpoint_epoch, progress=False)
    assert saved[3:] == [3]  # only epoch 3 trained again, from the epoch-2 checkpoint
    for key in ("weight/depth", "loss/segmentation", "miou", "abs_err"):
        assert [row[key] for row in resumed] == pytest.approx([row[key] for row in straight], rel=1e-4)


def stopped_before_its_first_checkpoint(config, folder) -> None:
    """What a run killed between its first epoch's metrics row and its first checkpoint leaves."""
    train(config, folder, checkpoint_every=2, final_checkpoint=False, progress=False)
    assert len(read_metrics(folder)) == 1 and not (folder / CHECKPOINT_FILE).exists()


def test_a_run_stopped_before_its_first_checkpoint_resumes_from_the_start(tiny_root, tmp_path):
    config = tiny_config(tiny_root, epochs=2)
    straight = train(config, tmp_path / "straight", progress=False)
    stopped = tmp_path / "stopped"
    stopped_before_its_first_checkpoint(dataclasses.replace(config, epochs=1), stopped)
    with pytest.raises(ConfigError, match="already holds a run"):
        train(config, stopped, progress=False)
    resumed = train(config, stopped, resume=True, progress=False)  # epoch 0: the one row trained again
    assert [row["epoch"] for row in read_metrics(stopped)] == [1, 2]
    for key in ("loss/segmentation", "miou", "abs_err", "score"):  # the same seed from the same start
        assert [row[key] for row in resumed] == [row[key] for row in straight]
    # the command line keeps the same rule
    stopped_before_its_first_checkpoint(dataclasses.replace(config, epochs=1), tmp_path / "cli")
    assert main(["--out", str(tmp_path / "cli"), "--resume", "--epochs", "2", "--quiet"]) == 0
    assert [row["miou"] for row in read_metrics(tmp_path / "cli")] == [row["miou"] for row in straight]


def test_resume_refuses_other_threads_which_change_the_numbers(tiny_root, tmp_path):
    train(tiny_config(tiny_root, epochs=1), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="num_threads: 1 -> 2"):
        train(tiny_config(tiny_root, epochs=2, num_threads=2), tmp_path, resume=True, progress=False)


def test_runs_without_out_never_share_a_folder(tmp_path):
    first, second = (new_run_folder(tmp_path / "runs", "cpu-20260101-000000") for _ in range(2))
    assert (first.name, second.name) == ("cpu-20260101-000000", "cpu-20260101-000000-2")
    (tmp_path / "runs" / "cpu-20260101-000000-3").mkdir()  # taken by another process meanwhile
    assert new_run_folder(tmp_path / "runs", "cpu-20260101-000000").name == "cpu-20260101-000000-4"


def test_a_diverging_loss_raises(tiny_root, tmp_path):
    with pytest.raises(TrainingDiverged, match="loss became (nan|inf)"):
        train(tiny_config(tiny_root, lr=1e12, epochs=3), tmp_path, progress=False)


def test_command_line_resume_reads_the_saved_config(tiny_root, tmp_path, capsys):
    args = [
        "--data-root",
        str(tiny_root),
        "--size",
        "32x64",
        "--width",
        "0.0625",
        "--batch-size",
        "4",
        "--weighting",
        "dwa",
        "--threads",
        "1",
        "--quiet",
        "--out",
        str(tmp_path),
    ]
    assert main([*args, "--epochs", "1"]) == 0
    assert main(["--out", str(tmp_path), "--resume", "--epochs", "2", "--quiet"]) == 0
    assert [row["epoch"] for row in read_metrics(tmp_path)] == [1, 2]
    assert json.loads((tmp_path / "config.json").read_text())["weighting"] == "dwa"


def test_a_run_trains_the_config_file_of_another_with_the_flags_given_overriding_it(tiny_root, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    flags = ["--data-root", str(tiny_root), "--size", "32x64", "--width", "0.0625", "--batch-size", "4"]
    flags += ["--weighting", "dwa", "--threads", "1", "--quiet"]
    assert main([*flags, "--epochs", "1", "--out", str(first)]) == 0
    assert main(["--config", str(first / CONFIG_FILE), "--epochs", "2", "--quiet", "--out", str(second)]) == 0
    assert read_config(second) == {**read_config(first), "epochs": 2}
    rows = read_metrics(second)
    assert [row["epoch"] for row in rows] == [1, 2]
    # the same config and seed: its first epoch computes what the first run's did
    assert rows[0]["loss/total"] == pytest.approx(read_metrics(first)[0]["loss/total"], rel=1e-4)


def test_a_study_best_config_is_a_config_file_whose_config_key_holds_the_config(tmp_path):
    best = tmp_path / "best_config.json"
    flat = make_config("report", epochs=30, weighting="equal", temperature=3.5, seed=7).to_flat()
    best.write_text(json.dumps({"trial": 7, "metric": "score", "value": 0.4, "config": flat, "point": {}}))
    args = build_parser().parse_args(["--config", str(best), "--epochs", "5", "--size", "64x128"])
    assert config_from_args(args) == make_config(
        "report", epochs=5, weighting="equal", temperature=3.5, seed=7, image_height=64, image_width=128
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--data-root", "/nonexistent/cityscapes"],
            "error: data root /nonexistent/cityscapes does not exist",
        ),
        (["--temperature", "0"], "error: temperature must be > 0, got 0.0"),
        (["--batch-size", "0"], "error: batch size must be >= 1, got 0"),
        (["--weighting", "magic"], "invalid choice: 'magic'"),
        (["--backbone", "resnet"], "invalid choice: 'resnet'"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(tmp_path, flags, message):
    result = subprocess.run(
        [sys.executable, "-m", "mtan.train", "--out", str(tmp_path / "run"), *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert (
        result.stderr.strip().splitlines()[-1].startswith(("error:", "usage:", "python -m mtan.train: error"))
    )


def test_the_fused_adam_of_a_run_makes_the_same_updates_as_plain_adam():
    torch.manual_seed(0)
    start = [torch.randn(5, 3), torch.randn(7)]
    fast = [torch.nn.Parameter(p.clone()) for p in start]
    plain = [torch.nn.Parameter(p.clone()) for p in start]
    optimizers = (
        make_adam(fast, 1e-2, 1e-4),
        torch.optim.Adam(plain, lr=1e-2, weight_decay=1e-4, foreach=False),
    )
    for _ in range(3):
        grads = [torch.randn_like(p) for p in start]
        for params, optimizer in zip((fast, plain), optimizers, strict=True):
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            optimizer.step()
    for p, q in zip(fast, plain, strict=True):
        torch.testing.assert_close(p, q)


def test_the_epoch_line_shows_losses_lr_and_percent_for_miou_and_pixel_accuracy():
    row = {"epoch": 3, "lr": 5e-4, "loss/segmentation": 1.25, "loss/depth": 0.5, "loss/total": 1.75}
    row.update(miou=0.5304, pixel_acc=0.9111, abs_err=0.0144, rel_err=33.63, score=0.41, seconds=2.0)
    assert epoch_text(row) == (
        "loss 1.75 (segmentation 1.25, depth 0.5)  lr 0.0005  |  val mIoU 53.04 %  pix acc 91.11 %  "
        "abs err 0.0144  rel err 33.630  score 0.410  (2.0 s)"
    )


def test_a_run_saved_before_a_field_existed_resumes_with_its_default_and_no_other_value():
    current = make_config("cpu", epochs=3)
    saved = {k: v for k, v in current.to_flat().items() if k not in ("depth_share", "single_task")}
    check_resumable(saved, current)  # what that run computed: the new fields' defaults
    with pytest.raises(ConfigError, match=r"depth_share: 0.5 -> 0.7"):
        check_resumable(saved, dataclasses.replace(current, depth_share=0.7))
