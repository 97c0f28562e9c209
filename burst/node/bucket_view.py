"""One read of a campaign's bucket: every claim, status and machine record, from listings of ``state/``.

Only what decides is listed (``protocol.ROWS_PREFIX`` and ``MACHINES_PREFIX``), never
the rows' logs and results. A listing gives each object's etag and last-write time; a record is fetched
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
    campaign_etag: str = ""  # of campaign.json as listed (workers only): a worker reads its rows again when it changes

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
    """Everything the reconcile and the workers decide on, from the bucket's listings.

    Machine and worker records are listed *before* claims and statuses: a worker
    writes its rows' statuses before it records that it finished, so a worker
    seen finished here has its rows' final statuses in the later listing. (In the
    other order a round could see a finished worker beside its rows still pending,
    and launch a machine for rows that are done.)
    """
    view = BucketView(now=time.time())
    if with_machines:
        for obj in storage.list_objects(protocol.MACHINES_PREFIX):
            kind = protocol.machine_record(obj.key)
            if kind is not None and kind[1] == "machine":
                data = cache.load(storage, obj)
                if isinstance(data, dict):
                    record = MachineRecord.from_dict(data)
                    view.machines[record.id] = record
            elif kind is not None:
                data = cache.load(storage, obj)
                if isinstance(data, dict):
                    worker = WorkerRecord.from_dict(data)
                    view.workers[worker.id] = (worker, obj.modified)
    for tag, entry in _listed_rows(storage, tags, view).items():
        claim_obj = None if _ended_after_its_claim(entry) else entry.get("claim.json")  # else the status tells all
        _load_row(storage, cache, view, tag, claim_obj, entry.get("status.json"))
    return view


def _listed_rows(storage: Storage, tags: set[str] | None, view: BucketView) -> dict[str, dict[str, StoredObject]]:
    """tag -> {"claim.json" | "status.json" | "released": its object}, from one listing of ``state/rows/``."""
    listed: dict[str, dict[str, StoredObject]] = {}
    for obj in storage.list_objects(protocol.ROWS_PREFIX):
        found = protocol.row_record(obj.key)
        if found is not None and found[1] in ("claim.json", "status.json", "released") and (tags is None or found[0] in tags):
            listed.setdefault(found[0], {})[found[1]] = obj
    return listed


def _load_row(storage: Storage, cache: RecordCache, view: BucketView, tag: str,
              claim_obj: StoredObject | None, status_obj: StoredObject | None) -> None:
    """Read a row's claim and status (those given) into ``view``."""
    for obj in (claim_obj, status_obj):
        data = cache.load(storage, obj) if obj is not None else None
        if not isinstance(data, dict):
            continue
        if obj is claim_obj:
            view.claims[tag] = HeldClaim(Claim.from_dict(data), obj.etag, obj.modified)
        else:
            view.statuses[tag] = JobStatus.from_dict(data)


def _ended_after_its_claim(entry: dict[str, StoredObject]) -> bool:
    """The row's status was written at or after its claim's last write, and the claim was not released.

    A status is written only when an attempt ends, and a released claim leaves a marker,
    so such a row is final as its status says.
    """
    claim_obj, status_obj = entry.get("claim.json"), entry.get("status.json")
    return (claim_obj is not None and status_obj is not None and "released" not in entry
            and status_obj.modified >= claim_obj.modified)


def read_rows_worth_a_look(storage: Storage, cache: RecordCache, tags: set[str], lease: float) -> tuple[BucketView, set[str]]:
    """What a worker needs to pick rows, GETting only the records that could make a row claimable.

    From the listing alone: a row with no claim is free; a row whose status was
    written at or after its claim's last write has ended; a claim renewed within
    the lease is held. Only released rows (their marker is listed) and silent
    claims are read. Returns the view of those and the free tags. (The dispatcher
    reads everything: it shows every row.)
    """
    view = BucketView(now=time.time())
    for obj in storage.list_objects(protocol.CAMPAIGN_KEY):  # its etag: one small listing, not the file
        if obj.key == protocol.CAMPAIGN_KEY:
            view.campaign_etag = obj.etag
    listed = _listed_rows(storage, tags, view)
    free = set()
    for tag in tags:
        entry = listed.get(tag, {})
        claim_obj, status_obj = entry.get("claim.json"), entry.get("status.json")
        if claim_obj is None and status_obj is None:
            free.add(tag)
            continue
        if claim_obj is not None and "released" not in entry:
            if _ended_after_its_claim(entry):
                continue
            if view.now - claim_obj.modified <= lease:
                continue  # held, and renewed within the lease
        _load_row(storage, cache, view, tag, claim_obj, status_obj)
        if tag not in view.claims and view.row_state(tag) == protocol.PENDING:
            free.add(tag)
    return view, free
