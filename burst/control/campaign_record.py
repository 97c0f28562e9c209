"""What was dispatched: ``$BURST_HOME/campaigns/<job>.json`` and ``<bucket>/campaign.json``.

The local copy lets ``python -m burst status JOB`` (and logs, terminate,
cleanup) work from the job name alone.
"""

from __future__ import annotations

import dataclasses
import difflib
import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from burst import __version__
from burst.atomic import write_atomically
from burst.concurrency import collector_paused
from burst.errors import BurstError, UserError, command_name
from burst.node.bucket_view import rows_of
from burst.protocol import CAMPAIGN_KEY, LAYOUT
from burst.providers import ProviderOptions, burst_home, make_provider
from burst.providers.base import Provider
from burst.records import Job, UnreadableRecord, from_known_fields, json_object, utc_now
from burst.storage import Storage, open_storage


@dataclass
class PoolOptions:
    """How rows are spread over machines (``--machines``, ``--slots``, ``--heartbeat``, ``--retries``)."""

    machines: int | None = None  # per instance type; None: one per row (EC2) or the CPUs (local)
    slots: str = "1"  # rows one machine runs at once: a number, or "auto" (its physical cores)
    heartbeat: float = 30.0  # seconds between lease renewals; a lease lasts 4 heartbeats
    retries: int = 2  # attempts after lost machines
    retry_failed: bool = False  # a non-zero exit is retried too (within --retries)
    save_patience: float = 600.0  # seconds a machine retries a bucket write before it gives up
    repeat: int = 1  # units per job-file row (--repeat K: tags <tag>.r1 .. <tag>.rK; burst.protocol)
    calibrate: bool = True  # each machine measures itself when its worker starts (burst.node.calibrate)

    def machines_per_type(self, rows_per_type: dict[str, int], local: bool) -> dict[str, int]:
        default = lambda rows: rows if not local else min(rows, os.cpu_count() or 1)  # noqa: E731
        return {t: (min(self.machines, n) if self.machines else default(n)) for t, n in rows_per_type.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PoolOptions":
        return from_known_fields(cls, data)


@dataclass
class CampaignRecord:
    job: str
    image: str  # AMI id or "local"
    bucket_url: str
    jobs: list[Job]
    options: ProviderOptions
    job_file: str = ""
    code_dir: str = ""
    install_file: str = ""
    results: list[str] = field(default_factory=lambda: ["results/**"])
    pool: PoolOptions = field(default_factory=PoolOptions)
    env: dict[str, str] = field(default_factory=dict)  # --env: exported before INSTALL.sh and every command
    typed_options: dict[str, Any] = field(default_factory=dict)  # the run options its last run's command line gave
    used_options: dict[str, Any] = field(default_factory=dict)  # every run option's value in its last run (burst.cli.run_options)
    created: str = field(default_factory=utc_now)
    updated: str = field(default_factory=utc_now)
    version: str = __version__
    layout: int = LAYOUT  # of its bucket (``burst.protocol``); a record without one is of the first layout

    def check_layout(self) -> None:
        """Refuse a campaign whose bucket has another layout: this burst would see none of its rows' records."""
        if self.layout != LAYOUT:
            raise UserError(
                f"job {self.job!r} was started by burst {self.version}, whose bucket layout ({self.layout}) keeps each "
                f"row's claim and status {'beside its logs' if self.layout == 1 else 'in state/rows/'}; this burst "
                f"({__version__}) keeps them in state/claims/ and state/ended/ (layout {LAYOUT}) and does not move the "
                f"records of a campaign whose machines may still write them. Finish it "
                f"with burst {self.version}, or download its results (`{command_name()} download {self.job} DIR` "
                f"still works), then `{command_name()} cleanup {self.job}` and run it again under another name or this one.",
            )

    @property
    def provider_name(self) -> str:
        return "local" if self.image == "local" else "ec2"

    @property
    def tags(self) -> list[str]:
        return [job.tag for job in self.jobs]

    def job_of(self, tag: str) -> Job:
        for job in self.jobs:
            if job.tag == tag:
                return job
        raise UserError(f"job {self.job} has no tag {tag!r}: its tags are {', '.join(self.tags)}.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CampaignRecord":
        data = dict(data)
        data["jobs"] = [from_known_fields(Job, row) for row in data["jobs"]]
        data["options"] = ProviderOptions.from_dict(data.get("options", {}))
        data["pool"] = PoolOptions.from_dict(data.get("pool", {}))
        data.setdefault("layout", 1)  # written before layouts were numbered
        return from_known_fields(cls, data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    # -- where it lives -------------------------------------------------------
    def provider(self) -> Provider:
        return make_provider(self.image, self.job, self.options)

    def storage(self, provider: Provider | None = None) -> Storage:
        provider = provider or self.provider()
        return open_storage(self.bucket_url, **provider.storage_options())

    def save(self, storage: Storage) -> None:
        """Here (``burst.atomic``: never half a file) and in the bucket, where the workers read the rows.

        The bucket's copy names the ``--env`` variables but not their values (a token
        passed to the machines has no business in the bucket).
        """
        self.updated = utc_now()
        write_atomically(record_path(self.job), self.to_json())
        self.share(storage)

    def share(self, storage: Storage) -> None:
        """The bucket's copy alone (e.g. written again over one that rotted)."""
        secret = {name: "(not kept in the bucket)" for name in self.env}
        shared = dataclasses.replace(self, env=secret, typed_options=_without_env_values(self.typed_options),
                                     used_options=_without_env_values(self.used_options))
        storage.write_text(CAMPAIGN_KEY, shared.to_json())


def _without_env_values(options: dict[str, Any]) -> dict[str, Any]:
    if not options.get("env"):
        return options
    return {**options, "env": [item.split("=", 1)[0] for item in options["env"]]}


def merge_rows(previous: "CampaignRecord", record: "CampaignRecord") -> list[str]:
    """A re-run's rows joined to the campaign's (``record.jobs`` is changed); one line per added or removed row.

    Rows are known by their tag. The job file's rows replace the campaign's rows of
    the same tags (a changed one then runs again: the reconcile compares each row
    with what its attempt ran). Rows of other job files (``--tag-offset``) stay.
    A row of *this* job file that is no longer in it is removed from the campaign:
    not shown, not waited for, never claimed again; its files stay in the bucket.
    """
    new_tags = set(record.tags)
    kept, notes = [], []
    for job in previous.jobs:
        if job.tag in new_tags:
            continue
        if (job.job_file or previous.job_file) == record.job_file:
            notes.append(f"{job.tag} was removed from {Path(record.job_file).name}: it is no longer part of the "
                         f"campaign (its files stay in the bucket)")
        else:
            kept.append(job)
    old_tags = set(previous.tags)
    notes += [f"{job.tag} was added to {Path(record.job_file).name}" for job in record.jobs if job.tag not in old_tags]
    record.jobs = kept + record.jobs
    return notes


@contextmanager
def dispatcher_lock(job: str) -> Iterator[None]:
    """One dispatcher per job on this machine: two at once could launch twice for a tag.

    The lock file exists only while it is held (it is removed on every exit). A
    dispatcher that locked a file another one had just removed sees that the
    path names another file now (or none), and tries again.
    """
    path = burst_home() / "campaigns" / f"{job}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UserError(
                f"job {job!r} is being dispatched right now by {holder}: let it finish (follow it with "
                f"`{command_name()} status {job}`), or stop it, then run this again."
            ) from None
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(handle.fileno()).st_ino:
            break
        handle.close()  # removed by the holder that just ended: lock the new one
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)  # while still locked: nobody can hold the file being removed
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def record_path(job: str) -> Path:
    return burst_home() / "campaigns" / f"{job}.json"


def timeline_path(job: str) -> Path:
    """Where ``run --wait`` and ``burst plot`` draw the campaign's timeline (``plot -o`` draws anywhere else)."""
    return burst_home() / "campaigns" / f"{job}-timeline.png"


@collector_paused()
def load_record(job: str) -> CampaignRecord:
    path = record_path(job)
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.json")) if path.parent.is_dir() else []
        close = difflib.get_close_matches(job, known, n=1)
        if close:
            raise UserError(f"no job {job!r}; did you mean {close[0]!r}? (known jobs: {', '.join(known)})")
        hint = f" Known jobs: {', '.join(known)}." if known else ""
        raise UserError(
            f"no campaign named {job!r} on this machine ({path} is missing): start it with "
            f"`{command_name()} run AMI {job} JOBFILE -c -d`, or set BURST_HOME to where it was started.{hint}"
        )
    try:
        data = json_object(path.read_bytes(), str(path))
        rows_of(data, str(path))
        return CampaignRecord.from_dict(data)
    except (UnreadableRecord, TypeError, ValueError, AttributeError) as error:  # rotted, or the wrong types
        why = str(error) if isinstance(error, UnreadableRecord) else f"{path} is unreadable: {error}"
        raise BurstError(
            f"{why}. It is burst's record of campaign {job!r} on this machine: restore it from a backup, or run "
            f"the campaign again (`{command_name()} run AMI {job} JOBFILE`) to write it again; its bucket is untouched."
        ) from None
