"""Exceptions that carry a message meant for the user, and how such a message names burst.

Every layer may raise these; only ``burst.cli`` prints them. A message that names a
fix names a command, so the spelling of burst's own command lives here too.
"""

from __future__ import annotations

import sys
from pathlib import Path


class UserError(Exception):
    """A mistake the user can fix (bad CSV, bad argument, missing credentials).

    The entry scripts print its message as one paragraph and exit with status 2,
    never a traceback. Raise it before anything is created in the cloud.
    """

    exit_status = 2


class BurstError(Exception):
    """A failure of the campaign itself (not the user's input): exit status 1."""

    exit_status = 1


def command_name() -> str:
    """How to call burst in the commands we suggest: ``burst`` when it was called so, else
    ``python -m burst`` (which works in a checkout too, where there is no ``burst`` command)."""
    return "burst" if Path(sys.argv[0]).name == "burst" else "python -m burst"


def live_sentence(job: str, live: list[str] | None) -> str:
    """What of the job still runs, from a fresh listing (a message must be true, not remembered)."""
    if live is None:
        return f"Machines the job had started may keep running: `{command_name()} status {job}` shows them."
    if not live:
        return "No machine of the job is running."
    return (f"{len(live)} machine(s) of the job keep running and working on rows ({', '.join(live[:5])}"
            f"{', ...' if len(live) > 5 else ''}): `{command_name()} terminate {job}` ends them.")


def credentials_expired(detail: str, job: str | None = None) -> str:
    """The message for AWS credentials that expired (session token, SSO): only their renewal can help."""
    resume = (f"Machines keep working and rows are untouched: once renewed, run the same command again to resume "
              f"(`{command_name()} status {job}` shows where it is).") if job else "Once renewed, run the command again."
    return (f"Your AWS credentials have expired ({detail.rstrip('.')}). Renew them: `aws sso login` (with "
            f"--profile NAME if you use one) for IAM Identity Center (SSO), or new temporary keys "
            f"(AWS_SESSION_TOKEN) from where you got them. {resume}")
