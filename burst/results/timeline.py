"""A campaign's history as plain data: each machine's boot, install, row attempts, idle time and end.

Gathered from one listing of the bucket (machine and worker records, each row's
status and its earlier attempts' ``<tag>/attempts/<n>/status.json``, the running claims)
and, optionally, the ids of the machines still alive. No matplotlib here:
``burst.results.plot`` draws a ``Timeline``; this module is what the tests check.

Times are epoch seconds. Some are guessed, and say so (``RowBar.estimated``):
an attempt lost with its machine has a status written by the dispatcher, with
no start and no end, so it is drawn from the end of the previous attempt on its
slot to the moment its machine was gone.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from burst import protocol
from burst.concurrency import parallel
from burst.node.bucket_view import BucketView, HeldClaim, RecordCache
from burst.node.calibrate import outliers
from burst.records import Claim, JobStatus, MachineRecord, WorkerRecord, epoch, machine_end
from burst.storage.base import Storage, StoredObject

NOT_MACHINES = ("", "dispatcher")  # an attempt "run" by these never ran: the dispatcher failed the row


@dataclass
class RowBar:
    """One attempt of one row, on one slot of one machine."""

    tag: str
    attempt: int
    state: str  # done | failed | interrupted | running
    machine: str
    slot: int
    start: float
    end: float | None  # None: still running
    exit_code: int | None = None
    note: str = ""
    estimated: bool = False  # its start or end is a guess: the attempt's machine was lost before it could say

    @property
    def label(self) -> str:
        """The tag, and ``#n`` for a retry: a row run twice shows twice."""
        return self.tag if self.attempt <= 1 else f"{self.tag} #{self.attempt}"


@dataclass
class MachineLane:
    """One machine: when it was launched, installed and ended, and the attempts it ran (on ``slots`` sub-lanes)."""

    id: str
    instance_type: str
    lifecycle: str = ""  # spot, on-demand, local
    slots: int = 1
    launched: float = 0.0
    installing: float | None = None  # INSTALL.sh began (the dispatcher saw it); boot before
    ready: float | None = None  # installed: its worker could start
    install_failed: float | None = None  # INSTALL.sh failed then
    end: float | None = None  # None: still alive
    end_reason: str = ""
    bars: list[RowBar] = field(default_factory=list)
    score: float | None = None  # its calibration score (burst.node.calibrate); None: not calibrated
    score_off: float | None = None  # how far from its type's median, when more than 10% (e.g. -0.14)

    def until(self, now: float) -> float:
        """Its end, or ``now`` while it lives."""
        return self.end if self.end is not None else now

    def boot(self, now: float) -> tuple[float, float]:
        """From launch to the start of INSTALL.sh (or whatever came first after it)."""
        after = [t for t in (self.installing, self.ready, self.install_failed) if t is not None]
        return self.launched, max(self.launched, min(after) if after else self.until(now))

    def install(self, now: float) -> tuple[float, float] | None:
        """INSTALL.sh: from its start to ready (or its failure, or the machine's end); None if never seen."""
        if self.installing is None:
            return None
        done = self.ready if self.ready is not None else self.install_failed
        return self.installing, max(self.installing, done if done is not None else self.until(now))

    def idle(self, slot: int, now: float) -> list[tuple[float, float]]:
        """When this slot was ready but ran nothing: gaps between its attempts, from ready to the end."""
        if self.ready is None:
            return []
        spans, cursor, end = [], self.ready, self.until(now)
        for bar in sorted((b for b in self.bars if b.slot == slot), key=lambda b: b.start):
            if bar.start > cursor:
                spans.append((cursor, min(bar.start, end)))
            cursor = max(cursor, bar_end(bar, self, now))
        if end > cursor:
            spans.append((cursor, end))
        return [(a, b) for a, b in spans if b > a]


def bar_end(bar: RowBar, lane: MachineLane | None, now: float) -> float:
    """Where a bar stops: its end, or (running) now or its machine's end if that came first."""
    if bar.end is not None:
        return bar.end
    return min(now, lane.until(now)) if lane is not None else now


@dataclass
class Timeline:
    job: str
    now: float  # when it was gathered: running things are drawn up to here
    lanes: list[MachineLane] = field(default_factory=list)  # in launch order
    rows: Counter = field(default_factory=Counter)  # row state -> how many rows are in it now
    unplaced: list[RowBar] = field(default_factory=list)  # attempts no machine ran (failed by the dispatcher)

    @property
    def bars(self) -> list[RowBar]:
        return [bar for lane in self.lanes for bar in lane.bars]

    @property
    def start(self) -> float:
        """The campaign's first launch (or first attempt): time 0 of the picture."""
        times = [lane.launched for lane in self.lanes] + [bar.start for bar in self.bars]
        return min(times) if times else self.now

    @property
    def live(self) -> bool:
        return any(lane.end is None for lane in self.lanes) or any(bar.end is None for bar in self.bars)

    @property
    def end(self) -> float:
        """Now while anything runs, else the last end seen."""
        if self.live:
            return self.now
        times = [lane.until(self.now) for lane in self.lanes] + [bar_end(b, None, self.now) for b in self.bars]
        return max(times) if times else self.now

    @property
    def span(self) -> float:
        return max(0.0, self.end - self.start)

    def lane(self, machine: str) -> MachineLane | None:
        return next((lane for lane in self.lanes if lane.id == machine), None)


@dataclass
class _Listing:
    """What one listing of the bucket holds for the timeline, sorted by kind."""

    machines: dict[str, StoredObject] = field(default_factory=dict)
    workers: dict[str, StoredObject] = field(default_factory=dict)
    claims: dict[str, StoredObject] = field(default_factory=dict)
    statuses: dict[str, StoredObject] = field(default_factory=dict)
    released: set[str] = field(default_factory=set)  # tags whose claim is released (their marker is listed)
    attempts: dict[tuple[str, int], StoredObject] = field(default_factory=dict)
    logs: dict[tuple[str, int], float] = field(default_factory=dict)  # last upload of an attempt's logs


def _list(storage: Storage) -> _Listing:
    found = _Listing()
    for obj in storage.list_objects():
        parts = obj.key.split("/")
        machine, row = protocol.machine_record(obj.key), protocol.row_record(obj.key)
        if machine is not None:
            (found.machines if machine[1] == "machine" else found.workers)[machine[0]] = obj
        elif row is not None and row[1] == "claim":
            found.claims[row[0]] = obj
        elif row is not None and row[1] == "status":
            found.statuses[row[0]] = obj
        elif row is not None and row[1] == "released":
            found.released.add(row[0])
        elif len(parts) >= 4 and parts[1] == "attempts" and parts[2].isdigit():
            key = (parts[0], int(parts[2]))
            if len(parts) == 4 and parts[3] == "status.json":
                found.attempts[key] = obj
            elif parts[3] == "logs":
                found.logs[key] = max(found.logs.get(key, 0.0), obj.modified)
    return found


def gather_timeline(storage: Storage, job: str = "", tags: Iterable[str] | None = None,
                    live_ids: set[str] | None = None, now: float | None = None,
                    cache: RecordCache | None = None) -> Timeline:
    """Everything the picture shows, from the bucket.

    ``tags``: the campaign's rows (counted in the title; default: every row in the
    bucket). ``live_ids``: the machines still alive (None: unknown, so each ends
    where the bucket last heard of it, as the ledger would tell a gone machine).
    ``cache``: the dispatcher's, so records its rounds read are not read again (no
    GET per row at the end of ``--wait``). A copy of the current attempt's status
    (written by burst before 0.1.0's last change) is not read: ``state/ended/<tag>.json`` is it.
    """
    now = time.time() if now is None else now
    listing = _list(storage)
    cache = cache or RecordCache()

    def load(objs: list[StoredObject]) -> dict[str, dict]:
        return {obj.key: data for obj, data in zip(objs, parallel(lambda o: cache.load(storage, o), objs))
                if isinstance(data, dict)}

    # a claim whose row's status came after it (and was not released) is not read: the status tells all, as in
    # read_bucket (no GET per ended row at the end of --wait)
    listing.claims = {tag: obj for tag, obj in listing.claims.items()
                      if tag in listing.released or tag not in listing.statuses
                      or listing.statuses[tag].modified < obj.modified}
    loaded = load([*listing.machines.values(), *listing.workers.values(), *listing.claims.values(),
                   *listing.statuses.values()])
    current = {(tag, loaded[o.key].get("attempt")) for tag, o in listing.statuses.items() if o.key in loaded}
    loaded.update(load([o for k, o in listing.attempts.items() if k not in current]))
    machines = {i: MachineRecord.from_dict(loaded[o.key]) for i, o in listing.machines.items() if o.key in loaded}
    workers = {i: (WorkerRecord.from_dict(loaded[o.key]), o.modified) for i, o in listing.workers.items() if o.key in loaded}

    view = BucketView(now=now)  # the current state of each row, by the rule the status table uses
    view.claims = {t: HeldClaim(Claim.from_dict(loaded[o.key]), o.etag, o.modified)
                   for t, o in listing.claims.items() if o.key in loaded}
    view.statuses = {t: JobStatus.from_dict(loaded[o.key]) for t, o in listing.statuses.items() if o.key in loaded}
    attempts = {k: JobStatus.from_dict(loaded[o.key]) for k, o in listing.attempts.items() if o.key in loaded}
    for tag, status in view.statuses.items():  # the current attempt (its copy is the same record)
        attempts[(tag, status.attempt)] = status

    all_tags = sorted(set(view.claims) | set(view.statuses) | {t for t, _ in attempts})
    timeline = Timeline(job=job, now=now, rows=Counter(view.row_state(t) for t in (all_tags if tags is None else tags)))
    ids = set(machines) | set(workers) | set(live_ids or ()) | {s.instance_id for s in attempts.values()}
    lanes = {i: _lane(i, machines.get(i), workers.get(i), i in (live_ids or ()), now) for i in ids if i not in NOT_MACHINES}
    for machine, off in outliers({i: (lane.instance_type, lane.score) for i, lane in lanes.items()}).items():
        lanes[machine].score_off = off

    bars = [_status_bar(status) for status in attempts.values()]
    for tag, held in view.claims.items():  # running attempts have a claim and no status yet
        claim = held.claim
        if claim.state == protocol.HELD and (tag, claim.attempt) not in attempts and claim.machine not in NOT_MACHINES:
            bars.append(RowBar(tag, claim.attempt, protocol.RUNNING, claim.machine, claim.slot,
                               epoch(claim.claimed) or now, None))
    bars += _silent_attempts(workers, attempts, view, listing.logs)
    for bar in bars:
        lane = lanes.get(bar.machine)
        if lane is None:
            timeline.unplaced.append(bar)
            continue
        lane.bars.append(bar)
        lane.slots = max(lane.slots, bar.slot + 1)
    for lane in lanes.values():
        _place_estimated(lane, now)
        lane.bars.sort(key=lambda b: (b.start, b.slot))
    timeline.lanes = sorted(lanes.values(), key=lambda lane: (lane.launched, lane.id))
    return timeline


def _lane(instance_id: str, record: MachineRecord | None, worker: tuple[WorkerRecord, float] | None,
          live: bool, now: float) -> MachineLane:
    """A machine's phases: the dispatcher saw each state first at ``phases[state]``; its worker says when it started."""
    phases = record.phases if record is not None else {}
    started = epoch(worker[0].started) if worker is not None else None
    ready = [t for t in (epoch(phases.get(protocol.READY)), epoch(phases.get(protocol.WORKING)), started) if t is not None]
    failed = epoch(phases.get(protocol.INSTALL_FAILED))
    if failed is None and record is not None and record.state == protocol.INSTALL_FAILED:
        failed = epoch(record.ended) or epoch(record.updated)
    ended_iso, end = machine_end(record, worker, live, now)
    launched = (epoch(phases.get(protocol.LAUNCHED)) or (epoch(record.launched) if record is not None else None)
                or started or end)
    return MachineLane(
        id=instance_id,
        instance_type=record.instance_type if record is not None else (worker[0].instance_type if worker else ""),
        lifecycle=record.lifecycle if record is not None else "",
        slots=max(1, worker[0].slots) if worker is not None else 1,
        launched=launched, installing=epoch(phases.get(protocol.INSTALLING)),
        ready=min(ready) if ready and failed is None else None, install_failed=failed,
        end=end if ended_iso or not live else None, end_reason=_why_it_ended(record, worker, live, failed),
        score=(worker[0].calibration or {}).get("score") if worker is not None else None)


def _why_it_ended(record: MachineRecord | None, worker: tuple[WorkerRecord, float] | None, live: bool,
                  failed: float | None) -> str:
    if record is not None and record.ended and record.note:
        return record.note.strip().splitlines()[0]  # the dispatcher ended it, and said why
    if failed is not None:
        return "install failed"
    if live:
        return ""
    if worker is not None:
        if worker[0].state == "finished":
            return "finished" + (f" ({worker[0].note})" if worker[0].note else "")
        if worker[0].state == "interrupted":
            return protocol.SPOT_INTERRUPTION
        return "gone (its worker stopped reporting)"
    return ""


def _status_bar(status: JobStatus) -> RowBar:
    """An ended attempt, as its status copy tells it; times are filled in later when it has none."""
    start, end = epoch(status.started), epoch(status.ended)
    estimated = start is None or end is None
    if estimated and end is None:
        end = epoch(status.updated)  # a lost attempt: the dispatcher wrote this when it gave the row up
    return RowBar(status.tag, status.attempt, status.state, status.instance_id, max(0, status.slot or 0),
                  start if start is not None else float("nan"), end, status.exit_code, status.note, estimated)


def _silent_attempts(workers: dict[str, tuple[WorkerRecord, float]], attempts: dict[tuple[str, int], JobStatus],
                     view: BucketView, logs: dict[tuple[str, int], float]) -> list[RowBar]:
    """Attempts a worker ran that left no status: stopped because their row was rerun or taken over.

    The worker lists them (``rows``), and their logs were uploaded as they ended;
    with no logs there is nothing to place them by, and they are left out.
    """
    found = []
    for instance_id, (worker, _) in workers.items():
        for entry in worker.rows:
            tag, _, number = entry.rpartition("#")
            if not number.isdigit() or (tag, int(number)) in attempts:
                continue
            held = view.claims.get(tag)
            if held is not None and held.claim.attempt == int(number) and held.claim.state == protocol.HELD:
                continue  # its claim says it runs: a running bar already
            if (tag, int(number)) in logs:
                found.append(RowBar(tag, int(number), protocol.INTERRUPTED, instance_id, 0, float("nan"),
                                    logs[(tag, int(number))], note="stopped: no status", estimated=True))
    return found


def _place_estimated(lane: MachineLane, now: float) -> None:
    """Guess the missing times of attempts lost with their machine.

    Such an attempt began when the previous attempt on its slot ended (a worker
    claims its next row at once), or when the machine was ready; and it ended at
    the latest when the machine did.
    """
    for bar in sorted(lane.bars, key=lambda b: (b.end if b.end is not None else now)):
        if not bar.estimated:
            continue
        if bar.end is None or (lane.end is not None and bar.end > lane.end):
            bar.end = lane.until(now)
        if bar.start != bar.start:  # NaN: no start recorded
            before = [bar_end(b, lane, now) for b in lane.bars
                      if b is not bar and b.slot == bar.slot and b.start == b.start and bar_end(b, lane, now) <= bar.end]
            bar.start = max(before) if before else (lane.ready if lane.ready is not None else lane.launched)
        bar.start = min(bar.start, bar.end)


def campaign_timeline(campaign) -> Timeline:
    """The timeline of a ``burst.control.campaign.Campaign``: its bucket, its rows, and which machines its provider sees alive."""
    live = {instance.id for instance in campaign.provider.list({"job": campaign.record.job})}
    return gather_timeline(campaign.storage, campaign.record.job, campaign.record.tags, live, cache=campaign.fleet.cache)
