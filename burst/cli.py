"""The ``burst`` command (and ``python -m burst``): one word per step of a campaign.

``run`` and ``download`` keep the parsers of the seed's scripts (``dispatcher.py``,
``get_s3_files.py``), so both spellings take the same options; the rest are
``burst.ops_cli``'s.
"""

from __future__ import annotations

import sys

from burst.console import exit_with


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "run":
        from burst.dispatcher_cli import main as run

        return run(argv[1:], prog="burst run")
    if argv and argv[0] == "download":
        from burst.results import main as download

        return download(argv[1:], prog="burst download")
    from burst.ops_cli import main as ops

    return ops(argv)


def entry() -> None:
    """The console script ``burst`` (pyproject.toml)."""
    exit_with(main)
