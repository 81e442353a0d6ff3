"""``python -m study.reproduce``."""

from mtan.errors import run_cli
from study.reproduce.cli import main

run_cli(main)
