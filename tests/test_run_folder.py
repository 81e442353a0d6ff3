"""A run folder's files read back from hand-written text: each reader accepts what its writer writes and
refuses, with one line naming the file (and the line), what no writer writes."""

from __future__ import annotations

import json
import math

import pytest

from mtan.config import make_config
from mtan.errors import ConfigError, UserError
from mtan.run_folder import (
    CONFIG_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    TRIVIAL_FILE,
    parse_metrics,
    read_config,
    read_metrics,
    read_summary,
    read_trivial_metrics,
    write_config,
    write_metrics,
    write_summary,
    write_trivial_metrics,
)

# ---------------------------------------------------------------- metrics.jsonl


def test_metrics_rows_are_read_line_by_line_with_null_as_none(tmp_path):
    (tmp_path / METRICS_FILE).write_text('{"epoch": 1, "miou": 0.25}\n\n{"epoch": 2, "miou": null}\n')
    assert read_metrics(tmp_path) == [{"epoch": 1, "miou": 0.25}, {"epoch": 2, "miou": None}]


def test_an_empty_or_absent_metrics_file_has_no_rows(tmp_path):
    assert read_metrics(tmp_path) == []
    (tmp_path / METRICS_FILE).write_text("")
    assert read_metrics(tmp_path) == []


def test_a_truncated_last_line_names_the_file_and_the_line(tmp_path):
    (tmp_path / METRICS_FILE).write_text('{"epoch": 1, "miou": 0.25}\n{"epoch": 2, "miou": 0.2')
    with pytest.raises(UserError) as refused:
        read_metrics(tmp_path)
    assert str(refused.value) == (
        f"{tmp_path / METRICS_FILE}: line 2 is not valid JSON (Expecting ',' delimiter); truncated?"
    )


@pytest.mark.parametrize(
    "line",
    ['{"miou": 0.5}', '{"epoch": 2.0}', '{"epoch": "2"}', '{"epoch": true}', '{"epoch": null}', "[2]", "2"],
)
def test_a_line_without_an_integer_epoch_names_the_file_and_the_line(tmp_path, line):
    (tmp_path / METRICS_FILE).write_text(f'{{"epoch": 1}}\n{line}\n{{"epoch": 3}}\n')
    with pytest.raises(UserError) as refused:
        read_metrics(tmp_path)
    assert str(refused.value) == (
        f"{tmp_path / METRICS_FILE}: line 2 is not an epoch's row (an object with an integer epoch)"
    )


def test_metrics_text_from_elsewhere_is_checked_the_same_and_named_by_its_source():
    assert parse_metrics('{"epoch": 1}\n', "s3://bucket/trial_001/metrics.jsonl") == [{"epoch": 1}]
    with pytest.raises(
        UserError, match=r"^s3://bucket/trial_001/metrics.jsonl: line 1 is not an epoch's row"
    ):
        parse_metrics('{"epoch": "1"}\n', "s3://bucket/trial_001/metrics.jsonl")


def test_metrics_written_are_one_json_object_per_line_with_nan_as_null(tmp_path):
    write_metrics(tmp_path, [{"epoch": 1, "miou": 0.5}, {"epoch": 2, "miou": math.nan}])
    assert (tmp_path / METRICS_FILE).read_text() == '{"epoch": 1, "miou": 0.5}\n{"epoch": 2, "miou": null}\n'
    assert read_metrics(tmp_path) == [{"epoch": 1, "miou": 0.5}, {"epoch": 2, "miou": None}]


def test_a_metrics_file_that_is_not_text_is_named(tmp_path):
    (tmp_path / METRICS_FILE).write_bytes(b"\xff\xfe{")
    with pytest.raises(UserError, match=r"metrics.jsonl: cannot read \(not UTF-8 text\)$"):
        read_metrics(tmp_path)


# ---------------------------------------------------------------- config.json


def test_a_config_is_written_flat_and_read_back(tmp_path):
    config = make_config("report", epochs=3)
    write_config(tmp_path, config)
    assert json.loads((tmp_path / CONFIG_FILE).read_text())["backbone"] == "segnet-basic"
    assert read_config(tmp_path) == config.to_flat()


def test_a_hand_written_partial_config_is_read_as_written(tmp_path):
    (tmp_path / CONFIG_FILE).write_text('{"preset": "paper", "epochs": 3}')
    assert read_config(tmp_path) == {"preset": "paper", "epochs": 3}


@pytest.mark.parametrize(
    ("text", "message", "kind"),
    [
        ("", "not valid JSON (Expecting value, line 1)", UserError),
        ('{"lr": 0.', "not valid JSON (Expecting ',' delimiter, line 1)", UserError),
        ("[1, 2]", "expected a JSON object of config fields, got list", UserError),
        ('{"lr": "fast"}', "lr must be a number, got 'fast'", ConfigError),
        ('{"epochs": 0}', "epochs must be >= 1, got 0", ConfigError),
        ('{"learning_rate": 0.1}', "unknown config key(s): learning_rate", ConfigError),
    ],
)
def test_a_bad_config_names_the_file(tmp_path, text, message, kind):
    (tmp_path / CONFIG_FILE).write_text(text)
    with pytest.raises(kind) as refused:
        read_config(tmp_path)
    assert str(refused.value) == f"{tmp_path / CONFIG_FILE}: {message}"


def test_a_missing_config_names_the_file(tmp_path):
    with pytest.raises(UserError) as refused:
        read_config(tmp_path)
    assert str(refused.value) == f"{tmp_path / CONFIG_FILE}: cannot read (No such file or directory)"


# ---------------------------------------------------------------- summary.json


def test_the_summary_holds_the_last_epoch_and_the_mean_of_the_last_ten(tmp_path):
    rows = [{"epoch": e, "miou": e / 100, "abs_err": 1.0, "lr": 0.1} for e in range(1, 13)]
    write_summary(tmp_path, rows)
    summary = read_summary(tmp_path)
    assert json.loads((tmp_path / SUMMARY_FILE).read_text()) == summary
    assert summary["epochs"] == 12 and summary["tail_epochs"] == 10
    assert summary["last"] == {"miou": 0.12, "abs_err": 1.0}  # metrics only, not the learning rate
    assert summary["tail_mean"]["miou"] == pytest.approx(sum(range(3, 13)) / 10 / 100)  # epochs 3..12


def test_a_summary_that_is_not_an_object_is_named(tmp_path):
    (tmp_path / SUMMARY_FILE).write_text("[]")
    with pytest.raises(UserError, match=r"summary.json: expected a JSON object, got list$"):
        read_summary(tmp_path)


# ---------------------------------------------------------------- baselines.json


def test_the_trivial_predictors_metrics_are_read_back_with_nan_as_none(tmp_path):
    write_trivial_metrics(tmp_path, {"miou": 0.1, "rel_err": math.inf})
    assert (tmp_path / TRIVIAL_FILE).name == "baselines.json"  # the record format's name
    assert read_trivial_metrics(tmp_path) == {"miou": 0.1, "rel_err": None}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"miou": "0.1"}', "miou is '0.1', not a number"),
        ('{"miou": true}', "miou is True, not a number"),
        ("[0.1]", "expected a JSON object, got list"),
    ],
)
def test_trivial_predictors_metrics_that_are_not_numbers_are_named(tmp_path, text, message):
    (tmp_path / TRIVIAL_FILE).write_text(text)
    with pytest.raises(UserError) as refused:
        read_trivial_metrics(tmp_path)
    assert str(refused.value) == f"{tmp_path / TRIVIAL_FILE}: {message}"
