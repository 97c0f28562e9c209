"""Exceptions that carry a message meant for the user."""


class UserError(Exception):
    """A mistake the user can fix (bad CSV, bad argument, missing credentials).

    The entry scripts print its message as one paragraph and exit with status 2,
    never a traceback. Raise it before anything is created in the cloud.
    """

    exit_status = 2


class BurstError(Exception):
    """A failure of the campaign itself (not the user's input): exit status 1."""

    exit_status = 1
