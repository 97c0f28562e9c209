"""A local sandbox as its own worker sees it: the registry of sandboxes, and how one ends.

A sandbox is a folder used as ``HOME`` (``$BURST_HOME/instances/<id>/``) and the
processes started in it, which all carry ``BURST_INSTANCE_ID=<id>`` in their
environment and run in sessions of their own. The registry of sandboxes is one
JSON file, read and written under an exclusive ``flock`` and replaced
atomically, so dispatchers, workers and ``burst status`` may use it at once.

Here, not in ``burst.providers.local``, because the worker ends its own sandbox
(what TerminateInstances is on EC2) and the node package imports no provider.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from burst.atomic import write_atomically
from burst.protocol import INSTANCE_MARKER
from burst.errors import BurstError
from burst.records import UnreadableRecord, json_object, utc_now

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
                data = self._read()
                before = json.dumps(data, sort_keys=True)
                yield data
                if json.dumps(data, sort_keys=True) != before:
                    write_atomically(self.path, json.dumps(data, indent=1, sort_keys=True))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict:
        if not self.path.exists():
            return {}
        try:
            data = json_object(self.path.read_bytes(), str(self.path))
            if not all(isinstance(v, dict) for v in data.values()):
                raise UnreadableRecord(str(self.path), "its entries are not records of sandboxes")
        except UnreadableRecord as error:
            raise BurstError(f"{error}. It lists the sandboxes burst started on this machine: move it aside "
                             f"(sandboxes still running then finish their rows and end by themselves) and run "
                             f"this again.") from None
        return data

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


def end_sandbox(burst_home: Path, ids: list[str]) -> None:
    """Mark the sandboxes terminated, then end every process of theirs."""
    registry = SandboxRegistry(burst_home)
    with registry.locked() as records:
        for instance_id in ids:
            if instance_id in records:
                records[instance_id]["state"] = TERMINATED
                records[instance_id]["terminated"] = utc_now()
    for instance_id in ids:
        kill_sandbox_processes(instance_id)
