"""The ``burst`` command (and ``python -m burst``): one word per step of a campaign.

``run`` and ``download`` keep the parsers of the seed's scripts (``dispatcher.py``,
``get_s3_files.py``), so both spellings take the same options; the rest are
``burst.cli.ops``'s.
"""

from __future__ import annotations

import sys

from burst.cli.console import exit_with


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "run":
        from burst.cli.run import main as run

        return run(argv[1:], prog="burst run")
    if argv and argv[0] == "download":
        from burst.cli.download import main as download

        return download(argv[1:], prog="burst download")
    from burst.cli.ops import main as ops

    return ops(argv)


def entry() -> None:
    """The console script ``burst`` (pyproject.toml)."""
    exit_with(main)
