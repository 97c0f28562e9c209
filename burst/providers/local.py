"""AMI=local: every "instance" is a sandbox on this machine.

A sandbox is a folder used as ``HOME`` and the processes started in it; its
registry and how it ends live in ``burst.node.sandbox`` (the worker ends its own).
"""

from __future__ import annotations

import shutil
import sys
import uuid
from pathlib import Path

from burst.node.sandbox import LIVE, SandboxRegistry, end_sandbox
from burst.node.topology import read_cores
from burst.providers.base import LaunchSpec, Provider, ShellCommand
from burst.records import InstanceInfo, utc_now
from burst.transport.local import LocalTransport


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

    def physical_cores(self, types: list[str]) -> dict[str, int]:
        """Every sandbox shares this machine's cores (those this process may use)."""
        return dict.fromkeys(types, len(read_cores()))

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
        end_sandbox(self.burst_home, ids)

    def shell_command(self, instance: InstanceInfo, workdir: str, command: str | None = None) -> ShellCommand:
        """bash in the sandbox (its HOME, its marker, so ``terminate`` ends what it starts)."""
        transport = self.transport(instance)
        cwd = transport.home / workdir  # a relative folder is in the sandbox's home, as on a machine
        return ShellCommand(["bash", "-c", command] if command else ["bash", "-i"], cwd=str(cwd),
                            env=transport.environment())

    def transport(self, instance: InstanceInfo, connect_timeout: float = 600.0) -> LocalTransport:
        return LocalTransport(self.registry.home_of(instance.id), instance.id, where=f"sandbox {instance.id}")

