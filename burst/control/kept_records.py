"""Final rows' statuses kept on this machine between commands: ``$BURST_HOME/campaigns/<job>.records``.

A new ``burst status`` process starts with an empty ``RecordCache`` and would GET
every row's status again: on 100,000 rows, nearly all of its time. A row's final
status never changes but by a new write (``run --force``, ``--retry-failed``, a
changed row), which gives the object a new etag, so what was read is kept here
keyed by (key, etag) and used only while the bucket's listing shows that same
etag. The file is the user's alone (0600, written whole or not at all).

Only records ``parse_record`` accepted are kept, and the file's first line carries
the SHA-256 of the rest and the fields of the status record as this burst knows
them. When both hold, the kept records are used without checking each field's type
again (2.5 s of 7 on 100,000 rows); a file that fails either (truncated, edited,
from another bucket or another version of burst) is ignored and written afresh.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from burst import protocol
from burst.atomic import write_atomically
from burst.concurrency import collector_paused
from burst.node.bucket_view import RecordCache
from burst.providers.base import burst_home
from burst.records import JobStatus, fields_fingerprint

FORMAT = 2  # 1: one JSON object, each record checked again when read


def kept_path(job: str) -> Path:
    return burst_home() / "campaigns" / f"{job}.records"


def checked_path(job: str) -> Path:
    """The etag of the bucket's ``campaign.json`` as this machine last found it readable."""
    return burst_home() / "campaigns" / f"{job}.checked"


def checked_campaign(job: str) -> str:
    try:
        return checked_path(job).read_text(encoding="utf-8").strip()
    except (OSError, ValueError):
        return ""


def keep_checked_campaign(job: str, etag: str) -> None:
    """Best-effort: without it the next command reads and parses ``campaign.json`` once more."""
    try:
        write_atomically(checked_path(job), etag.encode("utf-8"))
    except OSError:
        pass


def _kept(key: str) -> bool:
    """Only rows' statuses: what a campaign has most of, and what stays once a row has ended."""
    return key.startswith(protocol.ENDED_PREFIX) and key.endswith(protocol.STATUS_SUFFIX) \
        and key.count("/") == protocol.ENDED_PREFIX.count("/")  # protocol.status_key's shape, checked cheaply


def _header(bucket_url: str, body: bytes) -> dict[str, Any]:
    return {"format": FORMAT, "bucket": bucket_url, "fields": fields_fingerprint(JobStatus),
            "sha256": hashlib.sha256(body).hexdigest()}


@collector_paused()
def load_kept(job: str, bucket_url: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """key -> (etag, JSON object) kept for this job's bucket; nothing when the file is missing or fails its checks."""
    try:
        head, _, body = kept_path(job).read_bytes().partition(b"\n")
        if json.loads(head) != _header(bucket_url, body):
            return {}
        records = json.loads(body)
    except (OSError, ValueError):
        return {}
    if not isinstance(records, dict):
        return {}
    return {key: (entry[0], entry[1]) for key, entry in records.items()
            if _kept(key) and isinstance(entry, list) and len(entry) == 2
            and isinstance(entry[0], str) and entry[0] and isinstance(entry[1], dict)}


def keep(job: str, bucket_url: str, cache: RecordCache, before: dict[str, tuple[str, dict[str, Any]]]) -> None:
    """Write the cache's statuses of rows listed in this run, unless they are what ``before`` held already."""
    now = cache.snapshot(_kept)
    if now == before:
        return
    body = json.dumps(now, separators=(",", ":"), sort_keys=True).encode()  # the same records, the same file
    write_atomically(kept_path(job), json.dumps(_header(bucket_url, body)).encode() + b"\n" + body)
