"""docs/results.md's "From Python" example, run as written on a study folder written by the study's own
writers (tests/fake_study.py), so the documented notebook API cannot drift from the code."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import matplotlib.pyplot as plt

import analysis
from tests.fake_study import write_fake_study

DOC = Path(__file__).resolve().parents[1] / "docs" / "results.md"


def example() -> str:
    """The python block of the section "From Python"."""
    section = DOC.read_text().split("\n## From Python\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_the_documented_example_runs_on_a_study_folder(tmp_path, monkeypatch):
    write_fake_study(tmp_path / "results", "my_study")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(compile(example(), str(DOC), "exec"), scope)
    plt.close("all")
    assert Path("tradeoff.png").read_bytes().startswith(b"\x89PNG")
    trials, table = scope["trials"], scope["table"]
    assert list(trials["trial"]) == list(range(len(trials)))
    assert {"this study: best trial (tuning run)", "single-task baseline (STL, Nash-MTL table)"} <= set(
        table.index
    )
    assert "53.04" in printed.getvalue()  # the paper's row, printed
    every = {name for line in re.findall(r"from analysis import \((.*?)\)", example(), re.DOTALL) for name in
             re.findall(r"\w+", line)}  # fmt: skip
    assert every <= set(analysis.__all__)  # the example uses the exported API only
