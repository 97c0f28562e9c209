"""The dispatcher's side of the pool: read the world, apply the reconcile's actions, set machines up.

Setup never waits on one machine: each round probes every machine that is not
working yet over its (kept) connection, in parallel, and acts on the answer:
copy the bundle and start INSTALL.sh, record a failure, or start the worker the
moment the machine is READY. Nothing here blocks for longer than one command.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import tempfile
import threading
from pathlib import Path
from typing import Callable

from burst import protocol
from burst.concurrency import parallel
from burst.control.bucket_watch import READ_ATTEMPTS, BucketWatch, close_quick
from burst.control.bundle import build_bundle, probe_command, start_setup_command, start_worker_command
from burst.control.campaign_record import CampaignRecord
from burst.control.decide import Actions, World
from burst.control.round_reads import RoundReads
from burst.control.runtime import ensure_runtime
from burst.errors import BurstError
from burst.node import claims
from burst.node.bucket_view import RecordCache
from burst.node.config import NodeConfig, lease_seconds
from burst.node.status_store import save_status
from burst.providers.base import LaunchSpec, Provider, burst_home
from burst.providers.pricing import LOCAL, ON_DEMAND, PriceBook
from burst.records import InstanceInfo, JobStatus, MachineRecord, seconds_since, utc_now
from burst.retry import credentials_expired
from burst.storage import Storage
from burst.transport.base import Transport, tail

CONNECT_PER_ROUND = 15.0  # seconds one round tries to reach a machine that does not answer yet
BOOT_TIMEOUT = 900.0  # a machine that no SSH connection reached for this long after launch is failed
WORKER_LOG = "logs/worker.log"
LOGIN_GRACE = 10.0  # a machine older than this that refuses the job's key for a whole round: a verdict, for its type


class Fleet:
    def __init__(self, record: CampaignRecord, provider: Provider, storage: Storage,
                 report: Callable[[str], None] = print, install_timeout: float = 3600.0,
                 prices: PriceBook | None = None):
        self.record = record
        self.prices = prices  # None when this run may not launch (status): no new machine records
        self.noun = "sandbox" if provider.name == "local" else "machine"  # what a person is told it is
        self.provider = provider
        self.storage = storage
        self.report = report
        provider.report = report  # e.g. "waiting for capacity for 4 × c5.large (try 3 of 8)"
        self.install_timeout = install_timeout
        self.cache = RecordCache()
        self.watch = BucketWatch(storage, lease_seconds(record.pool.heartbeat))
        self.rounds = RoundReads(self.cache, set(record.tags), record.pool.heartbeat, lease_seconds(record.pool.heartbeat))
        self._quick_reads: Storage | None = None
        self._transports: dict[str, Transport] = {}
        self._bundle: Path | None = None
        self._temp = tempfile.TemporaryDirectory(prefix="burst-bundle-")
        self._lock = threading.Lock()
        self._told: dict[tuple[str, str], str] = {}  # (type, why INSTALL.sh failed) -> the machine whose log was shown

    # -- the world -------------------------------------------------------------
    @property
    def _reads(self) -> Storage:
        """The bucket for the round's reads: an outage fails the round within seconds, not a minute of retries."""
        if self._quick_reads is None:
            self._quick_reads = self.storage.quick(READ_ATTEMPTS)
        return self._quick_reads

    def observe(self) -> World:
        """Machines are listed before the bucket is read (a worker records its end before its machine goes);
        then the probe (after the read: a missing bucket is said so by the read, never made by the probe)."""
        live = self.provider.list({"job": self.record.job})
        bucket = self.rounds.read(self._reads)
        watched = self.watch.probe()  # BucketUnreachable: the round decides nothing (an outage is not a death)
        self.rounds.keep_campaign_readable(self._reads, self.record, self.report)
        return World(rows=list(self.record.jobs), bucket=bucket, live=live, watched=watched,
                     max_gap=self.watch.max_gap)

    def apply(self, world: World, actions: Actions, may_launch: bool = True) -> None:
        """Carry out ``actions``. ``may_launch`` False (``status``): a requeued row is said to wait for a
        resumed run, unless a machine of its type still takes rows."""
        if actions.requeue or actions.fail_rows or actions.interrupt_rows:
            self.rounds.reset()  # statuses written here, which no worker record names: the next round reads all
        for rerun in actions.rerun:
            if claims.reopen(self.storage, rerun.tag, rerun.attempt, rerun.reason):
                stop = f"stopping attempt {rerun.attempt} and " if rerun.running else ""
                self.report(f"{rerun.tag} {rerun.reason}: {stop}rerunning it as attempt {rerun.attempt + 1}")
        for requeue in actions.requeue:
            held = requeue.held
            if not requeue.final and not claims.release(self.storage, held, requeue.reason):
                continue  # renewed or taken over since we looked: nothing to do
            status = self._status(held.claim.tag, protocol.INTERRUPTED, requeue.reason)
            status.attempt, status.instance_id, status.slot = held.claim.attempt, held.claim.machine, held.claim.slot
            save_status(self.storage, status, may_be_stale=True)
            self.report(f"{held.claim.tag}: {requeue.reason}" + self._next_of(requeue, world, actions, may_launch))
        final_rows = [(tag, protocol.FAILED, why) for tag, why in actions.fail_rows.items()]
        final_rows += [(tag, protocol.INTERRUPTED, why) for tag, why in actions.interrupt_rows.items()]
        said: dict[str, list[str]] = {}  # why -> the rows it ended: one message for them all
        for tag, state, why in final_rows:
            row = self.record.job_of(tag)
            held = claims.try_claim(self.storage, tag, "dispatcher", -1, world.bucket.claims.get(tag),
                                    row.instance_type, row.command)
            if held is None:
                continue
            status = self._status(tag, state, why)
            status.attempt = held.claim.attempt
            save_status(self.storage, status, may_be_stale=True)
            said.setdefault(why, []).append(tag)
        for why, tags in said.items():
            self.report(f"{', '.join(tags)}: {self._without_told_log(why)}")
        if actions.end:
            self.provider.terminate([end.id for end in actions.end])
            for end in actions.end:
                self._set_machine(end.id, protocol.ENDED, end.reason, world, lost_worker=end.lost_worker)
                self._close(end.id)
                self.report(f"{self.noun} {end.id}: {end.reason}")
        for instance_type, count in actions.launch.items():
            ids = self.provider.launch(LaunchSpec(self.record.job, instance_type, self.record.image), count)
            if not ids:
                continue  # e.g. --spot-only and no spot capacity yet: the provider said so
            noun = "sandbox(es)" if self.provider.name == "local" else "machine(s)"
            self.report(f"started {len(ids)} {noun} of type {instance_type}")
            try:
                ready = self.provider.wait_ready(ids)
            except Exception:
                for instance_id in ids:  # recorded all the same: the reconcile ends what never came up
                    self._write_machine(MachineRecord(id=instance_id, instance_type=instance_type, state=protocol.LAUNCHED))
                raise
            for instance in ready:
                self._write_machine(self._launched_record(instance))

    def _next_of(self, requeue, world: World, actions: Actions, may_launch: bool) -> str:
        """What becomes of a requeued row: it runs again now, or once the campaign is resumed."""
        if requeue.final:
            return ""
        kind = self.record.job_of(requeue.tag).instance_type
        ending = {end.id for end in actions.end}
        if may_launch or any(m.instance_type == kind and m.id not in ending and m.id != requeue.held.claim.machine
                             for m in world.live):
            return "; it runs again"
        return "; it is pending: it runs again when the campaign is resumed (the same `run` command with -c -d)"

    def _launched_record(self, instance: InstanceInfo) -> MachineRecord:
        """A new machine's record, with its market and its price per hour for the ledger."""
        lifecycle = LOCAL if self.provider.name == "local" else str(instance.details.get("lifecycle") or ON_DEMAND)
        zone = str(instance.details.get("availability_zone", ""))
        price = self.prices.price(instance.instance_type, lifecycle, zone) if self.prices is not None else None
        launched = str(instance.details.get("launch_time") or "") or utc_now()
        return MachineRecord(id=instance.id, instance_type=instance.instance_type, state=protocol.LAUNCHED,
                             launched=launched, lifecycle=lifecycle, price_per_hour=price,
                             phases={protocol.LAUNCHED: launched})

    def _status(self, tag: str, state: str, note: str) -> JobStatus:
        job = self.record.job_of(tag)
        return JobStatus(job=self.record.job, tag=tag, state=state, instance_type=job.instance_type,
                         command=job.command, note=note)

    def _write_machine(self, record: MachineRecord) -> None:
        record.updated = utc_now()
        key, text = protocol.machine_key(record.id), json.dumps(dataclasses.asdict(record), ensure_ascii=False) + "\n"
        self.cache.remember(key, self.storage.write_text(key, text), text)  # the next round need not read it back

    def _set_machine(self, instance_id: str, state: str, note: str, world: World,
                     instance: InstanceInfo | None = None, fatal: bool = False, lost_worker: bool = False) -> None:
        record = world.bucket.machines.get(instance_id)
        if record is None:
            kind = instance.instance_type if instance else ""
            record = MachineRecord(id=instance_id, instance_type=kind, state=state)
        record = dataclasses.replace(record, state=state, note=note or record.note, phases=dict(record.phases),
                                     fatal=fatal or record.fatal, lost_worker=lost_worker or record.lost_worker)
        record.phases.setdefault(state, utc_now())  # the timeline: when it began installing, was ready, ...
        if state in (protocol.ENDED, protocol.INSTALL_FAILED) and not record.ended:
            record.ended = utc_now()  # the dispatcher terminates it now: the end of its cost
        if instance is not None and not record.facts:
            record.facts = {"id": instance.id, "instance_type": instance.instance_type, "host": instance.host, **instance.details}
        self._write_machine(record)
        world.bucket.machines[instance_id] = record

    # -- setup ------------------------------------------------------------------
    def advance_setup(self, world: World, set_up: bool, start_workers: bool, ending: set[str]) -> int:
        """One round over the machines not yet working; returns how many still install."""
        todo = []
        for instance in world.live:
            record = world.bucket.machines.get(instance.id)
            if instance.id in ending or instance.id in world.bucket.workers:
                continue
            state = record.state if record else protocol.LAUNCHED
            if state in (protocol.INSTALL_FAILED, protocol.ENDED):
                continue  # (a working machine with no worker record yet is probed: its worker may not have started)
            if state == protocol.READY and not start_workers:
                continue
            if state == protocol.LAUNCHED and not set_up:
                continue
            todo.append(instance)
        outcomes = parallel(lambda inst: self._guarded_step(inst, world, start_workers), todo)
        return sum(1 for o in outcomes if o in (protocol.P_NEW, protocol.P_INSTALLING))

    def _guarded_step(self, instance: InstanceInfo, world: World, start_workers: bool) -> str:
        """One machine's failure (unreachable, copy error) ends that machine, not the campaign."""
        try:
            return self._step(instance, world, start_workers)
        except Exception as error:  # reported, recorded and ended: the reconcile replaces it
            if credentials_expired(error):
                raise  # not the machine's fault: it stays, and the entry point says how to renew them
            self._close(instance.id)
            self._set_machine(instance.id, protocol.INSTALL_FAILED, f"setup failed: {error}", world, instance)
            self.provider.terminate([instance.id])
            self.report(f"{self.noun} {instance.id}: setup failed: {error}")
            return protocol.P_FAILED

    def _transport(self, instance: InstanceInfo) -> Transport:
        """The machine's kept connection; a new one tries for one round's worth of time only."""
        with self._lock:
            transport = self._transports.get(instance.id)
        if transport is None:
            transport = self.provider.transport(instance, connect_timeout=CONNECT_PER_ROUND)
            with self._lock:
                self._transports[instance.id] = transport
        return transport

    def _close(self, instance_id: str) -> None:
        with self._lock:
            transport = self._transports.pop(instance_id, None)
        if transport is not None:
            transport.close()

    def _step(self, instance: InstanceInfo, world: World, start_workers: bool) -> str:
        try:
            transport = self._transport(instance)
        except TimeoutError:
            # still booting: try again next round, so that one slow machine holds up no other
            self._unless_too_old(instance, world, BOOT_TIMEOUT)
            return protocol.P_NEW
        except BurstError as error:
            from burst.transport.ssh import SSHAuthenticationFailed

            if not isinstance(error, SSHAuthenticationFailed):
                raise
            # it refused for a whole connection attempt (CONNECT_PER_ROUND of retries); cloud-init installs
            # the key before sshd starts, but a machine just launched gets LOGIN_GRACE all the same
            if self._age(instance, world) < LOGIN_GRACE:
                return protocol.P_NEW
            verdict = self.provider.login_refused(instance, error)
            self._set_machine(instance.id, protocol.INSTALL_FAILED, verdict, world, instance, fatal=True)
            self.provider.terminate([instance.id])
            self.report(f"{self.noun} {verdict}")
            return protocol.P_FAILED
        node_dir = self.provider.node_dir(instance)
        first, _, rest = transport.run(probe_command(node_dir)).out.partition("\n")
        word, _, argument = first.strip().partition(" ")
        record = world.bucket.machines.get(instance.id)
        if word == protocol.P_NEW:
            transport.run(f"mkdir -p {shlex.quote(node_dir)}/logs")
            transport.put(self.bundle(), f"{node_dir}/{protocol.BUNDLE}")
            transport.run(start_setup_command(node_dir, self.node_config(instance, record), start_workers, self.record.env))
            self._set_machine(instance.id, protocol.INSTALLING, "", world, instance)
        elif word == protocol.P_INSTALLING:
            if record is None or record.state != protocol.INSTALLING:
                self._set_machine(instance.id, protocol.INSTALLING, "", world, instance)
            elif seconds_since(record.updated) > self.install_timeout:
                log = transport.run(f"tail -n 20 {shlex.quote(node_dir + '/' + protocol.INSTALL_LOG)}", check=False).out
                return self._install_failed(instance, world, transport, node_dir,
                                            f"INSTALL.sh still running after {self.install_timeout:.0f} s (--install-timeout)", log)
        elif word == protocol.P_FAILED:
            return self._install_failed(instance, world, transport, node_dir, f"INSTALL.sh exited with status {argument}", rest)
        elif word in (protocol.P_FINISHED, protocol.P_DEAD) and instance.id not in world.bucket.workers \
                and (instance.id, "worker") not in map(protocol.machine_record, self._reads.list_keys(protocol.MACHINES_PREFIX)):
            log = transport.run(f"tail -n 20 {shlex.quote(node_dir + '/' + WORKER_LOG)}", check=False).out
            return self._install_failed(instance, world, transport, node_dir, "its worker could not work", log,
                                        WORKER_LOG, protocol.worker_log_key(instance.id))
        elif word == protocol.P_READY and record is not None and record.state == protocol.WORKING:
            pass  # its worker was started: it has not taken its lock yet
        elif word == protocol.P_READY:
            if start_workers:
                transport.run(start_worker_command(node_dir))
                self._set_machine(instance.id, protocol.WORKING, "", world, instance)
                self.report(f"{self.noun} {instance.id} ({instance.instance_type}) is ready; its worker started")
                self._close(instance.id)
            elif record is None or record.state != protocol.READY:
                self._set_machine(instance.id, protocol.READY, "", world, instance)
                self.report(f"{self.noun} {instance.id} ({instance.instance_type}) is ready")
        else:  # WORKING, FINISHED, DEAD: the worker's own record and the reconcile take it from here
            if record is None or record.state != protocol.WORKING:
                self._set_machine(instance.id, protocol.WORKING, "", world, instance)
                if start_workers:
                    self.report(f"{self.noun} {instance.id} ({instance.instance_type}) is ready; its worker started")
            self._close(instance.id)
        return word

    @staticmethod
    def _age(instance: InstanceInfo, world: World) -> float:
        """Seconds since the machine's launch."""
        record = world.bucket.machines.get(instance.id)
        launched = record.launched if record else str(instance.details.get("launch_time", ""))
        # the cloud's launch time is on the cloud's clock (the bucket's, near enough); a sandbox's on ours
        now = world.bucket.now if instance.details.get("launch_time") else world.bucket.local_now
        return seconds_since(launched, now)

    def _unless_too_old(self, instance: InstanceInfo, world: World, seconds: float) -> None:
        """Re-raise the error being handled once the machine has had ``seconds`` since its launch."""
        if self._age(instance, world) > seconds:
            raise

    def _install_failed(self, instance: InstanceInfo, world: World, transport: Transport, node_dir: str,
                        why: str, log_tail: str, log: str = protocol.INSTALL_LOG, key: str = "") -> str:
        """Keep the log in the bucket, record the failure and end the machine (it costs money).

        A worker that could not work (its log, not INSTALL.sh's) is its type's failure: the
        same bundle fails the same way on the next machine of that AMI, so none is started.
        """
        local = Path(self._temp.name) / f"{instance.id}.{Path(log).name}"
        try:
            transport.get(f"{node_dir}/{log}", local)
            self.storage.upload_file(local, key or protocol.install_log_key(instance.id))
        except Exception:  # best effort: the log's tail goes into the record anyway
            pass
        note = f"{why}; last lines of {Path(log).name}:\n{tail(log_tail)}".rstrip()
        self._set_machine(instance.id, protocol.INSTALL_FAILED, note, world, instance, fatal=log != protocol.INSTALL_LOG)
        self._close(instance.id)
        self.provider.terminate([instance.id])
        with self._lock:
            shown = self._told.setdefault((instance.instance_type, why), instance.id)
        if shown == instance.id:
            self.report(f"{self.noun} {instance.id} ({instance.instance_type}): {note}")
        else:  # the same failure on another machine of the type: its log was just shown
            self.report(f"{self.noun} {instance.id} ({instance.instance_type}): {why} ({Path(log).name} as on {shown}, above)")
        return protocol.P_FAILED

    def _without_told_log(self, why: str) -> str:
        """``why`` without the install.log tail it quotes when that tail was shown already (once is enough)."""
        first, _, rest = why.partition("\n")
        if rest and first.endswith("last lines of install.log:") and self._told:
            return first.rsplit(";", 1)[0] + " (its install.log is above)"
        return why

    def node_config(self, instance: InstanceInfo, record: MachineRecord | None = None) -> NodeConfig:
        pool = self.record.pool
        return NodeConfig(
            lifecycle=record.lifecycle if record else str(instance.details.get("lifecycle", "")),
            price_per_hour=record.price_per_hour if record else None,
            provider=self.provider.name, job=self.record.job, instance_id=instance.id,
            instance_type=instance.instance_type, bucket_url=self.record.bucket_url, results=list(self.record.results),
            provider_options=self.provider.node_options(), slots=str(pool.slots), heartbeat=pool.heartbeat,
            retries=pool.retries, retry_failed=pool.retry_failed, save_patience=pool.save_patience,
            calibrate=pool.calibrate,
            facts={"id": instance.id, "instance_type": instance.instance_type, "host": instance.host, **instance.details},
        )

    def bundle(self) -> Path:
        with self._lock:
            if self._bundle is None:
                record = self.record
                data = build_bundle(
                    Path(record.install_file) if record.install_file else None,
                    Path(record.code_dir) if record.code_dir else None,
                    self.provider.node_python(), self.provider.needs_bootstrap,
                    runtime=ensure_runtime(burst_home(), self.report) if self.provider.needs_bootstrap else None)
                self._bundle = Path(self._temp.name) / protocol.BUNDLE
                self._bundle.write_bytes(data)
            return self._bundle

    def close(self) -> None:
        self.watch.close()
        close_quick(self.storage, self._quick_reads)
        self._quick_reads = None
        for instance_id in list(self._transports):
            self._close(instance_id)
        self._temp.cleanup()

