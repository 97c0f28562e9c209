"""Orchestration: plan -> launch -> connect -> install -> dispatch -> (wait).

Every step is resumable from tags: machines are found with ``provider.list``,
and each node tells where it stands (``node_scripts.probe_command``), so
re-running ``-c`` or ``-d`` never makes a second machine for a tag and never
starts a command twice.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import burst
from burst.campaign_record import CampaignRecord
from burst.providers.base import LaunchSpec, NodeConfig, Provider
from burst.records import (
    DONE, FAILED, INSTALLING, INTERRUPTED, LAUNCHING, READY, InstanceInfo, Job, JobStatus,
)
from burst.status_store import load_status, load_statuses, save_status
from burst.storage import Storage
from burst.transport.base import Transport, tail
from burst import node_scripts
from burst.concurrency import parallel

PACKAGE_DIR = Path(burst.__file__).resolve().parent
AGENT_ENTRY = PACKAGE_DIR.parent / "save_results.py"
STARTED = "STARTED"


@dataclass
class NodeOutcome:
    tag: str
    state: str  # a probe word (NEW, INSTALLING, READY, DISPATCHED), FAILED, or STARTED by this run
    note: str = ""


def backoff_delays(first: float = 0.2, factor: float = 1.5, cap: float = 5.0):
    """Poll intervals: quick at first (a fast INSTALL.sh is seen at once), then gentler."""
    delay = first
    while True:
        yield delay
        delay = min(cap, delay * factor)


class Campaign:
    """One job's campaign on one provider, with its bucket."""

    def __init__(self, record: CampaignRecord, provider: Provider, storage: Storage,
                 install_timeout: float = 3600.0, report: Callable[[str], None] = print,
                 jobs: list[Job] | None = None):
        self.record = record
        # the rows this run launches and dispatches (default all); status covers every row of the record
        self.jobs = list(record.jobs) if jobs is None else jobs
        self.provider = provider
        self.storage = storage
        self.install_timeout = install_timeout
        self.report = report

    # -- create ---------------------------------------------------------------
    def launch_missing(self) -> list[InstanceInfo]:
        """Launch a machine for every tag that has none alive and is not done; return all live ones."""
        found = self.provider.list({"job": self.record.job})
        untagged = [inst.id for inst in found if not inst.tag]
        if untagged:
            # launched by a dispatcher that died before it could tag them: nobody can use them
            self.report(f"ending {len(untagged)} machine(s) of job {self.record.job} that never got a tag")
            self.provider.terminate(untagged)
        live = {inst.tag: inst for inst in found if inst.tag}
        statuses = load_statuses(self.storage, [job.tag for job in self.jobs])
        wanted: dict[str, list[Job]] = defaultdict(list)
        for job in self.jobs:
            status = statuses[job.tag]
            if job.tag in live or (status is not None and status.state == DONE):
                continue
            wanted[job.instance_type].append(job)
        launched_ids: list[str] = []
        try:
            for instance_type, jobs in wanted.items():
                for job in jobs:
                    save_status(self.storage, self._new_status(job, LAUNCHING))
                ids = self.provider.launch(LaunchSpec(self.record.job, instance_type, self.record.image), [j.tag for j in jobs])
                launched_ids.extend(ids)
                self.report(f"launched {len(ids)} × {instance_type}")
        except Exception:
            # a quota or capacity error part way: end what this run launched, pay for nothing idle
            self.provider.terminate(launched_ids)
            for jobs in wanted.values():
                for job in jobs:
                    status = self._new_status(job, INTERRUPTED)
                    status.note = "launch failed; nothing this run launched is left running"
                    save_status(self.storage, status)
            raise
        skipped = len(self.jobs) - sum(len(j) for j in wanted.values())
        if skipped:
            self.report(f"{skipped} tag(s) already have a live machine or are done: none launched for them")
        if launched_ids:
            self.provider.wait_ready(launched_ids)
        return self.live_machines()

    def live_machines(self) -> list[InstanceInfo]:
        """Live machines of this campaign's tags (other tags of the job belong to other runs)."""
        tags = {job.tag for job in self.jobs}
        return [inst for inst in self.provider.list({"job": self.record.job}) if inst.tag in tags]

    def _new_status(self, job: Job, state: str) -> JobStatus:
        return JobStatus(job=self.record.job, tag=job.tag, state=state,
                         instance_type=job.instance_type, command=job.command)

    def _status_of(self, tag: str, state_if_new: str) -> JobStatus:
        """The tag's status from the bucket, or a new one (nothing was written for it yet)."""
        return load_status(self.storage, tag) or self._new_status(self.record.job_of(tag), state_if_new)

    @staticmethod
    def _probe(transport: Transport, node_dir: str) -> tuple[str, str, str]:
        """(state word, its argument, the lines after it) from the node's probe."""
        first, _, rest = transport.run(node_scripts.probe_command(node_dir)).out.partition("\n")
        state, _, argument = first.strip().partition(" ")
        return state, argument, rest

    def node_config(self, instance: InstanceInfo) -> NodeConfig:
        job = self.record.job_of(instance.tag)
        return NodeConfig(
            provider=self.provider.name, job=self.record.job, tag=instance.tag, instance_id=instance.id,
            instance_type=instance.instance_type, command=job.command, bucket_url=self.record.bucket_url,
            results=list(self.record.results), provider_options=self.provider.node_options(),
        )

    def _copy_files(self, transport: Transport, node_dir: str, config: NodeConfig) -> None:
        transport.run(f"mkdir -p {shlex.quote(node_dir + '/logs')} {shlex.quote(node_dir + '/code')}")
        transport.put(Path(self.record.install_file), f"{node_dir}/INSTALL.sh")
        transport.put(AGENT_ENTRY, f"{node_dir}/agent/save_results.py")
        transport.put_dir(PACKAGE_DIR, f"{node_dir}/agent/burst")
        if self.record.code_dir:
            transport.put_dir(Path(self.record.code_dir), f"{node_dir}/code")
        with tempfile.TemporaryDirectory() as temp:
            files = {
                "node.json": json.dumps(dataclasses.asdict(config), indent=2, ensure_ascii=False),
                "setup.sh": node_scripts.setup_script(config, bootstrap=self.provider.needs_bootstrap),
                "run.sh": node_scripts.run_script(config, self.provider.node_python()),
            }
            for name, text in files.items():
                local = Path(temp) / name
                local.write_text(text, encoding="utf-8")
                transport.put(local, f"{node_dir}/{name}")

    def setup_node(self, instance: InstanceInfo) -> NodeOutcome:
        """Copy files, run INSTALL.sh detached, poll until READY or failure."""
        transport = self.provider.transport(instance)
        node_dir = self.provider.node_dir(instance)
        try:
            state, _, _ = self._probe(transport, node_dir)
            if state == "NEW":
                status = self._status_of(instance.tag, INSTALLING)
                status.state, status.instance_id, status.instance = INSTALLING, instance.id, self._instance_facts(instance)
                status.note, status.exit_code = "", None
                save_status(self.storage, status)
                self._copy_files(transport, node_dir, self.node_config(instance))
                transport.start_detached("setup.sh", node_dir, "logs/setup.out")
            return self._poll_install(transport, instance, node_dir)
        finally:
            transport.close()

    def _instance_facts(self, instance: InstanceInfo) -> dict:
        return {"id": instance.id, "instance_type": instance.instance_type, "host": instance.host, **instance.details}

    def _poll_install(self, transport: Transport, instance: InstanceInfo, node_dir: str) -> NodeOutcome:
        deadline = time.monotonic() + self.install_timeout
        for delay in backoff_delays():
            state, exit_code, rest = self._probe(transport, node_dir)
            if state in ("READY", "DISPATCHED"):
                status = load_status(self.storage, instance.tag)
                if status is not None and status.state == INSTALLING:
                    status.state = READY
                    save_status(self.storage, status)
                return NodeOutcome(instance.tag, state)
            if state == "FAILED":
                return self._install_failed(transport, instance, node_dir, f"INSTALL.sh exited with status {exit_code}", rest)
            if time.monotonic() > deadline:
                log = transport.run(f"tail -n 20 {shlex.quote(node_dir + '/logs/install.log')}", check=False).out
                return self._install_failed(
                    transport, instance, node_dir,
                    f"INSTALL.sh still running after {self.install_timeout:.0f} s (--install-timeout)", log)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _install_failed(self, transport: Transport, instance: InstanceInfo, node_dir: str, why: str, log_tail: str) -> NodeOutcome:
        """Keep the install log in the bucket, mark the tag failed and end its machine (it costs money)."""
        with tempfile.TemporaryDirectory() as temp:
            local = Path(temp) / "install.log"
            try:
                transport.get(f"{node_dir}/logs/install.log", local)
                self.storage.upload_file(local, f"{instance.tag}/logs/install.log")
            except Exception:  # best effort: the log's tail goes into the status below anyway
                pass
        status = self._status_of(instance.tag, FAILED)
        status.state = FAILED
        status.note = f"{why}; last lines of install.log:\n{tail(log_tail)}".rstrip()
        save_status(self.storage, status)
        self.provider.terminate([instance.id])
        return NodeOutcome(instance.tag, FAILED, status.note)

    def create(self) -> list[NodeOutcome]:
        live = self.launch_missing()
        self.report(f"setting up {len(live)} machine(s)")
        outcomes = parallel(self._setup_guarded, live)
        ready = sum(o.state in ("READY", "DISPATCHED") for o in outcomes)
        failed = [o for o in outcomes if o.state == FAILED]
        self.report(f"{ready} / {len(live)} ready" + (f", {len(failed)} failed" if failed else ""))
        for outcome in failed:
            self.report(f"  {outcome.tag}: {outcome.note}")
        return outcomes

    def _setup_guarded(self, instance: InstanceInfo) -> NodeOutcome:
        """One machine's failure (unreachable, copy error) fails its tag, not the campaign."""
        try:
            return self.setup_node(instance)
        except Exception as error:  # reported per tag; the machine is left for `burst logs`/`terminate`
            status = self._status_of(instance.tag, FAILED)
            status.state, status.note = FAILED, f"setup failed: {error}"
            save_status(self.storage, status)
            self.provider.terminate([instance.id])
            return NodeOutcome(instance.tag, FAILED, status.note)

    # -- dispatch -------------------------------------------------------------
    def dispatch_node(self, instance: InstanceInfo) -> NodeOutcome:
        transport = self.provider.transport(instance)
        node_dir = self.provider.node_dir(instance)
        try:
            state, _, _ = self._probe(transport, node_dir)
            if state != "READY":
                return NodeOutcome(instance.tag, state)
            transport.run(f"touch {shlex.quote(node_dir + '/run.started')}")
            transport.start_detached("run.sh", node_dir, "logs/runner.log")
            return NodeOutcome(instance.tag, STARTED)
        finally:
            transport.close()

    def dispatch(self) -> list[NodeOutcome]:
        live = self.live_machines()
        outcomes = parallel(self.dispatch_node, live)
        started = [o for o in outcomes if o.state == STARTED]
        already = [o for o in outcomes if o.state == "DISPATCHED"]
        self.report(f"started {len(started)} command(s)" + (f"; {len(already)} already started before" if already else ""))
        waiting = [o.tag for o in outcomes if o.state not in (STARTED, "DISPATCHED")]
        if waiting:
            self.report(f"not started (not ready): {', '.join(sorted(waiting))}; run with -c to set them up")
        return outcomes

    # -- wait -----------------------------------------------------------------
    def poll(self) -> dict[str, JobStatus | None]:
        """Statuses of every tag; a tag whose machine is gone without a final status is interrupted.

        Machines are listed *before* statuses are read: an agent writes its final
        status before it ends its machine, so a machine missing from the earlier
        list with a non-final later status really ended early.
        """
        live_tags = {inst.tag for inst in self.provider.list({"job": self.record.job})}
        statuses = load_statuses(self.storage, self.record.tags)
        for tag, status in statuses.items():
            if status is not None and not status.terminal and status.state != LAUNCHING and tag not in live_tags:
                status.state = INTERRUPTED
                status.note = status.note or "the machine ended before the agent saved a final status"
                save_status(self.storage, status)
        return statuses
