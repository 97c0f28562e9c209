"""One read of a campaign's bucket: every claim, status and machine record, from listings of ``state/``.

Only what decides is listed (``protocol.CLAIMS_PREFIX``, ``ENDED_PREFIX`` and ``MACHINES_PREFIX``),
never the rows' logs and results. A listing gives each object's etag and last-write time; a record is fetched
only when its etag is new to this reader (``RecordCache``), so a reconcile round
costs one LIST plus a GET per record that changed. The cache holds nothing that
could not be read again: it maps (key, etag) to what that exact object says.
Standard library only: the worker uses it too.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict

from burst import protocol
from burst.concurrency import collector_paused
from burst.records import Claim, JobStatus, MachineRecord, UnreadableRecord, WorkerRecord, json_object, parse_record
from burst.storage.base import KeyNotFound, Storage, StoredObject


class RecordCache:
    """(key, etag) -> parsed JSON (or why it is unreadable), and each record built from it once; thread-safe.

    Objects with the same etag have the same content. ``seed`` takes entries kept
    from an earlier run (``snapshot``): each is used only while a listing shows the
    same etag, and is parsed by ``parse_record`` like a fresh read, so a kept entry
    can neither show what the bucket no longer says nor crash a reader. Entries
    seeded as ``checked`` (a kept file whose checksum held: what this code parsed
    before) skip the type check of each field; a field missing still makes the bucket
    decide.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, Any]] = {}
        self._built: dict[tuple[str, type], tuple[str, Any]] = {}  # (key, class) -> (etag, the record parsed from it)
        self._lock = threading.Lock()
        self._used: set[str] = set()  # keys read (from the bucket or this cache) by this process
        self._seeded: set[str] = set()  # keys whose entry came from ``seed``, not from the bucket
        self._checked: set[str] = set()  # seeded keys whose entry was type-checked when it was kept

    def seed(self, entries: dict[str, tuple[str, dict[str, Any]]], checked: bool = False) -> None:
        """Entries kept from an earlier run: key -> (etag, JSON object); ``checked``: records parsed when kept."""
        with self._lock:
            for key, (etag, data) in entries.items():
                if key not in self._entries:
                    self._entries[key] = (etag, data)
                    self._seeded.add(key)
                    if checked:
                        self._checked.add(key)

    def snapshot(self, keep=lambda key: True) -> dict[str, tuple[str, dict[str, Any]]]:
        """key -> (etag, JSON object) of the entries this process read, parsed into a record, and ``keep`` accepts.

        Only what ``parse_record`` accepted as it is now: a JSON object of the wrong shape is never kept.
        """
        with self._lock:
            parsed = {key for (key, _), (etag, _) in self._built.items() if self._entries.get(key, ("",))[0] == etag}
            return {key: entry for key, entry in self._entries.items()
                    if key in self._used and key in parsed and isinstance(entry[1], dict) and keep(key)}

    def remember(self, key: str, etag: str, text: str) -> None:
        """What this process just wrote at ``key`` (its etag as the write returned it): not read back."""
        try:
            data: dict[str, Any] | UnreadableRecord = json_object(text, key)
        except UnreadableRecord as error:
            data = error
        with self._lock:
            self._entries[key] = (etag, data)
            self._seeded.discard(key)
            self._checked.discard(key)

    def raw(self, storage: Storage, obj: StoredObject) -> dict[str, Any] | UnreadableRecord | None:
        """The object's JSON object, or why it is not one; None when it was deleted since the listing."""
        with self._lock:
            cached = self._entries.get(obj.key)
            self._used.add(obj.key)
        if cached is not None and obj.etag and cached[0] == obj.etag:
            return cached[1]
        data: dict[str, Any] | UnreadableRecord
        try:
            text, etag = storage.read_versioned(obj.key)
        except KeyNotFound:
            return None  # deleted since the listing
        except UnreadableRecord as error:  # not UTF-8
            text, etag, data = "", error.etag or obj.etag, error
        else:
            try:
                data = json_object(text, obj.key)
            except UnreadableRecord as error:
                data = error
        with self._lock:
            self._entries[obj.key] = (etag, data)
            self._seeded.discard(obj.key)
            self._checked.discard(obj.key)
        return data

    def load(self, storage: Storage, obj: StoredObject) -> dict[str, Any] | None:
        """The object's JSON object; None when it is gone or unreadable."""
        data = self.raw(storage, obj)
        return data if isinstance(data, dict) else None

    def record(self, storage: Storage, obj: StoredObject, cls):
        """The object as dataclass ``cls`` (None when gone); ``UnreadableRecord`` when it rotted.

        Built once per (key, etag): callers share it and must not change it.
        """
        data = self.raw(storage, obj)
        if isinstance(data, UnreadableRecord):
            raise data
        if data is None:
            return None
        with self._lock:
            etag = self._entries.get(obj.key, ("",))[0]
            built = self._built.get((obj.key, cls))
            checked = obj.key in self._checked
        if built is None or built[0] != etag:
            try:  # UnreadableRecord (wrong shape): raised, never kept
                built = (etag, parse_record(cls, data, obj.key, checked=not checked))
            except UnreadableRecord:
                with self._lock:
                    seeded = obj.key in self._seeded
                    if seeded:  # a kept copy that rotted on this machine: what the bucket says decides
                        del self._entries[obj.key]
                        self._seeded.discard(obj.key)
                        self._checked.discard(obj.key)
                if seeded:
                    return self.record(storage, obj, cls)
                raise
            with self._lock:
                self._built[(obj.key, cls)] = built
        return built[1]


@dataclass
class HeldClaim:
    """A claim as read, with what a conditional write needs and when it was last renewed."""

    claim: Claim
    etag: str
    modified: float  # epoch seconds of its last write: the lease's heartbeat


@dataclass
class BucketView:
    now: float  # the bucket's clock (Storage.clock) when it was listed: every object age is measured on it
    claims: dict[str, HeldClaim] = field(default_factory=dict)
    statuses: dict[str, JobStatus] = field(default_factory=dict)
    machines: dict[str, MachineRecord] = field(default_factory=dict)
    workers: dict[str, tuple[WorkerRecord, float]] = field(default_factory=dict)  # record, last write
    campaign_etag: str = ""  # of campaign.json as listed (workers only): a worker reads its rows again when it changes
    unreadable: dict[str, str] = field(default_factory=dict)  # key -> "<key> is unreadable: why" (shown by status)
    unknown: dict[str, str] = field(default_factory=dict)  # tag -> why: the record that decides the row is unreadable
    released: set[str] = field(default_factory=set)  # tags whose released marker was listed
    local_now: float = field(default_factory=time.time)  # this machine's clock then: for times it wrote itself

    @property
    def skew(self) -> float:
        """How far this machine's clock is ahead of the bucket's (seconds; negative: behind)."""
        return self.local_now - self.now

    def row_state(self, tag: str) -> str:
        """PENDING, RUNNING, or the final state; one rule for dispatcher and worker.

        A final status counts only for the claim's current attempt (a later attempt
        may already run), and never for a released claim (it is waiting to rerun).
        A row whose deciding record (its claim, or its status when that came last)
        is unreadable is UNKNOWN: final, claimed by nobody, launched for by nobody,
        until ``run --force`` reruns it.
        """
        if tag in self.unknown:
            return protocol.UNKNOWN
        held = self.claims.get(tag)
        status = self.statuses.get(tag)
        if held is None:
            return status.state if status is not None and status.terminal else protocol.PENDING
        if held.claim.state == protocol.RELEASED:
            return protocol.PENDING
        if status is not None and status.terminal and status.attempt >= held.claim.attempt:
            return status.state
        return protocol.RUNNING


@collector_paused()
def read_bucket(storage: Storage, cache: RecordCache, tags: set[str] | None = None,
                with_machines: bool = True, ended: EndedSource | None = None, list_ended: bool = True) -> BucketView:
    """Everything the reconcile and the workers decide on, from the bucket's listings.

    Machine and worker records are listed *before* claims and statuses: a worker
    writes its rows' statuses before it records that it finished, so a worker
    seen finished here has its rows' final statuses in the later listing. (In the
    other order a round could see a finished worker beside its rows still pending,
    and launch a machine for rows that are done.) ``ended`` sees the listing before
    it is read and may add statuses to it; with ``list_ended`` False, ``state/ended/``
    is not listed and the statuses are only what it adds (the reconcile's rounds after
    its first: ``burst.control.round_reads``).
    """
    view = BucketView(now=0.0)
    if with_machines:
        for obj in storage.list_objects(protocol.MACHINES_PREFIX):
            kind = protocol.machine_record(obj.key)
            try:
                if kind is not None and kind[1] == "machine":
                    record = cache.record(storage, obj, MachineRecord)
                    if record is not None:
                        view.machines[record.id] = record
                elif kind is not None:
                    worker = cache.record(storage, obj, WorkerRecord)
                    if worker is not None and worker.id != kind[0]:  # a machine writes only its own folder
                        view.unreadable[obj.key] = f"a worker record of {worker.id} in the folder of {kind[0]}"
                    elif worker is not None and (worker.id not in view.workers  # else its newer (one machine, one clock)
                                                 or worker.heartbeat >= view.workers[worker.id][0].heartbeat):
                        view.workers[worker.id] = (worker, obj.modified)
            except UnreadableRecord as error:  # its writer writes it again soon; shown meanwhile
                view.unreadable[error.where] = str(error)
    listed = _listed_rows(storage, tags, with_ended=list_ended)
    view.now, view.local_now = storage.clock(), time.time()  # right after the listing (S3: its answer's Date)
    if ended is not None:
        ended(view, listed)
    for tag, entry in listed.items():
        if "released" in entry:
            view.released.add(tag)
        claim_obj = None if _ended_after_its_claim(entry) else entry.get("claim")  # else the status tells all
        _load_row(storage, cache, view, tag, claim_obj, entry.get("status"))
    return view


Listed = Dict[str, Dict[str, StoredObject]]  # tag -> {"claim" | "status" | "released": its object}
EndedSource = Callable[[BucketView, Listed], None]  # puts each row's status object into ``listed``


def _listed_rows(storage: Storage, tags: set[str] | None, with_ended: bool = True) -> Listed:
    """tag -> {"claim" | "status" | "released": its object}, from listings of ``state/claims/`` (and ``state/ended/``)."""
    listed: Listed = {}
    prefixes = (protocol.CLAIMS_PREFIX, protocol.ENDED_PREFIX) if with_ended else (protocol.CLAIMS_PREFIX,)
    for prefix in prefixes:
        for obj in storage.list_objects(prefix):
            record = protocol.row_record(obj.key)
            if record is not None and (tags is None or record[0] in tags):
                listed.setdefault(record[0], {})[record[1]] = obj
    return listed


def _load_row(storage: Storage, cache: RecordCache, view: BucketView, tag: str,
              claim_obj: StoredObject | None, status_obj: StoredObject | None) -> None:
    """Read a row's claim and status (those given) into ``view``; an unreadable one is noted, never raised.

    The row is UNKNOWN when its claim is unreadable, or its status is and no claim was
    given (none exists, or the status came after it: the status is what decides).
    """
    try:
        claim = cache.record(storage, claim_obj, Claim) if claim_obj is not None else None
        if claim is not None and (claim.state not in (protocol.HELD, protocol.RELEASED) or claim.attempt < 1):
            raise UnreadableRecord(claim_obj.key, f"state {claim.state!r}, attempt {claim.attempt}")
    except UnreadableRecord as error:
        view.unreadable[error.where] = view.unknown[tag] = str(error)
        return
    if claim is not None:
        view.claims[tag] = HeldClaim(claim, claim_obj.etag, claim_obj.modified)
    try:
        status = cache.record(storage, status_obj, JobStatus) if status_obj is not None else None
        if status is not None and status.state not in protocol.WRITTEN_STATES:
            raise UnreadableRecord(status_obj.key, f"state {status.state!r} is no final state")
    except UnreadableRecord as error:
        view.unreadable[error.where] = str(error)
        if claim_obj is None:
            view.unknown[tag] = str(error)
        return
    if status is not None:
        view.statuses[tag] = status


def _ended_after_its_claim(entry: dict[str, StoredObject]) -> bool:
    """The row's status was written at or after its claim's last write, and the claim was not released.

    A status is written only when an attempt ends, and a released claim leaves a marker,
    so such a row is final as its status says.
    """
    claim_obj, status_obj = entry.get("claim"), entry.get("status")
    return (claim_obj is not None and status_obj is not None and "released" not in entry
            and status_obj.modified >= claim_obj.modified)


@collector_paused()
def read_rows_worth_a_look(storage: Storage, cache: RecordCache, tags: set[str], lease: float) -> tuple[BucketView, set[str]]:
    """What a worker needs to pick rows, GETting only the records that could make a row claimable.

    From the listing alone: a row with neither claim nor status is free; a row whose
    status was written at or after its claim's last write, or with a status and no claim
    (swept), has ended; a claim renewed within
    the lease is held. Only released rows (their marker is listed) and silent
    claims are read. Returns the view of those and the free tags. (The dispatcher
    reads everything: it shows every row.)
    """
    view = BucketView(now=0.0)
    for obj in storage.list_objects(protocol.CAMPAIGN_KEY):  # its etag: one small listing, not the file
        if obj.key == protocol.CAMPAIGN_KEY:
            view.campaign_etag = obj.etag
    listed = _listed_rows(storage, tags)
    view.now, view.local_now = storage.clock(), time.time()  # right after the listing (S3: its answer's Date)
    free = set()
    for tag in tags:
        entry = listed.get(tag, {})
        claim_obj, status_obj = entry.get("claim"), entry.get("status")
        if claim_obj is None:
            if status_obj is None:
                free.add(tag)
            continue  # else it ended, and the reconcile swept its claim (a rerun's claim is written first)
        if "released" not in entry:
            if _ended_after_its_claim(entry):
                continue
            if view.now - claim_obj.modified <= lease:
                continue  # held, and renewed within the lease
        _load_row(storage, cache, view, tag, claim_obj, status_obj)
        if tag not in view.claims and view.row_state(tag) == protocol.PENDING:  # unreadable: UNKNOWN, never free
            free.add(tag)
    return view, free


def campaign_rows(text: str, where: str = protocol.CAMPAIGN_KEY) -> list[dict[str, str]]:
    """The rows of ``campaign.json`` (each with its tag, instance type and command); ``UnreadableRecord`` otherwise."""
    return rows_of(json_object(text, where), where)


def rows_of(record: dict[str, Any], where: str) -> list[dict[str, str]]:
    """The rows of a campaign record's JSON object; ``UnreadableRecord`` when they are not rows."""
    jobs = record.get("jobs")
    if not isinstance(jobs, list) or not all(
            isinstance(row, dict) and all(isinstance(row.get(k), str) for k in ("tag", "instance_type", "command"))
            for row in jobs):
        raise UnreadableRecord(where, "its jobs are not a list of rows with a tag, an instance type and a command")
    return jobs
