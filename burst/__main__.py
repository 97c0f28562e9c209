"""``python -m burst COMMAND ...``: the same as the ``burst`` command."""

from burst.cli.main import entry

entry()
