"""Read and write ``<bucket>/<tag>/status.json``. Standard library only: the worker uses it."""

from __future__ import annotations

import json

from burst.protocol import attempt_prefix, status_key
from burst.records import JobStatus, utc_now
from burst.storage.base import KeyNotFound, Storage


def load_status(storage: Storage, tag: str) -> JobStatus | None:
    """The tag's status, or None when nothing was written for it yet."""
    try:
        return JobStatus.from_dict(json.loads(storage.read_text(status_key(tag))))
    except KeyNotFound:
        return None


def save_status(storage: Storage, status: JobStatus) -> None:
    """The row's status, and a copy beside its attempt's logs: every attempt's times and end stay (the timeline)."""
    status.updated = utc_now()
    status.heartbeat_age = None  # shown in tables, never stored
    text = json.dumps(status.to_dict(), indent=2, ensure_ascii=False) + "\n"
    if status.attempt > 0:
        storage.write_text(attempt_prefix(status.tag, status.attempt) + "status.json", text)
    storage.write_text(status_key(status.tag), text)
