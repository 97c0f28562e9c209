"""Read and write ``<bucket>/<tag>/status.json`` (and earlier attempts' ``<tag>/attempts/<n>/status.json``).

Standard library only: the worker uses it.
"""

from __future__ import annotations

import json

from burst.protocol import attempt_status_key, status_key
from burst.records import JobStatus, utc_now
from burst.storage.base import KeyNotFound, Storage


def load_status(storage: Storage, tag: str) -> JobStatus | None:
    """The tag's status, or None when nothing was written for it yet."""
    try:
        return JobStatus.from_dict(json.loads(storage.read_text(status_key(tag))))
    except KeyNotFound:
        return None


def save_status(storage: Storage, status: JobStatus, may_be_stale: bool = False) -> None:
    """The row's status; an earlier attempt's status it replaces goes beside that attempt's logs.

    So every attempt's times and end stay (the timeline) for the price of one GET and
    one PUT per retried row; a first attempt written by its own worker (whose claim
    was still held) costs one PUT. ``may_be_stale``: the dispatcher writing for an
    attempt it gave up, which a newer attempt may have overtaken; the newer status
    then stays current and this one goes beside its own attempt's logs.
    """
    status.updated = utc_now()
    status.heartbeat_age = None  # shown in tables, never stored
    text = json.dumps(status.to_dict(), indent=2, ensure_ascii=False) + "\n"
    if status.attempt > 1 or may_be_stale:
        try:
            current = storage.read_text(status_key(status.tag))
            written = json.loads(current).get("attempt")
        except (KeyNotFound, ValueError, AttributeError):
            written = None
        if isinstance(written, int) and written > status.attempt:
            storage.write_text(attempt_status_key(status.tag, status.attempt), text)
            return
        if isinstance(written, int) and 0 < written < status.attempt:
            storage.write_text(attempt_status_key(status.tag, written), current)
    storage.write_text(status_key(status.tag), text)
