"""docs/design.md's layout names every module of the packages and the developer tools, each with its job,
and names no module that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("mtan", "study", "analysis", "devtools")
# Files that hold no job of their own: a package's marker or its `python -m` entry.
NOT_MODULES = {"__init__.py", "__main__.py"}
# Packages whose `__init__.py` is a module with a job: the data set's loading, the training run.
PACKAGE_MODULES = {"mtan/data/__init__.py", "mtan/train/__init__.py"}


def layout_lines() -> dict[str, str]:
    """The layout block's module lines: path -> the job written beside it."""
    text = (REPO / "docs" / "design.md").read_text()
    block = text.split("## Layout and layering", 1)[1].split("```", 2)[1]
    lines = {}
    for line in block.splitlines():
        match = re.fullmatch(r"\s+(\S+\.py)\s+(.*)", line)
        if match:
            lines[match.group(1)] = match.group(2).strip()
    return lines


def modules() -> set[str]:
    found = set()
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            relative = path.relative_to(REPO).as_posix()
            if path.name not in NOT_MODULES or relative in PACKAGE_MODULES:
                found.add(relative)
    return found


def test_every_module_has_a_line_with_its_job():
    lines = layout_lines()
    missing = sorted(modules() - lines.keys())
    assert not missing, f"docs/design.md's layout lacks {missing}"
    assert all(len(job.split()) >= 3 for job in lines.values()), "a module's job is a phrase"


def test_the_layout_names_no_module_that_does_not_exist():
    stale = sorted(set(layout_lines()) - modules())
    assert not stale, f"docs/design.md's layout names {stale}, which do not exist"
