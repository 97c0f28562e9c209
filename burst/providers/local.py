"""AMI=local: every "instance" is a sandbox on this machine.

A sandbox is a folder used as ``HOME`` (``$BURST_HOME/instances/<id>/``) and the
processes started in it, which all carry ``BURST_INSTANCE_ID=<id>`` in their
environment and run in sessions of their own. The registry of sandboxes is one
JSON file, read and written under an exclusive ``flock`` and replaced
atomically, so dispatchers, agents and ``burst status`` may use it at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from burst.atomic import write_atomically
from burst.node_config import NodeConfig
from burst.providers.base import LaunchSpec, Provider, ShellCommand
from burst.records import InstanceInfo, utc_now
from burst.transport.local import INSTANCE_MARKER, LocalTransport

LIVE = "running"
TERMINATED = "terminated"


class SandboxRegistry:
    """``$BURST_HOME/instances/registry.json``: id -> {job, tag, instance_type, state, ...}."""

    def __init__(self, burst_home: Path):
        self.folder = Path(burst_home) / "instances"
        self.path = self.folder / "registry.json"

    @contextmanager
    def locked(self) -> Iterator[dict]:
        """Yield the registry for reading and changing; saved atomically on exit."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "registry.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = json.loads(self.path.read_text()) if self.path.exists() else {}
                before = json.dumps(data, sort_keys=True)
                yield data
                if json.dumps(data, sort_keys=True) != before:
                    write_atomically(self.path, json.dumps(data, indent=1, sort_keys=True))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def home_of(self, instance_id: str) -> Path:
        return self.folder / instance_id


def _processes_of(instance_id: str) -> list[int]:
    """Pids of this machine's processes that carry the sandbox's marker."""
    marker = f"{INSTANCE_MARKER}={instance_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue  # gone, or not ours to read
    return found


def kill_sandbox_processes(instance_id: str, grace_seconds: float = 3.0) -> None:
    """End every process of the sandbox: SIGTERM, then SIGKILL what is left after the grace time.

    Whole process groups are signalled, so background and ``nohup`` children of a
    command go with it (they keep the marker even after ``setsid``). The caller is
    spared when it is of the sandbox itself (the worker ending its own machine):
    the rest of its group is signalled process by process, and the worker exits
    by itself right after.
    """
    me = os.getpid()
    own_group = os.getpgrp()

    def targets() -> tuple[set[int], set[int]]:
        groups, own = set(), set()
        for pid in _processes_of(instance_id):
            if pid == me:
                continue
            try:
                group = os.getpgid(pid)
            except ProcessLookupError:
                continue
            (own if group == own_group else groups).add(pid if group == own_group else group)
        return groups, own

    deadline = time.monotonic() + grace_seconds
    sent_kill = False
    while True:
        groups, own = targets()
        if not groups and not own:
            return
        if time.monotonic() >= deadline:
            if sent_kill:
                return  # unkillable leftovers (zombies): nothing more we can do
            sig, sent_kill = signal.SIGKILL, True
        else:
            sig = signal.SIGTERM
        for send, ids in ((os.killpg, groups), (os.kill, own)):
            for target in ids:
                try:
                    send(target, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        time.sleep(0.1)


class LocalProvider(Provider):
    name = "local"

    def __init__(self, job: str, burst_home: Path, node_root: str = "burst"):
        self.job = job
        self.burst_home = Path(burst_home)
        self.node_root = node_root
        self.registry = SandboxRegistry(self.burst_home)

    @property
    def bucket_url(self) -> str:
        return (self.burst_home / "buckets" / self.job).resolve().as_uri()

    def node_options(self) -> dict:
        return {"burst_home": str(self.burst_home.resolve())}

    def node_python(self) -> str:
        return sys.executable  # the sandbox runs the agent with the dispatcher's Python

    def prepare(self) -> None:
        (self.burst_home / "buckets" / self.job).mkdir(parents=True, exist_ok=True)

    def cleanup(self) -> list[str]:
        """Drop the job's ended sandboxes and its bucket folder; say which."""
        removed = []
        with self.registry.locked() as registry:
            ended = [i for i, r in registry.items() if r["job"] == self.job and r["state"] != LIVE]
            for instance_id in ended:
                shutil.rmtree(self.registry.home_of(instance_id), ignore_errors=True)
                del registry[instance_id]
        if ended:
            removed.append(f"{len(ended)} ended sandbox(es) under {self.registry.folder}")
        bucket = self.burst_home / "buckets" / self.job
        if bucket.exists():
            shutil.rmtree(bucket, ignore_errors=True)
            removed.append(f"bucket folder {bucket}")
        return removed

    def launch(self, spec: LaunchSpec, count: int) -> list[str]:
        ids = [f"i-local-{uuid.uuid4().hex[:12]}" for _ in range(count)]
        with self.registry.locked() as registry:
            for instance_id in ids:
                home = self.registry.home_of(instance_id)
                home.mkdir(parents=True)
                registry[instance_id] = {
                    "job": spec.job,
                    "instance_type": spec.instance_type,
                    "state": LIVE,
                    "launched": utc_now(),
                    "home": str(home),
                }
        return ids

    def _info(self, instance_id: str, record: dict) -> InstanceInfo:
        return InstanceInfo(
            id=instance_id,
            job=record["job"],
            instance_type=record["instance_type"],
            state=record["state"],
            host="localhost",
            details={"launch_time": record["launched"], "sandbox": record["home"]},
        )

    def wait_ready(self, ids: list[str]) -> list[InstanceInfo]:
        with self.registry.locked() as registry:
            return [self._info(i, registry[i]) for i in ids]

    def list(self, tags: dict[str, str]) -> list[InstanceInfo]:
        with self.registry.locked() as registry:
            return [
                self._info(instance_id, record)
                for instance_id, record in sorted(registry.items())
                if record["state"] == LIVE and all(record.get(k) == v for k, v in tags.items())
            ]

    def terminate(self, ids: list[str]) -> None:
        with self.registry.locked() as registry:
            for instance_id in ids:
                if instance_id in registry:
                    registry[instance_id]["state"] = TERMINATED
                    registry[instance_id]["terminated"] = utc_now()
        for instance_id in ids:
            kill_sandbox_processes(instance_id)

    def shell_command(self, instance: InstanceInfo, workdir: str, command: str | None = None) -> ShellCommand:
        """bash in the sandbox (its HOME, its marker, so ``terminate`` ends what it starts)."""
        transport = self.transport(instance)
        cwd = transport.home / workdir  # a relative folder is in the sandbox's home, as on a machine
        return ShellCommand(["bash", "-c", command] if command else ["bash", "-i"], cwd=str(cwd),
                            env=transport.environment())

    def transport(self, instance: InstanceInfo, connect_timeout: float = 600.0) -> LocalTransport:
        return LocalTransport(self.registry.home_of(instance.id), instance.id, where=f"sandbox {instance.id}")


def terminate_self(config: NodeConfig) -> None:
    """The agent ends its own sandbox (what TerminateInstances is on EC2)."""
    LocalProvider(config.job, Path(config.provider_options["burst_home"])).terminate([config.instance_id])
