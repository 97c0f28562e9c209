"""Final rows' statuses kept on this machine between commands: ``$BURST_HOME/campaigns/<job>.records``.

A new ``burst status`` process starts with an empty ``RecordCache`` and would GET
every row's status again: on 100,000 rows, nearly all of its time. A row's final
status never changes but by a new write (``run --force``, ``--retry-failed``, a
changed row), which gives the object a new etag, so what was read is kept here
keyed by (key, etag) and used only while the bucket's listing shows that same
etag. Each kept record is parsed by ``parse_record`` like a fresh read. The file
is the user's alone (0600, written whole or not at all); one that cannot be read
(truncated, edited, from another bucket) is ignored and written afresh.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from burst import protocol
from burst.atomic import write_atomically
from burst.node.bucket_view import RecordCache
from burst.providers.base import burst_home

FORMAT = 1


def kept_path(job: str) -> Path:
    return burst_home() / "campaigns" / f"{job}.records"


def _kept(key: str) -> bool:
    """Only rows' statuses: what a campaign has most of, and what stays once a row has ended."""
    found = protocol.row_record(key)
    return found is not None and found[1] == "status.json"


def load_kept(job: str, bucket_url: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """key -> (etag, JSON object) kept for this job's bucket; nothing when the file is missing or unreadable."""
    try:
        data = json.loads(kept_path(job).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("bucket") != bucket_url \
            or not isinstance(data.get("records"), dict):
        return {}
    return {key: (entry[0], entry[1]) for key, entry in data["records"].items()
            if _kept(key) and isinstance(entry, list) and len(entry) == 2
            and isinstance(entry[0], str) and entry[0] and isinstance(entry[1], dict)}


def keep(job: str, bucket_url: str, cache: RecordCache, before: dict[str, tuple[str, dict[str, Any]]]) -> None:
    """Write the cache's statuses of rows listed in this run, unless they are what ``before`` held already."""
    now = cache.snapshot(_kept)
    if now == before:
        return
    text = json.dumps({"format": FORMAT, "bucket": bucket_url, "records": now}, separators=(",", ":"))
    write_atomically(kept_path(job), text)
