"""Read and write ``<bucket>/<tag>/status.json``. Standard library only: the agent uses it."""

from __future__ import annotations

import json

from burst.concurrency import parallel
from burst.records import JobStatus, utc_now
from burst.storage.base import KeyNotFound, Storage

CAMPAIGN_KEY = "campaign.json"


def status_key(tag: str) -> str:
    return f"{tag}/status.json"


def load_status(storage: Storage, tag: str) -> JobStatus | None:
    """The tag's status, or None when nothing was written for it yet."""
    try:
        return JobStatus.from_dict(json.loads(storage.read_text(status_key(tag))))
    except KeyNotFound:
        return None


def save_status(storage: Storage, status: JobStatus) -> None:
    status.updated = utc_now()
    storage.write_text(status_key(status.tag), json.dumps(status.to_dict(), indent=2, ensure_ascii=False) + "\n")


def load_statuses(storage: Storage, tags: list[str]) -> dict[str, JobStatus | None]:
    """Every tag's status; read in parallel, as each is one GET on S3 (``--wait`` polls this)."""
    return dict(zip(tags, parallel(lambda tag: load_status(storage, tag), tags, workers=16)))
