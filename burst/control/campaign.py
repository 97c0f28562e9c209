"""A campaign on one provider: rounds of observe -> decide -> apply -> set up, until done.

``-c`` lets the reconcile launch machines and set them up, ``-d`` starts their
workers (as soon as each is READY), ``--wait`` goes on until every row is final.
``status`` runs the same reconcile without launching. Every round reads the
world afresh, so any run of any command, after any crash, picks up where things are.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Callable

from burst import protocol
from burst.control.bucket_watch import BucketUnreachable
from burst.control.campaign_record import CampaignRecord
from burst.control.decide import Actions, Policy, Rerun, World, decide
from burst.control.fleet import Fleet
from burst.control.kept_records import keep, load_kept
from burst.control.ledger import Ledger, make_ledger
from burst.errors import BurstError, command_name
from burst.node.bucket_view import read_bucket
from burst.node.calibrate import outliers
from burst.providers.base import Provider
from burst.providers.pricing import PriceBook
from burst.records import JobStatus
from burst.retry import backoff, credentials_expired
from burst.storage import Storage

STORAGE_PATIENCE = 600.0  # seconds of failing rounds (storage or cloud down) before --wait gives up
# After a round, the dispatcher pauses at least this many times the CPU time the round took (on the thread
# that ran it), up to LONGEST_PAUSE: so its rounds take at most a third of a core however many rows the
# campaign has. On 100,000 local rows a round is ~3 CPU-s (listing and reading 200,000 records) and the
# machines it watches share this computer's cores; on 100 rows it is a few ms and the pause is the backoff's.
ROUND_CPU_SHARE = 2.0
LONGEST_PAUSE = 30.0


class Campaign:
    """One job's campaign on one provider, with its bucket."""

    def __init__(self, record: CampaignRecord, provider: Provider, storage: Storage,
                 install_timeout: float = 3600.0, report: Callable[[str], None] = print,
                 prices: PriceBook | None = None):
        self.record = record
        self.provider = provider
        self.storage = storage
        self.report = report
        provider.report = report
        self.fleet = Fleet(record, provider, storage, report=report, install_timeout=install_timeout, prices=prices)
        self._kept = load_kept(record.job, record.bucket_url)  # final rows read by an earlier command (etag-keyed)
        self.fleet.cache.seed(self._kept, checked=True)  # load_kept checked the file whole: its checksum, its fields
        self._outage: tuple[str, float] | None = None  # the bucket outage under way: its URL, time.monotonic() at its start

    def keep_records(self) -> None:
        """Keep the rows' statuses read so far on this machine, for the next command (best-effort: a full disk
        only costs the next one its GETs)."""
        try:
            keep(self.record.job, self.record.bucket_url, self.fleet.cache, self._kept)
        except OSError:
            pass

    def policy(self, may_launch: bool) -> Policy:
        pool = self.record.pool
        rows_per_type = Counter(job.instance_type for job in self.record.jobs)
        return Policy(
            machines=pool.machines_per_type(dict(rows_per_type), local=self.provider.name == "local"),
            slots=1 if pool.slots == "auto" else int(pool.slots), heartbeat=pool.heartbeat,
            retries=pool.retries, may_launch=may_launch, installs_since=self.record.updated,
        )

    def reconcile(self, may_launch: bool = False) -> tuple[World, Actions]:
        """One round: read everything, decide, act. Returns what it saw and did."""
        world = self.fleet.observe()
        actions = decide(world, self.policy(may_launch))
        if actions:
            self.fleet.apply(world, actions, may_launch=may_launch)
            world = self.fleet.observe()  # what the actions changed (rare: only when something happened)
        return world, actions

    def all_rows_ended(self) -> dict[str, JobStatus] | None:
        """Every row's status when every row has ended and none changed since (a re-run that has nothing
        to do); else None."""
        try:  # the bucket alone (no machine listing): a hiccup here is left to the rounds, which retry
            world = World(rows=list(self.record.jobs), live=[],
                          bucket=read_bucket(self.storage, self.fleet.cache, set(self.record.tags)))
        except Exception:  # noqa: BLE001
            return None
        rows = self.rows(world)
        if not rows or not all(s.terminal for s in rows.values()):
            return None
        return None if decide(world, self.policy(may_launch=False)).rerun else rows

    def rerun_final_rows(self, states: frozenset[str] = protocol.TERMINAL_STATES, reason: str = "forced (--force)") -> int:
        """--force: every row that ended (done, failed, interrupted) runs again as its next attempt;
        ``states``: only the rows that ended so (--retry-failed: failed and interrupted).

        Running and pending rows are left as they are: their coming result is fresh anyway
        (a running row that changed is stopped and rerun by the reconcile, as always).
        Returns how many rows were reopened.
        """
        world = self.fleet.observe()
        reruns = []
        for job in self.record.jobs:
            state = world.bucket.row_state(job.tag)
            if state == protocol.UNKNOWN and state in states:
                reruns.append(Rerun(job.tag, 0, "forced (--force; its record was unreadable)"))
            elif state in states and state != protocol.UNKNOWN:
                status = world.bucket.statuses[job.tag]
                changes = job.changes(status.instance_type, status.command)
                reruns.append(Rerun(job.tag, status.attempt, f"changed ({', '.join(changes)})" if changes else reason))
        self.fleet.apply(world, Actions(rerun=reruns))
        return len(reruns)

    def run(self, create: bool, dispatch: bool, wait: bool,
            on_round: Callable[[dict[str, JobStatus], list[dict]], None] | None = None) -> dict[str, JobStatus]:
        """Rounds until the machines are set up (and, with ``wait``, every row is final)."""
        delays = backoff(first=0.2, factor=1.4, cap=3.0)
        failing_since: float | None = None
        final_since: float | None = None
        last_progress: list = []
        try:
            while True:
                round_cpu = time.thread_time()
                try:
                    world, actions = self.reconcile(may_launch=create)
                    ending = {end.id for end in actions.end}
                    installing = self.fleet.advance_setup(world, set_up=create, start_workers=dispatch, ending=ending) \
                        if (create or dispatch) else 0
                    failing_since = None
                    self._say_bucket_back()
                except BucketUnreachable as outage:
                    self._wait_out(outage)
                    time.sleep(next(delays))
                    continue
                except BurstError:
                    raise
                except Exception as error:  # a storage or cloud hiccup: the next round reads afresh
                    if credentials_expired(error):
                        raise  # no round can pass until they are renewed: the entry point says how, at once
                    try:  # the bucket went down during the round: an outage (said once), not a failed round
                        self.fleet.watch.probe()
                    except BucketUnreachable as outage:
                        self._wait_out(outage)
                        time.sleep(next(delays))
                        continue
                    except BurstError:
                        raise  # the bucket refuses the probe: no round can pass
                    except Exception:  # noqa: BLE001 - said below, with the round's own error
                        pass
                    failing_since = failing_since or time.monotonic()
                    if time.monotonic() - failing_since > STORAGE_PATIENCE:
                        raise BurstError(f"the campaign could not be read or changed for {STORAGE_PATIENCE:.0f} s: {error}. "
                                         f"Nothing is lost: run the same command again to resume (machines keep "
                                         f"working; `{command_name()} status {self.record.job}`).") from error
                    self.report(f"round failed ({type(error).__name__}: {error}); trying again")
                    time.sleep(next(delays))
                    continue
                rows = self.rows(world)
                if on_round is not None:
                    on_round(rows, self.machines(world))
                progress = sorted((tag, s.state, s.attempt) for tag, s in rows.items())
                if progress != last_progress and not any(s.state == protocol.PENDING for s in rows.values()):
                    # the last rows are running and one just moved: look again soon, the end is near
                    delays = backoff(first=0.2, factor=1.4, cap=3.0)
                last_progress = progress
                if wait:
                    if all(s.terminal for s in rows.values()):
                        if not self._machines_to_outwait(world, since=final_since):
                            return rows
                        final_since = final_since or time.monotonic()
                    if actions.stuck and not any(s.state == protocol.RUNNING for s in rows.values()):
                        stuck = ", ".join(f"{n} × {t}" for t, n in sorted(actions.stuck.items()))
                        self.report(f"rows waiting for a machine ({stuck}) and none may be started: run with -c")
                        return rows
                elif installing == 0 and not actions.launch:
                    return rows
                round_cpu = time.thread_time() - round_cpu
                time.sleep(max(next(delays), min(LONGEST_PAUSE, ROUND_CPU_SHARE * round_cpu)))
        finally:
            self.keep_records()
            self.fleet.close()

    def _wait_out(self, outage: BucketUnreachable) -> None:
        """Say once that the bucket is down; end the run (exit 1, nothing ended) once it has been for --save-patience.

        The workers keep their rows for as long, then give them up: waiting longer helps nobody.
        """
        patience = self.record.pool.save_patience
        if self._outage is None:
            self._outage = (outage.url, time.monotonic() - outage.down_for)
            self.report(f"{outage}: nothing is ended or rerun while it is; machines keep their rows (for up to "
                        f"{patience:.0f} s, --save-patience); waiting for it")
        if outage.down_for > patience:
            raise BurstError(f"{outage} for {outage.down_for:.0f} s (--save-patience {patience:.0f} s); no machine was "
                             f"ended by this run. Run the same command again to resume once it is back "
                             f"(`{command_name()} status {self.record.job}` shows where the campaign is).") from outage.error

    def _say_bucket_back(self) -> None:
        if self._outage is not None:
            url, since = self._outage
            self.report(f"the bucket {url} is reachable again after {time.monotonic() - since:.0f} s; "
                        f"every machine has a whole lease to renew its heartbeats before any is judged")
            self._outage = None

    def _machines_to_outwait(self, world: World, since: float | None) -> bool:
        """Every row is final: wait (bounded) until each machine has ended, by itself or by the reconcile.

        A machine that keeps unsaved outputs is left running on purpose; one still up
        after the wait is named, with the command that ends it.
        """
        kept = {i for i, (w, _) in world.bucket.workers.items() if w.keep_machine}
        left = [m.id for m in world.live if m.id not in kept]
        if not left:
            return False
        limit = 2 * self.record.pool.heartbeat + 60
        if since is not None and time.monotonic() - since > limit:
            self.report(f"still running after every row ended: {', '.join(left)}; "
                        f"end them with `{command_name()} terminate {self.record.job}`")
            return False
        return True

    def rows(self, world: World) -> dict[str, JobStatus]:
        """What each row is now: its final status, or its running claim, or pending."""
        found: dict[str, JobStatus] = {}
        bucket = world.bucket
        for job in self.record.jobs:
            state = bucket.row_state(job.tag)
            status = bucket.statuses.get(job.tag)
            held = bucket.claims.get(job.tag)
            if state in protocol.TERMINAL_STATES and status is not None:
                found[job.tag] = status
                continue
            view = JobStatus(job=self.record.job, tag=job.tag, state=state, instance_type=job.instance_type,
                             command=job.command)
            if state == protocol.UNKNOWN:
                view.note = f"{bucket.unknown[job.tag]}; its attempt's logs and outputs stay; `{command_name()} run ... --force` runs it again"
            elif held is not None:
                view.attempt = held.claim.attempt + (1 if state == protocol.PENDING else 0)
                if state == protocol.RUNNING:
                    view.instance_id, view.slot, view.started = held.claim.machine, held.claim.slot, held.claim.claimed
                    view.heartbeat_age = round(max(0.0, bucket.now - held.modified), 1)
                else:  # released: why, in its claim (a lost machine, --retry-failed, a changed row, --force)
                    why = held.claim.reason or (status.note if status is not None else "")
                    said = why.startswith(f"attempt {held.claim.attempt} ")  # the reason names it already
                    view.note = (why if said else f"attempt {held.claim.attempt}: {why}") if why else ""
            found[job.tag] = view
        return found

    def machines(self, world: World) -> list[dict]:
        """Every machine the campaign started: its state, the rows it ran (``tag#attempt``), its note."""
        live = {m.id for m in world.live}
        found = []
        scores = {i: (w.instance_type, (w.calibration or {}).get("score")) for i, (w, _) in world.bucket.workers.items()}
        flagged = outliers(scores)
        for instance_id in sorted(set(world.bucket.machines) | set(world.bucket.workers) | live):
            record = world.bucket.machines.get(instance_id)
            worker = world.bucket.workers.get(instance_id)
            state = record.state if record else protocol.LAUNCHED
            note = record.note if record else ""
            if worker is not None:
                state = "worker " + worker[0].state
                note = worker[0].note or note
                if record is not None and record.state == protocol.ENDED:
                    state, note = protocol.ENDED, record.note
                # a worker that finished, was interrupted or failed said its own end; else the machine went from under it
                elif instance_id not in live and worker[0].state not in ("finished", "interrupted", "failed"):
                    state = "gone"  # its worker never said it ended: the machine went from under it
                    note = f"no longer running; its worker's last report was '{worker[0].state}'"
            found.append({
                "id": instance_id, "instance_type": record.instance_type if record else (worker[0].instance_type if worker else ""),
                "state": state, "live": instance_id in live,
                "rows": (worker[0].rows + worker[0].running) if worker else [], "note": note,
                "heartbeat_age": round(world.bucket.now - worker[1], 1) if worker else None,
                "launched": record.launched if record else "",
                "score": scores.get(instance_id, ("", None))[1], "score_off": flagged.get(instance_id),
            })
            if instance_id in flagged:  # timings from it may not compare with its type's others
                found[-1]["note"] = (f"calibration score {found[-1]['score']:g} is {flagged[instance_id]:+.0%} from the "
                                     f"median of its type" + (f"; {note}" if note else ""))
        return found

    def ledger(self, world: World | None = None, rows: dict[str, JobStatus] | None = None) -> Ledger:
        """What the campaign cost so far: each row, each machine's overhead, the total (``rows``: as read already)."""
        world = world or self.fleet.observe()
        return make_ledger(world, self.rows(world) if rows is None else rows)
