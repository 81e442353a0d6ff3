"""User-facing errors: one line naming what is wrong, and a non-zero exit from the command line."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence


class UserError(Exception):
    """Bad input from the user (a flag, a file, a data set); the message is one line that names it."""


class DataError(UserError):
    """A data set on disk that does not have the MTAN layout, shapes, dtypes or value ranges."""


class ConfigError(UserError):
    """A configuration value outside its allowed range, or an unknown name."""


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> None:
    """Run a command's `main`, turning a `UserError` into `error: ...` on stderr and exit code 2."""
    try:
        code = main(argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except BrokenPipeError:  # output piped into a reader that stopped early, e.g. `| head`
        sys.stderr.close()
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code)
