"""Terminal output and the one place user mistakes become exit status 2."""

from __future__ import annotations

import os
import sys
from typing import Callable

from rich.console import Console

from burst.errors import BurstError, UserError, command_name

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


def report(message: str) -> None:
    console.print(message, markup=False)


def run_entry(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run an entry point: a UserError is one paragraph and status 2, never a traceback."""
    try:
        return main(argv)
    except UserError as error:
        errors.print(f"error: {error}", markup=False, soft_wrap=True)
        return error.exit_status
    except BurstError as error:
        errors.print(f"failed: {error}", markup=False, soft_wrap=True)
        return error.exit_status
    except Exception as error:
        from burst.cli.failures import aws_failure, is_aws_error

        if not is_aws_error(error):
            raise
        errors.print(f"failed: {aws_failure(None, error)}", markup=False, soft_wrap=True)
        return BurstError.exit_status
    except KeyboardInterrupt:
        errors.print(
            "interrupted: machines keep running and the campaign can be resumed with the same command; "
            f"see `{command_name()} status JOB`, or end them with `{command_name()} terminate JOB`.",
            markup=False, soft_wrap=True,
        )
        # Worker threads may be polling a long INSTALL.sh or retrying SSH; Python would
        # join them at exit. Everything is resumable from the nodes, so leave now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)


def exit_with(main: Callable[[list[str] | None], int]) -> None:
    sys.exit(run_entry(main))
