"""``python -m mtan.train``."""

from mtan.errors import run_cli
from mtan.train.cli import main

run_cli(main)
