"""Records passed between the seams. Dataclasses, never bare dicts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

# status.json states, in the order a tag goes through them.
LAUNCHING = "launching"
INSTALLING = "installing"
READY = "ready"
RUNNING = "running"
SAVING = "saving"
DONE = "done"
FAILED = "failed"
INTERRUPTED = "interrupted"
TERMINAL_STATES = frozenset({DONE, FAILED, INTERRUPTED})


def from_known_fields(cls, data: dict[str, Any]):
    """Build dataclass ``cls`` from a JSON dict, ignoring keys it does not know.

    Records written by a newer burst (more fields) still load in an older one.
    """
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


def utc_now() -> str:
    """ISO-8601 UTC timestamp to the millisecond, the one time format of every record."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Job:
    """One row of the job CSV: one command on one machine, known by its tag."""

    tag: str
    instance_type: str
    command: str
    line: int  # line number in the CSV file, for messages


@dataclass
class InstanceInfo:
    """A machine as its provider reports it."""

    id: str
    job: str
    tag: str
    instance_type: str
    state: str  # provider's word: pending, running, terminated ...
    host: str = ""  # address to reach it (public IP / DNS), "" for local
    details: dict[str, Any] = field(default_factory=dict)  # AZ, AMI, lifecycle, launch time ...


@dataclass
class JobStatus:
    """Content of ``<bucket>/<tag>/status.json``."""

    job: str
    tag: str
    state: str
    instance_type: str = ""
    command: str = ""
    instance_id: str = ""
    exit_code: int | None = None
    started: str | None = None  # when the command started
    ended: str | None = None  # when the command ended
    seconds: float | None = None  # command wall time
    updated: str = field(default_factory=utc_now)
    note: str = ""  # why it failed, tail of a log, warnings
    warnings: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)  # host, cpu_model, kernel, ...
    instance: dict[str, Any] = field(default_factory=dict)  # what the provider says of the machine

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JobStatus":
        return from_known_fields(cls, data)
