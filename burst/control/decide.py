"""The reconcile's decision: what should be (every row final) against what is, as plain data.

``decide(world)`` is pure: it reads one snapshot (the bucket's claims, statuses
and machine records, and the live machines by tag) and returns the actions.
``burst.control.fleet`` reads the world and applies them. Level-triggered and idempotent:
nothing is remembered between rounds, so a crash anywhere is harmless and any
later round, by anyone, decides the same. The one fact the world carries from
earlier rounds is ``World.watched``: when the dispatcher's probes found the bucket
writable (``burst.control.bucket_watch``), so that a heartbeat missed while the
bucket was down never counts against a machine.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from dataclasses import dataclass, field

from burst import protocol
from burst.node.bucket_view import BucketView, HeldClaim
from burst.node.config import lease_seconds
from burst.records import InstanceInfo, Job, MachineRecord, epoch, seconds_since


@dataclass(frozen=True)
class Policy:
    """The pool options of a campaign (``campaign.json``)."""

    machines: dict[str, int]  # instance type -> at most this many machines at once
    slots: int  # rows per machine at once (``auto`` counts as 1 when sizing the fleet)
    heartbeat: float
    retries: int  # attempts after lost machines
    may_launch: bool  # -c: the reconcile may start machines
    installs_since: str = ""  # count failed installs of machines launched since (ISO time; the dispatcher's last run)


@dataclass(frozen=True)
class Requeue:
    tag: str
    held: HeldClaim
    reason: str
    final: bool  # no retry left: the row ends interrupted


@dataclass(frozen=True)
class Rerun:
    """Run a row again as ``attempt + 1``: it changed since ``attempt`` ran (or runs), or --force asked."""

    tag: str
    attempt: int
    reason: str  # "changed (command)", "forced (--force)"
    running: bool = False  # attempt is still running: its worker stops it


@dataclass(frozen=True)
class EndMachine:
    id: str
    reason: str
    lost_worker: bool = False  # its worker never reported, or stopped: it counts like a failed install


@dataclass
class Actions:
    launch: dict[str, int] = field(default_factory=dict)  # instance type -> how many
    requeue: list[Requeue] = field(default_factory=list)
    rerun: list[Rerun] = field(default_factory=list)
    end: list[EndMachine] = field(default_factory=list)
    fail_rows: dict[str, str] = field(default_factory=dict)  # tag -> why (its type cannot install)
    interrupt_rows: dict[str, str] = field(default_factory=dict)  # tag -> why (interrupted, no retry left)
    stuck: dict[str, int] = field(default_factory=dict)  # type -> pending rows no machine will take

    def __bool__(self) -> bool:
        return bool(self.launch or self.requeue or self.rerun or self.end or self.fail_rows or self.interrupt_rows)


@dataclass
class World:
    rows: list[Job]
    bucket: BucketView
    live: list[InstanceInfo]  # the job's machines that are not terminated
    # this run's probes (burst.control.bucket_watch): (bucket time, seconds of watching by then), oldest first.
    # A heartbeat counts as missed only while the dispatcher watched the bucket take writes: an outage is not a death.
    watched: tuple[tuple[float, float], ...] = ()
    max_gap: float = math.inf  # the most that the time between two probes counts (a longer gap may hide an outage)

    def silent_for(self, last_write: float) -> float:
        """Seconds a record written at ``last_write`` (bucket clock) has been silent while the bucket was watched up.

        A world without probes (built by hand): its plain age.
        """
        if not self.watched:
            return self.bucket.now - last_write
        return max(0.0, self._watched_at(self.bucket.now) - self._watched_at(last_write))

    def _watched_at(self, moment: float) -> float:
        """Seconds watched up to ``moment``: before this run's first probe, none; within a gap, no more than it gained."""
        times = [p for p, _ in self.watched]
        index = bisect.bisect_right(times, moment)
        if index == 0:
            return self.watched[0][1]
        probed, watched = self.watched[index - 1]
        gain = self.watched[index][1] - watched if index < len(self.watched) else self.max_gap
        return watched + min(moment - probed, gain)


def _lost_reason(held: HeldClaim, world: World, lease: float, live_ids: set[str]) -> str | None:
    claim = held.claim
    if claim.machine not in live_ids:
        return f"attempt {claim.attempt} lost its machine {claim.machine}"
    age = world.silent_for(held.modified)
    if age > lease:
        return f"attempt {claim.attempt} on {claim.machine} missed its heartbeats for {age:.0f} s (lease {lease:g} s)"
    return None


def _machine_verdict(instance: InstanceInfo, world: World, lease: float, grace: float) -> EndMachine | None:
    """Why a live machine should be ended now, or None."""
    reason = _verdict_reason(instance, world, lease, grace)
    if reason is None:
        return None
    lost = reason.startswith(("its worker never reported", "its worker stopped heartbeating"))
    return EndMachine(instance.id, reason, lost_worker=lost)


def _verdict_reason(instance: InstanceInfo, world: World, lease: float, grace: float) -> str | None:
    record = world.bucket.machines.get(instance.id)
    worker = world.bucket.workers.get(instance.id)
    if record is not None and record.state == protocol.INSTALL_FAILED:
        return f"INSTALL.sh failed on it: {record.note.splitlines()[0] if record.note else ''}".rstrip(": ")
    if worker is None:
        if record is not None and record.state == protocol.WORKING and \
                world.silent_for(_on_bucket_clock(record.updated, world)) > lease + 60:
            return "its worker never reported (see logs/worker.log in its folder); ended by the reconcile"
        return None  # not set up yet, or its worker is starting: setup owns it
    worker_record, modified = worker
    age = world.silent_for(modified)
    if worker_record.state == "failed":
        return f"its worker cannot work: {worker_record.note}; ended by the reconcile"
    if worker_record.state == "finished":
        if worker_record.keep_machine:
            return None  # keeps unsaved outputs; its status says how to collect them
        if worker_record.note or age > grace:
            why = worker_record.note or "it did not end itself"
            return f"its worker finished but the machine ran on ({why}); ended by the reconcile"
        return None
    if age > lease:
        return f"its worker stopped heartbeating {age:.0f} s ago (lease {lease:g} s); ended by the reconcile"
    return None


def _on_bucket_clock(iso: str, world: World) -> float:
    """A time this machine wrote (its clock) as the bucket's clock, by the skew seen at the listing."""
    return world.bucket.local_now - seconds_since(iso, world.bucket.local_now) - world.bucket.skew


def decide(world: World, policy: Policy) -> Actions:
    actions = Actions()
    lease = lease_seconds(policy.heartbeat)
    live_ids = {m.id for m in world.live}

    # rows: rerun changed rows; requeue or end attempts whose machine is gone or silent
    pending: Counter[str] = Counter()
    for row in world.rows:
        state = world.bucket.row_state(row.tag)
        held = world.bucket.claims.get(row.tag)
        rerun = _changed(row, state, world)
        if rerun is not None:
            actions.rerun.append(rerun)
            pending[row.instance_type] += 1
            continue
        if state == protocol.PENDING:
            if held is not None and held.claim.tries > policy.retries:
                why = (f"attempt {held.claim.attempt} ended without a result "
                       f"({held.claim.reason}); no retry left (--retries {policy.retries})")
                status = world.bucket.statuses.get(row.tag)
                interrupted = status is not None and status.state == protocol.INTERRUPTED \
                    and status.attempt == held.claim.attempt  # given back (spot): never the row's failure
                (actions.interrupt_rows if interrupted else actions.fail_rows)[row.tag] = why
                continue
            pending[row.instance_type] += 1
        elif state == protocol.RUNNING and held is not None:
            reason = _lost_reason(held, world, lease, live_ids)
            if reason is not None:
                final = held.claim.tries > policy.retries
                if final:
                    reason += f"; no retry left (--retries {policy.retries})"
                actions.requeue.append(Requeue(row.tag, held, reason, final))
                if not final:
                    pending[row.instance_type] += 1

    # machines: end the ones that failed, finished or went silent
    ending = set()
    for instance in world.live:
        verdict = _machine_verdict(instance, world, lease, grace=2 * policy.heartbeat + 10)
        if verdict is not None:
            actions.end.append(verdict)
            ending.add(instance.id)

    # launches: up to the pool's size, as many as the pending rows need
    # a new dispatcher run (a fixed INSTALL.sh, --force) gives each type its --retries of installs afresh
    # machines that failed at setup, or whose worker never reported or died, count alike against --retries
    failed = [r for r in world.bucket.machines.values() if _launched_since(r, policy.installs_since) and (
              r.state == protocol.INSTALL_FAILED or (r.state == protocol.ENDED and r.lost_worker))]
    lost_workers = Counter(r.instance_type for r in failed if r.state == protocol.ENDED)
    install_failures = Counter(r.instance_type for r in failed)
    fatal = {r.instance_type: r.note for r in sorted(failed, key=lambda r: r.updated) if r.fatal}
    for worker, _ in world.bucket.workers.values():  # a worker that cannot work: the next one of its type could not either
        record = world.bucket.machines.get(worker.id)
        if worker.state == "failed" and record is not None and _launched_since(record, policy.installs_since):
            fatal.setdefault(worker.instance_type, f"the worker on {worker.id} cannot work: {worker.note}")
    for instance_type, count in sorted(pending.items()):
        working = [m for m in world.live if m.instance_type == instance_type and m.id not in ending
                   and _still_taking_rows(m, world)]
        if install_failures[instance_type] > policy.retries or instance_type in fatal:
            if not working:
                count, lost = install_failures[instance_type], lost_workers[instance_type]
                what = (f"INSTALL.sh failed on {count} machine(s)" if not lost else
                        f"{count} machine(s) failed ({count - lost} at INSTALL.sh, {lost} whose worker never reported "
                        f"or died)")
                why = (f"{fatal[instance_type]}; no more machines of type {instance_type} are started"
                       if instance_type in fatal else
                       f"{what} of type {instance_type}; no more are started. "
                       f"{_last_failure_note(failed, instance_type)}".strip())
                for row in world.rows:
                    if row.instance_type == instance_type and world.bucket.row_state(row.tag) == protocol.PENDING:
                        actions.fail_rows[row.tag] = why
            continue
        slots = max(1, policy.slots)
        busy = Counter(world.bucket.claims[row.tag].claim.machine for row in world.rows
                       if row.instance_type == instance_type and world.bucket.row_state(row.tag) == protocol.RUNNING
                       and row.tag in world.bucket.claims)
        free_slots = sum(max(0, slots - busy[m.id]) for m in working)
        room = policy.machines.get(instance_type, count) - len(working)
        missing = min(room, math.ceil(max(0, count - free_slots) / slots))
        if install_failures[instance_type]:  # INSTALL.sh failed already: at most --retries + 1 installs in all
            installing = sum(1 for m in working if world.bucket.machines.get(m.id) is None
                             or world.bucket.machines[m.id].state in (protocol.LAUNCHED, protocol.INSTALLING))
            missing = min(missing, policy.retries + 1 - install_failures[instance_type] - installing)
        if missing > 0:
            if policy.may_launch:
                actions.launch[instance_type] = missing
            elif not working:
                actions.stuck[instance_type] = count
    return actions


def _changed(row: Job, state: str, world: World) -> Rerun | None:
    """A row whose current attempt ran (or runs) another command or instance type than the campaign says.

    Its result is not the row's: it runs again as a new attempt, never silently kept.
    Compared with what the attempt recorded: its final status, or its claim while it runs.
    """
    if state == protocol.RUNNING:
        claim = world.bucket.claims[row.tag].claim
        ran, attempt, running = (claim.instance_type, claim.command), claim.attempt, True
    elif state in protocol.WRITTEN_STATES:
        status = world.bucket.statuses[row.tag]
        ran, attempt, running = (status.instance_type, status.command), status.attempt, False
    else:
        return None  # pending: its next attempt runs the row as the campaign says now; unknown: --force reruns it
    changes = row.changes(*ran)
    return Rerun(row.tag, attempt, f"changed ({', '.join(changes)})", running) if changes else None


def _launched_since(record: MachineRecord, since: str) -> bool:
    """Whether the machine was launched by this dispatcher run (or later), by the times' values.

    EC2's launch times have whole seconds ("…:01+00:00") and ours milliseconds
    ("…:01.500+00:00"): as text the first sorts before the second, though it may be the
    same second. Hence numbers, and EC2's second given whole.
    """
    launched, start = epoch(record.launched), epoch(since)
    return launched is None or start is None or launched >= math.floor(start)


def _still_taking_rows(instance: InstanceInfo, world: World) -> bool:
    worker = world.bucket.workers.get(instance.id)
    return worker is None or worker[0].state not in ("finished", "failed")


def _last_failure_note(failed: list[MachineRecord], instance_type: str) -> str:
    notes = sorted((r for r in failed if r.instance_type == instance_type), key=lambda r: r.updated)
    return notes[-1].note if notes else ""
