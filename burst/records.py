"""Records passed between the seams. Dataclasses, never bare dicts."""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from burst.protocol import HELD, TERMINAL_STATES, split_unit


def from_known_fields(cls, data: dict[str, Any]):
    """Build dataclass ``cls`` from a JSON dict, ignoring keys it does not know.

    Records written by a newer burst (more fields) still load in an older one.
    """
    known = _field_names(cls)
    return cls(**{k: v for k, v in data.items() if k in known})


@functools.lru_cache(maxsize=None)
def _field_names(cls) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


class UnreadableRecord(ValueError):
    """A record that is not UTF-8, not JSON, or not of its record's shape: a named condition, never a crash.

    ``where`` names it as a person finds it (``evaljob3/status.json``); ``why`` says what is wrong.
    """

    def __init__(self, where: str, why: str, etag: str = ""):
        super().__init__(f"{where} is unreadable: {why}")
        self.where, self.why = where, why
        self.etag = etag  # of the object as read, when it came from a bucket: a repair replaces exactly it


def utf8_text(data: bytes, where: str, etag: str = "") -> str:
    """``data`` as text; bytes that are not UTF-8 are ``UnreadableRecord`` (with the object's etag)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnreadableRecord(where, f"not UTF-8 (byte {error.start})", etag) from None


def json_object(raw: str | bytes, where: str) -> dict[str, Any]:
    """The JSON object in ``raw`` (text, or bytes that must be UTF-8), or ``UnreadableRecord``."""
    if isinstance(raw, bytes):
        raw = utf8_text(raw, where)
    try:
        data = json.loads(raw)
    except ValueError as error:  # garbage, or a truncated write
        raise UnreadableRecord(where, f"not JSON ({error})") from None
    if not isinstance(data, dict):
        raise UnreadableRecord(where, f"a JSON {type(data).__name__}, not an object")
    return data


_SCALARS: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
                                         "None": (type(None),), "Any": (object,), "list": (list,), "dict": (dict,)}


@functools.lru_cache(maxsize=None)
def _accepted(annotation: str) -> tuple[tuple[str, tuple[type, ...], str], ...]:
    """A field annotation string, parsed once: (name, the JSON types it takes, its list items' annotation)."""
    found = []
    for part in annotation.split("|"):
        name, _, inner = part.strip().partition("[")
        item = inner.rstrip("]").strip()
        found.append((name, _SCALARS.get(name, (object,)), item if name == "list" and item in _SCALARS else ""))
    return tuple(found)


def _fits(annotation: str, value: Any) -> bool:
    """Whether ``value`` (from JSON) has the type a dataclass field's annotation string names (shallow, plus list items)."""
    for name, types, item in _accepted(annotation):
        if name in ("int", "float") and isinstance(value, bool):
            continue  # JSON true is no number
        if isinstance(value, types):
            if item and not all(_fits(item, v) for v in value):
                continue
            return True
    return False


@functools.lru_cache(maxsize=None)
def _check(annotation: str):
    """``_fits(annotation, value)`` as one function of the value, built once per annotation."""
    accepted = _accepted(annotation)
    if [name for name, _, item in accepted] == ["list"] and accepted[0][2]:  # list[str] and the like
        each = _check(accepted[0][2])
        return lambda value: isinstance(value, list) and all(each(item) for item in value)
    if any(item for _, _, item in accepted):
        return lambda value: _fits(annotation, value)
    union = tuple(t for _, types, _ in accepted for t in types)
    bool_fits = any(name not in ("int", "float") and isinstance(True, types) for name, types, _ in accepted)
    return lambda value: bool_fits if isinstance(value, bool) else isinstance(value, union)


def fields_fingerprint(cls) -> str:
    """The names and types of dataclass ``cls``'s fields, as one string: a record kept by another version of
    burst (whose ``cls`` had other fields) is told apart by it."""
    return ";".join(f"{f.name}:{f.type}" for f in dataclasses.fields(cls))


@functools.lru_cache(maxsize=None)
def _field_checks(cls) -> dict[str, Any]:
    """Each field of dataclass ``cls`` and the check of its type, built once per class."""
    return {f.name: _check(str(f.type)) for f in dataclasses.fields(cls)}


def parse_record(cls, raw: str | bytes | dict[str, Any], where: str, checked: bool = True):
    """Dataclass ``cls`` from a record's text (or its JSON object), every known field of its type; else ``UnreadableRecord``.

    The one reader of every record burst shares (claims, statuses, machine and worker
    records): a record that rotted is a condition the caller names, never a traceback.
    ``checked=False`` skips the type of each field (a missing one is still refused): only
    for a JSON object this very code checked before and that cannot have changed since
    (``burst.control.kept_records``: a file with its own checksum).
    """
    data = raw if isinstance(raw, dict) else json_object(raw, where)
    checks = _field_checks(cls)
    known = {name: value for name, value in data.items() if name in checks}
    wrong = checked and [f"{name} is {json.dumps(value)[:40]}" for name, value in known.items() if not checks[name](value)]
    if wrong:
        raise UnreadableRecord(where, "wrong types: " + ", ".join(wrong))
    try:
        return cls(**known)
    except TypeError as error:  # a required field is missing
        raise UnreadableRecord(where, str(error).split("__init__() ")[-1]) from None


def utc_now() -> str:
    """ISO-8601 UTC timestamp to the millisecond, the one time format of every record."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def iso_utc(seconds: float) -> str:
    """A POSIX time as ``utc_now`` writes times."""
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")


def row_cost(seconds: float, price_per_hour: float | None, slots: int) -> float | None:
    """A row's share of its machine: its wall time at the machine's price, split over the machine's slots."""
    if price_per_hour is None:
        return None
    return seconds / 3600 * price_per_hour / max(1, slots)


def epoch(iso: str | None) -> float | None:
    """An ISO-8601 time (as ``utc_now`` writes them) in POSIX seconds; None when absent or unreadable."""
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except (TypeError, ValueError):
        return None


def seconds_since(iso: str, now: float | None = None) -> float:
    """Seconds from an ISO-8601 timestamp (as ``utc_now`` writes them) to ``now`` (default: this moment); 0 if unreadable."""
    then = epoch(iso)
    if then is None:
        return 0.0
    return (time.time() if now is None else now) - then


@dataclass(frozen=True)
class Job:
    """One row of the job CSV: one command on one machine, known by its tag."""

    tag: str
    instance_type: str
    command: str
    line: int  # line number in the CSV file, for messages
    job_file: str = ""  # the file it came from (absolute), so a re-run of that file can tell a removed row

    def changes(self, instance_type: str, command: str) -> list[str]:
        """What differs between this row and what an attempt ran ("" = not recorded, e.g. an older claim)."""
        found = []
        if command and command != self.command:
            found.append("command")
        if instance_type and instance_type != self.instance_type:
            found.append("instance type")
        return found


@dataclass
class InstanceInfo:
    """A machine as its provider reports it."""

    id: str
    job: str
    instance_type: str
    state: str  # provider's word: pending, running, terminated ...
    host: str = ""  # address to reach it (public IP / DNS), "" for local
    details: dict[str, Any] = field(default_factory=dict)  # AZ, AMI, lifecycle, launch time ...


@dataclass
class JobStatus:
    """Content of ``<bucket>/<tag>/status.json``: a row's last attempt, written when it ends.

    While a row runs, the status table shows its claim instead (``from_claim``).
    """

    job: str
    tag: str
    state: str
    instance_type: str = ""
    command: str = ""
    instance_id: str = ""  # the machine that ran the attempt
    attempt: int = 0
    slot: int | None = None
    cpus: list[int] = field(default_factory=list)  # the CPUs the command was pinned to ([] = all)
    cores: list[str] = field(default_factory=list)  # its slot's physical cores, "<package>:<core_id>" (burst.node.topology)
    repeat: int = 1  # which repetition of its row this unit is (--repeat; protocol.split_unit)
    machine_score: float | None = None  # its machine's calibration score (burst.node.calibrate); None = not calibrated
    heartbeat_age: float | None = None  # seconds since the running attempt's last heartbeat (shown, not stored)
    exit_code: int | None = None
    started: str | None = None  # when the command started
    ended: str | None = None  # when the command ended
    seconds: float | None = None  # command wall time
    lifecycle: str = ""  # the machine's market: "spot" or "on-demand" ("" locally)
    price_per_hour: float | None = None  # the machine's price in USD, None when unknown
    cost_usd: float | None = None  # seconds x price_per_hour / the machine's slots
    updated: str = field(default_factory=utc_now)
    note: str = ""  # why it failed, tail of a log, warnings
    warnings: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)  # host, cpu_model, kernel, ...
    instance: dict[str, Any] = field(default_factory=dict)  # what the provider says of the machine

    def __post_init__(self) -> None:
        self.repeat = split_unit(self.tag)[1]  # the tag says it, whoever wrote the status (a worker, the dispatcher)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JobStatus":
        return from_known_fields(cls, data)


@dataclass
class Claim:
    """Content of ``<tag>/claim.json``: who runs which attempt of a row, and its lease.

    Created if absent (attempt 1) or replaced if unchanged (a released or expired
    attempt n becomes n + 1), so exactly one worker holds an attempt. The lease is
    the object's last write: its worker renews it every heartbeat.
    """

    tag: str
    attempt: int
    machine: str  # instance id
    slot: int
    state: str = HELD  # HELD | RELEASED
    claimed: str = field(default_factory=utc_now)
    heartbeat: str = field(default_factory=utc_now)
    nonce: str = ""  # tells the holder its own claim after an ambiguous retry
    reason: str = ""  # why it was released
    instance_type: str = ""  # the row as this attempt runs it: a changed row is told by these two
    command: str = ""
    retry_base: int = 0  # attempts before this run of the row (a changed row or --force starts a new run)

    @property
    def tries(self) -> int:
        """Attempts in the row's current run: what --retries bounds."""
        return self.attempt - self.retry_base

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Claim":
        return from_known_fields(cls, data)


@dataclass
class MachineRecord:
    """Content of ``state/machines/<id>.json``, written by the dispatcher."""

    id: str
    instance_type: str
    state: str  # protocol machine states
    launched: str = field(default_factory=utc_now)
    updated: str = field(default_factory=utc_now)
    note: str = ""  # install failure tail, or why the reconcile ended it
    facts: dict[str, Any] = field(default_factory=dict)  # AZ, AMI, lifecycle ...
    lifecycle: str = ""  # "spot", "on-demand" or "local"
    price_per_hour: float | None = None  # USD at launch (spot: its zone's price then); None = unknown
    ended: str = ""  # when the dispatcher ended it ("" = it ended itself, or runs)
    phases: dict[str, str] = field(default_factory=dict)  # machine state -> when the dispatcher first saw it
    fatal: bool = False  # its failure is its type's (a refused login): no machine of the type is started again
    lost_worker: bool = False  # ended because its worker never reported or died: counts like a failed install

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MachineRecord":
        return from_known_fields(cls, data)


@dataclass
class WorkerRecord:
    """Content of ``state/machines/<folder>/worker.json``, written by the machine's worker every heartbeat (its folder: protocol.MACHINE_LOGS_PREFIX)."""

    id: str
    instance_type: str
    slots: int
    state: str = "working"  # working | finished | interrupted (a spot interruption notice came)
    started: str = field(default_factory=utc_now)
    heartbeat: str = field(default_factory=utc_now)
    rows: list[str] = field(default_factory=list)  # "tag#attempt" of every row it ran
    running: list[str] = field(default_factory=list)
    keep_machine: bool = False  # an upload could not be verified: its files are still on the machine
    note: str = ""  # e.g. why it could not end its machine
    topology: dict[str, Any] = field(default_factory=dict)  # cores, threads per core, packages (burst.node.topology)
    calibration: dict[str, Any] = field(default_factory=dict)  # score and per-slot rates ({} = --no-calibrate)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "WorkerRecord":
        return from_known_fields(cls, data)


def machine_end(record: MachineRecord | None, worker: tuple[WorkerRecord, float] | None, live: bool,
                now: float) -> tuple[str, float]:
    """When a machine stopped costing, as ``(ISO time, epoch seconds)``; ``("", now)`` while it is live.

    Ended by the dispatcher (its record says when), or else, once gone, at its
    worker's last word (``worker``: the record and its object's last write; a
    worker that finished or was interrupted ends its machine right after), or
    else at its record's last update. The ledger and the timeline share this rule.
    """
    if record is not None and record.ended:
        return record.ended, now - seconds_since(record.ended, now)
    if live:
        return "", now
    if worker is not None:  # ended itself after its last write (finished, or interrupted)
        return iso_utc(worker[1]), worker[1]
    updated = record.updated if record is not None else utc_now()
    return updated, now - seconds_since(updated, now)
