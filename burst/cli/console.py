"""Terminal output and the one place user mistakes become exit status 2."""

from __future__ import annotations

import os
import sys
from typing import Callable

from rich.console import Console

from burst.errors import BurstError, UserError, command_name

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


def plural(noun: str) -> str:
    """``sandbox`` -> ``sandboxes``, ``row`` -> ``rows``."""
    return noun + ("es" if noun.endswith(("s", "x", "sh", "ch")) else "s")


def counted(n: int, noun: str) -> str:
    """``1 row``, ``5 rows``, ``2 sandboxes``."""
    return f"{n} {noun if n == 1 else plural(noun)}"


def report(message: str) -> None:
    console.print(message, markup=False)


SIGPIPE_STATUS = 141  # what a shell reports for a program a closed pipe ended (128 + SIGPIPE)
_job: list[str] = []  # the job this command works on, once its arguments are read (for the Ctrl-C note)


def working_on(job: str) -> None:
    """Name the job the interrupted-command note should name."""
    _job[:] = [job]


def _reader_gone() -> int:
    """The reader of our output left (``burst status --json | head -c 100``): stop quietly, as ``cat`` would.

    Whatever Python still holds for stdout goes to /dev/null, so that its flush at exit
    cannot raise the BrokenPipeError again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # noqa: S110 - no usable stdout: nothing to quiet
        pass
    return SIGPIPE_STATUS


def run_entry(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run an entry point: a UserError is one paragraph and status 2, never a traceback."""
    try:
        return main(argv)
    except BrokenPipeError:
        return _reader_gone()
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
        job = _job[0] if _job else "JOB"
        errors.print(
            "interrupted: machines keep running and the campaign can be resumed with the same command; "
            f"see `{command_name()} status {job}`, or end them with `{command_name()} terminate {job}`.",
            markup=False, soft_wrap=True,
        )
        # Worker threads may be polling a long INSTALL.sh or retrying SSH; Python would
        # join them at exit. Everything is resumable from the nodes, so leave now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)


def exit_with(main: Callable[[list[str] | None], int]) -> None:
    sys.exit(run_entry(main))
