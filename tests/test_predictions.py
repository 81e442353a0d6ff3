"""The report's prediction panel: drawn from a real retrained run of the best confirmed configuration,
and one line saying why when the study has none."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.predictions import PREDICTIONS_FILE, best_confirmed_checkpoint
from analysis.report import write_report
from mtan.run_folder import CHECKPOINT_FILE
from study.record import CONFIGS_CSV, REPRODUCE_DIR, StudyFolder, write_csv
from study.reproduce.plan import Candidate, configs_table
from tests.fake_study import write_fake_study
from tests.tiny_data import tiny_config, write_tiny_set

PNG = b"\x89PNG\r\n\x1a\n"
HEADING = "## Predictions of the best confirmed configuration"


def write_configs(folder: StudyFolder, roles: dict[str, tuple[int, tuple[str, ...]]]) -> None:
    """reproduce/configs.csv with study.reproduce's own writer: configuration name -> (its trial number,
    its roles)."""
    candidates = [
        Candidate(name, number, name, r, "equal", 0.3, 0.3, "completed", {})
        for name, (number, r) in roles.items()
    ]
    write_csv(folder.reproduce / CONFIGS_CSV, configs_table(candidates))


@pytest.fixture(scope="module")
def confirmed_study(tmp_path_factory) -> Path:
    """A fake study whose reproduce/ holds one real tiny run of its best configuration (`trial_003`, seed 9,
    retrained as the best of its method: not `top 1`) beside a configuration ranked second."""
    from mtan.train import train

    root = write_tiny_set(tmp_path_factory.mktemp("tiny"))
    study = write_fake_study(tmp_path_factory.mktemp("studies"), reproduce=False, journal=False)
    folder = StudyFolder(study)
    train(tiny_config(root, epochs=1), folder.seed_run("trial_003", 9), progress=False)
    write_configs(folder, {"trial_005": (5, ("top 2",)), "trial_003": (3, ("best 1 of dwa",))})
    return study


def test_the_report_draws_the_best_confirmed_run(confirmed_study: Path) -> None:
    files = write_report(confirmed_study)
    md, html = files.markdown.read_text(), files.html.read_text()
    png = files.markdown.parent / PREDICTIONS_FILE
    assert png in files.figures and png.read_bytes().startswith(PNG)
    section = md[md.index(HEADING) :]
    assert f"]({PREDICTIONS_FILE})" in section
    assert "Configuration trial_003 retrained from scratch on seed 9, after epoch 1 of 1" in section
    assert "validation images [0, 1, 2, 3]" in section  # the tiny set's 4 validation images
    assert html.count('src="data:image/png;base64,') == len(files.figures)


def test_the_first_seed_with_a_checkpoint_is_drawn(tmp_path: Path) -> None:
    folder = StudyFolder(tmp_path)
    for seed, kept in ((10, True), (9, True), (3, False)):  # seed_10 sorts before seed_9 as text
        run = folder.seed_run("t1", seed)
        run.mkdir(parents=True)
        if kept:
            (run / CHECKPOINT_FILE).write_bytes(b"")
    folder.write_best_config({"trial": 1})
    write_configs(folder, {"t1": (1, ("top 1",))})
    assert best_confirmed_checkpoint(folder) == ("t1", 9, folder.seed_run("t1", 9) / CHECKPOINT_FILE)


def _section(study: Path) -> tuple[str, Path]:
    files = write_report(study)
    md = files.markdown.read_text()
    return md[md.index(HEADING) :], files.markdown.parent / PREDICTIONS_FILE


def test_without_reproduce_the_section_says_why_and_an_old_figure_goes(tmp_path: Path) -> None:
    study = write_fake_study(tmp_path, reproduce=False, journal=False)
    (study / "report").mkdir()
    (study / "report" / PREDICTIONS_FILE).write_bytes(PNG)  # from an earlier report
    section, png = _section(study)
    assert f"Not shown: no configuration was retrained (no {REPRODUCE_DIR}/ folder)." in section
    assert not png.exists()


def test_reproduce_without_configs_csv_says_so(tmp_path: Path) -> None:
    study = write_fake_study(tmp_path, journal=False)
    (study / REPRODUCE_DIR / CONFIGS_CSV).unlink()  # reproduce/summary.csv, no configs.csv
    section, png = _section(study)
    assert "Not shown: reproduce/configs.csv is missing or does not hold the study's best trial" in section
    assert not png.exists()


def test_runs_without_checkpoint_say_so(tmp_path: Path) -> None:
    study = write_fake_study(tmp_path, reproduce=False, journal=False)
    folder = StudyFolder(study)
    folder.seed_run("trial_003", 9).mkdir(parents=True)
    write_configs(folder, {"trial_003": (3, ("top 1",))})
    section, _ = _section(study)
    assert f"no retrained run of the best configuration trial_003 kept its {CHECKPOINT_FILE}" in section


def test_an_unreadable_checkpoint_is_one_line_naming_it(tmp_path: Path) -> None:
    study = write_fake_study(tmp_path, reproduce=False, journal=False)
    folder = StudyFolder(study)
    checkpoint = folder.seed_run("trial_003", 9) / CHECKPOINT_FILE
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"not a checkpoint")
    write_configs(folder, {"trial_003": (3, ("top 1",))})
    section, png = _section(study)
    line = next(line for line in section.splitlines() if line.startswith("Not shown:"))
    assert "trial_003 seed 9 cannot be drawn" in line and str(checkpoint) in line and "not a readable" in line
    assert not png.exists()
