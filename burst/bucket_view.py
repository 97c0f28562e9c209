"""One read of a campaign's bucket: every claim, status and machine record, from one listing.

A listing gives each object's etag and last-write time; a record is fetched
only when its etag is new to this reader (``RecordCache``), so a reconcile round
costs one LIST plus a GET per record that changed. The cache holds nothing that
could not be read again: it maps (key, etag) to what that exact object says.
Standard library only: the worker uses it too.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from burst import protocol
from burst.records import Claim, JobStatus, MachineRecord, WorkerRecord
from burst.storage.base import KeyNotFound, Storage, StoredObject


class RecordCache:
    """(key, etag) -> parsed JSON; thread-safe. Objects with the same etag have the same content."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, Any]] = {}
        self._lock = threading.Lock()

    def load(self, storage: Storage, obj: StoredObject) -> Any | None:
        with self._lock:
            cached = self._entries.get(obj.key)
        if cached is not None and obj.etag and cached[0] == obj.etag:
            return cached[1]
        try:
            text, etag = storage.read_versioned(obj.key)
        except KeyNotFound:
            return None  # deleted since the listing
        try:
            data = json.loads(text)
        except ValueError:
            return None  # not ours to judge here; writers only write whole JSON
        with self._lock:
            self._entries[obj.key] = (etag, data)
        return data


@dataclass
class HeldClaim:
    """A claim as read, with what a conditional write needs and when it was last renewed."""

    claim: Claim
    etag: str
    modified: float  # epoch seconds of its last write: the lease's heartbeat


@dataclass
class BucketView:
    now: float
    claims: dict[str, HeldClaim] = field(default_factory=dict)
    statuses: dict[str, JobStatus] = field(default_factory=dict)
    machines: dict[str, MachineRecord] = field(default_factory=dict)
    workers: dict[str, tuple[WorkerRecord, float]] = field(default_factory=dict)  # record, last write

    def row_state(self, tag: str) -> str:
        """PENDING, RUNNING, or the final state; one rule for dispatcher and worker.

        A final status counts only for the claim's current attempt (a later attempt
        may already run), and never for a released claim (it is waiting to rerun).
        """
        held = self.claims.get(tag)
        status = self.statuses.get(tag)
        if held is None:
            return status.state if status is not None and status.terminal else protocol.PENDING
        if held.claim.state == protocol.RELEASED:
            return protocol.PENDING
        if status is not None and status.terminal and status.attempt >= held.claim.attempt:
            return status.state
        return protocol.RUNNING


def read_bucket(storage: Storage, cache: RecordCache, tags: set[str] | None = None,
                with_machines: bool = True) -> BucketView:
    """Everything the reconcile and the workers decide on, from one listing of the bucket."""
    view = BucketView(now=time.time())
    wanted: list[tuple[str, StoredObject]] = []
    for obj in storage.list_objects():
        parts = obj.key.split("/")
        if len(parts) == 2 and parts[1] in ("claim.json", "status.json"):
            if tags is None or parts[0] in tags:
                wanted.append((parts[1], obj))
        elif with_machines and parts[0] == "machines" and (
            (len(parts) == 2 and parts[1].endswith(".json")) or (len(parts) == 3 and parts[2] == "worker.json")
        ):
            wanted.append(("machine" if len(parts) == 2 else "worker", obj))
    for kind, obj in wanted:
        data = cache.load(storage, obj)
        if not isinstance(data, dict):
            continue
        if kind == "claim.json":
            claim = Claim.from_dict(data)
            view.claims[claim.tag] = HeldClaim(claim, obj.etag, obj.modified)
        elif kind == "status.json":
            status = JobStatus.from_dict(data)
            view.statuses[status.tag] = status
        elif kind == "machine":
            record = MachineRecord.from_dict(data)
            view.machines[record.id] = record
        else:
            worker = WorkerRecord.from_dict(data)
            view.workers[worker.id] = (worker, obj.modified)
    return view
